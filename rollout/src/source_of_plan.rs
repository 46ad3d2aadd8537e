//! The plan's `metrics:` → a running [`MetricsSource`]: the one place that knows which constructor each
//! form of the plan calls, so the CLI and the controller never match on the source kinds.

use crate::metrics::{self, MetricsSource};
use crate::plan::MetricsPlan;

/// The source the plan names (`envoy` admin endpoints, or a Prometheus server).
pub fn source_of_plan(plan: &MetricsPlan) -> Result<Box<dyn MetricsSource + Send>, String> {
    match plan {
        MetricsPlan::Envoy(config) => metrics::from_envoy_admin(config.clone()),
        MetricsPlan::Prometheus(config) => metrics::from_prometheus(config.clone()),
    }
}
