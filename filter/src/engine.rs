//! The filter's behaviour in plain Rust: what to fetch, what to decide, what to write back. The proxy is
//! abstracted as [`Host`], so this is unit-tested natively against a recording mock.

use std::cell::{Cell, OnceCell, RefCell};

use canary_eval::config::Protocol;
use canary_eval::{AttrKey, Decision, Policy, Request, ServiceId};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::filter_state::{self, LifeSpan};
use crate::header_map::{Found, HeaderMap};
use crate::metrics::{counter_name, log_value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// What the filter needs from the proxy. Each method is one host call in Envoy; the filter calls them
/// sparingly (see the crate docs), and every failure is absorbed: a filter must never trap on a request.
pub trait Host {
    /// First value of a request header (lowercase name, pseudo-headers included); raw bytes, not UTF-8.
    fn request_header(&self, name: &str) -> Option<Vec<u8>>;
    /// Every request header, pseudo-headers included, serialized as proxy-wasm pairs ([`HeaderMap`]); `None`
    /// if the host refused. The only way to see every value of a header sent several times.
    fn request_headers(&self) -> Option<Vec<u8>>;
    /// Sets a request header, replacing every existing value.
    fn replace_request_header(&self, name: &str, value: &str);
    /// Removes every value of a request header.
    fn remove_request_header(&self, name: &str);
    /// A label of the workload running this proxy: Envoy node metadata `LABELS`.
    fn node_label(&self, label: &str) -> Option<Vec<u8>>;
    /// Defines a counter; `None` if the proxy refused.
    fn define_counter(&self, name: &str) -> Option<u32>;
    fn increment_counter(&self, id: u32, by: u64);
    /// Calls a proxy foreign function; `false` if it failed.
    fn call_foreign_function(&self, name: &str, args: &[u8]) -> bool;
    /// Sets a property of the current stream (Envoy keeps it as filter state `wasm.<path>`); `false` if refused.
    fn set_property(&self, path: &str, value: &[u8]) -> bool;
    fn log(&self, level: LogLevel, message: &str);
}

/// The services this configuration serves. A proxy-wasm root context is not told whether an HTTP or a
/// network filter loaded it, so both are worked out from the configuration; each context then learns its
/// kind from its first callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// HTTP: `settings.service`, or `None` to resolve each request's service from `:authority`.
    pub http: Option<ServiceId>,
    /// TCP: `settings.service`, else the policy's only tcp service; `None` when neither exists (several
    /// tcp services and no setting): such connections get no decision.
    pub tcp: Option<ServiceId>,
}

impl Served {
    pub fn of(policy: &Policy) -> Served {
        if let Some(name) = &policy.settings().service {
            return Served { http: Some(policy.service_or_global(name)), tcp: policy.service(name) };
        }
        let mut tcp =
            policy.service_ids().filter(|&id| id != policy.fallback() && policy.protocol(id) == Protocol::Tcp);
        let only = match (tcp.next(), tcp.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        };
        Served { http: None, tcp: only }
    }
}

/// Headers that Envoy's header map holds as one entry however often a client sends them: pseudo-headers cannot
/// repeat, and `user-agent` is one of Envoy's inline headers, whose repeats it joins with `,` as they arrive
/// (`HeaderMapImpl::insertByKey`; envoy_native.rs checks it). For these the first value is every value.
const ONE_ENTRY: [&str; 5] = [":authority", ":method", ":path", ":scheme", "user-agent"];

/// How the filter reads headers, chosen per policy from what it can read. A value read
/// (`proxy_get_header_map_value`) costs Envoy ~10k instructions but shows only a header's first entry; the
/// whole map (`proxy_get_header_map_pairs`) shows every value and costs ~19k with the benchmark's 13 headers
/// (BENCHMARKS.md, "Reading every value").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderReads {
    /// Every header the policy reads has one entry ([`ONE_ENTRY`]): read each by value, on first use.
    ByValue,
    /// Some header may repeat: read the map, once, on the first header the decision needs.
    WholeMap,
}

/// (service, rule or `u32::MAX`, subset or `u32::MAX`): one counter each.
type CounterKey = (u32, u32, u32);

