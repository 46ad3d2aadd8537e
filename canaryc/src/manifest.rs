//! `canaryc manifest FILE [--kind wasmplugin|envoyfilter|istio-routes|envoy|ecds|rds] … [-o OUT]`: deployment
//! YAML on stdout, or written atomically to OUT.
//!
//! The Istio kinds share one set of flags, so one command line per kind differs only in `--kind` (a script can
//! generate all three). The module comes from `--wasm-url`, which the proxies fetch; `--kind envoy` instead
//! needs a file Envoy reads itself (`--wasm PATH`, or a `file://` `--wasm-url`). `ecds` and `rds` are the push
//! forms for a plain Envoy whose bootstrap (`--kind envoy --ecds-path|--rds-path PATH`) watches PATH: they take
//! the flags of `--kind envoy` that describe the pushed resource. Flags a kind does not use are refused, so a
//! mistyped command does not silently produce something else.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use canary_eval::config::Protocol;
use canary_eval::Config;
use clap::{Args, ValueEnum};

use super::{color, load, print, Failure};
use canary_backends::cost;
use canary_backends::manifest::envoy::{
    envoy_bootstrap, parse_addr, parse_cluster_flag, parse_label_flag, resolve_protocol, EnvoyOptions,
};
use canary_backends::manifest::gateway_api::{self, GatewayApiOptions, Implementation, Parent};
use canary_backends::manifest::istio::{
    istio_manifest, istio_services, local_module_path, Edge, IstioKind, IstioOptions, WasmModule,
};
use canary_backends::manifest::push::{self, Format, PushOptions};
use canary_backends::manifest::write_atomic;
use canary_backends::native::{self, Dialect, EnvoyVersion, TableForm, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Istio WasmPlugins (Istio ≥ 1.12): the filter in the callers' sidecars and the ingress gateway.
    Wasmplugin,
    /// The same as EnvoyFilters, for meshes without WasmPlugin.
    Envoyfilter,
    /// DestinationRules and VirtualServices that route on the filter's subset header.
    IstioRoutes,
    /// A bootstrap for one plain Envoy (the policy inline, or pushed: --ecds-path / --rds-path).
    Envoy,
    /// The filter's configuration as an ECDS resource, for a bootstrap made with --ecds-path (push it with -o).
    Ecds,
    /// A natively lowered HTTP service's routes as an RDS resource, for a bootstrap made with --rds-path.
    Rds,
    /// Kubernetes Gateway API HTTPRoutes/TCPRoutes (README "Gateway API"); the filter, where needed, as an Envoy
    /// Gateway EnvoyExtensionPolicy or an Istio WasmPlugin.
    GatewayApi,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Wasmplugin => "wasmplugin",
            Kind::Envoyfilter => "envoyfilter",
            Kind::IstioRoutes => "istio-routes",
            Kind::Envoy => "envoy",
            Kind::Ecds => "ecds",
            Kind::Rds => "rds",
            Kind::GatewayApi => "gateway-api",
        }
    }
}

/// Who decides: the canary filter, Envoy's own routes, or the cheapest exact one per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The wasm filter decides, the routes map its subset header (what scripts without --backend get).
    Filter,
    /// Envoy's native routes decide, no filter; exit 1 naming every rule without an exact native form.
    Native,
    /// Native where exact, the filter elsewhere; one line per service on stderr says which and why.
    Auto,
}

/// Who implements the Gateway API routes (and runs the filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImplementationArg {
    /// Envoy Gateway (its precedence, regular-expression paths; the filter as an EnvoyExtensionPolicy).
    EnvoyGateway,
    /// Istio (the spec's precedence; the filter as a WasmPlugin).
    Istio,
}

/// `--native-tables`: the route list, or matcher trees for big tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NativeTables {
    /// Every rule a route, walked in order.
    List,
    /// Runs of table rules from the measured crossover on as matcher trees, where the Envoy has them.
    Tree,
}

