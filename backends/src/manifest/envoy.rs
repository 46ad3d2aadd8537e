//! `canaryc manifest --kind envoy`: a complete static Envoy bootstrap for ONE proxy.
//!
//! A proxy serves one service: its listener runs the canary wasm filter (which decides the subset) and then a
//! route table (HTTP) or `tcp_proxy` (TCP) that only maps the decision to a cluster, one STATIC cluster per
//! subset. This is the same split of work Istio does (the filter plays the VirtualService, the route table the
//! DestinationRule subsets), without a control plane: it is what the real-Envoy tests and the demo run, and a
//! way to try a policy on a laptop.
//!
//! The output is deliberately self-contained (no xDS, no runtime files) so `envoy --mode validate -c FILE`
//! checks it, and a policy change is applied by regenerating and restarting the proxy — unless the proxy takes
//! its policy from a watched file (`ecds_path`/`rds_path`, see [`super::push`]): then a push is a file write.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use canary_eval::config::{Config, Protocol, RuleSet, Service};

use super::envoy_routes::RouteTable;
use super::{envoy_routes, policy_subsets, push};
use crate::native::NativeService;
use crate::route_settings::{self, ServiceRoutes};
use serde_json::{json, Value};

/// Envoy's V8 runtime: the one shipped in the official builds.
const WASM_RUNTIME: &str = "envoy.wasm.runtime.v8";

/// Everything about one proxy that the policy itself does not say.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyOptions {
    /// The service this proxy's listener serves; written into the policy's `settings.service`.
    pub service: String,
    /// `--listen HOST:PORT`: where callers of the service connect.
    pub listen: SocketAddr,
    /// `--admin HOST:PORT`: Envoy's admin interface (readiness, stats); keep it on loopback.
    pub admin: SocketAddr,
    /// `--cluster SUBSET=HOST:PORT`, in the order given: one STATIC cluster per subset.
    pub clusters: Vec<(String, SocketAddr)>,
    /// Subset of the route taken when the filter makes no decision; `None` means the first cluster.
    pub default_subset: Option<String>,
    /// `--node-label K=V`: the workload's own labels, which `source LABEL=VALUE` conditions read.
    pub node_labels: Vec<(String, String)>,
    /// Envoy node id; `None` derives one from the service and the `version` label.
    pub node_id: Option<String>,
    /// Local path of the filter module (`canary_filter.wasm`).
    pub wasm_path: PathBuf,
    /// `None` takes the protocol the policy declares for the service (HTTP when it declares none).
    pub protocol: Option<Protocol>,
    /// `--backend native`: the service lowered to Envoy's own routes (no filter runs); `None` runs the filter.
    pub native: Option<NativeService>,
    /// `--ecds-path`: the filter's configuration is discovered from this watched file (ECDS), not inlined.
    pub ecds_path: Option<PathBuf>,
    /// `--rds-path`: the native routes are discovered from this watched file (RDS), not inlined.
    pub rds_path: Option<PathBuf>,
    /// `--access-log`: the filter writes each decision into filter state (`settings.access_log`) and the
    /// listener logs every request or connection with it to stdout ([`ACCESS_LOG_FORMAT`]).
    pub access_log: bool,
    /// The service's route settings (timeouts, retries, rewrites, header edits, mirror): README "Route settings".
    /// Empty: the routes are exactly as before settings existed.
    pub routes: ServiceRoutes,
}

impl EnvoyOptions {
    /// Options with the required parts; the rest defaults (no labels, first cluster as default, protocol from
    /// the policy).
    pub fn new(service: &str, listen: SocketAddr, admin: SocketAddr, wasm_path: impl Into<PathBuf>) -> Self {
        EnvoyOptions {
            service: service.to_string(),
            listen,
            admin,
            clusters: Vec::new(),
            default_subset: None,
            node_labels: Vec::new(),
            node_id: None,
            wasm_path: wasm_path.into(),
            protocol: None,
            native: None,
            ecds_path: None,
            rds_path: None,
            access_log: false,
            routes: ServiceRoutes::default(),
        }
    }
}

