//! What the filter reports per outcome: the counter name and the access-log value, spelled by
//! [`canary_eval::telemetry`] (shared with `canaryc manifest`, which writes the Envoy config that reads them).

use canary_eval::telemetry::Labels;
use canary_eval::{Decision, Policy, ServiceId};

/// The counter that counts `decision` for `service`.
pub fn counter_name(policy: &Policy, service: ServiceId, decision: Decision) -> String {
    Labels::of(policy, service, decision).counter_name()
}

/// The filter-state value for `decision` (`service=… rule=… subset=…`), written when `settings.access_log` is on.
pub fn log_value(policy: &Policy, service: ServiceId, decision: Decision) -> String {
    Labels::of(policy, service, decision).log_value()
}
