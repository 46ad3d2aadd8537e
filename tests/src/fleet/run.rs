//! The scenarios `make fleet`, `make soak` and `tests/tests/envoy_fleet.rs` run: start a fleet, put load on
//! every proxy, push a series of policies (each at a fixed time from the start of the load), then judge every
//! answer and report the figures FLEET.md records.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::client::Conn;
use super::converge::{baseline, wait_all, Landed, Outcome};
use super::layout::{layout, Kind};
use super::load::{sweep, Load, LoadReport};
use super::policy::{self, answer_name, broken, compile_policy, per_service, Oracle, V2};
use super::rss::{slope_kib_per_min, snapshot, Sampler};
use super::verdict::{check, consistency, percentile, Consistency, Step as Landing, Timeline, Verdict};
use super::Fleet;

/// How long a proxy may take to apply or refuse one push before the run fails.
const PUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// The line the filter logs when it refuses [`policy::broken`]'s configuration.
const REFUSAL: &str = "canary: refusing configuration: config version 2 is not supported";

/// What a step pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Policy number `i` of the plan (must differ from the one in force: Envoy skips an identical update).
    Policy(usize),
    /// The policy in force, broken (see [`policy::broken`]): every proxy must refuse it.
    Broken,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub label: String,
    /// When to push, from the start of the load (later if the previous step is still running).
    pub at: Duration,
    pub push: Push,
    /// After the push has landed everywhere, send every key to every proxy and check consistency.
    pub sweep: bool,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub proxies: usize,
    /// Sticky keys (`user-0` …) the load draws from and a sweep sends.
    pub keys: usize,
    /// (label, policy text); the first is what the fleet starts with.
    pub policies: Vec<(String, String)>,
    pub steps: Vec<Step>,
    /// When the load stops, from its start.
    pub end: Duration,
    pub load_threads: usize,
    pub chain_threads: usize,
    pub rss_every: Duration,
    /// After the load: push a policy with this many generated rules and measure memory with it.
    pub many_rules: Option<usize>,
}

fn step(label: &str, secs: u64, push: Push, sweep: bool) -> Step {
    Step { label: label.to_string(), at: Duration::from_secs(secs), push, sweep }
}

impl Plan {
    /// `make fleet`: 20% → 50% → 100%, a broken policy, a rollback to 50%; then 10,000 rules.
    pub fn fleet(proxies: usize) -> Plan {
        Plan {
            proxies,
            keys: 2000,
            policies: rollouts(&[0, 20, 50, 100]),
            steps: vec![
                step("20%", 3, Push::Policy(1), false),
                step("50%", 8, Push::Policy(2), true),
                step("100%", 13, Push::Policy(3), false),
                step("broken", 18, Push::Broken, false),
                step("rollback to 50%", 23, Push::Policy(2), true),
            ],
            end: Duration::from_secs(28),
            load_threads: 3,
            chain_threads: 1,
            rss_every: Duration::from_secs(5),
            many_rules: Some(10_000),
        }
    }

    /// The `cargo test` variant: 4 proxies, one push, one broken push.
    pub fn short() -> Plan {
        Plan {
            proxies: 4,
            keys: 1000,
            policies: rollouts(&[0, 50]),
            steps: vec![step("50%", 2, Push::Policy(1), true), step("broken", 5, Push::Broken, false)],
            end: Duration::from_secs(7),
            load_threads: 2,
            chain_threads: 1,
            rss_every: Duration::from_secs(10),
            many_rules: None,
        }
    }

    /// `make soak`: 4 proxies for `secs`, a push every 30 s alternating 20% and 50%, RSS every 10 s.
    pub fn soak(secs: u64) -> Plan {
        let steps = (1..)
            .map(|i| i * 30)
            .take_while(|&at| at + 5 <= secs)
            .enumerate()
            .map(|(i, at)| {
                if i % 2 == 0 {
                    step("20%", at, Push::Policy(1), false)
                } else {
                    step("50%", at, Push::Policy(2), false)
                }
            })
            .collect();
        Plan {
            proxies: 4,
            keys: 2000,
            policies: rollouts(&[0, 20, 50]),
            steps,
            end: Duration::from_secs(secs),
            load_threads: 2,
            chain_threads: 1,
            rss_every: Duration::from_secs(10),
            many_rules: None,
        }
    }
}

