//! Counts read straight from each caller proxy's admin listener: `GET /stats/prometheus?filter=…` asks only
//! for the two clusters' counters and `server.uptime`:
//!
//! | count | Envoy stat (Prometheus name on the admin page) |
//! |---|---|
//! | requests | `cluster.C.upstream_rq_completed` (`envoy_cluster_upstream_rq_completed{envoy_cluster_name="C"}`) |
//! | errors | `cluster.C.upstream_rq_5xx` (`envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",…}`) |
//! | slow | `cluster.C.upstream_rq_time` histogram: `_count` − `_bucket{le="BOUND"}` |
//!
//! **Why `upstream_rq_completed`, not `upstream_rq_total`.** The judge compares error and slow *fractions of
//! answered requests*. Envoy increments `upstream_rq_completed` in the same call that increments the response
//! class counters (`upstream_rq_5xx`, …) once a response code is known, including the 503/504 Envoy writes
//! itself when the upstream resets or times out (envoyproxy/envoy `source/common/http/codes.cc`,
//! `CodeStatsImpl::chargeBasicResponseStat`), so errors ≤ requests at every reading. `upstream_rq_total` is
//! counted when a request is *sent*: requests still in flight would sit in the denominator with no outcome.
//!
//! **Restarts.** Counters restart from 0 with the process. A proxy restarted when any of its counters dropped,
//! or when its `server.uptime` is smaller than it should be by now (the old uptime plus the time since, less a
//! slack for Envoy updating the gauge at each stats flush): then all of its counters count from 0 again, on
//! top of what it had already counted ([`super::tally`]). **Missing proxies** (refused, 1 s timeout, a bad
//! answer) keep their last contribution, with a note; the read fails only when no proxy answered.
//!
//! **Histogram lag.** Envoy merges histograms into the admin view at each stats flush (5 s by default), so
//! `slow` trails `requests` by up to one flush interval; both arms trail alike.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use super::http::Client;
use super::latency::{le_is, not_a_bound};
use super::stats_text::{self, as_count, Sample};
use super::tally::{FirstSeen, Group};
use super::{check_latency, counts_from, Arm, EnvoyAdminConfig, Event, MetricsSource, Reading};

/// How long one admin endpoint may take to answer: a proxy slower than this counts as missing this round.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Envoy updates `server.uptime` at each stats flush (5 s by default); a restart is believed only when the
/// uptime is behind by more than that.
const UPTIME_SLACK_SECS: f64 = 6.0;

/// What one proxy's page says about the two clusters.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyValues {
    /// Raw counter values by (arm, event); an event Envoy has no counter for yet (no 5xx so far) is absent.
    pub values: BTreeMap<(Arm, Event), u64>,
    /// `server.uptime` in seconds, when the page has it.
    pub uptime: Option<f64>,
}

/// The `filter` regex for `/stats/prometheus`: the clusters' three stats and the uptime, nothing else (an
/// Istio sidecar has hundreds of clusters).
pub fn stats_filter(cfg: &EnvoyAdminConfig) -> String {
    let clusters = format!("{}|{}", regex_escape(&cfg.baseline_cluster), regex_escape(&cfg.canary_cluster));
    let stats = if cfg.latency_bound_ms.is_some() { "completed|5xx|time" } else { "completed|5xx" };
    format!(r"^(cluster\.({clusters})\.upstream_rq_({stats})|server\.uptime)$")
}

/// Escapes RE2 metacharacters (cluster names may hold `.` and `|`, as Istio's do).
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reads the two clusters' values from a parsed admin page.
pub fn proxy_values(samples: &[Sample], cfg: &EnvoyAdminConfig) -> Result<ProxyValues, String> {
    let mut values = BTreeMap::new();
    for arm in Arm::BOTH {
        let cluster = match arm {
            Arm::Baseline => &cfg.baseline_cluster,
            Arm::Canary => &cfg.canary_cluster,
        };
        let of = |name: &str| -> Vec<&Sample> {
            samples
                .iter()
                .filter(|s| s.name == name && s.label("envoy_cluster_name") == Some(cluster.as_str()))
                .collect()
        };
        let count = |s: &Sample| {
            as_count(s.value).ok_or_else(|| format!("`{}` of cluster `{cluster}` is not a count: {}", s.name, s.value))
        };
        let completed = of("envoy_cluster_upstream_rq_completed").into_iter().next().ok_or_else(|| {
            format!("no cluster `{cluster}` (its stats have no `cluster.{cluster}.upstream_rq_completed`)")
        })?;
        values.insert((arm, Event::Requests), count(completed)?);
        if let Some(errors) =
            of("envoy_cluster_upstream_rq_xx").into_iter().find(|s| s.label("envoy_response_code_class") == Some("5"))
        {
            values.insert((arm, Event::Errors), count(errors)?);
        }
        if let (Some(bound), Some(total)) =
            (cfg.latency_bound_ms, of("envoy_cluster_upstream_rq_time_count").into_iter().next())
        {
            let buckets = of("envoy_cluster_upstream_rq_time_bucket");
            let within =
                buckets.iter().find(|s| s.label("le").is_some_and(|le| le_is(le, bound))).ok_or_else(|| {
                    let bounds: Vec<f64> = buckets
                        .iter()
                        .filter_map(|s| s.label("le").and_then(stats_text::parse_value))
                        .filter(|b| b.is_finite())
                        .collect();
                    format!("cluster `{cluster}`: {}", not_a_bound(bound, &bounds))
                })?;
            values.insert((arm, Event::Slow), count(total)?.saturating_sub(count(within)?));
        }
    }
    let uptime = samples.iter().find(|s| s.name == "envoy_server_uptime").map(|s| s.value).filter(|v| v.is_finite());
    Ok(ProxyValues { values, uptime })
}

