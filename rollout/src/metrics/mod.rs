//! Where the judge's counts come from. Each source returns *cumulative* counts per arm since it was
//! created, already corrected for counter resets (a proxy restarted) and for proxies that went missing
//! (their last counts are kept, never counted twice), with a note saying so.

use crate::counts::Counts;

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