fn rollouts(percents: &[u32]) -> Vec<(String, String)> {
    percents.iter().map(|&p| (format!("rollout {p}%"), policy::rollout(p))).collect()
}

/// How one push landed across the fleet.
#[derive(Debug, Clone)]
pub struct PushFigure {
    pub label: String,
    pub expected: Outcome,
    pub applied: usize,
    pub refused: usize,
    /// Per proxy: rename → counter seen, in ms.
    pub latencies_ms: Vec<f64>,
}

impl PushFigure {
    fn new(label: &str, expected: Outcome, landed: &[Landed]) -> PushFigure {
        PushFigure {
            label: label.to_string(),
            expected,
            applied: landed.iter().filter(|l| l.outcome == Outcome::Applied).count(),
            refused: landed.iter().filter(|l| l.outcome == Outcome::Refused).count(),
            latencies_ms: landed.iter().map(|l| l.after.as_secs_f64() * 1e3).collect(),
        }
    }

    fn as_expected(&self) -> bool {
        let n = self.latencies_ms.len();
        match self.expected {
            Outcome::Applied => self.applied == n,
            Outcome::Refused => self.refused == n,
        }
    }
}

/// The 10,000-rule push.
#[derive(Debug, Clone)]
pub struct ManyRules {
    pub rules: usize,
    pub file_bytes: u64,
    pub push: PushFigure,
    pub probes: usize,
    pub probes_wrong: Vec<String>,
    pub rss_kib: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub kinds: Vec<Kind>,
    pub keys: usize,
    pub load_secs: f64,
    pub pushes: Vec<PushFigure>,
    pub verdict: Verdict,
    /// Connections the load opened, and how many it needs with none closed (threads × proxies).
    pub connects: u64,
    pub connects_needed: u64,
    pub errors: Vec<String>,
    pub sweeps: Vec<(String, Consistency)>,
    pub chains: u64,
    pub chains_mixed: u64,
    pub chains_v2: u64,
    pub broken_chains: u64,
    /// Proxies whose log has the filter's refusal line (when a broken policy was pushed).
    pub refusals_logged: Option<usize>,
    pub rss_start: Vec<u64>,
    pub rss_after_load: Vec<u64>,
    pub rss_series: Vec<(f64, Vec<u64>)>,
    pub many: Option<ManyRules>,
    /// Proxies not running at the end.
    pub exited: Vec<String>,
}

/// Prints progress lines to stderr when `verbose`.
pub fn run(plan: &Plan, verbose: bool) -> Result<Report> {
    let say = |line: String| {
        if verbose {
            eprintln!("[fleet] {line}");
        }
    };
    let kinds = layout(plan.proxies);
    let configs: Vec<_> =
        plan.policies.iter().map(|(label, text)| compile_policy(text, label)).collect::<Result<_>>()?;
    let files: Vec<BTreeMap<&'static str, String>> = configs.iter().map(per_service).collect();
    let oracles: Vec<Oracle> = configs.iter().map(|c| Oracle::new(c, &kinds, plan.keys)).collect::<Result<_>>()?;

    let started = Instant::now();
    let mut fleet = Fleet::start(&kinds, &files[0])?;
    say(format!("{} Envoys ready after {:.1} s", kinds.len(), started.elapsed().as_secs_f64()));
    let pids = fleet.pids();
    let rss_start = snapshot(&pids);

    let epoch = Instant::now();
    let sampler = Sampler::start(pids.clone(), plan.rss_every, epoch);
    let load = Load::start(&fleet.proxies, plan.keys, plan.load_threads, plan.chain_threads, epoch);
    let series = push_series(plan, &mut fleet, &files, &oracles, &kinds, epoch, &say);
    let sleep_until = |at: Duration| thread::sleep(at.saturating_sub(epoch.elapsed()));
    if series.is_ok() {
        sleep_until(plan.end);
    }
    let load_secs = epoch.elapsed().as_secs_f64();
    let report: LoadReport = load.stop();
    let rss_series = sampler.stop();
    let (timeline, pushes, sweeps) = series.map_err(|e| anyhow::anyhow!("{e:#}\n--- logs ---\n{}", fleet.tails()))?;
    let rss_after_load = snapshot(&pids);
    say(format!("load stopped: {} requests in {load_secs:.1} s", report.records.len()));

    let verdict = check(&report.records, &timeline, &oracles, &kinds);
    let refusals_logged = plan
        .steps
        .iter()
        .any(|s| s.push == Push::Broken)
        .then(|| (0..kinds.len()).filter(|&i| fleet.log(i).contains(REFUSAL)).count());
    let many = match plan.many_rules {
        Some(rules) => Some(many_rules(&mut fleet, rules, &pids, &say)?),
        None => None,
    };
    let alive = fleet.pids();
    let exited =
        fleet.proxies.iter().zip(&alive).filter(|(_, pid)| pid.is_none()).map(|(p, _)| p.name.clone()).collect();
    Ok(Report {
        keys: plan.keys,
        load_secs,
        pushes,
        verdict,
        connects: report.connects,
        connects_needed: ((plan.load_threads + plan.chain_threads) * kinds.len()) as u64,
        errors: report.errors,
        sweeps,
        chains: report.chains.len() as u64,
        chains_mixed: report.chains.iter().filter(|c| c.is_mixed()).count() as u64,
        chains_v2: report.chains.iter().filter(|c| c.frontend == V2).count() as u64,
        broken_chains: report.broken_chains,
        refusals_logged,
        rss_start,
        rss_after_load,
        rss_series,
        many,
        exited,
        kinds,
    })
}

