//! The rollout's own `/metrics` (plan `metrics_listen`), so the dashboards that watch the proxies can watch
//! the rollout too. The text is a pure function of a [`Snapshot`]; a small thread answers GETs with the
//! latest one (one request at a time is plenty for a scraper).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::events::{Event, Output, Snapshot};
use crate::judge::Metric;
use crate::state::Shown;

/// Prometheus text format (0.0.4) of a snapshot: exactly the `canary_rollout_*` series.
pub fn render(s: &Snapshot) -> String {
    let r = escape(&s.service);
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{rollout=\"{r}\"{labels}}} {value}");
        }
    };
    family(
        "canary_rollout_step",
        "gauge",
        "1-based index of the step in force.",
        vec![(String::new(), (s.step_index + 1).to_string())],
    );
    family(
        "canary_rollout_canary_percent",
        "gauge",
        "The canary's share of the split, percent.",
        vec![(String::new(), num(s.percent))],
    );
    let metric_name = |m: Metric| match m {
        Metric::Errors => "errors",
        Metric::Latency => "latency",
    };
    let evidence =
        s.evidence.iter().map(|e| (format!(",metric=\"{}\"", metric_name(e.metric)), num(e.e_value))).collect();
    family("canary_rollout_evidence", "gauge", "The judge's evidence that the canary is worse (e-value).", evidence);
    let threshold =
        s.evidence.iter().map(|e| (format!(",metric=\"{}\"", metric_name(e.metric)), num(e.threshold))).collect();
    family(
        "canary_rollout_evidence_threshold",
        "gauge",
        "Evidence at which the canary is rolled back (1/alpha).",
        threshold,
    );
    // Under `promote: evidence` only: the mirror test's evidence that each metric is within its tolerance.
    let within: Vec<(String, String)> = s
        .evidence
        .iter()
        .filter_map(|e| e.within_e_value.map(|w| (format!(",metric=\"{}\"", metric_name(e.metric)), num(w))))
        .collect();
    if !within.is_empty() {
        family(
            "canary_rollout_within_evidence",
            "gauge",
            "The judge's evidence that the canary is within its tolerance (promote: evidence).",
            within,
        );
        let within_threshold = s
            .evidence
            .iter()
            .filter_map(|e| e.within_threshold.map(|t| (format!(",metric=\"{}\"", metric_name(e.metric)), num(t))))
            .collect();
        family(
            "canary_rollout_within_threshold",
            "gauge",
            "Within-evidence a step needs to pass (1/beta).",
            within_threshold,
        );
    }
    let arms = [("baseline", &s.totals.baseline), ("canary", &s.totals.canary)];
    let requests = arms.iter().map(|(arm, c)| (format!(",arm=\"{arm}\""), c.requests.to_string())).collect();
    family("canary_rollout_requests_total", "counter", "Requests judged, per arm.", requests);
    let judged: Vec<Metric> = s.evidence.iter().map(|e| e.metric).collect();
    let mut events = Vec::new();
    for (arm, c) in arms {
        events.push((format!(",arm=\"{arm}\",metric=\"errors\""), c.errors.to_string()));
        if judged.contains(&Metric::Latency) {
            events.push((format!(",arm=\"{arm}\",metric=\"latency\""), c.slow.to_string()));
        }
    }
    family(
        "canary_rollout_events_total",
        "counter",
        "Bad events judged (errors; requests slower than the bound), per arm.",
        events,
    );
    let states = Shown::ALL
        .iter()
        .map(|st| (format!(",state=\"{}\"", st.name()), u8::from(*st == s.state).to_string()))
        .collect();
    family("canary_rollout_state", "gauge", "1 for the rollout's state, 0 for the others.", states);
    out
}

fn num(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{x}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The latest snapshot, shared with the serving thread; an [`Output`] that keeps it current.
#[derive(Clone, Default)]
pub struct Exposition {
    latest: Arc<Mutex<Option<Snapshot>>>,
}

impl Exposition {
    /// Serves `/metrics` on `addr` from a background thread (it ends with the process).
    pub fn serve(addr: SocketAddr) -> Result<Exposition, String> {
        let listener = TcpListener::bind(addr).map_err(|e| format!("metrics_listen {addr}: cannot listen: {e}"))?;
        let exposition = Exposition::default();
        let latest = Arc::clone(&exposition.latest);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let body = latest.lock().ok().and_then(|s| s.as_ref().map(render)).unwrap_or_default();
                let _ = answer(stream, &body);
            }
        });
        Ok(exposition)
    }

    pub fn set(&self, snapshot: &Snapshot) {
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(snapshot.clone());
        }
    }
}

