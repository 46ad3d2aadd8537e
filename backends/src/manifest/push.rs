//! Push forms: a proxy that takes its policy from a watched file instead of its bootstrap.
//!
//! `--kind ecds` writes the canary filter's `TypedExtensionConfig` (HTTP or network wasm) and `--kind rds` a
//! natively lowered service's `RouteConfiguration`, each as the `DiscoveryResponse` Envoy's filesystem
//! subscriptions read; `--kind envoy --ecds-path PATH` / `--rds-path PATH` writes a bootstrap that discovers the
//! filter / the routes from PATH. Envoy watches PATH's directory and re-reads PATH whenever a file is moved
//! into it: an atomic `-o` (rename), or a Kubernetes ConfigMap update (which swaps a `..data` symlink in that
//! directory). A resource Envoy or the filter refuses is rejected (`config_fail`/`update_rejected`) and the
//! last good one keeps serving.
//!
//! While the file is absent or has never held a good resource, the proxy has no policy. We give Envoy no
//! default configuration on purpose: an HTTP request then gets Envoy's 500 (response flag `NFCF`) and a TCP
//! connection is closed, instead of routing without the filter — where a client's own `x-canary-subset`
//! would pick the subset, and nothing would say that the policy is missing. (RDS without routes answers 404.)
//! Write the file before starting Envoy, as the README's push does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use canary_eval::config::{Config, Protocol};
use serde_json::{json, Value};

use super::envoy::{
    filter_name, protocol_of, proxy_policy, route_config, wasm_type_url, wasm_typed_config, EnvoyOptions,
};
use super::istio::sha256_hex;
use super::{envoy_routes, policy_subsets};
use crate::native::{NativeAction, NativeService};
use crate::route_settings::ServiceRoutes;

const TYPED_EXTENSION_CONFIG: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
const ROUTE_CONFIGURATION: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// What a pushed resource needs besides the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PushOptions {
    /// The service the proxy serves (`--service`).
    pub service: String,
    /// `None`: as the policy declares the service (HTTP when it declares none).
    pub protocol: Option<Protocol>,
    /// ECDS: the filter module's path in the proxy (`--wasm`).
    pub wasm_path: PathBuf,
    /// `--subsets`: the subsets the proxy has clusters for; a policy that can choose another is refused. The
    /// first takes the requests nothing decides when the policy has no default (RDS). Empty: not checked.
    pub subsets: Vec<String>,
    /// RDS: the service lowered to native routes.
    pub native: Option<NativeService>,
    /// RDS: the service's route settings (README "Route settings").
    pub routes: ServiceRoutes,
}

impl PushOptions {
    pub fn new(service: &str) -> Self {
        PushOptions {
            service: service.to_string(),
            protocol: None,
            wasm_path: PathBuf::new(),
            subsets: Vec::new(),
            native: None,
            routes: ServiceRoutes::default(),
        }
    }
}

/// The file format Envoy will parse: it picks the parser by the file's extension (`.yaml`/`.yml`: YAML,
/// anything else: JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// The format Envoy expects at `path` (YAML for stdout).
    pub fn for_path(path: Option<&Path>) -> Format {
        let ext = path.and_then(|p| p.extension()).map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            None | Some("yaml") | Some("yml") => Format::Yaml,
            Some(_) => Format::Json,
        }
    }
}

/// The ECDS `DiscoveryResponse` for the canary filter of `opts.service`: the filter's `TypedExtensionConfig`
/// named as the bootstrap's `config_discovery` names it, holding the policy as the inline filter would.
pub fn ecds_resource(config: &Config, opts: &PushOptions) -> Result<Value, String> {
    let protocol = protocol_of(config, &opts.service, opts.protocol)?;
    if opts.wasm_path.as_os_str().is_empty() {
        return Err("--kind ecds needs the filter module's path in the proxy: --wasm PATH".into());
    }
    check_subsets(&opts.subsets, policy_subsets(config, &opts.service, protocol), &opts.service)?;
    let policy = proxy_policy(config, &opts.service, protocol);
    let json = serde_json::to_string(&policy).map_err(|e| format!("cannot serialize the policy: {e}"))?;
    Ok(ecds_response(&opts.service, protocol, &opts.wasm_path, &json))
}

/// The ECDS `DiscoveryResponse` around an already serialized plugin configuration, unchecked: the form
/// [`ecds_resource`] writes, and what a test harness pushes when it wants exact bytes (a broken policy too).
pub fn ecds_response(service: &str, protocol: Protocol, wasm_path: &Path, policy_json: &str) -> Value {
    discovery_response(json!({
        "@type": TYPED_EXTENSION_CONFIG,
        "name": filter_name(service),
        "typed_config": wasm_typed_config(service, protocol, wasm_path, policy_json),
    }))
}