impl NativeTables {
    fn form(args: &ManifestArgs) -> TableForm {
        match (args.native_tables, args.native_tree_min) {
            (Some(NativeTables::List), _) => TableForm::List,
            (_, Some(min)) => TableForm::Tree { min_entries: min as usize },
            (Some(NativeTables::Tree) | None, None) => TableForm::DEFAULT,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    Http,
    Tcp,
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The policy (`.canary`).
    file: PathBuf,
    #[arg(long, value_enum, default_value_t = Kind::Wasmplugin)]
    kind: Kind,
    /// Who decides (see README "Backends") [default: filter; native for --kind rds and --rds-path]. The default
    /// stays `filter`, so existing scripts keep their output.
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// Write the output to OUT instead of stdout, atomically: a temporary file beside OUT, renamed over it (what
    /// a watching Envoy needs). `--kind ecds|rds` write JSON when OUT ends in .json, else YAML.
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// The oldest Envoy the generated routes must run on: native features newer than it are left to the
    /// filter, with the reason (Istio 1.28 ships Envoy 1.36).
    #[arg(long, default_value = "1.40", value_name = "X.Y", value_parser = EnvoyVersion::parse)]
    envoy_version: EnvoyVersion,
    /// How native Envoy routes write a run of table rules (exact values of one header, `path` prefixes): `tree`
    /// looks a run of at least 4 entries up in a matcher tree, on Envoy ≥ 1.25 (README "Backends"); `list`
    /// walks every rule as a route. [default: tree]
    #[arg(long, value_enum, value_name = "FORM")]
    native_tables: Option<NativeTables>,
    /// With `--native-tables tree`: the fewest entries a run needs to become a tree [default: 4, where a tree
    /// starts costing Envoy fewer instructions than the list it replaces: BENCHMARKS.md "Big tables"].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    native_tree_min: Option<u32>,
    /// Where proxies fetch the filter module: https://…, oci://…, file:///path-in-the-proxy, or a local file
    /// (written as file://ABSOLUTE and hashed). Required for wasmplugin and envoyfilter.
    #[arg(long, value_name = "URL")]
    wasm_url: Option<String>,
    /// Module checksum: 64 hex digits, or a local copy of the module to hash (computed automatically for a
    /// file:// URL that exists here). For oci:// it is the image digest.
    #[arg(long, value_name = "HEX|PATH")]
    sha256: Option<String>,
    /// Application namespace.
    #[arg(long, default_value = "default", value_name = "NS", help_heading = "Istio")]
    namespace: String,
    /// A mesh service to generate for besides those the policy declares (top-level rules apply to it);
    /// repeatable. With --kind envoy: the service the proxy serves.
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,
    /// Service port, repeatable: required for TCP services (Istio's subset clusters are
    /// outbound|PORT|SUBSET|HOST); for HTTP services it narrows the plugin to those ports.
    #[arg(long = "port", value_name = "SERVICE=PORT", value_parser = parse_port, help_heading = "Istio")]
    ports: Vec<(String, u16)>,
    /// Subsets deployed for every service (the first is where undecided requests go when the policy has no
    /// default), merged with those the policy names. With --kind ecds|rds: the subsets the proxy has clusters
    /// for; a policy that can choose another is refused.
    #[arg(long, value_delimiter = ',', value_name = "V1,V2", help_heading = "Istio")]
    subsets: Vec<String>,
    /// The service the ingress gateway calls: also run the filter in the gateway (deciding for this service) and
    /// route the gateway's traffic on its decision.
    #[arg(long, value_name = "SERVICE", help_heading = "Istio")]
    edge: Option<String>,
    /// The Gateway resource the edge service's public VirtualService binds to (istio-routes).
    #[arg(long, value_name = "[NS/]NAME", help_heading = "Istio")]
    gateway: Option<String>,
    /// Public host of the edge service, repeatable [default: *].
    #[arg(long = "edge-host", value_name = "HOST", help_heading = "Istio")]
    edge_hosts: Vec<String>,
    /// Namespace of the ingress gateway workload.
    #[arg(long, default_value = "istio-system", value_name = "NS", help_heading = "Istio")]
    gateway_namespace: String,
    /// Label of the ingress gateway workload, repeatable [default: istio=ingressgateway].
    #[arg(long = "gateway-label", value_name = "K=V", value_parser = parse_label_flag, help_heading = "Istio")]
    gateway_labels: Vec<(String, String)>,
    /// Kubernetes cluster DNS domain.
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN", help_heading = "Istio")]
    cluster_domain: String,
    /// Local filter module Envoy loads.
    #[arg(long, value_name = "PATH", help_heading = "Envoy")]
    wasm: Option<PathBuf>,
    /// Where the proxy listens.
    #[arg(long, value_name = "IP:PORT", value_parser = |v: &str| parse_addr(v, "--listen"), help_heading = "Envoy")]
    listen: Option<SocketAddr>,
    /// Envoy's admin interface.
    #[arg(long, default_value = "127.0.0.1:9901", value_name = "IP:PORT",
          value_parser = |v: &str| parse_addr(v, "--admin"), help_heading = "Envoy")]
    admin: SocketAddr,
    /// A subset's upstream, repeatable.
    #[arg(long = "cluster", value_name = "SUBSET=IP:PORT", value_parser = parse_cluster_flag, help_heading = "Envoy")]
    clusters: Vec<(String, SocketAddr)>,
    /// A label of the workload this proxy fronts (read by `source` conditions), repeatable.
    #[arg(long = "node-label", value_name = "K=V", value_parser = parse_label_flag, help_heading = "Envoy")]
    node_labels: Vec<(String, String)>,
    /// Serve the service as HTTP or TCP [default: as the policy declares it].
    #[arg(long, value_enum, help_heading = "Envoy")]
    protocol: Option<ProtocolArg>,
    /// The filter's policy is read from this watched file (ECDS; write it with --kind ecds -o PATH) instead of
    /// being inlined. Absolute; ends in .yaml or .json.
    #[arg(long, value_name = "PATH", help_heading = "Envoy")]
    ecds_path: Option<PathBuf>,
    /// The native routes are read from this watched file (RDS; write it with --kind rds -o PATH) instead of
    /// being inlined. HTTP only. Absolute; ends in .yaml or .json.
    #[arg(long, value_name = "PATH", help_heading = "Envoy")]
    rds_path: Option<PathBuf>,
    /// Make the filter write each decision into filter state `wasm.canary_decision` (one host call per
    /// request); with --kind envoy also log every request with it to stdout. For Istio, print it with
    /// `%FILTER_STATE(wasm.canary_decision:PLAIN)%` in meshConfig.accessLogFormat (README "Metrics and access log").
    #[arg(long)]
    access_log: bool,
    /// What the routes attach to: gateway/NAME or gateway/NAMESPACE/NAME (one edge service), or `service`
    /// (GAMMA mesh routes, each on its own Service).
    #[arg(long, value_name = "gateway/[NS/]NAME|service", value_parser = Parent::parse, help_heading = "Gateway API")]
    parent: Option<Parent>,
    /// Who implements the routes and runs the filter.
    #[arg(long, value_enum, default_value_t = ImplementationArg::EnvoyGateway, help_heading = "Gateway API")]
    implementation: ImplementationArg,
}

