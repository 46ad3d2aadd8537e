//! A static Envoy bootstrap of one HTTP listener whose routes answer directly (no upstream): the shape of the
//! differential tests that compare Envoy's route matching with the evaluator. Included with `#[path]`.

use std::net::SocketAddr;

use serde_json::{json, Value};

/// The bootstrap (JSON, which Envoy reads as YAML) of `routes` in one virtual host on `listen`, admin on `admin`,
/// with `extra` top-level fields (e.g. a `layered_runtime`) merged in.
pub fn bootstrap(name: &str, listen: SocketAddr, admin: SocketAddr, routes: Vec<Value>, extra: Value) -> String {
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