/// The RDS `DiscoveryResponse` for a natively lowered HTTP service: its `RouteConfiguration`, named after the
/// service as the bootstrap's `rds` names it. `validate_clusters` makes Envoy refuse a push that names a
/// cluster the proxy lacks (by default RDS accepts it and answers 503).
pub fn rds_resource(config: &Config, opts: &PushOptions) -> Result<Value, String> {
    let service = opts.service.as_str();
    let Some(native) = &opts.native else {
        return Err(format!("--kind rds: service `{service}` was not lowered to native routes"));
    };
    if protocol_of(config, service, opts.protocol)? == Protocol::Tcp {
        return Err(no_tcp_rds(service));
    }
    check_subsets(&opts.subsets, native_subsets(native), service)?;
    let fallback = match (&native.default, opts.subsets.first()) {
        (Some(default), _) => default.clone(),
        (None, Some(first)) => first.clone(),
        (None, None) => {
            return Err(format!(
                "service `{service}` has no default: name the proxy's subsets with --subsets V1,V2 (the first takes \
                 the requests no rule decides)"
            ))
        }
    };
    let policy = proxy_policy(config, service, Protocol::Http);
    let cluster = |s: Option<&str>| policy.settings.cluster_name(service, s.unwrap_or(&fallback));
    let mirror_cluster = |s: &str| policy.settings.cluster_name(service, s);
    let routes = envoy_routes::http_route_table(native, &cluster, &opts.routes, &mirror_cluster)?;
    let mirrors = opts.routes.mirror_subsets();
    if let Some(m) = mirrors.iter().find(|m| !opts.subsets.is_empty() && !opts.subsets.contains(m)) {
        return Err(format!(
            "service `{service}` mirrors to subset `{m}`, which is not among --subsets {}",
            opts.subsets.join(",")
        ));
    }
    let mut resource = route_config(service, routes);
    resource["validate_clusters"] = json!(true);
    let mut typed = json!({ "@type": ROUTE_CONFIGURATION });
    typed.as_object_mut().expect("an object").extend(resource.as_object().cloned().unwrap_or_default());
    Ok(discovery_response(typed))
}

/// A TCP service's native form is `tcp_proxy`'s weighted clusters, which live in the listener: there is no
/// route discovery to push them through.
fn no_tcp_rds(service: &str) -> String {
    format!(
        "service `{service}` is TCP: its native form is tcp_proxy's weighted clusters, which have no route \
         discovery (RDS) to push; push its policy to the filter instead (--kind envoy --ecds-path PATH, then \
         --kind ecds -o PATH), or regenerate the bootstrap with --backend native and restart Envoy"
    )
}

/// One resource as Envoy's filesystem subscriptions read it. `version_info` is a digest of the resource, so
/// the same policy always gives the same file and `/stats` (`…version_text`) shows which one a proxy runs.
fn discovery_response(resource: Value) -> Value {
    let digest = sha256_hex(serde_json::to_string(&resource).unwrap_or_default().as_bytes());
    json!({ "version_info": digest[..16], "resources": [resource] })
}

/// The resource as text in `format`; YAML starts with a comment saying what it is.
pub fn render(response: &Value, format: Format, what: &str) -> Result<String, String> {
    match format {
        Format::Json => {
            serde_json::to_string_pretty(response).map(|s| s + "\n").map_err(|e| format!("cannot write JSON: {e}"))
        }
        Format::Yaml => {
            let yaml = canary_yaml::to_string(response).map_err(|e| format!("cannot write YAML: {e}"))?;
            Ok(format!(
                "# {what}, generated by `canaryc manifest`.\n\
                 # Envoy re-reads it when a file is moved into this directory: replace it with\n\
                 # `canaryc manifest … -o THIS_FILE` (written beside it, then renamed).\n{yaml}"
            ))
        }
    }
}

fn native_subsets(native: &NativeService) -> BTreeSet<String> {
    let mut subsets: BTreeSet<String> = native.default.iter().cloned().collect();
    for route in &native.routes {
        match &route.action {
            NativeAction::Subset(s) => {
                subsets.insert(s.clone());
            }
            NativeAction::Split { weights, .. } => subsets.extend(weights.iter().filter_map(|(s, _)| s.clone())),
        }
    }
    subsets
}

fn check_subsets(deployed: &[String], chosen: BTreeSet<String>, service: &str) -> Result<(), String> {
    if deployed.is_empty() {
        return Ok(());
    }
    match chosen.iter().find(|s| !deployed.contains(s)) {
        Some(missing) => Err(format!(
            "the policy can send service `{service}` to subset `{missing}`, which is not among --subsets {}",
            deployed.join(",")
        )),
        None => Ok(()),
    }
}