fn parse_port(value: &str) -> Result<(String, u16), String> {
    match value.split_once('=') {
        Some((service, port)) if !service.trim().is_empty() => match port.trim().parse::<u16>() {
            Ok(port) if port > 0 => Ok((service.trim().to_string(), port)),
            _ => Err(format!("--port: `{port}` is not a port number (1-65535)")),
        },
        _ => Err(format!("--port: expected SERVICE=PORT, got `{value}`")),
    }
}

/// Runs `canaryc manifest`: YAML on stdout (or atomically into `-o OUT`), notes as warnings on stderr.
pub(super) fn run(args: ManifestArgs) -> Result<(), Failure> {
    let yaml = generate(&args)?;
    match &args.output {
        Some(out) => write_atomic(out, yaml.as_bytes()).map_err(|e| format!("{}: cannot write: {e}", out.display()))?,
        None => print(&yaml),
    }
    Ok(())
}

/// The manifest `args` describe, as text (`canaryc rollout` pipes it into a push command).
pub(super) fn generate(args: &ManifestArgs) -> Result<String, Failure> {
    misplaced_flags(args)?;
    let backend = effective_backend(args)?;
    let (mut compiled, text) = load(&args.file)?;
    if args.access_log && args.kind != Kind::Envoy {
        // The Istio plugins and the ECDS resource carry the setting; `--kind envoy` sets it with the log it writes.
        compiled.config.settings.access_log = true;
    }
    let loaded = super::route_settings::load(&args.file, &compiled, &text)?;
    let settings_for = |service: &str, protocol: Protocol| {
        super::route_settings::for_service(&args.file, &compiled, &text, &loaded, service, protocol == Protocol::Tcp)
    };
    let config = &compiled.config;
    let source = args.file.file_name().map_or_else(|| args.file.display().to_string(), |n| n.to_string_lossy().into());
    if backend == Backend::Native && matches!(args.kind, Kind::Wasmplugin | Kind::Envoyfilter) {
        return Err("--backend native deploys no filter: generate the routes with --kind istio-routes --backend \
                    native (or use --backend auto here: plugins only for the services that need the filter)"
            .to_string()
            .into());
    }
    let yaml = match args.kind {
        Kind::Envoy => {
            let mut opts = envoy_options(args, backend, config)?;
            if backend != Backend::Filter {
                let protocol = resolve_protocol(config, &opts)?;
                let target = Target {
                    labels: Some(&opts.node_labels),
                    tables: NativeTables::form(args),
                    ..Target::envoy(args.envoy_version)
                };
                let lowered = choose(args, backend, &compiled, &text, &[(opts.service.clone(), protocol)], &target)?;
                opts.native = lowered.into_values().next();
            }
            opts.routes = settings_for(&opts.service.clone(), resolve_protocol(config, &opts)?)?;
            if opts.access_log && opts.native.is_some() {
                return Err("--access-log logs the filter's decisions, but this service got native routes (no \
                            filter runs): use --backend filter, or Envoy's own access log"
                    .to_string()
                    .into());
            }
            envoy_bootstrap(config, &opts)?
        }
        Kind::Ecds | Kind::Rds => pushed_resource(args, backend, &compiled, &text, &settings_for)?,
        Kind::GatewayApi => gateway_api_routes(args, backend, &compiled, &text, &source, &settings_for)?,
        Kind::Wasmplugin | Kind::Envoyfilter | Kind::IstioRoutes => {
            let kind = match args.kind {
                Kind::Wasmplugin => IstioKind::WasmPlugin,
                Kind::Envoyfilter => IstioKind::EnvoyFilter,
                _ => IstioKind::Routes,
            };
            let mut opts = istio_options(args);
            if kind == IstioKind::Routes {
                for (service, protocol) in istio_services(config, &opts)? {
                    let routes = settings_for(&service, protocol)?;
                    if !routes.is_empty() {
                        opts.route_settings.insert(service, routes);
                    }
                }
            }
            let native = match backend {
                Backend::Filter => BTreeMap::new(),
                _ => choose(
                    args,
                    backend,
                    &compiled,
                    &text,
                    &istio_services(config, &opts)?,
                    &Target::istio(args.envoy_version),
                )?,
            };
            let (module, notes) = match (&args.wasm_url, kind) {
                (Some(url), IstioKind::WasmPlugin | IstioKind::EnvoyFilter) => {
                    let (module, notes) = WasmModule::resolve(url, args.sha256.as_deref())?;
                    (Some(module), notes)
                }
                _ => (None, Vec::new()),
            };
            let manifest = istio_manifest(config, kind, &opts, module.as_ref(), &source, &native)?;
            for note in notes.iter().chain(&manifest.notes) {
                eprintln!("warning: {note}");
            }
            manifest.yaml
        }
    };
    Ok(yaml)
}

