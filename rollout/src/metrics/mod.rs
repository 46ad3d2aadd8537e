//! Where the judge's counts come from. Each source returns *cumulative* counts per arm since it was
//! created, already corrected for counter resets (a proxy restarted) and for proxies that went missing
//! (their last counts are kept, never counted twice), with a note saying so.
//!
//! Two sources, made by [`from_envoy_admin`] and [`from_prometheus`]: `envoy_admin` reads each caller
//! proxy's admin `/stats/prometheus` (the default: needs nothing but the proxies), `prometheus` asks a
//! Prometheus server for the same Envoy series or for Istio's standard metrics. Both reduce what they read to
//! raw counter values per series and hand them to `tally`, the one place where counter resets and missing
//! proxies are handled.

pub mod envoy_admin;
pub mod http;
pub mod latency;
pub mod prometheus;
pub mod stats_text;
pub mod tally;

use crate::counts::{ArmCounts, Counts};

/// One reading of a source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    pub counts: Counts,
    /// Things an operator should see (a proxy unreachable, a counter reset), one line each.
    pub notes: Vec<String>,
}

/// A source of cumulative event counts by arm.
pub trait MetricsSource {
    /// Reads the counts now. `Err` only when nothing could be read at all (every proxy down, Prometheus
    /// unreachable): the caller waits and retries, it never judges on a failed read.
    fn read(&mut self) -> Result<Reading, String>;
}

/// Envoy's admin endpoints, read directly (the default source: needs nothing but the proxies).
#[derive(Clone, Debug, PartialEq)]
pub struct EnvoyAdminConfig {
    /// `HOST:PORT` of each caller proxy's admin listener; their counters are summed.
    pub admins: Vec<String>,
    /// The upstream cluster of the baseline subset in those proxies (e.g. `forecast-v1`).
    pub baseline_cluster: String,
    /// The upstream cluster of the canary subset.
    pub canary_cluster: String,
    /// Count requests slower than this (ms; a bucket bound of `upstream_rq_time`), when latency is judged.
    pub latency_bound_ms: Option<f64>,
}

/// Which series a Prometheus server is asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum PrometheusFlavor {
    /// Plain Envoy's stats scraped from `/stats/prometheus` (`envoy_cluster_upstream_rq_*` by `envoy_cluster_name`).
    Envoy { baseline_cluster: String, canary_cluster: String },
    /// Istio's standard metrics (`istio_requests_total`, `istio_request_duration_milliseconds_bucket`) by
    /// `destination_version`.
    Istio {
        service: String,
        namespace: Option<String>,
        baseline_version: String,
        canary_version: String,
        /// `source` (the callers' sidecars, default) or `destination`.
        reporter: String,
    },
}

/// A Prometheus server's HTTP API.
#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    pub flavor: PrometheusFlavor,
    pub latency_bound_ms: Option<f64>,
}

impl EnvoyAdminConfig {
    /// The usual case: the caller proxies' admin listeners and the two subsets' clusters, no latency judged.
    pub fn new(admins: &[&str], baseline_cluster: &str, canary_cluster: &str) -> Self {
        EnvoyAdminConfig {
            admins: admins.iter().map(|a| a.to_string()).collect(),
            baseline_cluster: baseline_cluster.to_string(),
            canary_cluster: canary_cluster.to_string(),
            latency_bound_ms: None,
        }
    }
}

/// The Envoy admin source, checked: at least one admin, each `HOST:PORT`, two distinct clusters, a latency
/// bound that is a histogram bucket bound.
pub fn from_envoy_admin(cfg: EnvoyAdminConfig) -> Result<Box<dyn MetricsSource + Send>, String> {
    Ok(Box::new(envoy_admin::EnvoyAdmin::new(cfg)?))
}

/// The Prometheus source, checked: an `http://HOST[:PORT][/PREFIX]` URL, non-empty names, distinct arms, a
/// latency bound that is a histogram bucket bound.
pub fn from_prometheus(cfg: PrometheusConfig) -> Result<Box<dyn MetricsSource + Send>, String> {
    Ok(Box::new(prometheus::Prometheus::new(cfg)?))
}

/// Which side of the comparison a series counts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arm {
    Baseline,
    Canary,
}

impl Arm {
    pub const BOTH: [Arm; 2] = [Arm::Baseline, Arm::Canary];

    pub fn name(self) -> &'static str {
        match self {
            Arm::Baseline => "baseline",
            Arm::Canary => "canary",
        }
    }
}

/// Which count of [`ArmCounts`] a series feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    Requests,
    Errors,
    Slow,
}

/// Builds [`Counts`] from a per-(arm, event) total.
pub fn counts_from(mut total: impl FnMut(Arm, Event) -> u64) -> Counts {
    let mut arm = |a| ArmCounts {
        requests: total(a, Event::Requests),
        errors: total(a, Event::Errors),
        slow: total(a, Event::Slow),
    };
    Counts { baseline: arm(Arm::Baseline), canary: arm(Arm::Canary) }
}

/// The configured latency bound, checked (see [`latency::check_bound`]).
fn check_latency(bound: Option<f64>) -> Result<Option<f64>, String> {
    bound.map(latency::check_bound).transpose()
}
