//! Editing the Envoy bootstraps `canaryc manifest --kind envoy` writes, for tests that swap in another route
//! table (an oracle's translation of the same policy) while keeping the listener, clusters and filters.

use serde_json::Value;

/// The first virtual host's `routes` wherever it sits in a bootstrap (listener → filter chain → HCM →
/// `route_config`), found by walking the JSON rather than by a fixed path, so a bootstrap that gains a filter
/// or a listener still works.
pub fn virtual_host_routes(v: &mut Value) -> Option<&mut Value> {
    if v.get("virtual_hosts").is_some() {
        return v.get_mut("virtual_hosts")?.get_mut(0)?.get_mut("routes");
    }
    match v {
        Value::Object(map) => map.values_mut().find_map(virtual_host_routes),
        Value::Array(list) => list.iter_mut().find_map(virtual_host_routes),
        _ => None,
    }
}