impl ManifestArgs {
    /// `-o OUT`, if given.
    pub(super) fn output(&self) -> Option<&std::path::Path> {
        self.output.as_deref()
    }
}

/// `--backend` as given, else what the kind implies: native routes for `--kind rds` and `--rds-path`, the
/// filter everywhere else. Refuses combinations that cannot push what they name.
fn effective_backend(args: &ManifestArgs) -> Result<Backend, Failure> {
    let routes = args.kind == Kind::Rds || args.rds_path.is_some();
    let what = if args.kind == Kind::Rds { "--kind rds" } else { "--rds-path" };
    match (args.backend, routes) {
        (Some(Backend::Filter), true) => Err(format!(
            "{what} pushes native routes, and --backend filter has none: push the filter's policy with --kind ecds \
             (--ecds-path in the bootstrap)"
        )
        .into()),
        (Some(Backend::Native | Backend::Auto), false) if args.kind == Kind::Ecds => {
            Err("--kind ecds pushes the filter's policy: native routes are pushed with --kind rds (--rds-path in the \
             bootstrap)"
                .to_string()
                .into())
        }
        (Some(backend), _) => Ok(backend),
        (None, true) => Ok(Backend::Native),
        (None, false) => Ok(Backend::Filter),
    }
}

/// `--kind ecds|rds`: the resource a watching proxy reads, in the format its file name tells Envoy to parse.
fn pushed_resource(
    args: &ManifestArgs,
    backend: Backend,
    compiled: &canary_compiler::Compiled,
    text: &str,
    settings_for: &dyn Fn(&str, Protocol) -> Result<canary_backends::route_settings::ServiceRoutes, Failure>,
) -> Result<String, Failure> {
    let config = &compiled.config;
    let mut opts = PushOptions::new(&proxy_service(args, config)?);
    opts.protocol = args.protocol.map(protocol);
    opts.subsets = args.subsets.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    let format = Format::for_path(args.output.as_deref());
    let (response, what) = if args.kind == Kind::Ecds {
        opts.wasm_path = match (&args.wasm, &args.wasm_url) {
            (Some(path), _) => path.clone(),
            (None, Some(url)) => local_module_path(url)
                .ok_or_else(|| format!("--kind ecds loads the module from a file: pass --wasm PATH, not {url}"))?,
            (None, None) => {
                return Err("--kind ecds needs the filter module's path in the proxy: --wasm PATH".to_string().into())
            }
        };
        (push::ecds_resource(config, &opts)?, format!("ECDS resource: the canary filter of `{}`", opts.service))
    } else {
        let protocol = canary_backends::manifest::envoy::protocol_of(config, &opts.service, opts.protocol)?;
        opts.routes = settings_for(&opts.service, protocol)?;
        let target = Target {
            labels: Some(&args.node_labels),
            tables: NativeTables::form(args),
            ..Target::envoy(args.envoy_version)
        };
        let lowered = choose(args, backend, compiled, text, &[(opts.service.clone(), protocol)], &target)?;
        opts.native = Some(lowered.into_values().next().ok_or_else(|| {
            format!(
                "--kind rds: service `{}` needs the filter (above), which routes cannot carry: push its policy with \
                 --kind ecds to a proxy made with --ecds-path",
                opts.service
            )
        })?);
        (push::rds_resource(config, &opts)?, format!("RDS resource: the native routes of `{}`", opts.service))
    };
    Ok(push::render(&response, format, &what)?)
}

