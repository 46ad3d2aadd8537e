//! Envoy bootstraps for tests: editing the ones `canaryc manifest --kind envoy` writes, for tests that swap in
//! another route table (an oracle's translation of the same policy) while keeping the listener, clusters and
//! filters; and a bare listener of direct-response routes, for the differential tests of route matching.

use std::net::SocketAddr;

use serde_json::{json, Value};

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

/// The bootstrap (JSON, which Envoy reads as YAML) of `routes` in one virtual host on `listen`, admin on `admin`,
/// with `extra` top-level fields (e.g. a `layered_runtime`) merged in.
pub fn direct_routes(name: &str, listen: SocketAddr, admin: SocketAddr, routes: Vec<Value>, extra: Value) -> String {
    let mut config = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": admin.port() } } },
        "static_resources": { "listeners": [{
            "name": name,
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": listen.port() } },
            "filter_chains": [{ "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": name,
                    "route_config": { "virtual_hosts": [{ "name": "all", "domains": ["*"], "routes": routes }] },
                    "http_filters": [{ "name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }]
                }
            }] }]
        }] }
    });
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    serde_json::to_string_pretty(&config).expect("json")
}
