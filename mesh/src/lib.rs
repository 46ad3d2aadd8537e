//! The weather mesh in real Envoys on loopback, wired the way Istio wires it.
//!
//! ```text
//! client ─▶ ingress Envoy (filter serves frontend) ─▶ frontend vN ─▶ its sidecar (serves forecast,
//!           labels app=frontend,version=vN) ─▶ forecast vM ─▶ [v2 only] its sidecar (serves recommendation)
//!           ─▶ recommendation vK
//! client ─▶ tcp-client Envoy (network filter serves tcp-echo) ─▶ tcp-echo vN
//! ```
//! Routing is client-side, as in Istio: the proxy in front of a caller decides which subset of the callee gets
//! the call, so `source` conditions see the caller's own labels. Every Envoy runs the same `.wasm` with the same
//! compiled policy and a bootstrap from [`canary_backends::manifest::envoy_bootstrap`]; only `settings.service`,
//! the labels and the clusters differ. Applying another policy restarts the Envoys on the same ports.

pub mod agents;
pub mod backends;
pub mod chain;
pub mod envoy;
pub mod load;
pub mod policy;
pub mod procs;
pub mod prometheus;
pub mod rollout;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use canary_backends::manifest::envoy::{envoy_bootstrap, resolve_protocol, EnvoyOptions};
use canary_backends::native::{lower_service, EnvoyVersion, Target};
use canary_compiler::RuleSpans;
use canary_eval::config::{Config, Protocol};
use canary_weather::Role;

use procs::Procs;

const VERSIONS: [&str; 2] = ["v1", "v2"];
const ROLES: [Role; 4] = [Role::Frontend, Role::Forecast, Role::Recommendation, Role::TcpEcho];

/// How to start a stand-in service: a binary plus leading arguments before `--role …` (the `weather` or
/// canary-tests' `weather-service` binary with none, or the `demo` binary with `weather`).
#[derive(Debug, Clone)]
pub struct Launcher {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl Launcher {
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Self {
        Launcher { program: program.into(), args: args.iter().map(|s| s.to_string()).collect() }
    }
}

/// Where the mesh's binaries are.
#[derive(Debug, Clone)]
pub struct MeshOptions {
    pub envoy: PathBuf,
    pub wasm: PathBuf,
    pub services: Launcher,
}

impl MeshOptions {
    /// Finds Envoy and the filter (see [`envoy::find_envoy`], [`envoy::find_wasm`]); errors say how to get them.
    pub fn locate(services: Launcher) -> Result<Self> {
        Ok(MeshOptions { envoy: envoy::find_envoy()?, wasm: envoy::find_wasm()?, services })
    }
}

/// One Envoy of the mesh: its process name and everything but the policy.
struct Proxy {
    name: String,
    options: EnvoyOptions,
    /// What decides in it under the current policy: `filter` or `native`.
    backend: &'static str,
}

/// A running mesh; dropping it stops every process.
pub struct Mesh {
    opts: MeshOptions,
    proxies: Vec<Proxy>,
    /// `--backend auto`: each Envoy gets native routes where its service lowers exactly, else the filter.
    auto: bool,
    // Declared last so the processes outlive nothing that refers to them.
    procs: Procs,
}

impl Mesh {
    /// Starts the eight service instances and the five Envoys, and waits until all are ready. A failure
    /// stops everything and carries the tails of all logs.
    pub fn start(config: &Config, opts: MeshOptions) -> Result<Mesh> {
        let mut mesh = Mesh { opts, proxies: Vec::new(), auto: false, procs: Procs::new("mesh")? };
        let booted = mesh.start_services().and_then(|()| mesh.start_envoys(config));
        booted.map_err(|err| mesh.with_logs(err))?;
        Ok(mesh)
    }

    fn with_logs(&self, err: anyhow::Error) -> anyhow::Error {
        anyhow::anyhow!("{err:#}\n--- mesh logs ({}) ---\n{}", self.procs.dir().display(), self.logs())
    }