fn protocol(p: ProtocolArg) -> Protocol {
    match p {
        ProtocolArg::Http => Protocol::Http,
        ProtocolArg::Tcp => Protocol::Tcp,
    }
}

/// `--backend native|auto`: each service's policy as native routes for `target` (an Envoy specialised by its
/// own `--node-label`s, or Istio's VirtualServices), or why not. `native` fails with every refusal as a
/// `FILE:LINE:COL` diagnostic; `auto` leaves such services to the filter, and says on stderr, one line per
/// service, which backend each got and why.
fn choose(
    args: &ManifestArgs,
    backend: Backend,
    compiled: &canary_compiler::Compiled,
    text: &str,
    services: &[(String, Protocol)],
    target: &Target<'_>,
) -> Result<BTreeMap<String, native::NativeService>, Failure> {
    let file = args.file.display().to_string();
    let what = match target.dialect {
        Dialect::Envoy => "native Envoy routes",
        Dialect::Istio => "native VirtualService routes",
    };
    let mut lowered = BTreeMap::new();
    let mut diagnostics = Vec::new();
    // `auto` weighs the exact forms by the cost model; built once, only when it is needed.
    let policy = match backend {
        Backend::Auto => Some(canary_eval::Policy::new(&compiled.config).map_err(|e| e.to_string())?),
        _ => None,
    };
    for (service, protocol) in services {
        match native::lower_service(&compiled.config, &compiled.spans, service, *protocol, target) {
            Ok(mut routes) => {
                let Some(policy) = &policy else {
                    lowered.insert(service.clone(), routes);
                    continue;
                };
                let estimates =
                    cost::estimates(policy, &compiled.config, service, *protocol, Some(&routes), &cost::CALIBRATED);
                let figures = cost_figures(&estimates);
                match cost::cheapest(&estimates).map(|e| e.form) {
                    Some(cost::Form::Filter) => {
                        let why = match target.dialect {
                            Dialect::Envoy => String::new(),
                            // A VirtualService is always a route list; Envoy's matcher tree would need an
                            // EnvoyFilter patch of the virtual host, which canaryc does not write.
                            Dialect::Istio => "; a VirtualService can only be a route list".to_string(),
                        };
                        eprintln!("{service}: filter (cheaper than its exact native form{why}{figures})");
                        continue;
                    }
                    // The tables as plain routes when those are cheaper, unless `--native-tables` (or
                    // `--native-tree-min`) said which.
                    Some(cost::Form::List)
                        if args.native_tables.is_none()
                            && args.native_tree_min.is_none()
                            && !routes.layout.is_list() =>
                    {
                        routes.layout = native::Layout::list(&routes.routes);
                    }
                    _ => {}
                }
                let form = if routes.layout.is_list() { "" } else { " as a matcher tree" };
                eprintln!(
                    "{service}: {what}{form} (every rule has an exact form on Envoy {}{figures})",
                    args.envoy_version
                );
                lowered.insert(service.clone(), routes);
            }
            Err(refusals) if backend == Backend::Native => {
                diagnostics.extend(native::diagnostics(service, &refusals, "native"));
            }
            Err(refusals) => announce_filter(service, &refusals, text, &file),
        }
    }
    if !diagnostics.is_empty() {
        eprint!("{}", canary_compiler::render(&diagnostics, text, &file, color()));
        return Err(Failure::Reported);
    }
    Ok(lowered)
}