/// Parses a `--cluster SUBSET=HOST:PORT` value. HOST must be an IP address: the clusters are STATIC.
pub fn parse_cluster_flag(value: &str) -> Result<(String, SocketAddr), String> {
    let (subset, addr) = split_pair(value, "--cluster", "SUBSET=HOST:PORT")?;
    let addr = parse_addr(addr, "--cluster")?;
    Ok((subset.to_string(), addr))
}

/// Parses a `--node-label K=V` value.
pub fn parse_label_flag(value: &str) -> Result<(String, String), String> {
    let (key, val) = split_pair(value, "--node-label", "KEY=VALUE")?;
    Ok((key.to_string(), val.to_string()))
}

/// Parses a `--listen`/`--admin` value, `HOST:PORT` with an IP host (`[::1]:PORT` for IPv6).
pub fn parse_addr(value: &str, flag: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| format!("{flag}: `{value}` is not IP:PORT (STATIC Envoy clusters need IP addresses)"))
}

fn split_pair<'a>(value: &'a str, flag: &str, form: &str) -> Result<(&'a str, &'a str), String> {
    match value.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok((k.trim(), v.trim())),
        _ => Err(format!("{flag}: expected {form}, got `{value}`")),
    }
}

/// Generates the bootstrap YAML for one proxy serving `opts.service` with the compiled `config`.
///
/// Errors (as one readable sentence) when the options cannot make a working proxy: no clusters, a duplicate
/// subset, a default subset without a cluster, a protocol that contradicts the policy, or a subset the policy
/// can route this service to that has no cluster (HTTP would silently fall back to the default route and TCP
/// would close the connection, so we refuse it here rather than in production).
pub fn envoy_bootstrap(config: &Config, opts: &EnvoyOptions) -> Result<String, String> {
    let service = opts.service.as_str();
    if service.is_empty() {
        return Err("the proxy needs a service name".into());
    }
    let protocol = resolve_protocol(config, opts)?;
    check_clusters(config, opts, protocol)?;
    push::check_paths(opts, protocol)?;

    let mut policy = proxy_policy(config, service, protocol);
    policy.settings.access_log |= opts.access_log && opts.native.is_none();
    if protocol == Protocol::Tcp && !opts.routes.is_empty() {
        return Err(format!("service `{service}` is TCP: route settings and mirrors apply to HTTP routes only"));
    }
    let mirror_cluster = |subset: &str| cluster_name(&policy, service, subset);
    let filters = match &opts.native {
        None => {
            let json = serde_json::to_string(&policy).map_err(|e| format!("cannot serialize the policy: {e}"))?;
            match protocol {
                Protocol::Http => vec![http_connection_manager(
                    opts,
                    RouteTable::Routes(with_settings(filter_routes(&policy, opts), &opts.routes, &mirror_cluster)?),
                    vec![canary_http_filter(opts, &json), router()],
                )],
                Protocol::Tcp => tcp_filters(&policy, opts, &json),
            }
        }
        Some(native) => {
            let cluster = |s: Option<&str>| cluster_name(&policy, service, s.unwrap_or(default_subset(opts)));
            match protocol {
                Protocol::Http => {
                    let table = envoy_routes::http_route_table(native, &cluster, &opts.routes, &mirror_cluster)?;
                    vec![http_connection_manager(opts, table, vec![router()])]
                }
                Protocol::Tcp => vec![native_tcp_proxy(opts, envoy_routes::tcp_cluster(native, &cluster))],
            }
        }
    };
    let mut bootstrap = json!({
        "node": node(opts),
        "admin": { "address": socket_address(opts.admin) },
        "static_resources": {
            "listeners": [{
                "name": format!("{service}-{}", protocol_name(protocol)),
                "address": socket_address(opts.listen),
                "filter_chains": [{ "filters": filters }],
            }],
            "clusters": clusters(&policy, opts),
        },
    });
    if opts.native.is_none() {
        add_filter_telemetry(&mut bootstrap, opts, protocol);
    }
    if opts.native.as_ref().is_some_and(envoy_routes::uses_regex) || opts.routes.uses_regex() || opts.rds_path.is_some()
    {
        // Host matches are small RE2 programs, but a long host name can pass plain Envoy's cap of 100 (Istio
        // raises it the same way), and so can a CORS origin regex from the settings. Routes pushed over RDS may
        // need it later, so such a proxy always has it.
        bootstrap["layered_runtime"] = json!({ "layers": [{
            "name": "canary", "static_layer": { "re2.max_program_size.error_level": 1000 },
        }] });
    }
    let yaml = canary_yaml::to_string(&bootstrap).map_err(|e| format!("cannot write YAML: {e}"))?;
    let how = if opts.native.is_some() { "native routes, no filter" } else { "the canary filter" };
    let change = match (&opts.ecds_path, &opts.rds_path) {
        (Some(path), _) => format!(
            "The policy is read from {} (ECDS): push one with `canaryc manifest POLICY --kind ecds -o {0}`.",
            path.display()
        ),
        (_, Some(path)) => format!(
            "The routes are read from {} (RDS): push them with `canaryc manifest POLICY --kind rds -o {0}`.",
            path.display()
        ),
        _ => "Regenerate it (and restart Envoy) to change the policy; edits here are lost.".to_string(),
    };
    Ok(format!(
        "# Envoy bootstrap for one {} proxy serving `{service}` ({how}), generated by `canaryc manifest --kind envoy`.\n\
         # {change}\n{yaml}",
        protocol_name(protocol).to_uppercase()
    ))
}