/// Whether a proxy restarted between two readings `elapsed` seconds apart, judged by its uptime.
pub fn restarted_by_uptime(previous: f64, elapsed: f64, now: f64) -> bool {
    now + UPTIME_SLACK_SECS < previous + elapsed
}

/// How a proxy seen for the first time counts: from 0 if it started after the source did (so all of its events
/// are new), else from its current values.
pub fn first_seen(uptime: Option<f64>, since_source_start: f64) -> FirstSeen {
    match uptime {
        Some(up) if up + UPTIME_SLACK_SECS < since_source_start => FirstSeen::FromZero,
        _ => FirstSeen::Baseline,
    }
}

/// One proxy's accumulated counts and its last uptime reading.
#[derive(Default)]
struct ProxyState {
    counters: Group<(Arm, Event)>,
    uptime: Option<(f64, Instant)>,
}

/// The admin source (see the module doc).
pub struct EnvoyAdmin {
    cfg: EnvoyAdminConfig,
    client: Client,
    started: Instant,
    proxies: BTreeMap<String, ProxyState>,
}

impl EnvoyAdmin {
    pub fn new(cfg: EnvoyAdminConfig) -> Result<EnvoyAdmin, String> {
        if cfg.admins.is_empty() {
            return Err("no Envoy admin endpoint given (HOST:PORT of each caller proxy's admin listener)".into());
        }
        for admin in &cfg.admins {
            check_host_port(admin)?;
        }
        if cfg.baseline_cluster.is_empty() || cfg.canary_cluster.is_empty() {
            return Err("the baseline and canary clusters must be named".into());
        }
        if cfg.baseline_cluster == cfg.canary_cluster {
            return Err(format!("baseline and canary are the same cluster `{}`", cfg.baseline_cluster));
        }
        check_latency(cfg.latency_bound_ms)?;
        Ok(EnvoyAdmin {
            cfg,
            client: Client::new(ADMIN_TIMEOUT, false),
            started: Instant::now(),
            proxies: BTreeMap::new(),
        })
    }

    fn fetch(&self, admin: &str) -> Result<ProxyValues, String> {
        let url = format!("http://{admin}/stats/prometheus");
        let page = self.client.get(&url, &[("filter", &stats_filter(&self.cfg))]).map_err(|e| e.to_string())?;
        let samples = stats_text::parse(&page).map_err(|e| format!("unreadable stats page ({e})"))?;
        proxy_values(&samples, &self.cfg)
    }
}