fn istio_options(args: &ManifestArgs) -> IstioOptions {
    let mut opts = IstioOptions::new(&args.namespace);
    opts.services = args.services.clone();
    opts.ports = args.ports.clone();
    opts.subsets = args.subsets.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    opts.cluster_domain = args.cluster_domain.clone();
    opts.edge = args.edge.as_ref().map(|service| {
        let mut edge = Edge::new(service);
        edge.gateway = args.gateway.clone();
        edge.namespace = args.gateway_namespace.clone();
        if !args.edge_hosts.is_empty() {
            edge.hosts = args.edge_hosts.clone();
        }
        if !args.gateway_labels.is_empty() {
            edge.labels = args.gateway_labels.clone();
        }
        edge
    });
    opts
}

/// The one service a proxy (or a pushed resource) is for: `--service`, or the policy's only service.
fn proxy_service(args: &ManifestArgs, config: &Config) -> Result<String, Failure> {
    let kind = args.kind.name();
    match (args.services.as_slice(), config.services.as_slice()) {
        ([one], _) => Ok(one.clone()),
        ([], [only]) => Ok(only.name.clone()),
        ([], _) => Err(format!("--kind {kind}: name the service this proxy serves with --service NAME").into()),
        _ => Err(format!("--kind {kind} is for one proxy: give --service once").into()),
    }
}

