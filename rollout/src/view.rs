//! What an operator sees: the live terminal view (redrawn in place each interval when stdout is a TTY),
//! one plain line per interval otherwise, and `status`. Rendering is pure (snapshot → text); the two
//! outputs only decide where the text goes. Plain ANSI (cursor up, clear to end) is all the redraw needs.

use std::io::Write;

use crate::counts::ArmCounts;
use crate::events::{Event, Output, Snapshot};
use crate::judge::{Evidence, Metric};
use crate::plan::Plan;
use crate::state::{Phase, State};

const BAR: usize = 24;

/// The live view's panel.
pub fn panel(s: &Snapshot) -> String {
    let mut out = format!(
        "{}  step {}/{}  canary {}  {}  elapsed {}\n",
        s.service,
        s.step_index + 1,
        s.steps,
        pct(s.percent),
        s.state.name(),
        duration(s.elapsed_secs)
    );
    if let Some(p) = &s.progress {
        let t = if p.min_secs > 0.0 { p.elapsed_secs / p.min_secs } else { 1.0 };
        out += &format!("  time      {}  {} / {}\n", bar(t), duration(p.elapsed_secs), duration(p.min_secs));
        let r = if p.min_requests > 0 { p.canary_requests as f64 / p.min_requests as f64 } else { 1.0 };
        out += &format!("  requests  {}  {} / {} canary requests\n", bar(r), p.canary_requests, p.min_requests);
        out += &format!("  {}\n", next_step(s));
    }
    out += "            requests     req/s   errors              slow\n";
    out += &arm_row("baseline", &s.totals.baseline, &s.delta.baseline, s.interval_secs);
    out += &arm_row("canary", &s.totals.canary, &s.delta.canary, s.interval_secs);
    for e in &s.evidence {
        out += &format!(
            "  {:<8}  {}  evidence {} / {} (1/α)\n",
            metric(e.metric),
            evidence_bar(e),
            num(e.e_value),
            num(e.threshold)
        );
        if let (Some(w), Some(t)) = (e.within_e_value, e.within_threshold) {
            out += &format!("  {:<8}  {}  within   {} / {} (1/β)\n", "", within_bar(w, t), num(w), num(t));
        }
    }
    for n in &s.notes {
        out += &format!("  note: {n}\n");
    }
    out
}

/// One line per interval (not a TTY).
pub fn line(s: &Snapshot) -> String {
    let mut out = format!(
        "[{}] step {}/{} canary {} {}: baseline {} req {} err, canary {} req {} err",
        duration(s.elapsed_secs),
        s.step_index + 1,
        s.steps,
        pct(s.percent),
        s.state.name(),
        s.totals.baseline.requests,
        s.totals.baseline.errors,
        s.totals.canary.requests,
        s.totals.canary.errors
    );
    for e in &s.evidence {
        out += &format!(", {} evidence {}/{}", metric(e.metric), num(e.e_value), num(e.threshold));
        if let (Some(w), Some(t)) = (e.within_e_value, e.within_threshold) {
            out += &format!(" within {}/{}", num(w), num(t));
        }
    }
    if s.progress.is_some() {
        out += &format!("; {}", next_step(s));
    }
    out
}

/// A human line for an event other than a reading.
pub fn event_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::Reading(_) => return None,
        Event::Start { service, policy, step, percent, resumed, dry_run } => format!(
            "{} {service} ({policy}) at step {step}, canary {}{}",
            if *resumed { "resuming" } else { "starting" },
            pct(*percent),
            if *dry_run { " — dry run: nothing is written or pushed" } else { "" }
        ),
        Event::Note { message } => format!("note: {message}"),
        Event::Diff { from, to, summary } => format!("{} → {}:\n{}", pct(*from), pct(*to), summary.trim_end()),
        Event::Push { percent, entry, of, manifest, command, dry_run } => format!(
            "{}push {entry}/{of} ({}): canaryc manifest POLICY {}{}",
            if *dry_run { "would " } else { "" },
            pct(*percent),
            manifest.join(" "),
            command.as_ref().map_or(String::new(), |c| format!(" | {}", c.join(" ")))
        ),
        Event::Step { from, to } => format!("step passed: canary {} → {}", pct(*from), pct(*to)),
        Event::Promoted => "promoted: every step passed, the canary takes 100%".to_string(),
        Event::Rollback { metric: m, e_value, threshold } => format!(
            "rollback: {} evidence {} crossed {} (1/α): the canary goes to 0%",
            metric(*m),
            num(*e_value),
            num(*threshold)
        ),
        Event::Aborted => "aborted: the canary goes to 0%".to_string(),
        Event::Finished { state } => format!("this rollout has already finished: {}", state.name()),
    })
}

