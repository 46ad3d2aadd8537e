//! The filter against the native backend in real Envoy, shared by `tests/tests/envoy_native*.rs`: for one
//! policy, a pair of Envoys (one runs the canary filter, one the policy lowered to Envoy's own routes by
//! `canary_backends::native`) in front of the same stand-in subsets v1, v2, v3 (each answers with its version);
//! requests written byte for byte; and the evaluator's view of which answers a request may get.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::thread;

use anyhow::{Context, Result};
use canary_backends::manifest::envoy::{envoy_bootstrap, EnvoyOptions};
use canary_backends::native::{lower_service, EnvoyVersion, NativeService, Target};
use canary_eval::config::{Config, Protocol};
use canary_eval::{Policy, SimpleRequest, BUCKETS};
use canary_weather::http::Client;
use canary_weather::{Role, Service};

use super::envoy::{find_envoy, find_wasm, free_port, spawn, wait_listening, wait_ready};
use super::procs::Procs;

/// The subsets every HTTP stand-in set has.
pub const SUBSETS: [&str; 3] = ["v1", "v2", "v3"];

fn ok<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

// ----- stand-in subsets ------------------------------------------------------------------------------

/// The stand-ins, shared by every test of this binary: HTTP ones answer `recommendation=vN`, TCP ones echo
/// `one …` (v1) or `two …` (v2). They run as threads of the test process.
pub struct Upstreams {
    pub http: Vec<(String, SocketAddr)>,
    pub tcp: Vec<(String, SocketAddr)>,
}

pub fn upstreams() -> &'static Upstreams {
    static UP: OnceLock<Upstreams> = OnceLock::new();
    UP.get_or_init(|| {
        let start = |role: Role, version: &str| {
            let service = Service { role, version: version.into(), listen: ok(free_port()), upstream: None };
            let listen = service.listen;
            thread::spawn(move || service.run());
            ok(wait_listening(listen));
            (version.to_string(), listen)
        };
        Upstreams {
            http: SUBSETS.iter().map(|v| start(Role::Recommendation, v)).collect(),
            tcp: ["v1", "v2"].iter().map(|v| start(Role::TcpEcho, v)).collect(),
        }
    })
}

// ----- a pair of Envoys -------------------------------------------------------------------------------

/// What one proxy pair serves: a policy, one service of it, the proxy's labels and its default subset.
pub struct Case {
    /// For messages: the example or hand-written policy's name.
    pub label: String,
    pub source: String,
    pub config: Config,
    pub service: String,
    pub protocol: Protocol,
    pub labels: Vec<(String, String)>,
    pub native: NativeService,
    /// The proxy's default route (what "no decision" reaches).
    pub default_subset: String,
}

impl Case {
    pub fn describe(&self) -> String {
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "policy `{}`, service `{}`, node labels [{}], proxy default {}:\n{}",
            self.label,
            self.service,
            labels.join(","),
            self.default_subset,
            self.source.trim_end()
        )
    }
}

/// The filter Envoy and the native Envoy for one [`Case`]; dropping it stops both.
pub struct Pair {
    pub filter: SocketAddr,
    pub native: SocketAddr,
    pub _procs: Procs,
}

pub fn compile(source: &str, label: &str) -> canary_compiler::Compiled {
    canary_compiler::compile(source, label)
        .unwrap_or_else(|d| panic!("{}", canary_compiler::render(&d, source, label, false)))
}

/// Lowers `service` of `source` for a proxy with `labels` (`None`: not specialised, so `source` conditions
/// are refused); `Err` carries the refusal reasons.
pub fn case(
    label: &str,
    source: &str,
    service: &str,
    labels: Option<&[(&str, &str)]>,
    default: &str,
) -> Result<Case, String> {
    let compiled = compile(source, label);
    let protocol = compiled.config.services.iter().find(|s| s.name == service).map_or(Protocol::Http, |s| s.protocol);
    let labels: Option<Vec<(String, String)>> =
        labels.map(|l| l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    let target = Target { labels: labels.as_deref(), ..Target::envoy(EnvoyVersion::LATEST) };
    let native = lower_service(&compiled.config, &compiled.spans, service, protocol, &target).map_err(|refusals| {
        refusals.iter().map(|r| format!("line {}: {}", r.line, r.reason)).collect::<Vec<_>>().join("; ")
    })?;
    Ok(Case {
        label: label.to_string(),
        source: source.to_string(),
        config: compiled.config,
        service: service.to_string(),
        protocol,
        labels: labels.unwrap_or_default(),
        native,
        default_subset: default.to_string(),
    })
}

pub fn start_pair(case: &Case) -> Result<Pair> {
    let mut procs = Procs::new("native")?;
    let started = start_envoys(&mut procs, case, &[("filter", None), ("native", Some(case.native.clone()))])?;
    Ok(Pair { filter: started[0], native: started[1], _procs: procs })
}

/// Starts one Envoy per `(name, backend)` for `case` (`None`: the filter; else those native routes) under
/// `procs`, each ready before this returns; their listeners in order.
pub fn start_envoys(
    procs: &mut Procs,
    case: &Case,
    backends: &[(&str, Option<NativeService>)],
) -> Result<Vec<SocketAddr>> {
    let (envoy, wasm) = (find_envoy()?, find_wasm()?);
    let clusters = match case.protocol {
        Protocol::Http => &upstreams().http,
        Protocol::Tcp => &upstreams().tcp,
    };
    let mut started = Vec::new();
    for (name, native) in backends {
        let mut o = EnvoyOptions::new(&case.service, free_port()?, free_port()?, &wasm);
        o.clusters = clusters.clone();
        o.default_subset = Some(case.default_subset.clone());
        o.node_labels = case.labels.clone();
        o.protocol = Some(case.protocol);
        o.native = native.clone();
        let yaml = envoy_bootstrap(&case.config, &o).map_err(anyhow::Error::msg).context(name.to_string())?;
        spawn(procs, &envoy, name, &yaml)?;
        started.push((*name, o.listen, o.admin));
    }
    for (name, _, admin) in &started {
        wait_ready(procs, name, *admin).with_context(|| case.describe())?;
    }
    Ok(started.into_iter().map(|s| s.1).collect())
}

// ----- raw HTTP/1.1 -----------------------------------------------------------------------------------

/// One request as sent on the wire: header lines in order (repeats allowed, values verbatim).
#[derive(Debug, Clone)]
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub host: String,
    pub headers: Vec<(String, String)>,
}