fn envoy_options(args: &ManifestArgs, backend: Backend, config: &Config) -> Result<EnvoyOptions, Failure> {
    let service = proxy_service(args, config)?;
    let listen = args.listen.ok_or_else(|| "--kind envoy needs --listen IP:PORT".to_string())?;
    let wasm = match (&args.wasm, &args.wasm_url) {
        (Some(path), _) => path.clone(),
        (None, Some(url)) => local_module_path(url)
            .ok_or_else(|| format!("--kind envoy loads the module from a file: pass --wasm PATH, not {url}"))?,
        // Native routes load no module; `auto` may still need one, and says so if it does.
        (None, None) if backend == Backend::Native => PathBuf::new(),
        (None, None) => return Err("--kind envoy needs the filter module: --wasm PATH".to_string().into()),
    };
    let mut opts = EnvoyOptions::new(&service, listen, args.admin, wasm);
    opts.clusters = args.clusters.clone();
    opts.node_labels = args.node_labels.clone();
    opts.access_log = args.access_log;
    opts.protocol = args.protocol.map(protocol);
    opts.ecds_path = args.ecds_path.clone();
    opts.rds_path = args.rds_path.clone();
    // Undecided requests (or a skipped filter) take the policy's default when it has a cluster.
    let declared = config.services.iter().find(|s| s.name == service);
    let default = declared.and_then(|s| s.rules.default.clone()).or_else(|| config.global.default.clone());
    opts.default_subset = default.filter(|d| opts.clusters.iter().any(|(subset, _)| subset == d));
    Ok(opts)
}

/// `--kind gateway-api`: each service's route, lowered where `--backend` asks and exact (else refused, or the
/// filter for `auto`), with the filter's document for the services that need it.
fn gateway_api_routes(
    args: &ManifestArgs,
    backend: Backend,
    compiled: &canary_compiler::Compiled,
    text: &str,
    source: &str,
    settings_for: &dyn Fn(&str, Protocol) -> Result<canary_backends::route_settings::ServiceRoutes, Failure>,
) -> Result<String, Failure> {
    let config = &compiled.config;
    let parent = args
        .parent
        .clone()
        .ok_or_else(|| "--kind gateway-api needs --parent gateway/[NS/]NAME or --parent service".to_string())?;
    let implementation = match args.implementation {
        ImplementationArg::EnvoyGateway => Implementation::EnvoyGateway,
        ImplementationArg::Istio => Implementation::Istio,
    };
    let opts = GatewayApiOptions {
        namespace: args.namespace.clone(),
        parent,
        implementation,
        ports: args.ports.clone(),
        subsets: args.subsets.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        hostnames: args.edge_hosts.clone(),
        route_settings: BTreeMap::new(),
    };
    let mut services = gateway_api::services(config, &args.services);
    if matches!(opts.parent, Parent::Gateway { .. }) && args.services.len() == 1 {
        services.retain(|(name, _)| *name == args.services[0]);
    }
    // Route settings: what has an exact Gateway API form is written (`gateway_api/settings.rs`), the rest refused.
    let mut opts = opts;
    for (name, protocol) in &services {
        let routes = settings_for(name, *protocol)?;
        if *protocol == Protocol::Tcp && !routes.is_empty() {
            return Err(format!("service `{name}` is TCP: route settings and mirrors apply to HTTP routes only").into());
        }
        if !routes.is_empty() {
            opts.route_settings.insert(name.clone(), routes);
        }
    }
    let file = args.file.display().to_string();
    let mut lowered = BTreeMap::new();
    let mut diagnostics = Vec::new();
    if backend != Backend::Filter {
        for (service, protocol) in &services {
            let fallback = opts.subsets.first().map(String::as_str);
            let ranking = implementation.ranking();
            match gateway_api::lower::lower_service(config, &compiled.spans, service, *protocol, ranking, fallback) {
                Ok(routes) => {
                    if backend == Backend::Auto {
                        eprintln!("{service}: native Gateway API routes (every rule has an exact form)");
                    }
                    lowered.insert(service.clone(), routes);
                }
                Err(refusals) if backend == Backend::Native || *protocol == Protocol::Tcp => {
                    diagnostics.extend(native::diagnostics(service, &refusals, "Gateway API"));
                }
                Err(refusals) => announce_filter(service, &refusals, text, &file),
            }
        }
    }
    if !diagnostics.is_empty() {
        eprint!("{}", canary_compiler::render(&diagnostics, text, &file, color()));
        return Err(Failure::Reported);
    }
    let module = match &args.wasm_url {
        Some(url) if lowered.len() < services.len() => {
            let (module, notes) = WasmModule::resolve(url, args.sha256.as_deref())?;
            for note in notes {
                eprintln!("warning: {note}");
            }
            Some(module)
        }
        _ => None,
    };
    let manifest = gateway_api::gateway_api_manifest(config, &opts, &services, &lowered, module.as_ref(), source)?;
    for note in &manifest.notes {
        eprintln!("warning: {note}");
    }
    Ok(manifest.yaml)
}