type Series = (Timeline, Vec<PushFigure>, Vec<(String, Consistency)>);

fn push_series(
    plan: &Plan,
    fleet: &mut Fleet,
    files: &[BTreeMap<&'static str, String>],
    oracles: &[Oracle],
    kinds: &[Kind],
    epoch: Instant,
    say: &dyn Fn(String),
) -> Result<Series> {
    let mut timeline = Timeline { initial: 0, steps: Vec::new() };
    let (mut pushes, mut sweeps) = (Vec::new(), Vec::new());
    let mut current = 0;
    for s in &plan.steps {
        thread::sleep(s.at.saturating_sub(epoch.elapsed()));
        let (content, policy, expected) = match s.push {
            Push::Policy(i) => (files[i].clone(), i, Outcome::Applied),
            Push::Broken => (broken(&files[current])?, current, Outcome::Refused),
        };
        let before = baseline(&fleet.proxies)?;
        let published = fleet.publish(&content)?;
        let landed =
            wait_all(&fleet.proxies, &before, expected, published, PUSH_TIMEOUT).with_context(|| s.label.clone())?;
        let micros = |at: Instant| at.duration_since(epoch).as_micros() as u64;
        timeline.steps.push(Landing {
            published_us: micros(published),
            policy,
            landed: landed.iter().map(|l| (l.outcome, micros(l.at))).collect(),
        });
        let figure = PushFigure::new(&s.label, expected, &landed);
        say(format!(
            "push {}: applied {} refused {} of {}; landed after p50 {:.0} ms, max {:.0} ms",
            s.label,
            figure.applied,
            figure.refused,
            landed.len(),
            percentile(&figure.latencies_ms, 50.0),
            percentile(&figure.latencies_ms, 100.0)
        ));
        pushes.push(figure);
        current = policy;
        if s.sweep {
            let c = consistency(&sweep(&fleet.proxies, plan.keys), kinds, &oracles[current], plan.keys);
            say(format!("sweep after {}: {c:?}", s.label));
            sweeps.push((s.label.clone(), c));
        }
    }
    Ok((timeline, pushes, sweeps))
}

/// Pushes a policy with `rules` generated rules, checks a few answers at every edge, and measures memory.
fn many_rules(fleet: &mut Fleet, rules: usize, pids: &[Option<u32>], say: &dyn Fn(String)) -> Result<ManyRules> {
    let config = compile_policy(&policy::many_rules(rules, 50), "many-rules.canary")?;
    let oracle = Oracle::new(&config, &[Kind::Edge], 20)?;
    let before = baseline(&fleet.proxies)?;
    let published = fleet.publish(&per_service(&config))?;
    let landed =
        wait_all(&fleet.proxies, &before, Outcome::Applied, published, PUSH_TIMEOUT).context("the many-rules push")?;
    let push = PushFigure::new(&format!("{rules} rules"), Outcome::Applied, &landed);
    let file_bytes = fleet.file_sizes().get("frontend").copied().unwrap_or(0);
    say(format!("push {} ({file_bytes} bytes per file): applied by {} of {}", push.label, push.applied, landed.len()));
    let (mut probes, mut probes_wrong) = (0, Vec::new());
    for p in fleet.proxies.iter().filter(|p| p.kind == Kind::Edge) {
        let mut conn = Conn::new(p.listen);
        let mut probe = |headers: &[(&str, &str)], want: &str| -> Result<()> {
            probes += 1;
            let (status, body) = conn.get("/", headers)?;
            let got = answer_name(policy::answer_of(&body));
            if status != 200 || got != want {
                probes_wrong.push(format!("{} {headers:?}: {status} {got}, want {want}", p.name));
            }
            Ok(())
        };
        for t in [0, rules / 2, rules - 1] {
            let tenant = policy::tenant(t);
            probe(&[("x-tenant", tenant.as_str()), (policy::KEY_HEADER, "user-0")], "v2")?;
        }
        for k in 0..20 {
            let user = policy::key(k);
            probe(&[(policy::KEY_HEADER, user.as_str())], answer_name(oracle.expect(Kind::Edge, k, false)))?;
        }
    }
    // Let the old configurations' VMs and buffers go before measuring.
    thread::sleep(Duration::from_secs(2));
    Ok(ManyRules { rules, file_bytes, push, probes, probes_wrong, rss_kib: snapshot(pids) })
}

impl Report {
    /// Every goal the run missed, as sentences; empty when all were met.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        for p in self.pushes.iter().chain(self.many.as_ref().map(|m| &m.push)) {
            if !p.as_expected() {
                f.push(format!(
                    "push `{}`: {:?} expected, applied {} refused {}",
                    p.label, p.expected, p.applied, p.refused
                ));
            }
        }
        let v = &self.verdict;
        if v.requests < 100 {
            f.push(format!("the load sent only {} requests", v.requests));
        }
        if v.non_2xx + v.errors > 0 {
            f.push(format!(
                "{} non-2xx answers and {} connection errors during the pushes: {:?}",
                v.non_2xx, v.errors, self.errors
            ));
        }
        if v.stale + v.wrong > 0 {
            f.push(format!("{} answers stale and {} wrong after convergence", v.stale, v.wrong));
        }
        for (label, c) in &self.sweeps {
            if c.keys < 1000 || c.failed + c.disagreements + c.mismatches > 0 {
                f.push(format!("sticky sweep after `{label}`: {c:?}"));
            }
        }
        if self.chains == 0 || self.chains_mixed > 0 || self.broken_chains > 0 {
            f.push(format!(
                "S5 chains: {} walked, {} mixed versions, {} cut short",
                self.chains, self.chains_mixed, self.broken_chains
            ));
        }
        if let Some(n) = self.refusals_logged {
            if n != self.kinds.len() {
                f.push(format!("only {n} of {} proxies logged `{REFUSAL}`", self.kinds.len()));
            }
        }
        if let Some(m) = &self.many {
            if !m.probes_wrong.is_empty() {
                f.push(format!("{}-rule policy answered wrongly: {:?}", m.rules, m.probes_wrong));
            }
        }
        if !self.exited.is_empty() {
            f.push(format!("Envoys exited: {:?}", self.exited));
        }
        f
    }

    /// Least-squares RSS slope per proxy over the load, KiB/min.
    pub fn rss_slopes(&self) -> Vec<f64> {
        (0..self.kinds.len())
            .map(|p| {
                let samples: Vec<(f64, f64)> = self.rss_series.iter().map(|(t, kib)| (*t, kib[p] as f64)).collect();
                slope_kib_per_min(&samples)
            })
            .collect()
    }

    /// The figures as a Markdown table (what `make fleet` / `make soak` print and FLEET.md records).
    pub fn table(&self) -> String {
        let mut t = String::new();
        let v = &self.verdict;
        let per_kind: BTreeMap<String, usize> = self.kinds.iter().fold(BTreeMap::new(), |mut m, k| {
            *m.entry(k.to_string()).or_insert(0) += 1;
            m
        });
        let kinds: Vec<String> = per_kind.iter().map(|(k, n)| format!("{n}× {k}")).collect();
        let _ = writeln!(t, "| figure | value |\n|---|---|");
        let _ = writeln!(t, "| proxies | {} ({}) |", self.kinds.len(), kinds.join(", "));
        let good: Vec<f64> = self
            .pushes
            .iter()
            .filter(|p| p.expected == Outcome::Applied)
            .flat_map(|p| p.latencies_ms.iter().copied())
            .collect();
        let n_good = self.pushes.iter().filter(|p| p.expected == Outcome::Applied).count();
        let _ = writeln!(
            t,
            "| push → applied, over {} proxies × {n_good} pushes | p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms |",
            self.kinds.len(),
            percentile(&good, 50.0),
            percentile(&good, 99.0),
            percentile(&good, 100.0)
        );
        for p in &self.pushes {
            let _ = writeln!(
                t,
                "| push `{}` | {} applied, {} refused of {}; landed p50 {:.0} ms, max {:.0} ms |",
                p.label,
                p.applied,
                p.refused,
                p.latencies_ms.len(),
                percentile(&p.latencies_ms, 50.0),
                percentile(&p.latencies_ms, 100.0)
            );
        }
        let _ = writeln!(
            t,
            "| load | {} requests in {:.1} s ({:.0}/s) over {} connections (at most {} if none closed) |",
            v.requests,
            self.load_secs,
            v.requests as f64 / self.load_secs.max(1e-9),
            self.connects,
            self.connects_needed
        );
        let _ = writeln!(t, "| non-2xx / connection errors | {} / {} |", v.non_2xx, v.errors);
        let _ = writeln!(
            t,
            "| decided by the old policy after convergence | {} stale, {} wrong, of {} checked ({} more inside push windows) |",
            v.stale, v.wrong, v.converged, v.in_window
        );
        for (label, c) in &self.sweeps {
            let _ = writeln!(
                t,
                "| sticky consistency after `{label}` | {} keys × {} proxies: {} disagreements, {} differ from the evaluator, {} failed |",
                c.keys, c.proxies, c.disagreements, c.mismatches, c.failed
            );
        }
        let _ = writeln!(
            t,
            "| S5 chains across proxies | {} walked ({} through frontend v2): {} mixed versions, {} cut short |",
            self.chains, self.chains_v2, self.chains_mixed, self.broken_chains
        );
        if let Some(n) = self.refusals_logged {
            let _ = writeln!(t, "| broken policy | refused (logged) by {n} of {} proxies; last good kept serving (in the stale count) |", self.kinds.len());
        }
        let mib = |kib: &[u64]| {
            let mut v: Vec<f64> = kib.iter().map(|&k| k as f64 / 1024.0).collect();
            v.sort_by(f64::total_cmp);
            format!(
                "min {:.1}, median {:.1}, max {:.1} MiB",
                v.first().unwrap_or(&0.0),
                percentile(&v, 50.0),
                v.last().unwrap_or(&0.0)
            )
        };
        let _ = writeln!(t, "| RSS per Envoy at start (rollout policy, no load) | {} |", mib(&self.rss_start));
        let _ = writeln!(t, "| RSS per Envoy after the load | {} |", mib(&self.rss_after_load));
        if let Some(m) = &self.many {
            let _ = writeln!(
                t,
                "| {} rules pushed ({:.1} MiB file) | applied by {} of {}, p50 {:.0} ms, max {:.0} ms; {} probes, {} wrong |",
                m.rules,
                m.file_bytes as f64 / 1048576.0,
                m.push.applied,
                m.push.latencies_ms.len(),
                percentile(&m.push.latencies_ms, 50.0),
                percentile(&m.push.latencies_ms, 100.0),
                m.probes,
                m.probes_wrong.len()
            );
            let _ = writeln!(t, "| RSS per Envoy with {} rules | {} |", m.rules, mib(&m.rss_kib));
        }
        if self.rss_series.len() >= 3 {
            let slopes = self.rss_slopes();
            let s: Vec<String> = slopes.iter().map(|s| format!("{s:+.0}")).collect();
            let _ = writeln!(
                t,
                "| RSS slope over the load ({} samples per proxy) | {} KiB/min (per proxy) |",
                self.rss_series.len(),
                s.join(", ")
            );
        }
        t
    }
}