/// `HOST:PORT` with a numeric port (a URL or a bare host is a common slip).
fn check_host_port(admin: &str) -> Result<(), String> {
    let bad = || format!("admin endpoint `{admin}` is not HOST:PORT (e.g. 127.0.0.1:9901)");
    let (host, port) = admin.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

impl MetricsSource for EnvoyAdmin {
    fn read(&mut self) -> Result<Reading, String> {
        // All proxies at once: a dead one costs the read its timeout once, not once per proxy.
        let answers: Vec<(String, Result<ProxyValues, String>)> = thread::scope(|scope| {
            let this = &*self;
            let handles: Vec<_> =
                this.cfg.admins.iter().map(|admin| (admin, scope.spawn(move || this.fetch(admin)))).collect();
            handles
                .into_iter()
                .map(|(admin, h)| (admin.clone(), h.join().unwrap_or_else(|_| Err("reader thread panicked".into()))))
                .collect()
        });
        let now = Instant::now();
        let since_start = now.duration_since(self.started).as_secs_f64();
        let (mut notes, mut failures) = (Vec::new(), Vec::new());
        for (admin, answer) in answers {
            match answer {
                Ok(page) => {
                    let known = self.proxies.contains_key(&admin);
                    let state = self.proxies.entry(admin.clone()).or_default();
                    let by_uptime = match (state.uptime, page.uptime) {
                        (Some((before, at)), Some(up)) => {
                            restarted_by_uptime(before, now.duration_since(at).as_secs_f64(), up)
                        }
                        _ => false,
                    };
                    let first = if known { FirstSeen::FromZero } else { first_seen(page.uptime, since_start) };
                    if state.counters.observe(&page.values, first, by_uptime) {
                        notes.push(format!(
                            "{admin}: counters reset (the proxy restarted); its new counts are added to what it had counted"
                        ));
                    }
                    state.uptime = page.uptime.map(|up| (up, now));
                }
                Err(why) => {
                    let kept = if self.proxies.contains_key(&admin) {
                        "its last counts are kept"
                    } else {
                        "nothing counted from it yet"
                    };
                    notes.push(format!("{admin}: {why}; {kept}"));
                    failures.push(format!("{admin}: {why}"));
                }
            }
        }
        if failures.len() == self.cfg.admins.len() {
            return Err(format!("no Envoy admin endpoint answered: {}", failures.join("; ")));
        }
        let proxies = &self.proxies;
        let counts = counts_from(|arm, event| proxies.values().map(|p| p.counters.counted(&(arm, event))).sum());
        Ok(Reading { counts, notes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/stats/prometheus` of Envoy 1.40 with this module's filter, after 5 requests to `frontend-v1` and 4 to
    /// `frontend-v2` (two answered 500, one took ~345 ms).
    const PAGE: &str = include_str!("../../tests/data/envoy-1.40-stats-prometheus.txt");

    fn cfg(bound: Option<f64>) -> EnvoyAdminConfig {
        EnvoyAdminConfig {
            latency_bound_ms: bound,
            ..EnvoyAdminConfig::new(&["127.0.0.1:9901"], "frontend-v1", "frontend-v2")
        }
    }

    #[test]
    fn reads_a_captured_envoy_page() {
        let samples = stats_text::parse(PAGE).unwrap();
        let page = proxy_values(&samples, &cfg(Some(250.0))).unwrap();
        let want: BTreeMap<(Arm, Event), u64> = [
            ((Arm::Baseline, Event::Requests), 5),
            ((Arm::Baseline, Event::Slow), 0),
            ((Arm::Canary, Event::Requests), 4),
            ((Arm::Canary, Event::Errors), 2),
            ((Arm::Canary, Event::Slow), 1),
        ]
        .into();
        assert_eq!(page.values, want, "v1 has no 5xx counter yet: absent, not 0");
        assert_eq!(page.uptime, Some(11.0));
        let err = proxy_values(&samples, &cfg(Some(300.0))).unwrap_err();
        assert!(err.contains("frontend-v1") && err.contains("250, 500"), "{err}");
        let missing = EnvoyAdminConfig::new(&["a:1"], "frontend-v1", "forecast-v2");
        assert!(proxy_values(&samples, &missing).unwrap_err().contains("no cluster `forecast-v2`"));
    }

    #[test]
    fn the_filter_escapes_cluster_names() {
        let c = EnvoyAdminConfig::new(&["a:1"], "outbound|80|v1|reviews.default.svc.cluster.local", "b-2");
        assert_eq!(
            stats_filter(&c),
            r"^(cluster\.(outbound\|80\|v1\|reviews\.default\.svc\.cluster\.local|b-2)\.upstream_rq_(completed|5xx)|server\.uptime)$"
        );
    }

    #[test]
    fn restarts_and_first_sightings_by_uptime() {
        assert!(!restarted_by_uptime(100.0, 10.0, 105.0), "the gauge lags a flush: not a restart");
        assert!(restarted_by_uptime(100.0, 10.0, 12.0));
        assert!(restarted_by_uptime(100.0, 200.0, 150.0), "grew, but less than the time passed");
        assert_eq!(first_seen(Some(3.0), 60.0), FirstSeen::FromZero);
        assert_eq!(first_seen(Some(3600.0), 60.0), FirstSeen::Baseline);
        assert_eq!(first_seen(None, 60.0), FirstSeen::Baseline);
    }

    #[test]
    fn config_is_checked() {
        let err = |c: EnvoyAdminConfig| EnvoyAdmin::new(c).err().unwrap_or_default();
        assert!(err(EnvoyAdminConfig::new(&[], "a", "b")).contains("no Envoy admin endpoint"));
        assert!(err(EnvoyAdminConfig::new(&["http://127.0.0.1:9901"], "a", "b")).contains("not HOST:PORT"));
        assert!(err(EnvoyAdminConfig::new(&["127.0.0.1"], "a", "b")).contains("not HOST:PORT"));
        assert!(err(EnvoyAdminConfig::new(&["127.0.0.1:1"], "a", "a")).contains("same cluster"));
        assert!(err(cfg(Some(300.0))).contains("pick one of"));
        assert!(EnvoyAdmin::new(cfg(Some(250.0))).is_ok());
    }

    #[test]
    fn no_proxy_answering_is_an_error_naming_why() {
        // A port nothing listens on: bind one, learn its number, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut source = EnvoyAdmin::new(EnvoyAdminConfig::new(&[&format!("127.0.0.1:{port}")], "a", "b")).unwrap();
        let err = source.read().unwrap_err();
        assert!(err.contains("unreachable (connection refused)"), "{err}");
    }
}