/// Refuses flags the chosen kind would ignore.
fn misplaced_flags(args: &ManifestArgs) -> Result<(), Failure> {
    use Kind::*;
    const ISTIO: &[Kind] = &[Wasmplugin, Envoyfilter, IstioRoutes];
    const ISTIO_GW: &[Kind] = &[Wasmplugin, Envoyfilter, IstioRoutes, GatewayApi];
    let flags: [(&str, bool, &[Kind]); 20] = [
        ("--wasm", args.wasm.is_some(), &[Envoy, Ecds]),
        ("--listen", args.listen.is_some(), &[Envoy]),
        ("--cluster", !args.clusters.is_empty(), &[Envoy]),
        ("--node-label", !args.node_labels.is_empty(), &[Envoy, Rds]),
        ("--native-tables", args.native_tables.is_some(), &[Envoy, Rds]),
        ("--native-tree-min", args.native_tree_min.is_some(), &[Envoy, Rds]),
        ("--protocol", args.protocol.is_some(), &[Envoy, Ecds, Rds]),
        ("--ecds-path", args.ecds_path.is_some(), &[Envoy]),
        ("--rds-path", args.rds_path.is_some(), &[Envoy]),
        ("--access-log", args.access_log, &[Wasmplugin, Envoyfilter, IstioRoutes, Envoy, Ecds]),
        ("--wasm-url", args.wasm_url.is_some(), &[Wasmplugin, Envoyfilter, IstioRoutes, Envoy, Ecds, GatewayApi]),
        ("--sha256", args.sha256.is_some(), ISTIO_GW),
        ("--port", !args.ports.is_empty(), ISTIO_GW),
        ("--subsets", !args.subsets.is_empty(), &[Wasmplugin, Envoyfilter, IstioRoutes, Ecds, Rds, GatewayApi]),
        ("--edge", args.edge.is_some(), ISTIO),
        ("--gateway", args.gateway.is_some(), ISTIO),
        ("--edge-host", !args.edge_hosts.is_empty(), ISTIO_GW),
        ("--gateway-label", !args.gateway_labels.is_empty(), ISTIO),
        ("--parent", args.parent.is_some(), &[GatewayApi]),
        ("--implementation", args.implementation != ImplementationArg::EnvoyGateway, &[GatewayApi]),
    ];
    if args.native_tables == Some(NativeTables::List) && args.native_tree_min.is_some() {
        return Err("--native-tree-min applies to --native-tables tree, not list".to_string().into());
    }
    let kind = match args.kind {
        Envoy | Ecds | Rds | GatewayApi => args.kind.name(),
        _ => "an Istio kind",
    };
    match flags.iter().find(|(_, given, kinds)| *given && !kinds.contains(&args.kind)) {
        Some((flag, ..)) => Err(format!("{flag} does not apply to {kind} (see canaryc manifest --help)").into()),
        None => Ok(()),
    }
}

/// `auto`'s estimates for a service, as its line ends: `; est. worst case per request: native route list 206k,
/// filter 236k instructions` (empty for a TCP service, which has no per-request route walk to weigh).
fn cost_figures(estimates: &[cost::Estimate]) -> String {
    if estimates.is_empty() {
        return String::new();
    }
    let each: Vec<String> =
        estimates.iter().map(|e| format!("{} {}", e.form.name(), cost::kilo(e.instructions))).collect();
    format!("; est. worst case per request: {} instructions", each.join(", "))
}

/// `auto`'s line for a service left to the filter: the first rule without an exact native form, and how many more.
fn announce_filter(service: &str, refusals: &[native::Refusal], text: &str, file: &str) {
    let Some(first) = refusals.first() else { return };
    let at = canary_dsl::line_col(text, first.span.start);
    let more = match refusals.len() {
        1 => String::new(),
        n => format!(" (and {} more rule(s))", n - 1),
    };
    eprintln!("{service}: filter ({file}:{}:{}: {}){more}", at.line, at.col, first.reason);
}