/// The policy as the filter of a proxy serving `service` gets it: `settings.service` set, and a TCP service
/// declared. The filter learns whether it serves HTTP or TCP only from its configuration (proxy-wasm does not
/// say which Envoy filter loaded it), so a TCP proxy's service must be declared `tcp`. An empty declaration
/// keeps the meaning: a TCP service ignores top-level rules and falls back to the top-level default.
pub(crate) fn proxy_policy(config: &Config, service: &str, protocol: Protocol) -> Config {
    let mut policy = config.clone();
    policy.settings.service = Some(service.to_string());
    if protocol == Protocol::Tcp && !policy.services.iter().any(|s| s.name == service) {
        policy.services.push(Service { name: service.to_string(), protocol, rules: RuleSet::default() });
    }
    policy
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Http => "http",
        Protocol::Tcp => "tcp",
    }
}

/// The protocol the proxy serves: `opts.protocol`, else what the policy declares for the service, else HTTP;
/// an error when the two contradict each other.
pub fn resolve_protocol(config: &Config, opts: &EnvoyOptions) -> Result<Protocol, String> {
    protocol_of(config, &opts.service, opts.protocol)
}

/// [`resolve_protocol`] for a service name and a requested protocol.
pub fn protocol_of(config: &Config, service: &str, asked: Option<Protocol>) -> Result<Protocol, String> {
    let declared = config.services.iter().find(|s| s.name == service).map(|s| s.protocol);
    match (declared, asked) {
        (Some(d), Some(o)) if d != o => Err(format!(
            "the policy declares service `{}` as {}, but the proxy was asked for {}",
            service,
            protocol_name(d),
            protocol_name(o)
        )),
        (d, o) => Ok(o.or(d).unwrap_or_default()),
    }
}

fn check_clusters(config: &Config, opts: &EnvoyOptions, protocol: Protocol) -> Result<(), String> {
    if opts.clusters.is_empty() {
        return Err(format!("service `{}` needs at least one --cluster SUBSET=HOST:PORT", opts.service));
    }
    let mut known = BTreeSet::new();
    for (subset, _) in &opts.clusters {
        if !known.insert(subset.as_str()) {
            return Err(format!("--cluster {subset}=… is given twice"));
        }
    }
    if let Some(default) = &opts.default_subset {
        if !known.contains(default.as_str()) {
            return Err(format!("the default subset `{default}` has no --cluster {default}=HOST:PORT"));
        }
    }
    let mirrors = opts.routes.mirror_subsets();
    for subset in policy_subsets(config, &opts.service, protocol).into_iter().chain(mirrors) {
        if !known.contains(subset.as_str()) {
            return Err(format!(
                "the policy can send service `{}` to subset `{subset}`, but no --cluster {subset}=HOST:PORT was given",
                opts.service
            ));
        }
    }
    Ok(())
}