/// One outcome seen so far: its counter and what to report for it, all worked out when it first happens so a
/// request that repeats it only adds one.
struct Outcome {
    key: CounterKey,
    /// `None` when the proxy refused the definition.
    counter: Option<u32>,
    /// Decisions counted since the last flush.
    pending: u64,
    /// The access-log value ([`log_value`]); empty unless `settings.access_log`.
    log: String,
}

/// A configured filter: one per root context (per Envoy worker and plugin config), shared by the
/// request/connection contexts it creates.
pub struct Filter {
    policy: Policy,
    served: Served,
    /// Slot of `:authority` among the policy's attributes, so resolving the service also fills the cache.
    authority_slot: Option<usize>,
    reads: HeaderReads,
    /// Non-sticky splits draw from here. One generator per root: contexts on a worker run one at a time.
    rng: RefCell<SmallRng>,
    /// Node-metadata labels by attribute slot, fetched on first use: they never change during a VM's life.
    labels: Vec<OnceCell<Option<Vec<u8>>>>,
    /// Every outcome seen. A plain list: it holds one entry per outcome seen (a handful), and a map would cost
    /// module size.
    counters: RefCell<Vec<Outcome>>,
    /// TCP: the serialized `set_envoy_filter_state` argument for each subset, built once at configure time.
    cluster_args: Vec<Vec<u8>>,
    /// Whether a failed `set_envoy_filter_state` was already logged (logging every connection would flood).
    filter_state_failed: Cell<bool>,
    /// Whether a connection without a tcp service to serve was already logged.
    no_tcp_service_logged: Cell<bool>,
    /// Whether a refused access-log property was already logged.
    property_failed: Cell<bool>,
}