/// `canaryc rollout status`.
pub fn status(plan: &Plan, state: &State, s: &Snapshot) -> String {
    let steps: Vec<String> = plan.steps.steps.iter().map(|p| pct(*p)).collect();
    let mut out = format!(
        "{}: {} (rule {} of {}, canary `{}` vs baseline `{}`)\nstep {}/{} [{}], canary {}, elapsed {}, on this step {}\n",
        s.service,
        s.state.name(),
        plan.target.line,
        plan.policy.display(),
        plan.target.canary,
        plan.baseline,
        s.step_index + 1,
        s.steps,
        steps.join(" → "),
        pct(s.percent),
        duration(s.elapsed_secs),
        duration((state.updated_at - state.step_started_at).max(0.0))
    );
    if let Phase::Pushing { target, done, .. } = &state.phase {
        out += &format!(
            "unfinished push of {} ({done}/{} entries done): run the rollout again to finish it\n",
            pct(*target),
            plan.push.len()
        );
    }
    if state.abort_requested && !state.finished() {
        out += "abort requested\n";
    }
    out += &format!(
        "baseline {} requests, {} errors, {} slow; canary {} requests, {} errors, {} slow\n",
        state.totals.baseline.requests,
        state.totals.baseline.errors,
        state.totals.baseline.slow,
        state.totals.canary.requests,
        state.totals.canary.errors,
        state.totals.canary.slow
    );
    for e in &s.evidence {
        out += &format!("{} evidence {} / {} (1/α)\n", metric(e.metric), num(e.e_value), num(e.threshold));
        if let (Some(w), Some(t)) = (e.within_e_value, e.within_threshold) {
            out += &format!("{} within tolerance {} / {} (1/β)\n", metric(e.metric), num(w), num(t));
        }
    }
    if let Some(m) = state.regressed {
        out += &format!("rolled back on {}\n", metric(m));
    }
    out
}

/// `step in 24s`, or what the step waits for.
fn next_step(s: &Snapshot) -> String {
    let Some(p) = &s.progress else { return String::new() };
    let time_left = (p.min_secs - p.elapsed_secs).max(0.0);
    let missing = p.min_requests.saturating_sub(p.canary_requests);
    let rate = if s.interval_secs > 0.0 { s.delta.canary.requests as f64 / s.interval_secs } else { 0.0 };
    let requests_left = match (missing, rate > 0.0) {
        (0, _) => Some(0.0),
        (m, true) => Some(m as f64 / rate),
        (_, false) => None,
    };
    // Under `promote: evidence` the step also waits for every metric's within-evidence to reach 1/β, which
    // no rate predicts: say so rather than promise a time.
    let short =
        s.evidence.iter().any(|e| matches!((e.within_e_value, e.within_threshold), (Some(w), Some(t)) if w < t));
    match requests_left {
        None => format!("next step: waiting for {missing} more canary requests (none in the last interval)"),
        Some(r) if time_left.max(r) == 0.0 && short => {
            "next step: waiting for evidence that the canary is within its tolerance (1/β)".to_string()
        }
        Some(r) if time_left.max(r) == 0.0 => "next step: at the next reading, unless the judge objects".to_string(),
        Some(r) if short => format!(
            "next step in ~{} at the earliest (needs evidence within the tolerance)",
            duration(time_left.max(r))
        ),
        Some(r) => format!("next step in ~{}", duration(time_left.max(r))),
    }
}

fn arm_row(name: &str, total: &ArmCounts, delta: &ArmCounts, interval: f64) -> String {
    let rate = if interval > 0.0 { delta.requests as f64 / interval } else { 0.0 };
    format!(
        "  {name:<8}  {:>10}  {:>8.1}   {:<18}  {}\n",
        total.requests,
        rate,
        share(total.errors, total.requests),
        share(total.slow, total.requests)
    )
}