    /// Allocates every port, defines the Envoys, and starts the services (each knows its sidecar's port).
    fn start_services(&mut self) -> Result<()> {
        let mut services = Vec::new();
        for role in ROLES {
            for version in VERSIONS {
                services.push((role, version, envoy::free_port()?));
            }
        }
        let addr_of = |role: Role, version: &str| {
            services.iter().find(|(r, v, _)| *r == role && *v == version).map(|s| s.2).expect("all instances exist")
        };
        let clusters = |role: Role| VERSIONS.iter().map(|v| (v.to_string(), addr_of(role, v))).collect::<Vec<_>>();
        let (wasm, proxies) = (&self.opts.wasm, &mut self.proxies);
        let mut proxy = |name: String, serves: Role, labels: &[(&str, &str)]| -> Result<SocketAddr> {
            let mut o = EnvoyOptions::new(serves.name(), envoy::free_port()?, envoy::free_port()?, wasm);
            o.clusters = clusters(serves);
            o.default_subset = Some("v1".into());
            o.node_labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            o.node_id = Some(name.clone());
            o.protocol = Some(if serves == Role::TcpEcho { Protocol::Tcp } else { Protocol::Http });
            let listen = o.listen;
            proxies.push(Proxy { name, options: o, backend: "filter" });
            Ok(listen)
        };
        proxy("ingress".into(), Role::Frontend, &[("app", "istio-ingressgateway"), ("istio", "ingressgateway")])?;
        proxy("tcp-client".into(), Role::TcpEcho, &[("app", "sleep"), ("version", "v1")])?;
        for &(role, version, listen) in &services {
            let upstream = match role.calls(version) {
                Some(next) => Some(proxy(
                    format!("{}-{version}-sidecar", role.name()),
                    next,
                    &[("app", role.name()), ("version", version)],
                )?),
                None => None,
            };
            let launcher = &self.opts.services;
            let mut cmd = Command::new(&launcher.program);
            cmd.args(&launcher.args).args(["--role", role.name(), "--version", version]);
            cmd.arg("--listen").arg(listen.to_string());
            if let Some(up) = upstream {
                cmd.arg("--upstream").arg(up.to_string());
            }
            self.procs.spawn(&format!("{}-{version}", role.name()), cmd)?;
        }
        services.iter().try_for_each(|&(_, _, listen)| envoy::wait_listening(listen))
    }

    /// Applies another policy: every Envoy is restarted with it (same ports), and this returns once all serve.
    pub fn apply(&mut self, config: &Config) -> Result<()> {
        let names: Vec<String> = self.proxies.iter().map(|p| p.name.clone()).collect();
        self.procs.stop(|name| names.iter().any(|n| n == name));
        self.start_envoys(config).map_err(|err| self.with_logs(err))
    }

    /// Chooses the backend for the policies applied from now on: `true` is `canaryc manifest --backend auto`
    /// (native routes where exact, specialised for each proxy's labels), `false` the filter everywhere.
    pub fn set_backend_auto(&mut self, auto: bool) {
        self.auto = auto;
    }

    /// Each Envoy's name and what decides in it (`filter` or `native`) under the current policy.
    pub fn backends(&self) -> Vec<(String, &'static str)> {
        self.proxies.iter().map(|p| (p.name.clone(), p.backend)).collect()
    }

    fn start_envoys(&mut self, config: &Config) -> Result<()> {
        for p in &mut self.proxies {
            let mut options = p.options.clone();
            if self.auto {
                let protocol = resolve_protocol(config, &options).map_err(anyhow::Error::msg)?;
                let target = Target { labels: Some(&options.node_labels), ..Target::envoy(EnvoyVersion::LATEST) };
                options.native = lower_service(config, &RuleSpans::default(), &options.service, protocol, &target).ok();
            }
            p.backend = if options.native.is_some() { "native" } else { "filter" };
            let yaml = envoy_bootstrap(config, &options).map_err(anyhow::Error::msg).context(p.name.clone())?;
            envoy::spawn(&mut self.procs, &self.opts.envoy, &p.name, &yaml)?;
        }
        for p in &self.proxies {
            envoy::wait_ready(&mut self.procs, &p.name, p.options.admin)?;
        }
        Ok(())
    }

    /// Starts one more ingress-like Envoy (frontend's clusters) with `config` beside the mesh, e.g. to show that
    /// a broken policy is refused while the mesh keeps serving. Returns its listener once ready.
    pub fn start_extra_ingress(&mut self, name: &str, config: &Config) -> Result<SocketAddr> {
        let mut o = self.proxy("ingress").options.clone();
        o.listen = envoy::free_port()?;
        o.admin = envoy::free_port()?;
        o.node_id = Some(name.to_string());
        let yaml = envoy_bootstrap(config, &o).map_err(anyhow::Error::msg)?;
        envoy::spawn(&mut self.procs, &self.opts.envoy, name, &yaml)?;
        envoy::wait_ready(&mut self.procs, name, o.admin)?;
        Ok(o.listen)
    }

    fn proxy(&self, name: &str) -> &Proxy {
        self.proxies.iter().find(|p| p.name == name).expect("the mesh defines this proxy")
    }

    /// Where external HTTP clients enter (the ingress gateway in front of frontend).
    pub fn ingress(&self) -> SocketAddr {
        self.proxy("ingress").options.listen
    }

    /// Where TCP clients reach tcp-echo (through the client-side Envoy).
    pub fn tcp(&self) -> SocketAddr {
        self.proxy("tcp-client").options.listen
    }

    /// The outbound listener of `app` `version`'s sidecar, if that instance calls anything.
    pub fn sidecar(&self, app: &str, version: &str) -> Option<SocketAddr> {
        let name = format!("{app}-{version}-sidecar");
        self.proxies.iter().find(|p| p.name == name).map(|p| p.options.listen)
    }

    /// The whole log of one process (e.g. `ingress`), for assertions on what Envoy said.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.procs.dir().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Tails of every log, for a failure message.
    pub fn logs(&self) -> String {
        self.procs.all_tails()
    }

    /// Whether a process (e.g. an extra Envoy) is still running.
    pub fn running(&mut self, name: &str) -> bool {
        self.procs.running(name)
    }
}