impl Filter {
    /// Parses and validates a plugin configuration; the error is the reason to log.
    pub fn new(config: &[u8], seed: u64) -> Result<Filter, String> {
        let policy = Policy::from_json(config).map_err(|e| e.0)?;
        let served = Served::of(&policy);
        let authority_slot = policy.attrs().iter().position(|k| matches!(k, AttrKey::Header(h) if h == ":authority"));
        let repeatable = |k: &AttrKey| matches!(k, AttrKey::Header(h) if !ONE_ENTRY.contains(&h.as_str()));
        let reads = if policy.attrs().iter().any(repeatable) { HeaderReads::WholeMap } else { HeaderReads::ByValue };
        let labels = policy.attrs().iter().map(|_| OnceCell::new()).collect();
        let cluster_args = match served.tcp {
            Some(service) => (0..policy.subsets().len() as u32)
                .map(|s| {
                    let cluster = policy.cluster_name(service, canary_eval::SubsetId(s));
                    filter_state::encode(filter_state::TCP_PROXY_CLUSTER, &cluster, LifeSpan::DownstreamConnection)
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(Filter {
            policy,
            served,
            authority_slot,
            reads,
            rng: RefCell::new(SmallRng::seed_from_u64(seed)),
            labels,
            counters: RefCell::new(Vec::new()),
            cluster_args,
            filter_state_failed: Cell::new(false),
            no_tcp_service_logged: Cell::new(false),
            property_failed: Cell::new(false),
        })
    }

    /// [`Filter::new`], logging the outcome the way an operator needs it: a refusal with its reason at
    /// error level (the caller then refuses the configuration), a suspicious setting as a warning.
    pub fn configure(host: &impl Host, config: &[u8], seed: u64) -> Option<Filter> {
        let filter = match Filter::new(config, seed) {
            Ok(filter) => filter,
            Err(reason) => {
                host.log(LogLevel::Error, &format!("canary: refusing configuration: {reason}"));
                return None;
            }
        };
        let policy = &filter.policy;
        let http = filter.served.http.map_or("from :authority", |id| policy.service_name(id));
        let tcp = filter.served.tcp.map_or("none", |id| policy.service_name(id));
        if let Some(name) = &policy.settings().service {
            if policy.service(name).is_none() {
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "canary: settings.service {} is not declared in the policy; only top-level rules apply",
                        canary_eval::quoted(name)
                    ),
                );
            }
        }
        let rules = policy.rule_count();
        host.log(LogLevel::Info, &format!("canary: configured: {rules} rules; http service {http}; tcp service {tcp}"));
        Some(filter)
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn served(&self) -> Served {
        self.served
    }

    pub fn header_reads(&self) -> HeaderReads {
        self.reads
    }

    /// An HTTP request's headers: decide and set or remove the subset header. Returns `None` when a trusted
    /// incoming subset header was kept (nothing evaluated).
    pub fn on_request_headers(&self, host: &impl Host) -> Option<Decision> {
        let policy = &self.policy;
        let header = policy.subset_header();
        let req = LazyRequest::http(self, host);
        let mut known_absent = false;
        if policy.settings().trust_incoming {
            if req.first(header).is_some() {
                return None;
            }
            known_absent = true;
        }
        let service = match self.served.http {
            Some(service) => service,
            None => policy.service_for_authority(req.authority().unwrap_or_default()),
        };
        let decision = policy.decide(service, &req, &mut *self.rng.borrow_mut());
        match decision.subset {
            Some(subset) => host.replace_request_header(header, policy.subset_name(subset)),
            // A header map already read tells whether there is a subset header to remove (a host call saved).
            None if !known_absent && req.map.get().is_none_or(|m| m.first(header.as_bytes()).is_some()) => {
                host.remove_request_header(header)
            }
            None => {}
        }
        self.count(host, service, decision);
        Some(decision)
    }

    /// A new TCP connection: decide from `source` labels and point tcp_proxy at the subset's cluster.
    pub fn on_new_connection(&self, host: &impl Host) -> Decision {
        let Some(service) = self.served.tcp else {
            if !self.no_tcp_service_logged.replace(true) {
                host.log(
                    LogLevel::Warn,
                    "canary: a TCP connection, but the policy does not say which tcp service this proxy serves \
                     (set settings.service); connections go to tcp_proxy's configured cluster (logged once)",
                );
            }
            let decision = Decision { subset: None, rule: None };
            self.count(host, self.policy.fallback(), decision);
            return decision;
        };
        let decision = self.policy.decide(service, &LazyRequest::tcp(self, host), &mut *self.rng.borrow_mut());
        if let Some(args) = decision.subset.and_then(|s| self.cluster_args.get(s.0 as usize)) {
            if !host.call_foreign_function(filter_state::FOREIGN_FUNCTION, args)
                && !self.filter_state_failed.replace(true)
            {
                host.log(
                    LogLevel::Error,
                    "canary: set_envoy_filter_state(envoy.tcp_proxy.cluster) failed; connections go to tcp_proxy's \
                     configured cluster (logged once)",
                );
            }
        }
        self.count(host, service, decision);
        decision
    }

    /// Counts a decision in the module; [`Filter::flush_counters`] hands the counts to the proxy. Batching
    /// saves a host call on every request (each costs a few % of throughput); the proxy's view lags by at most
    /// one tick (1 s), well inside Envoy's own stats flush interval (5 s by default). With
    /// `settings.access_log` it also writes the decision into filter state for the access log: one host call,
    /// with a value built when the outcome was first seen.
    fn count(&self, host: &impl Host, service: ServiceId, decision: Decision) {
        let key = (service.0, decision.rule.map_or(u32::MAX, |r| r.0), decision.subset.map_or(u32::MAX, |s| s.0));
        let access_log = self.policy.settings().access_log;
        let mut counters = self.counters.borrow_mut();
        let outcome = match counters.iter().position(|o| o.key == key) {
            Some(i) => counters.get_mut(i),
            None => {
                let counter = host.define_counter(&counter_name(&self.policy, service, decision));
                let log = if access_log { log_value(&self.policy, service, decision) } else { String::new() };
                counters.push(Outcome { key, counter, pending: 0, log });
                counters.last_mut()
            }
        };
        // Found or just pushed: always there.
        let Some(outcome) = outcome else { return };
        outcome.pending += 1;
        if access_log
            && !host.set_property(canary_eval::telemetry::FILTER_STATE_PROPERTY, outcome.log.as_bytes())
            && !self.property_failed.replace(true)
        {
            host.log(
                LogLevel::Error,
                "canary: the proxy refused the canary_decision property; access logs will not show decisions \
                 (logged once)",
            );
        }
    }

    /// Adds the decisions counted since the last flush to the proxy's counters (on every tick, and before the
    /// root context goes away).
    pub fn flush_counters(&self, host: &impl Host) {
        for outcome in self.counters.borrow_mut().iter_mut() {
            if let (Some(id), 1..) = (outcome.counter, outcome.pending) {
                host.increment_counter(id, outcome.pending);
            }
            outcome.pending = 0;
        }
    }
}

/// The request as the evaluator sees it, fetched from the host on first use and kept for the rest of this
/// request: by [`HeaderReads`], each header's first value, or the whole header map (each slot's values located
/// in it once); labels come from the root's cache. TCP connections have no headers.
struct LazyRequest<'a, H> {
    filter: &'a Filter,
    host: &'a H,
    /// [`HeaderReads::ByValue`]: per attribute slot; empty for TCP.
    values: Vec<OnceCell<Option<Vec<u8>>>>,
    /// [`HeaderReads::WholeMap`]: the map, and per attribute slot where its values are.
    map: OnceCell<HeaderMap>,
    found: Vec<OnceCell<Found>>,
    /// `:authority` when the policy itself never reads it (then it has no slot), by value.
    authority: OnceCell<Option<Vec<u8>>>,
}

impl<'a, H: Host> LazyRequest<'a, H> {
    fn http(filter: &'a Filter, host: &'a H) -> Self {
        let slots = filter.policy.attrs().len();
        let (values, found) = match filter.reads {
            HeaderReads::ByValue => ((0..slots).map(|_| OnceCell::new()).collect(), Vec::new()),
            HeaderReads::WholeMap => (Vec::new(), (0..slots).map(|_| OnceCell::new()).collect()),
        };
        LazyRequest { filter, host, values, map: OnceCell::new(), found, authority: OnceCell::new() }
    }