fn share(events: u64, requests: u64) -> String {
    if requests == 0 {
        return format!("{events}");
    }
    format!("{events} ({:.2}%)", events as f64 * 100.0 / requests as f64)
}

fn bar(fraction: f64) -> String {
    let f = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 0.0 };
    let full = (f * BAR as f64).round() as usize;
    format!("[{}{}]", "█".repeat(full), "░".repeat(BAR - full))
}

/// Evidence on a log scale from 1 (none) to 1/α (rollback).
fn evidence_bar(e: &Evidence) -> String {
    within_bar(e.e_value, e.threshold)
}

/// An e-value on a log scale from 1 (none) to its threshold (1/α to roll back, 1/β to promote).
fn within_bar(value: f64, threshold: f64) -> String {
    if threshold <= 1.0 || !value.is_finite() {
        return bar(if value >= threshold { 1.0 } else { 0.0 });
    }
    bar(value.max(1.0).ln() / threshold.ln())
}

fn metric(m: Metric) -> &'static str {
    match m {
        Metric::Errors => "errors",
        Metric::Latency => "latency",
    }
}

/// A percentage as the policy language writes it (`5%`, `0.5%`).
pub fn pct(p: f64) -> String {
    match crate::edit::basis_points(p) {
        Ok(bp) => canary_dsl::percent(bp),
        Err(_) => format!("{p}%"),
    }
}