/// The name of the cluster for `subset`, by the same pattern the filter uses for TCP.
pub fn cluster_name(config: &Config, service: &str, subset: &str) -> String {
    config.settings.cluster_name(service, subset)
}

fn default_subset(opts: &EnvoyOptions) -> &str {
    opts.default_subset.as_deref().unwrap_or(&opts.clusters[0].0)
}

fn node(opts: &EnvoyOptions) -> Value {
    let labels: serde_json::Map<String, Value> =
        opts.node_labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let label = |key: &str| opts.node_labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let app = label("app").unwrap_or(&opts.service);
    let id = match (&opts.node_id, label("version")) {
        (Some(id), _) => id.clone(),
        (None, Some(version)) => format!("{app}-{version}"),
        (None, None) => format!("{app}-proxy"),
    };
    json!({ "id": id, "cluster": app, "metadata": { "LABELS": labels } })
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({ "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } })
}

/// The plugin block shared by the HTTP and network wasm filters: the policy travels as a StringValue, which
/// is exactly the JSON `canaryc compile` prints plus the settings.
pub(crate) fn wasm_plugin(service: &str, wasm_path: &std::path::Path, policy_json: &str) -> Value {
    json!({
        "name": filter_name(service),
        "vm_config": {
            "vm_id": "canary",
            "runtime": WASM_RUNTIME,
            "code": { "local": { "filename": wasm_path.to_string_lossy() } },
        },
        "configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": policy_json,
        },
    })
}

/// The plugin's name, which is also the name its ECDS resource has (`canary-SERVICE`).
pub fn filter_name(service: &str) -> String {
    format!("canary-{service}")
}

/// The HTTP listener: `routes` (inline, or discovered from `opts.rds_path`) behind `http_filters` (the router
/// last), with the CORS filter first when a route may carry a CORS policy.
fn http_connection_manager(opts: &EnvoyOptions, routes: RouteTable, http_filters: Vec<Value>) -> Value {
    let service = &opts.service;
    let mut http_filters = http_filters;
    if opts.routes.has_cors() || opts.rds_path.is_some() {
        // A route's CORS policy needs the filter in the chain; routes pushed over RDS may carry one later, so
        // such a listener always has it (without a route policy it does nothing).
        http_filters.insert(0, route_settings::cors_filter());
    }
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": service,
        "http_filters": http_filters,
    });
    match &opts.rds_path {
        Some(path) => hcm["rds"] = push::rds_discovery(service, path),
        None => hcm["route_config"] = route_config(service, routes),
    }
    json!({ "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm })
}

/// The service's `RouteConfiguration` (inline in the bootstrap, or the RDS resource), named after it.
pub(crate) fn route_config(service: &str, routes: RouteTable) -> Value {
    let (field, value) = routes.field();
    let mut host = json!({ "name": service, "domains": ["*"] });
    host[field] = value;
    json!({ "name": service, "virtual_hosts": [host] })
}

fn router() -> Value {
    json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
    })
}

/// The HTTP canary filter: inline, or discovered by name from `opts.ecds_path`.
fn canary_http_filter(opts: &EnvoyOptions, policy_json: &str) -> Value {
    match &opts.ecds_path {
        Some(path) => push::filter_discovery(&opts.service, Protocol::Http, path),
        None => json!({
            "name": "envoy.filters.http.wasm",
            "typed_config": wasm_typed_config(&opts.service, Protocol::Http, &opts.wasm_path, policy_json),
        }),
    }
}

/// The wasm filter's `typed_config` (HTTP or network), as inlined in a bootstrap or pushed over ECDS.
pub(crate) fn wasm_typed_config(
    service: &str,
    protocol: Protocol,
    wasm_path: &std::path::Path,
    policy_json: &str,
) -> Value {
    json!({ "@type": wasm_type_url(protocol), "config": wasm_plugin(service, wasm_path, policy_json) })
}

/// The type URL of the HTTP or the network wasm filter's configuration.
pub(crate) fn wasm_type_url(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Http => "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        Protocol::Tcp => "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
    }
}