/// Refuses push paths a bootstrap cannot use: both at once, ECDS without the filter, RDS without native HTTP
/// routes, a relative path (Envoy would resolve it in its own working directory) or an extension Envoy would
/// not parse as YAML or JSON.
pub(crate) fn check_paths(opts: &EnvoyOptions, protocol: Protocol) -> Result<(), String> {
    match (&opts.ecds_path, &opts.rds_path) {
        (Some(_), Some(_)) => Err("give --ecds-path (the filter's policy) or --rds-path (native routes), not both: \
                                   one proxy is decided by one of them"
            .into()),
        (Some(_), None) if opts.native.is_some() => Err(format!(
            "--ecds-path: service `{}` is served by native routes (no filter to discover); push them with \
             --rds-path, or use --backend filter",
            opts.service
        )),
        (None, Some(_)) if protocol == Protocol::Tcp => Err(format!("--rds-path: {}", no_tcp_rds(&opts.service))),
        (None, Some(_)) if opts.native.is_none() => Err(format!(
            "--rds-path pushes native routes, but service `{}` runs the filter: push its policy with --ecds-path",
            opts.service
        )),
        (Some(path), None) => check_path(path, "--ecds-path"),
        (None, Some(path)) => check_path(path, "--rds-path"),
        (None, None) => Ok(()),
    }
}

fn check_path(path: &Path, flag: &str) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!(
            "{flag} {}: give an absolute path (Envoy resolves it in its own directory)",
            path.display()
        ));
    }
    if path.parent().is_none_or(|p| p.as_os_str().is_empty()) || path.file_name().is_none() {
        return Err(format!("{flag} {}: name a file inside a directory Envoy can watch", path.display()));
    }
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("yaml" | "yml" | "json") => Ok(()),
        _ => Err(format!(
            "{flag} {}: end the name in .yaml or .json (Envoy picks the parser by the extension)",
            path.display()
        )),
    }
}

/// The filesystem config source for `path`: Envoy watches its directory (so a ConfigMap's symlink swap is
/// seen too) and re-reads `path` on every rename into it.
fn config_source(path: &Path) -> Value {
    let dir = path.parent().unwrap_or(Path::new("/"));
    json!({
        "path_config_source": {
            "path": path.to_string_lossy(),
            "watched_directory": { "path": dir.to_string_lossy() },
        },
        "resource_api_version": "V3",
    })
}

/// The canary filter entry of a filter chain that discovers its configuration from `path` (ECDS). No
/// `default_config`: see the module doc.
pub fn filter_discovery(service: &str, protocol: Protocol, path: &Path) -> Value {
    json!({
        "name": filter_name(service),
        "config_discovery": { "config_source": config_source(path), "type_urls": [wasm_type_url(protocol)] },
    })
}

/// The HTTP connection manager's `rds` field: the service's route configuration from `path`.
pub(crate) fn rds_discovery(service: &str, path: &Path) -> Value {
    json!({ "config_source": config_source(path), "route_config_name": service })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_absolute_files_envoy_can_parse() {
        assert!(check_path(Path::new("/etc/canary/frontend.yaml"), "--ecds-path").is_ok());
        assert!(check_path(Path::new("/etc/canary/frontend.json"), "--ecds-path").is_ok());
        assert!(check_path(Path::new("canary/frontend.yaml"), "--ecds-path").unwrap_err().contains("absolute"));
        assert!(check_path(Path::new("/etc/canary/frontend.pb"), "--rds-path").unwrap_err().contains(".yaml"));
        assert!(check_path(Path::new("/"), "--rds-path").is_err());
    }

    #[test]
    fn the_format_follows_the_extension_envoy_reads() {
        assert_eq!(Format::for_path(None), Format::Yaml);
        assert_eq!(Format::for_path(Some(Path::new("/x/a.YML"))), Format::Yaml);
        assert_eq!(Format::for_path(Some(Path::new("/x/a.json"))), Format::Json);
        assert_eq!(Format::for_path(Some(Path::new("/x/a"))), Format::Yaml);
    }

    #[test]
    fn the_config_source_watches_the_files_directory() {
        let s = config_source(Path::new("/etc/canary/frontend.yaml"));
        assert_eq!(s["path_config_source"]["path"], "/etc/canary/frontend.yaml");
        assert_eq!(s["path_config_source"]["watched_directory"]["path"], "/etc/canary");
        assert_eq!(s["resource_api_version"], "V3");
    }

    #[test]
    fn subsets_outside_the_deployed_ones_are_refused() {
        let chosen: BTreeSet<String> = ["v1".to_string(), "v3".to_string()].into();
        assert!(check_subsets(&[], chosen.clone(), "s").is_ok());
        let err = check_subsets(&["v1".into(), "v2".into()], chosen, "s").unwrap_err();
        assert!(err.contains("subset `v3`") && err.contains("--subsets v1,v2"), "{err}");
    }
}