impl Req {
    pub fn get(path: &str) -> Req {
        Req { method: "GET", path: path.into(), host: "forecast".into(), headers: Vec::new() }
    }

    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The header lines as sent: `host` first, then the request's own, repeats included.
    pub fn lines(&self) -> Vec<(&str, &str)> {
        let own = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        std::iter::once(("host", self.host.as_str())).chain(own).collect()
    }

    /// How the evaluator sees it once Envoy parsed it: values without surrounding whitespace, every value of a
    /// repeated header — except for the headers Envoy keeps inline (`user-agent` among those sent here), whose
    /// repeated lines its header map joins into one value with `,` (empty ones dropped) before any filter or
    /// route sees them.
    pub fn simple(&self, labels: &[(String, String)]) -> SimpleRequest {
        let mut r = SimpleRequest::new().method(self.method).host(&self.host).header(":path", &self.path);
        for (k, v) in &self.headers {
            let v = v.trim_matches([' ', '\t']);
            match r.headers.iter_mut().find(|(n, _)| n == k) {
                // `HeaderMapImpl::appendToHeader`: an empty value adds nothing, a delimiter only between values.
                Some((_, joined)) if k.as_str() == "user-agent" => {
                    if !v.is_empty() && !joined.is_empty() {
                        joined.push(b',');
                    }
                    joined.extend_from_slice(v.as_bytes());
                }
                _ => r = r.header(k, v),
            }
        }
        for (k, v) in labels {
            r = r.source(k, v);
        }
        r
    }
}

impl std::fmt::Display for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} host={:?}", self.method, self.path, self.host)?;
        for (k, v) in &self.headers {
            write!(f, " {k}={v:?}")?;
        }
        Ok(())
    }
}

/// The subset that answered `req` (`v2`), or `status N …` for anything but a stand-in's 200.
pub fn subset(client: &mut Client, req: &Req) -> Result<String> {
    let answer = client.request(req.method, &req.path, &req.lines()).with_context(|| req.to_string())?;
    match answer.body.trim().strip_prefix("recommendation=") {
        Some(subset) if answer.status == 200 => Ok(subset.to_string()),
        _ => Ok(format!("status {} {:?}", answer.status, answer.body.trim())),
    }
}

/// Sends every request to both backends (one connection each, the two in parallel); returns (filter, native)
/// answers in request order.
pub fn both(pair: &Pair, reqs: &[Req]) -> Result<Vec<(String, String)>> {
    let run = |addr: SocketAddr| -> Result<Vec<String>> {
        let mut client = Client::new(addr);
        reqs.iter().map(|r| subset(&mut client, r)).collect()
    };
    let (filter, native) = thread::scope(|s| {
        let f = s.spawn(|| run(pair.filter));
        let n = s.spawn(|| run(pair.native));
        (f.join().expect("filter client"), n.join().expect("native client"))
    });
    Ok(filter?.into_iter().zip(native?).collect())
}

// ----- the evaluator's view: which answers a request may get ------------------------------------------

/// Hands out the 32 random bits that make `random_bucket` return `bucket`.
pub struct FixedBucket(pub u32);

impl rand::RngCore for FixedBucket {
    fn next_u32(&mut self) -> u32 {
        ((u64::from(self.0) << 32).div_ceil(u64::from(BUCKETS))) as u32
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.next_u32())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
    }
}

/// The subsets the evaluator may answer for `req` over every random draw (one subset: a deterministic
/// decision), "no decision" mapped to the proxy's default.
pub fn possible(policy: &Policy, case: &Case, req: &Req) -> BTreeSet<String> {
    let service = policy.service_or_global(&case.service);
    let simple = req.simple(&case.labels);
    (0..BUCKETS)
        .step_by(25)
        .chain([BUCKETS - 1])
        .map(|b| {
            let d = policy.decide(service, &simple, &mut FixedBucket(b));
            d.subset.map_or(case.default_subset.clone(), |s| policy.subset_name(s).to_string())
        })
        .collect()
}