    fn tcp(filter: &'a Filter, host: &'a H) -> Self {
        let (values, found) = (Vec::new(), Vec::new());
        LazyRequest { filter, host, values, map: OnceCell::new(), found, authority: OnceCell::new() }
    }

    /// The request's headers; a host that refuses them gives a request without headers.
    fn map(&self) -> &HeaderMap {
        self.map.get_or_init(|| self.host.request_headers().map(HeaderMap::decode).unwrap_or_default())
    }

    /// The first value of a header no rule reads (so it has no slot).
    fn first(&self, name: &str) -> Option<Vec<u8>> {
        match self.filter.reads {
            HeaderReads::ByValue => self.host.request_header(name),
            HeaderReads::WholeMap => self.map().first(name.as_bytes()).map(<[u8]>::to_vec),
        }
    }

    fn authority(&self) -> Option<&[u8]> {
        match self.filter.authority_slot {
            Some(slot) => self.get(slot, self.filter.policy.attrs().get(slot)?, 0),
            None => self.authority.get_or_init(|| self.first(":authority")).as_deref(),
        }
    }
}

impl<H: Host> Request for LazyRequest<'_, H> {
    fn get(&self, slot: usize, key: &AttrKey, nth: usize) -> Option<&[u8]> {
        match key {
            AttrKey::Header(name) => match self.filter.reads {
                HeaderReads::ByValue if nth == 0 => {
                    self.values.get(slot)?.get_or_init(|| self.host.request_header(name)).as_deref()
                }
                HeaderReads::ByValue => None,
                HeaderReads::WholeMap => {
                    let found = self.found.get(slot)?.get_or_init(|| self.map().find(name.as_bytes()));
                    self.map().value_of(found, nth)
                }
            },
            AttrKey::Source(label) if nth == 0 => {
                self.filter.labels.get(slot)?.get_or_init(|| self.host.node_label(label)).as_deref()
            }
            AttrKey::Source(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every host call; headers and labels are plain lists.
    #[derive(Default)]
    struct Mock {
        headers: RefCell<Vec<(String, Vec<u8>)>>,
        labels: Vec<(String, String)>,
        calls: RefCell<Vec<String>>,
        counters: RefCell<Vec<(String, u64)>>,
        foreign: RefCell<Vec<(String, Vec<u8>)>>,
        foreign_fails: bool,
        properties: RefCell<Vec<(String, String)>>,
        logs: RefCell<Vec<(LogLevel, String)>>,
    }

    impl Mock {
        fn with(headers: &[(&str, &str)]) -> Mock {
            let headers = headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
            Mock { headers: RefCell::new(headers), ..Mock::default() }
        }
        fn header(&self, name: &str) -> Option<String> {
            let headers = self.headers.borrow();
            headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        }
        fn counter(&self, name: &str) -> u64 {
            self.counters.borrow().iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
        }
        fn calls(&self) -> Vec<String> {
            self.calls.take()
        }
    }

    impl Host for Mock {
        fn request_header(&self, name: &str) -> Option<Vec<u8>> {
            self.calls.borrow_mut().push(format!("get {name}"));
            self.headers.borrow().iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        }
        fn request_headers(&self) -> Option<Vec<u8>> {
            self.calls.borrow_mut().push("get headers".into());
            let headers = self.headers.borrow();
            Some(crate::header_map::encode(headers.iter().map(|(k, v)| (k.as_bytes(), v.as_slice()))))
        }
        fn replace_request_header(&self, name: &str, value: &str) {
            self.calls.borrow_mut().push(format!("replace {name}"));
            let mut headers = self.headers.borrow_mut();
            headers.retain(|(k, _)| k != name);
            headers.push((name.to_string(), value.as_bytes().to_vec()));
        }
        fn remove_request_header(&self, name: &str) {
            self.calls.borrow_mut().push(format!("remove {name}"));
            self.headers.borrow_mut().retain(|(k, _)| k != name);
        }
        fn node_label(&self, label: &str) -> Option<Vec<u8>> {
            self.calls.borrow_mut().push(format!("label {label}"));
            self.labels.iter().find(|(k, _)| k == label).map(|(_, v)| v.as_bytes().to_vec())
        }
        fn define_counter(&self, name: &str) -> Option<u32> {
            let mut counters = self.counters.borrow_mut();
            counters.push((name.to_string(), 0));
            Some(counters.len() as u32 - 1)
        }
        fn increment_counter(&self, id: u32, by: u64) {
            self.counters.borrow_mut()[id as usize].1 += by;
        }
        fn call_foreign_function(&self, name: &str, args: &[u8]) -> bool {
            self.foreign.borrow_mut().push((name.to_string(), args.to_vec()));
            !self.foreign_fails
        }
        fn set_property(&self, path: &str, value: &[u8]) -> bool {
            self.calls.borrow_mut().push(format!("set {path}"));
            self.properties.borrow_mut().push((path.to_string(), String::from_utf8_lossy(value).into_owned()));
            true
        }
        fn log(&self, level: LogLevel, message: &str) {
            self.logs.borrow_mut().push((level, message.to_string()));
        }
    }

    const S5: &str = r#"{"version":1,"services":[
        {"name":"frontend","rules":[{"line":2,"when":{"cookie":{"name":"user","value":"tester"}},"then":{"route":"v2"}}],"default":"v1"},
        {"name":"forecast","rules":[{"line":6,"when":{"source":{"label":"version","value":"v2"}},"then":{"route":"v2"}}],"default":"v1"}]}"#;

    fn filter(json: &str) -> Filter {
        Filter::new(json.as_bytes(), 7).unwrap()
    }

    /// A decision counter's name, spelled out (not via `telemetry`) so a change of encoding fails here.
    fn counter(service: &str, rule: &str, subset: &str) -> String {
        format!("canary.service=.={service};.;rule=.={rule};.;subset=.={subset};.;decisions_total")
    }

    #[test]
    fn access_log_sets_the_decision_property_only_when_asked() {
        let host = Mock::with(&[(":authority", "frontend"), ("cookie", "user=tester")]);
        filter(S5).on_request_headers(&host);
        assert!(host.properties.borrow().is_empty());
        assert_eq!(host.calls(), ["get headers", "replace x-canary-subset"]);

        let f = filter(&S5.replace(r#""services""#, r#""settings":{"access_log":true},"services""#));
        for (headers, want) in [
            (&[(":authority", "frontend"), ("cookie", "user=tester")][..], "service=frontend rule=2 subset=v2"),
            (&[(":authority", "frontend")][..], "service=frontend rule=default subset=v1"),
            (&[(":authority", "elsewhere")][..], "service=* rule=none subset="),
            (&[(":authority", "frontend"), ("cookie", "user=tester")][..], "service=frontend rule=2 subset=v2"),
        ] {
            let host = Mock::with(headers);
            f.on_request_headers(&host);
            assert_eq!(host.properties.take(), [("canary_decision".to_string(), want.to_string())], "{headers:?}");
            assert_eq!(host.calls().iter().filter(|c| c.starts_with("set ")).count(), 1);
        }
    }

    #[test]
    fn http_fetches_only_what_the_deciding_path_reads() {
        let f = filter(S5);
        let host =
            Mock::with(&[(":authority", "frontend:8080"), ("cookie", "a=1; user=tester"), ("x-canary-subset", "v1")]);
        let d = f.on_request_headers(&host).unwrap();
        assert_eq!(f.policy().subset_name(d.subset.unwrap()), "v2");
        assert_eq!(host.calls(), ["get headers", "replace x-canary-subset"]);
        assert_eq!(host.header("x-canary-subset").as_deref(), Some("v2"));
        f.flush_counters(&host);
        assert_eq!(host.counter(&counter("frontend", "2", "v2")), 1);

        // forecast never reads headers beyond :authority; the label is fetched once per filter, not per request.
        let host = Mock { labels: vec![("version".into(), "v2".into())], ..Mock::with(&[(":authority", "forecast")]) };
        f.on_request_headers(&host);
        assert_eq!(host.calls(), ["get headers", "label version", "replace x-canary-subset"]);
        f.on_request_headers(&host);
        assert_eq!(host.calls(), ["get headers", "replace x-canary-subset"]);
        f.flush_counters(&host);
        assert_eq!(host.counter(&counter("forecast", "6", "v2")), 2);
    }

    #[test]
    fn no_decision_removes_and_trust_keeps() {
        let json = r#"{"version":1,"services":[{"name":"a","rules":[{"line":1,"when":{"header":{"name":"x","test":"present"}},"then":{"route":"v2"}}]}]}"#;
        let f = filter(json);
        let host = Mock::with(&[(":authority", "a"), ("x-canary-subset", "v2")]);
        assert_eq!(f.on_request_headers(&host).unwrap().subset, None);
        assert_eq!(host.header("x-canary-subset"), None);
        f.flush_counters(&host);
        assert_eq!(host.counter(&counter("a", "none", "")), 1);

        let trusted = json.replace(r#""services""#, r#""settings":{"trust_incoming":true},"services""#);
        let f = filter(&trusted);
        let host = Mock::with(&[(":authority", "a"), ("x-canary-subset", "v9")]);
        assert_eq!(f.on_request_headers(&host), None);
        assert_eq!(host.calls(), ["get headers"]);
        assert_eq!(host.header("x-canary-subset").as_deref(), Some("v9"));
        // Trusted but absent: evaluated, and no pointless remove.
        let host = Mock::with(&[(":authority", "a")]);
        f.on_request_headers(&host);
        assert_eq!(host.calls(), ["get headers"]);
    }

    #[test]
    fn repeated_headers_count_with_every_value() {
        let json = r#"{"version":1,"settings":{"service":"a"},"services":[{"name":"a","rules":[
            {"line":1,"when":{"header":{"name":"x-env","test":{"eq":"z"}}},"then":{"route":"v2"}},
            {"line":2,"when":{"header":{"name":"x-env","test":{"ne":"b"}}},"then":{"route":"v3"}}]}]}"#;
        let f = filter(json);
        let decide = |headers: &[(&str, &str)]| {
            let host = Mock::with(headers);
            let d = f.on_request_headers(&host).unwrap();
            (d.subset.map(|s| f.policy().subset_name(s).to_string()), host.calls())
        };
        assert_eq!(decide(&[("x-env", "a"), ("x-env", "z")]).0.as_deref(), Some("v2"));
        assert_eq!(decide(&[("x-env", "z"), ("x-env", "a")]).0.as_deref(), Some("v2"));
        assert_eq!(decide(&[("x-env", "a"), ("x-env", "c")]).0.as_deref(), Some("v3"));
        // `!=`: some value equals `b`, so it does not hold; no decision, and no subset header to remove.
        assert_eq!(decide(&[("x-env", "a"), ("x-env", "b")]), (None, vec!["get headers".to_string()]));
        let (subset, calls) = decide(&[("x-env", "b"), ("x-canary-subset", "v2")]);
        assert_eq!((subset, calls), (None, vec!["get headers".to_string(), "remove x-canary-subset".to_string()]));
    }