/// With the filter: one route per subset keyed on its decision, then the default route for "no decision".
fn filter_routes(policy: &Config, opts: &EnvoyOptions) -> Vec<Value> {
    let service = &opts.service;
    let header = policy.settings.header();
    let mut routes: Vec<Value> = opts
        .clusters
        .iter()
        .map(|(subset, _)| {
            json!({
                "name": format!("{service}-{subset}"),
                "match": { "prefix": "/", "headers": [{ "name": header, "string_match": { "exact": subset } }] },
                "route": { "cluster": cluster_name(policy, service, subset) },
            })
        })
        .collect();
    routes.push(json!({
        "name": format!("{service}-default"),
        "match": { "prefix": "/" },
        "route": { "cluster": cluster_name(policy, service, default_subset(opts)) },
    }));
    routes
}

/// The filter's routes with the service's settings: every route the same (they map a decision, not a rule, so
/// a rule's profile cannot be told apart here).
fn with_settings(
    mut routes: Vec<Value>,
    settings: &ServiceRoutes,
    cluster: &dyn Fn(&str) -> String,
) -> Result<Vec<Value>, String> {
    if settings.is_empty() {
        return Ok(routes);
    }
    if !settings.by_rule.is_empty() {
        return Err(profile_needs_native());
    }
    let fields = route_settings::envoy_fields(&settings.all, cluster)?;
    for route in &mut routes {
        route_settings::apply_envoy(route, &fields);
    }
    Ok(routes)
}

/// Why a rule's `with PROFILE` needs native routes.
pub(crate) fn profile_needs_native() -> String {
    "a rule selects a settings profile (`with NAME`), which only native routes can carry: the filter's routes map \
     its decision (a subset), not the rule that made it; use --backend native (or auto), or drop the profile"
        .to_string()
}

/// TCP without the filter: `tcp_proxy` picks the cluster itself (`choice`: `cluster` or `weighted_clusters`),
/// weighted per connection.
fn native_tcp_proxy(opts: &EnvoyOptions, choice: serde_json::Map<String, Value>) -> Value {
    let mut config = serde_json::Map::new();
    config.insert("@type".into(), json!("type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"));
    config.insert("stat_prefix".into(), json!(opts.service));
    config.extend(choice);
    json!({ "name": "envoy.filters.network.tcp_proxy", "typed_config": config })
}

/// TCP: the filter names the cluster through filter state `envoy.tcp_proxy.cluster`; `tcp_proxy`'s own
/// cluster is only used when the filter makes no decision.
fn tcp_filters(policy: &Config, opts: &EnvoyOptions, policy_json: &str) -> Vec<Value> {
    let canary = match &opts.ecds_path {
        Some(path) => push::filter_discovery(&opts.service, Protocol::Tcp, path),
        None => json!({
            "name": "envoy.filters.network.wasm",
            "typed_config": wasm_typed_config(&opts.service, Protocol::Tcp, &opts.wasm_path, policy_json),
        }),
    };
    vec![
        canary,
        json!({
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": opts.service,
                "cluster": cluster_name(policy, &opts.service, default_subset(opts)),
            },
        }),
    ]
}

fn clusters(policy: &Config, opts: &EnvoyOptions) -> Vec<Value> {
    opts.clusters
        .iter()
        .map(|(subset, addr)| {
            let name = cluster_name(policy, &opts.service, subset);
            json!({
                "name": name,
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket_address(*addr) } }] }],
                },
            })
        })
        .collect()
}

/// What `--access-log` prints per request (HTTP) or connection (TCP): a `canary-access` marker (the proxy's own
/// log shares stdout), the request, where it went, and the filter's decision (`service=… rule=… subset=…`;
/// `-` when the filter set none, e.g. a trusted incoming header).
pub const ACCESS_LOG_FORMAT: &str =
    "canary-access %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER% %FILTER_STATE(wasm.canary_decision:PLAIN)%\n";
/// The TCP form of [`ACCESS_LOG_FORMAT`]: a connection has no method, path or status.
pub const TCP_ACCESS_LOG_FORMAT: &str =
    "canary-access tcp %UPSTREAM_CLUSTER% %FILTER_STATE(wasm.canary_decision:PLAIN)%\n";