fn num(x: f64) -> String {
    if x.abs() >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// `75` → `1m15s`.
pub fn duration(secs: f64) -> String {
    let s = if secs.is_finite() { secs.max(0.0).round() as u64 } else { 0 };
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// Line per event, line per reading (stdout not a TTY).
pub struct Plain<W: Write> {
    pub out: W,
}

impl<W: Write> Output for Plain<W> {
    fn emit(&mut self, event: &Event) {
        let text = match event {
            Event::Reading(s) => line(s),
            other => event_line(other).unwrap_or_default(),
        };
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }
}

/// The live view: events scroll above a panel redrawn in place.
pub struct Live<W: Write> {
    pub out: W,
    /// Lines of the panel on screen now (erased before anything is printed).
    drawn: usize,
    last: Option<Snapshot>,
}

impl<W: Write> Live<W> {
    pub fn new(out: W) -> Self {
        Live { out, drawn: 0, last: None }
    }

    fn erase(&mut self) {
        if self.drawn > 0 {
            let _ = write!(self.out, "\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self) {
        if let Some(s) = &self.last {
            let text = panel(s);
            self.drawn = text.lines().count();
            let _ = write!(self.out, "{text}");
        }
        let _ = self.out.flush();
    }
}

impl<W: Write> Output for Live<W> {
    fn emit(&mut self, event: &Event) {
        match event {
            Event::Reading(s) => self.snapshot(s),
            other => {
                self.erase();
                if let Some(text) = event_line(other) {
                    let _ = writeln!(self.out, "{text}");
                }
                self.draw();
            }
        }
    }

    fn snapshot(&mut self, snapshot: &Snapshot) {
        self.erase();
        self.last = Some(snapshot.clone());
        self.draw();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counts::Counts;
    use crate::state::Shown;
    use crate::stepper::StepProgress;

    fn snap() -> Snapshot {
        let arm = |requests, errors| ArmCounts { requests, errors, slow: 0 };
        Snapshot {
            service: "forecast".into(),
            state: Shown::Running,
            step_index: 1,
            steps: 5,
            percent: 5.0,
            progress: Some(StepProgress {
                index: 1,
                weight: 5.0,
                elapsed_secs: 30.0,
                min_secs: 60.0,
                canary_requests: 100,
                min_requests: 200,
            }),
            totals: Counts { baseline: arm(10_000, 10), canary: arm(500, 1) },
            delta: Counts { baseline: arm(950, 1), canary: arm(50, 0) },
            interval_secs: 5.0,
            evidence: vec![Evidence {
                metric: Metric::Errors,
                e_value: 10.0,
                threshold: 100.0,
                baseline_events: 10,
                baseline_requests: 10_000,
                canary_events: 1,
                canary_requests: 500,
                within_e_value: None,
                within_threshold: None,
            }],
            notes: vec!["127.0.0.1:9902 unreachable".into()],
            elapsed_secs: 75.0,
        }
    }

    #[test]
    fn panel_shows_step_progress_arms_and_evidence() {
        let p = panel(&snap());
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[0], "forecast  step 2/5  canary 5%  running  elapsed 1m15s");
        assert_eq!(lines[1], format!("  time      [{}{}]  30s / 1m00s", "█".repeat(12), "░".repeat(12)));
        assert!(lines[2].ends_with("100 / 200 canary requests"), "{}", lines[2]);
        // 100 missing canary requests at 10/s outlast the 30 s left.
        assert_eq!(lines[3], "  next step in ~30s");
        assert!(
            lines[5].contains("10000") && lines[5].contains("190.0") && lines[5].contains("10 (0.10%)"),
            "{}",
            lines[5]
        );
        assert!(lines[6].contains("1 (0.20%)"), "{}", lines[6]);
        // log scale: e = 10 is halfway to 100.
        assert_eq!(lines[7], format!("  errors    [{}{}]  evidence 10 / 100 (1/α)", "█".repeat(12), "░".repeat(12)));
        assert_eq!(lines[8], "  note: 127.0.0.1:9902 unreachable");
    }

    #[test]
    fn within_evidence_is_shown_only_under_promote_evidence() {
        let mut s = snap();
        assert!(!panel(&s).contains("within") && !line(&s).contains("within"));
        s.evidence[0].within_e_value = Some(4.472);
        s.evidence[0].within_threshold = Some(20.0);
        let p = panel(&s);
        let lines: Vec<&str> = p.lines().collect();
        // log scale: 4.47 = √20 is halfway to 20.
        assert_eq!(lines[8], format!("            [{}{}]  within   4.47 / 20 (1/β)", "█".repeat(12), "░".repeat(12)));
        assert_eq!(lines[3], "  next step in ~30s at the earliest (needs evidence within the tolerance)");
        assert!(line(&s).contains("errors evidence 10/100 within 4.47/20;"), "{}", line(&s));
        s.progress = s.progress.map(|p| StepProgress { elapsed_secs: 60.0, canary_requests: 200, ..p });
        assert!(
            line(&s).ends_with("waiting for evidence that the canary is within its tolerance (1/β)"),
            "{}",
            line(&s)
        );
        // JSON readings carry the fields only when present.
        assert!(serde_json::to_string(&s).unwrap().contains(r#""within_e_value":4.472,"within_threshold":20.0"#));
        assert!(!serde_json::to_string(&snap()).unwrap().contains("within"));
    }

    #[test]
    fn next_step_waits_for_requests_when_none_arrive() {
        let mut s = snap();
        s.delta.canary.requests = 0;
        assert!(line(&s).ends_with("waiting for 100 more canary requests (none in the last interval)"), "{}", line(&s));
    }

    #[test]
    fn plain_line_and_event_lines() {
        assert_eq!(
            line(&snap()),
            "[1m15s] step 2/5 canary 5% running: baseline 10000 req 10 err, canary 500 req 1 err, errors evidence 10/100; next step in ~30s"
        );
        assert_eq!(event_line(&Event::Step { from: 0.5, to: 12.25 }).unwrap(), "step passed: canary 0.5% → 12.25%");
        let push = Event::Push {
            percent: 5.0,
            entry: 2,
            of: 2,
            manifest: vec!["--kind".into(), "istio-routes".into()],
            command: Some(vec!["kubectl".into(), "apply".into(), "-f".into(), "-".into()]),
            dry_run: true,
        };
        assert_eq!(
            event_line(&push).unwrap(),
            "would push 2/2 (5%): canaryc manifest POLICY --kind istio-routes | kubectl apply -f -"
        );
    }

    #[test]
    fn live_view_redraws_in_place() {
        let mut live = Live::new(Vec::new());
        live.snapshot(&snap());
        let first = panel(&snap()).lines().count();
        live.emit(&Event::Note { message: "x".into() });
        let text = String::from_utf8(live.out).unwrap();
        // The panel is erased (cursor up over its lines, clear), the note printed, the panel drawn again.
        let erase = format!("\x1b[{first}A\x1b[J");
        assert_eq!(text.matches(&erase).count(), 1);
        assert!(text.contains(&format!("{erase}note: x\nforecast  step 2/5")));
    }
}