    #[test]
    fn headers_envoy_keeps_as_one_entry_are_read_by_value() {
        let ua = r#"{"version":1,"services":[{"name":"forecast","rules":[
            {"line":2,"when":{"all":[{"header":{"name":"user-agent","test":{"regex":"Chrome"}}},
                                     {"path_prefix":"/api"}]},"then":{"route":"v2"}}],"default":"v1"}]}"#;
        let f = filter(ua);
        assert_eq!(f.header_reads(), HeaderReads::ByValue);
        let host = Mock::with(&[(":authority", "forecast"), (":path", "/api/x"), ("user-agent", "Chrome/1")]);
        assert_eq!(f.policy().subset_name(f.on_request_headers(&host).unwrap().subset.unwrap()), "v2");
        assert_eq!(host.calls(), ["get :authority", "get user-agent", "get :path", "replace x-canary-subset"]);
        // Any header that may repeat (here a custom one) makes the policy read the whole map.
        let custom = ua.replace("user-agent", "x-agent");
        assert_eq!(filter(&custom).header_reads(), HeaderReads::WholeMap);
        let trusted = ua.replace(r#""services""#, r#""settings":{"trust_incoming":true},"services""#);
        let host = Mock::with(&[(":authority", "forecast"), ("x-canary-subset", "v9")]);
        assert_eq!(filter(&trusted).on_request_headers(&host), None);
        assert_eq!(host.calls(), ["get x-canary-subset"]);
    }

    #[test]
    fn sticky_header_hashes_every_value_sorted() {
        let json = r#"{"version":1,"settings":{"service":"a"},"services":[{"name":"a","rules":[
            {"line":1,"then":{"split":{"to":[{"subset":"v2","weight":5000}],"by":{"header":"x-user"}}}}],"default":"v1"}]}"#;
        let f = filter(json);
        for (a, b) in [("k1", "k2"), ("u-7", "u-8"), ("", "x"), ("same", "same")] {
            let want = if canary_eval::sticky_bucket_all(&[a.as_bytes(), b.as_bytes()]) < 5000 { "v2" } else { "v1" };
            for headers in [[("x-user", a), ("x-user", b)], [("x-user", b), ("x-user", a)]] {
                let host = Mock::with(&headers);
                let d = f.on_request_headers(&host).unwrap();
                assert_eq!(d.subset.map(|s| f.policy().subset_name(s)), Some(want), "{headers:?}");
            }
        }
    }

    #[test]
    fn a_host_that_refuses_the_headers_gives_a_request_without_them() {
        struct Refusing(Mock);
        impl Host for Refusing {
            fn request_header(&self, _: &str) -> Option<Vec<u8>> {
                None
            }
            fn request_headers(&self) -> Option<Vec<u8>> {
                None
            }
            fn replace_request_header(&self, name: &str, value: &str) {
                self.0.replace_request_header(name, value)
            }
            fn remove_request_header(&self, name: &str) {
                self.0.remove_request_header(name)
            }
            fn node_label(&self, label: &str) -> Option<Vec<u8>> {
                self.0.node_label(label)
            }
            fn define_counter(&self, name: &str) -> Option<u32> {
                self.0.define_counter(name)
            }
            fn increment_counter(&self, id: u32, by: u64) {
                self.0.increment_counter(id, by)
            }
            fn call_foreign_function(&self, name: &str, args: &[u8]) -> bool {
                self.0.call_foreign_function(name, args)
            }
            fn set_property(&self, path: &str, value: &[u8]) -> bool {
                self.0.set_property(path, value)
            }
            fn log(&self, level: LogLevel, message: &str) {
                self.0.log(level, message)
            }
        }
        let f = filter(S5);
        let host = Refusing(Mock::with(&[(":authority", "frontend"), ("cookie", "user=tester")]));
        let d = f.on_request_headers(&host).unwrap();
        assert_eq!(d.rule, None, "without headers, no cookie rule can match");
    }

    #[test]
    fn fixed_service_skips_authority() {
        let json = S5.replace(r#""services""#, r#""settings":{"service":"frontend","header":"x-v"},"services""#);
        let f = filter(&json);
        let host = Mock::with(&[(":authority", "forecast")]);
        f.on_request_headers(&host);
        assert_eq!(host.calls(), ["get headers", "replace x-v"]);
        assert_eq!(host.header("x-v").as_deref(), Some("v1"));
    }

    const TCP: &str = r#"{"version":1,"services":[{"name":"tcp-echo","protocol":"tcp",
        "rules":[{"line":2,"when":{"source":{"label":"version","value":"v2"}},"then":{"route":"v2"}}],"default":"v1"}]}"#;

    #[test]
    fn tcp_sets_cluster_filter_state() {
        let f = filter(TCP);
        assert_eq!(f.served().tcp, Some(ServiceId(0)));
        let host = Mock { labels: vec![("version".into(), "v2".into())], ..Mock::default() };
        f.on_new_connection(&host);
        let foreign = host.foreign.take();
        assert_eq!(foreign.len(), 1);
        assert_eq!(foreign[0].0, "set_envoy_filter_state");
        assert_eq!(
            foreign[0].1,
            filter_state::encode("envoy.tcp_proxy.cluster", "tcp-echo-v2", LifeSpan::DownstreamConnection)
        );
        f.flush_counters(&host);
        assert_eq!(host.counter(&counter("tcp-echo", "2", "v2")), 1);
    }

    #[test]
    fn tcp_failure_is_logged_once_and_no_decision_sets_nothing() {
        let f = filter(TCP);
        let host = Mock { foreign_fails: true, ..Mock::default() };
        f.on_new_connection(&host);
        f.on_new_connection(&host);
        assert_eq!(host.logs.borrow().len(), 1);

        let no_default = TCP.replace(r#","default":"v1""#, "");
        let f = filter(&no_default);
        let host = Mock::default();
        assert_eq!(f.on_new_connection(&host).subset, None);
        assert!(host.foreign.borrow().is_empty());
        f.flush_counters(&host);
        assert_eq!(host.counter(&counter("tcp-echo", "none", "")), 1);
    }

    #[test]
    fn served_services() {
        let served = |json: &str| Served::of(&Policy::from_json(json.as_bytes()).unwrap());
        assert_eq!(served(S5), Served { http: None, tcp: None });
        assert_eq!(served(TCP), Served { http: None, tcp: Some(ServiceId(0)) });
        assert_eq!(served(TWO_TCP), Served { http: None, tcp: None });
        let pinned = TWO_TCP.replace(r#""services""#, r#""settings":{"service":"b"},"services""#);
        assert_eq!(served(&pinned), Served { http: Some(ServiceId(1)), tcp: Some(ServiceId(1)) });
        let mixed =
            S5.replace(r#"{"name":"forecast""#, r#"{"name":"t","protocol":"tcp","default":"v1"},{"name":"forecast""#);
        assert_eq!(served(&mixed), Served { http: None, tcp: Some(ServiceId(1)) });
        let unknown = S5.replace(r#""services""#, r#""settings":{"service":"nope"},"services""#);
        let p = Policy::from_json(unknown.as_bytes()).unwrap();
        assert_eq!(Served::of(&p), Served { http: Some(p.fallback()), tcp: None });
    }

    const TWO_TCP: &str = r#"{"version":1,"services":[{"name":"a","protocol":"tcp","default":"v1"},{"name":"b","protocol":"tcp","default":"v1"}]}"#;

    #[test]
    fn tcp_without_a_tcp_service_decides_nothing() {
        let f = filter(TWO_TCP);
        let host = Mock::default();
        assert_eq!(f.on_new_connection(&host).subset, None);
        f.on_new_connection(&host);
        assert!(host.foreign.borrow().is_empty());
        assert_eq!(host.logs.borrow().len(), 1);
        f.flush_counters(&host);
        assert_eq!(host.counter(&counter("*", "none", "")), 2);
    }

    #[test]
    fn configure_logs_refusal_and_warnings() {
        let host = Mock::default();
        assert!(Filter::configure(&host, b"{\"version\":2}", 1).is_none());
        let logs = host.logs.take();
        assert_eq!(logs[0].0, LogLevel::Error);
        assert!(logs[0].1.starts_with("canary: refusing configuration: config version 2"), "{logs:?}");

        let json = S5.replace(r#""services""#, r#""settings":{"service":"nope"},"services""#);
        assert!(Filter::configure(&host, json.as_bytes(), 1).is_some());
        let logs = host.logs.take();
        assert!(logs.iter().any(|(l, m)| *l == LogLevel::Warn && m.contains("\"nope\" is not declared")), "{logs:?}");
    }
}