/// With the filter: the `stats_tags` that turn its counter names into `canary_decisions_total{service,rule,subset}`
/// in Prometheus output (the encoding is `canary_eval::telemetry`'s), and with `--access-log` the stdout access
/// log on the listener's HTTP connection manager or `tcp_proxy`.
fn add_filter_telemetry(bootstrap: &mut Value, opts: &EnvoyOptions, protocol: Protocol) {
    use canary_eval::telemetry::{tag_regex, TAGS};
    let tags: Vec<Value> = TAGS.iter().map(|tag| json!({ "tag_name": tag, "regex": tag_regex(tag) })).collect();
    bootstrap["stats_config"] = json!({ "stats_tags": tags });
    if !opts.access_log {
        return;
    }
    let format = match protocol {
        Protocol::Http => ACCESS_LOG_FORMAT,
        Protocol::Tcp => TCP_ACCESS_LOG_FORMAT,
    };
    let log = json!([{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": { "text_format_source": { "inline_string": format } },
        },
    }]);
    let filters = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"];
    if let Some(last) = filters.as_array_mut().and_then(|f| f.last_mut()) {
        // The HTTP connection manager or tcp_proxy: the last network filter either way.
        last["typed_config"]["access_log"] = log;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    fn opts(service: &str) -> EnvoyOptions {
        let mut o = EnvoyOptions::new(
            service,
            "127.0.0.1:10000".parse().unwrap(),
            "127.0.0.1:9901".parse().unwrap(),
            "/tmp/canary_filter.wasm",
        );
        o.clusters =
            vec![("v1".into(), "127.0.0.1:8001".parse().unwrap()), ("v2".into(), "127.0.0.1:8002".parse().unwrap())];
        o.node_labels = vec![("app".into(), "frontend".into()), ("version".into(), "v2".into())];
        o
    }

    fn yaml(config: &Config, o: &EnvoyOptions) -> canary_yaml::Value {
        canary_yaml::from_str(&envoy_bootstrap(config, o).unwrap()).unwrap()
    }

    const SPLIT: &str = r#"{"version":1,"services":[{"name":"forecast","rules":[
        {"line":2,"then":{"split":{"to":[{"subset":"v2","weight":5000}]}}}],"default":"v1"}]}"#;

    #[test]
    fn http_proxy_routes_each_subset_and_defaults_to_the_first() {
        let y = yaml(&policy(SPLIT), &opts("forecast"));
        let hcm = &y["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        let routes = hcm["route_config"]["virtual_hosts"][0]["routes"].as_sequence().unwrap();
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[1]["match"]["headers"][0]["name"], "x-canary-subset");
        assert_eq!(routes[1]["match"]["headers"][0]["string_match"]["exact"], "v2");
        assert_eq!(routes[1]["route"]["cluster"], "forecast-v2");
        assert_eq!(routes[2]["route"]["cluster"], "forecast-v1");
        assert_eq!(hcm["http_filters"][0]["name"], "envoy.filters.http.wasm");
        assert_eq!(hcm["http_filters"][1]["name"], "envoy.filters.http.router");
        assert_eq!(y["node"]["metadata"]["LABELS"]["version"], "v2");
        assert_eq!(y["node"]["id"], "frontend-v2");
        assert_eq!(y["static_resources"]["clusters"][1]["name"], "forecast-v2");
    }

    #[test]
    fn the_plugin_configuration_is_the_policy_with_the_service_set() {
        let y = yaml(&policy(SPLIT), &opts("forecast"));
        let hcm = &y["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        let conf = &hcm["http_filters"][0]["typed_config"]["config"]["configuration"];
        assert_eq!(conf["@type"], "type.googleapis.com/google.protobuf.StringValue");
        let embedded: Config = serde_json::from_str(conf["value"].as_str().unwrap()).unwrap();
        let mut expected = policy(SPLIT);
        expected.settings.service = Some("forecast".into());
        assert_eq!(embedded, expected);
    }

    #[test]
    fn tcp_proxy_uses_the_default_cluster_and_the_network_filter() {
        let p = policy(
            r#"{"version":1,"services":[{"name":"tcp-echo","protocol":"tcp","rules":[
            {"line":2,"then":{"split":{"to":[{"subset":"v2","weight":2000}]}}}],"default":"v1"}]}"#,
        );
        let mut o = opts("tcp-echo");
        o.default_subset = Some("v1".into());
        let y = yaml(&p, &o);
        let filters = &y["static_resources"]["listeners"][0]["filter_chains"][0]["filters"];
        assert_eq!(filters[0]["name"], "envoy.filters.network.wasm");
        assert_eq!(filters[1]["typed_config"]["cluster"], "tcp-echo-v1");
        o.protocol = Some(Protocol::Http);
        assert!(envoy_bootstrap(&p, &o).unwrap_err().contains("declares service `tcp-echo` as tcp"));
    }

    #[test]
    fn a_tcp_service_the_policy_does_not_declare_is_declared_tcp_for_the_filter() {
        let mut o = opts("tcp-echo");
        o.protocol = Some(Protocol::Tcp);
        let y = yaml(&policy(r#"{"version":1,"global":{"default":"v1"}}"#), &o);
        let filters = &y["static_resources"]["listeners"][0]["filter_chains"][0]["filters"];
        let value = filters[0]["typed_config"]["config"]["configuration"]["value"].as_str().unwrap();
        let embedded: Config = serde_json::from_str(value).unwrap();
        assert_eq!(embedded.services.len(), 1);
        assert_eq!((embedded.services[0].name.as_str(), embedded.services[0].protocol), ("tcp-echo", Protocol::Tcp));
        assert_eq!(embedded.global.default.as_deref(), Some("v1"));
    }

    #[test]
    fn a_subset_without_a_cluster_is_refused() {
        let mut o = opts("forecast");
        o.clusters.truncate(1);
        let err = envoy_bootstrap(&policy(SPLIT), &o).unwrap_err();
        assert!(err.contains("subset `v2`"), "{err}");
        o.clusters.clear();
        assert!(envoy_bootstrap(&policy(SPLIT), &o).is_err());
    }

    #[test]
    fn a_cluster_pattern_in_the_settings_names_the_clusters() {
        let mut p = policy(SPLIT);
        p.settings.cluster = Some("outbound|80|{subset}|{service}.weather".into());
        let y = yaml(&p, &opts("forecast"));
        assert_eq!(y["static_resources"]["clusters"][0]["name"], "outbound|80|v1|forecast.weather");
    }

    #[test]
    fn stats_tags_and_the_access_log() {
        let y = yaml(&policy(SPLIT), &opts("forecast"));
        let tags = y["stats_config"]["stats_tags"].as_sequence().unwrap();
        let names: Vec<&str> = tags.iter().map(|t| t["tag_name"].as_str().unwrap()).collect();
        assert_eq!(names, ["service", "rule", "subset"]);
        assert_eq!(tags[1]["regex"], r"(rule=\.=(.*?);\.;)");
        let hcm = &y["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        assert!(hcm.get("access_log").is_none(), "the access log is opt-in");

        let mut o = opts("forecast");
        o.access_log = true;
        let y = yaml(&policy(SPLIT), &o);
        let hcm = &y["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        let format = &hcm["access_log"][0]["typed_config"]["log_format"]["text_format_source"]["inline_string"];
        assert!(format.as_str().unwrap().contains("%FILTER_STATE(wasm.canary_decision:PLAIN)%"));
        let conf = hcm["http_filters"][0]["typed_config"]["config"]["configuration"]["value"].as_str().unwrap();
        assert!(serde_json::from_str::<Config>(conf).unwrap().settings.access_log);
    }

    #[test]
    fn flags_parse() {
        assert_eq!(parse_cluster_flag("v1=127.0.0.1:80").unwrap(), ("v1".into(), "127.0.0.1:80".parse().unwrap()));
        assert!(parse_cluster_flag("v1=localhost:80").is_err());
        assert!(parse_cluster_flag("=127.0.0.1:80").is_err());
        assert_eq!(parse_label_flag("version=v2").unwrap(), ("version".into(), "v2".into()));
        assert!(parse_addr("[::1]:9901", "--admin").is_ok());
    }
}