impl Output for Exposition {
    fn emit(&mut self, event: &Event) {
        if let Event::Reading(s) = event {
            self.set(s);
        }
    }

    fn snapshot(&mut self, snapshot: &Snapshot) {
        self.set(snapshot);
    }
}

/// Answers one HTTP request: the metrics for `GET /metrics`, 404 for other paths.
fn answer(mut stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 2048];
    let n = stream.read(&mut buf)?;
    let head = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path == "/metrics" || path.starts_with("/metrics?") {
        ("200 OK", body)
    } else {
        ("404 Not Found", "only /metrics here\n")
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counts::{ArmCounts, Counts};
    use crate::judge::Evidence;

    fn snap() -> Snapshot {
        let arm = |requests, errors, slow| ArmCounts { requests, errors, slow };
        let ev = |metric, e_value| Evidence {
            metric,
            e_value,
            threshold: 100.0,
            within_e_value: None,
            within_threshold: None,
            baseline_events: 0,
            baseline_requests: 0,
            canary_events: 0,
            canary_requests: 0,
        };
        Snapshot {
            service: "forecast".into(),
            state: Shown::Paused,
            step_index: 2,
            steps: 5,
            percent: 20.0,
            progress: None,
            totals: Counts { baseline: arm(1000, 3, 7), canary: arm(250, 1, 2) },
            delta: Counts::default(),
            interval_secs: 5.0,
            evidence: vec![ev(Metric::Errors, 1.5), ev(Metric::Latency, 0.25)],
            notes: Vec::new(),
            elapsed_secs: 0.0,
        }
    }

    #[test]
    fn exactly_the_rollout_series() {
        let text = render(&snap());
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                r#"canary_rollout_step{rollout="forecast"} 3"#,
                r#"canary_rollout_canary_percent{rollout="forecast"} 20"#,
                r#"canary_rollout_evidence{rollout="forecast",metric="errors"} 1.5"#,
                r#"canary_rollout_evidence{rollout="forecast",metric="latency"} 0.25"#,
                r#"canary_rollout_evidence_threshold{rollout="forecast",metric="errors"} 100"#,
                r#"canary_rollout_evidence_threshold{rollout="forecast",metric="latency"} 100"#,
                r#"canary_rollout_requests_total{rollout="forecast",arm="baseline"} 1000"#,
                r#"canary_rollout_requests_total{rollout="forecast",arm="canary"} 250"#,
                r#"canary_rollout_events_total{rollout="forecast",arm="baseline",metric="errors"} 3"#,
                r#"canary_rollout_events_total{rollout="forecast",arm="baseline",metric="latency"} 7"#,
                r#"canary_rollout_events_total{rollout="forecast",arm="canary",metric="errors"} 1"#,
                r#"canary_rollout_events_total{rollout="forecast",arm="canary",metric="latency"} 2"#,
                r#"canary_rollout_state{rollout="forecast",state="running"} 0"#,
                r#"canary_rollout_state{rollout="forecast",state="paused"} 1"#,
                r#"canary_rollout_state{rollout="forecast",state="promoted"} 0"#,
                r#"canary_rollout_state{rollout="forecast",state="rolled_back"} 0"#,
                r#"canary_rollout_state{rollout="forecast",state="aborted"} 0"#,
            ]
        );
        assert!(text.contains("# TYPE canary_rollout_requests_total counter\n"));
    }

    #[test]
    fn within_evidence_series_only_under_promote_evidence() {
        let mut s = snap();
        for e in &mut s.evidence {
            e.within_e_value = Some(4.0);
            e.within_threshold = Some(20.0);
        }
        let text = render(&s);
        for line in [
            r#"canary_rollout_within_evidence{rollout="forecast",metric="latency"} 4"#,
            r#"canary_rollout_within_threshold{rollout="forecast",metric="errors"} 20"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        assert!(!render(&snap()).contains("within"));
    }

    #[test]
    fn serves_the_latest_snapshot_over_http() {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let mut exposition = Exposition::serve(addr).unwrap();
        exposition.snapshot(&snap());
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with(&render(&snap())));
    }
}
