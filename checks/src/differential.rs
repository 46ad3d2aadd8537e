//! The evaluator against the filter's engine: a policy, settings, a node label and a run of requests; the
//! filter (linked natively, behind [`RequestHost`]) must leave exactly the subset header that
//! `Policy::decide` chooses, report the same decision, write the same decision for the access log
//! (`settings.access_log`, always on here) and touch no other header.
//!
//! [`Case`] is what the fuzzer generates (`arbitrary` turns its bytes into one); it renders to a
//! [`Scenario`], plain data that is also the corpus format (`tests/corpus/cases/*.json`), so a failing
//! case is replayed on stable from the JSON the fuzzer printed. Splits need not be deterministic: both
//! sides draw from `SmallRng::seed_from_u64(seed)` in request order, and the filter draws only when it
//! decides, so the same draws land on the same requests.

use arbitrary::Arbitrary;
use canary_eval::telemetry::{Labels, FILTER_STATE_PROPERTY};
use canary_eval::{Policy, SimpleRequest};
use canary_filter::{Filter, LogLevel};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::request_host::RequestHost;

/// Conditions nest at most this deep when rendered (deeper ones become a leaf), so inputs stay small.
const MAX_DEPTH: usize = 4;
const MAX_REQUESTS: usize = 8;
const MAX_HEADERS: usize = 12;

const WORDS: &[&str] = &["beta", "tester", "a b", "", "é", "v2", "frontend", "GET", "POST", "/api", "x=1", "Chrome"];
const PATTERNS: &[&str] = &["Android.*Mobile", "^be", "Chrome", "Edg/|Edge/", "a|b", "^$", "t.st", "é+"];
const HEADERS: &[&str] =
    &["x-env", "user-agent", "cookie", ":path", ":authority", ":method", "x-canary-subset", "accept"];
const COOKIES: &[&str] = &["user", "a", "uid"];
const QUERIES: &[&str] = &["q", "x"];
const PATHS: &[&str] = &["/api", "/", "/API", "/a%20b"];
const HOSTS: &[&str] = &["frontend", "forecast", "FRONTEND", "x.frontend"];
const FAMILIES: &[&str] = &["android", "ios", "chrome", "firefox", "safari", "edge", "mobile"];
const SUBSETS: &[&str] = &["v1", "v2", "v3"];
const SERVICES: &[&str] = &["frontend", "forecast", "unknown"];
/// Request header values that the conditions above can match, and some that almost do (also the proptest
/// generator's pool in `tests/tests/fuzz_targets.rs`).
pub const VALUES: &[&[u8]] = &[
    b"beta",
    b"tester",
    b"a b",
    b"",
    "é".as_bytes(),
    b"user=tester",
    b"a=1; user=tester",
    b"user=\"tester\"",
    b"user=tester;user=x",
    b" user = tester ",
    b"%75ser=tester",
    b"uid=abc123",
    b"/api?q=beta",
    b"/api/v1?x=1&q=a+b&q=beta",
    b"/?q=%62eta",
    b"/API",
    b"frontend",
    b"frontend:8080",
    b"FRONTEND",
    b"forecast.weather.svc.cluster.local",
    b"frontend.weather.svc.cluster.local",
    b"POST",
    b"GET",
    b"v2",
    b"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36",
    b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Version/17.4 Mobile/15E148 Safari/604.1",
    b"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    b"Mozilla/5.0 (Windows NT 10.0) Chrome/124.0 Safari/537.36 Edg/124.0",
    b"\xff\xfe\x00",
    b"Android\xffMobile",
];
/// Units a long value repeats (hundreds of cookies, query parameters, invalid bytes).
pub const UNITS: &[&[u8]] = &[b"a=b; ", b"&q=", b"x", b"\xff", b"user=tester;"];

fn pick<'a, T: ?Sized>(pool: &'a [&'a T], i: u8) -> &'a T {
    pool[i as usize % pool.len()]
}

/// A string literal of the policy language.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What the fuzzer generates. Indices (`u8`) pick from the pools above, so most generated conditions can be
/// met by most generated requests.
#[derive(Debug, Arbitrary)]
pub struct Case {
    global: Vec<Stmt>,
    frontend: Vec<Stmt>,
    forecast: Vec<Stmt>,
    global_default: Option<u8>,
    frontend_default: Option<u8>,
    service_setting: Option<u8>,
    trust_incoming: bool,
    label: Option<u8>,
    seed: u64,
    requests: Vec<Vec<(u8, Value_)>>,
}

#[derive(Debug, Arbitrary)]
enum Stmt {
    Route(Cond, u8),
    Split(Option<Cond>, Vec<(u16, u8)>, Option<Sticky>),
}

#[derive(Debug, Arbitrary)]
enum Sticky {
    Cookie(u8),
    Header(u8),
}

/// The first variant is a leaf: `arbitrary` picks it when the bytes run out, which ends the recursion.
#[derive(Debug, Arbitrary)]
enum Cond {
    Header(u8, Test),
    Cookie(u8, u8),
    Query(u8, u8),
    Path(u8),
    Method(u8),
    Host(u8),
    Source(u8),
    Family(u8),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

#[derive(Debug, Arbitrary)]
enum Test {
    Eq(u8),
    Ne(u8),
    Regex(u8),
    In(Vec<u8>),
    Present,
    Absent,
}

/// A request header's value: from the pool, raw bytes, or a unit repeated (long cookies and queries).
#[derive(Debug, Arbitrary)]
#[allow(non_camel_case_types)]
enum Value_ {
    Pool(u8),
    Raw(Vec<u8>),
    Repeat(u8, u16),
}

impl Cond {
    fn render(&self, depth: usize) -> String {
        if depth >= MAX_DEPTH && matches!(self, Cond::Not(_) | Cond::And(..) | Cond::Or(..)) {
            return "method GET".to_string();
        }
        match self {
            Cond::Header(h, test) => format!("header {} {}", pick(HEADERS, *h), test.render()),
            Cond::Cookie(n, v) => format!("cookie {}={}", pick(COOKIES, *n), quote(pick(WORDS, *v))),
            Cond::Query(n, v) => format!("query {}={}", pick(QUERIES, *n), quote(pick(WORDS, *v))),
            Cond::Path(p) => format!("path {}", quote(pick(PATHS, *p))),
            Cond::Method(m) => format!("method {}", pick(&["GET", "POST"], *m)),
            Cond::Host(h) => format!("host {}", quote(pick(HOSTS, *h))),
            Cond::Source(v) => format!("source version={}", quote(pick(WORDS, *v))),
            Cond::Family(f) => pick(FAMILIES, *f).to_string(),
            Cond::Not(c) => format!("not ({})", c.render(depth + 1)),
            Cond::And(a, b) => format!("{} and {}", a.render(depth + 1), b.render(depth + 1)),
            Cond::Or(a, b) => format!("({} or {})", a.render(depth + 1), b.render(depth + 1)),
        }
    }
}

impl Test {
    fn render(&self) -> String {
        match self {
            Test::Eq(v) => format!("= {}", quote(pick(WORDS, *v))),
            Test::Ne(v) => format!("!= {}", quote(pick(WORDS, *v))),
            Test::Regex(p) => format!("~ {}", quote(pick(PATTERNS, *p))),
            Test::In(vs) => {
                let vs: Vec<String> = vs.iter().take(4).map(|v| quote(pick(WORDS, *v))).collect();
                format!("in [{}]", vs.join(", "))
            }
            Test::Present => "present".to_string(),
            Test::Absent => "absent".to_string(),
        }
    }
}

impl Stmt {
    fn render(&self) -> String {
        match self {
            Stmt::Route(c, s) => format!("{} -> {}", c.render(0), pick(SUBSETS, *s)),
            Stmt::Split(cond, shares, sticky) => {
                let mut shares: Vec<String> = shares
                    .iter()
                    .take(3)
                    .map(|(p, s)| {
                        let p = p % 10001;
                        format!("{}.{:02}% {}", p / 100, p % 100, pick(SUBSETS, *s))
                    })
                    .collect();
                if shares.is_empty() {
                    shares.push("50% v2".to_string());
                }
                let mut out = cond.as_ref().map_or(String::new(), |c| format!("{}: ", c.render(0)));
                out += &shares.join(", ");
                match sticky {
                    Some(Sticky::Cookie(c)) => out += &format!(" by cookie {}", pick(COOKIES, *c)),
                    Some(Sticky::Header(h)) => out += &format!(" by header {}", pick(HEADERS, *h)),
                    None => {}
                }
                out
            }
        }
    }
}

impl Case {
    /// The policy text, settings and requests this case stands for.
    pub fn scenario(&self) -> Scenario {
        let mut policy = String::new();
        for stmt in self.global.iter().take(3) {
            policy += &format!("{}\n", stmt.render());
        }
        if let Some(d) = self.global_default {
            policy += &format!("default {}\n", pick(SUBSETS, d));
        }
        policy += "service frontend {\n";
        for stmt in self.frontend.iter().take(6) {
            policy += &format!("  {}\n", stmt.render());
        }
        if let Some(d) = self.frontend_default {
            policy += &format!("  default {}\n", pick(SUBSETS, d));
        }
        policy += "}\nservice forecast {\n";
        for stmt in self.forecast.iter().take(3) {
            policy += &format!("  {}\n", stmt.render());
        }
        policy += "}\n";
        let requests = self
            .requests
            .iter()
            .take(MAX_REQUESTS)
            .map(|headers| {
                headers
                    .iter()
                    .take(MAX_HEADERS)
                    .map(|(name, value)| {
                        let value = match value {
                            Value_::Pool(i) => pick(VALUES, *i).to_vec(),
                            Value_::Raw(bytes) => bytes.iter().copied().take(64).collect(),
                            Value_::Repeat(u, n) => pick(UNITS, *u).repeat(*n as usize % 2000),
                        };
                        (pick(HEADERS, *name).to_string(), value)
                    })
                    .collect()
            })
            .collect();
        Scenario {
            policy,
            service: self.service_setting.map(|s| pick(SERVICES, s).to_string()),
            trust_incoming: self.trust_incoming,
            label: self.label.map(|l| pick(WORDS, l).to_string()),
            seed: self.seed,
            requests,
        }
    }
}

/// One differential run as plain data; also the corpus format (see [`Scenario::to_json`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub policy: String,
    /// `settings.service`.
    pub service: Option<String>,
    /// `settings.trust_incoming`.
    pub trust_incoming: bool,
    /// The node's `version` label (what `source version=…` reads).
    pub label: Option<String>,
    /// Seeds the filter's generator and the reference's alike.
    pub seed: u64,
    /// Each request's headers as the client sent them: (lowercase name, raw value), repeats kept.
    pub requests: Vec<Vec<(String, Vec<u8>)>>,
}

impl Scenario {
    /// `{"policy", "service", "trust_incoming", "label", "seed", "requests": [[[NAME, VALUE], …], …]}`; a
    /// VALUE is a string, or `{"hex": "ff00"}` when the bytes are not UTF-8.
    pub fn to_json(&self) -> String {
        let value = |v: &Vec<u8>| match std::str::from_utf8(v) {
            Ok(s) => json!(s),
            Err(_) => json!({"hex": v.iter().map(|b| format!("{b:02x}")).collect::<String>()}),
        };
        let requests: Vec<Value> =
            self.requests.iter().map(|r| Value::Array(r.iter().map(|(n, v)| json!([n, value(v)])).collect())).collect();
        let doc = json!({
            "policy": self.policy,
            "service": self.service,
            "trust_incoming": self.trust_incoming,
            "label": self.label,
            "seed": self.seed,
            "requests": requests,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }

    /// Reads [`Scenario::to_json`]'s format; the error names what is malformed.
    pub fn from_json(text: &str) -> Result<Scenario, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let string = |key: &str| doc.get(key).and_then(Value::as_str).map(str::to_string);
        let value = |v: &Value| -> Result<Vec<u8>, String> {
            if let Some(s) = v.as_str() {
                return Ok(s.as_bytes().to_vec());
            }
            let hex = v.get("hex").and_then(Value::as_str).ok_or_else(|| format!("a value: {v}"))?;
            (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("?"), 16).map_err(|e| e.to_string()))
                .collect()
        };
        let mut requests = Vec::new();
        for r in doc.get("requests").and_then(Value::as_array).ok_or("requests: a list")? {
            let mut headers = Vec::new();
            for h in r.as_array().ok_or("a request: a list of [name, value]")? {
                let name = h.get(0).and_then(Value::as_str).ok_or_else(|| format!("a header name: {h}"))?;
                headers.push((name.to_string(), value(h.get(1).unwrap_or(&Value::Null))?));
            }
            requests.push(headers);
        }
        Ok(Scenario {
            policy: string("policy").ok_or("policy: a string")?,
            service: string("service"),
            trust_incoming: doc.get("trust_incoming").and_then(Value::as_bool).unwrap_or(false),
            label: string("label"),
            seed: doc.get("seed").and_then(Value::as_u64).unwrap_or(0),
            requests,
        })
    }
}

/// A request as Envoy's header map holds it: a pseudo-header once (a codec refuses repeats; the first is
/// kept), `user-agent` as one entry with its repeats joined by `,` (an inline header,
/// `HeaderMapImpl::insertByKey`); everything else as sent.
pub fn envoy_view(headers: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, value) in headers {
        let joined = name == "user-agent" || name.starts_with(':');
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, first)) if joined => {
                if name == "user-agent" {
                    first.push(b',');
                    first.extend_from_slice(value);
                }
            }
            _ => out.push((name.clone(), value.clone())),
        }
    }
    out
}

/// Runs the scenario through the filter's engine and through `Policy::decide`. A policy that does not
/// compile is not a disagreement (the generator can write splits over 100%): `Ok`.
pub fn check_scenario(s: &Scenario) -> Result<(), String> {
    let Ok(compiled) = canary_compiler::compile(&s.policy, "case.canary") else {
        return Ok(());
    };
    let mut config = compiled.config;
    config.settings.service = s.service.clone();
    config.settings.trust_incoming = s.trust_incoming;
    // Always on: the decision the filter writes for the access log is checked below as well.
    config.settings.access_log = true;
    let json = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let policy = Policy::new(&config).map_err(|e| format!("the evaluator refuses the config: {e}"))?;
    let filter = Filter::new(&json, s.seed).map_err(|e| format!("the filter refuses the config: {e}"))?;
    let header = policy.subset_header().to_string();
    let labels: Vec<(String, Vec<u8>)> =
        s.label.iter().map(|l| ("version".to_string(), l.as_bytes().to_vec())).collect();
    let mut rng = SmallRng::seed_from_u64(s.seed);
    for (i, sent) in s.requests.iter().enumerate() {
        let view = envoy_view(sent);
        let host = RequestHost { headers: view.clone().into(), labels: labels.clone(), ..RequestHost::default() };
        let got = filter.on_request_headers(&host);

        let mut simple = SimpleRequest::new();
        simple.headers = view.clone();
        if let Some(l) = &s.label {
            simple = simple.source("version", l);
        }
        let incoming: Vec<Vec<u8>> = simple.values(&header).map(<[u8]>::to_vec).collect();
        let (want, want_values, want_log) = if s.trust_incoming && !incoming.is_empty() {
            (None, incoming, None)
        } else {
            let service = match &s.service {
                Some(name) => policy.service_or_global(name),
                None => policy.service_for_authority(simple.values(":authority").next().unwrap_or_default()),
            };
            let decision = policy.decide(service, &simple, &mut rng);
            let values = decision.subset.map(|id| policy.subset_name(id).as_bytes().to_vec()).into_iter().collect();
            let log = Labels::of(&policy, service, decision).log_value().into_bytes();
            (Some(decision), values, Some(log))
        };
        if got != want {
            return Err(format!("request {i}: the filter decided {got:?}, the evaluator {want:?}"));
        }
        let values = host.values(&header);
        if values != want_values {
            let show = |v: &[Vec<u8>]| v.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect::<Vec<_>>();
            return Err(format!(
                "request {i}: {header} is {:?}, the evaluator says {:?}",
                show(&values),
                show(&want_values)
            ));
        }
        let logged = host.properties.borrow().iter().find(|(p, _)| p == FILTER_STATE_PROPERTY).map(|(_, v)| v.clone());
        if logged != want_log {
            let show = |v: &Option<Vec<u8>>| v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
            return Err(format!(
                "request {i}: the access-log decision is {:?}, the evaluator's is {:?}",
                show(&logged),
                show(&want_log)
            ));
        }
        let others = |h: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
            h.iter().filter(|(n, _)| *n != header).cloned().collect()
        };
        if others(&host.headers.borrow()) != others(&view) {
            return Err(format!("request {i}: the filter changed headers other than {header}"));
        }
        let logs = host.logs.borrow();
        if let Some((_, m)) = logs.iter().find(|(level, _)| *level == LogLevel::Error) {
            return Err(format!("request {i}: the filter logged an error: {m}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbitrary::Unstructured;

    fn scenario(policy: &str, requests: &[&[(&str, &[u8])]]) -> Scenario {
        Scenario {
            policy: policy.to_string(),
            service: None,
            trust_incoming: false,
            label: Some("v2".to_string()),
            seed: 3,
            requests: requests.iter().map(|r| r.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect()).collect(),
        }
    }

    #[test]
    fn the_filter_agrees_on_the_scenarios() {
        let s = scenario(
            "service frontend { cookie user=tester -> v2; source version=v2 -> v3; 30% v2 by cookie uid; default v1 }",
            &[
                &[(":authority", b"frontend"), ("cookie", b"user=tester")],
                &[(":authority", b"frontend"), ("cookie", b"a=1"), ("cookie", b"user=tester")],
                &[(":authority", b"frontend:80"), ("x-canary-subset", b"v9"), ("x-canary-subset", b"v8")],
                &[(":authority", b"forecast")],
            ],
        );
        assert_eq!(check_scenario(&s), Ok(()));
        let one: &[(&str, &[u8])] = &[(":authority", b"x")];
        let split = scenario("40% v2, 10% v3", &[one; 50]);
        assert_eq!(check_scenario(&split), Ok(()));
    }

    #[test]
    fn a_trusted_incoming_header_is_kept() {
        let mut s = scenario("default v1", &[&[("x-canary-subset", b"v2")], &[]]);
        s.trust_incoming = true;
        assert_eq!(check_scenario(&s), Ok(()));
    }

    #[test]
    fn envoy_joins_user_agents_and_keeps_one_pseudo_header() {
        let h = |n: &str, v: &str| (n.to_string(), v.as_bytes().to_vec());
        let view = envoy_view(&[h("user-agent", "a"), h(":path", "/x"), h("user-agent", "b"), h(":path", "/y")]);
        assert_eq!(view, vec![h("user-agent", "a,b"), h(":path", "/x")]);
    }

    #[test]
    fn scenarios_survive_the_corpus_format() {
        let mut s = scenario("default v1", &[&[("cookie", b"\xff\x00a"), ("x", b"plain")]]);
        s.service = Some("frontend".to_string());
        assert_eq!(Scenario::from_json(&s.to_json()), Ok(s));
        assert!(Scenario::from_json(r#"{"policy": "x", "requests": [[["a", {"hex": "zz"}]]]}"#).is_err());
    }

    #[test]
    fn cases_from_arbitrary_bytes_render_and_agree() {
        let mut compiled = 0;
        for seed in 0u32..300 {
            let bytes: Vec<u8> =
                (0..400u32).map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed * 97) >> 13) as u8).collect();
            let case = Case::arbitrary(&mut Unstructured::new(&bytes)).expect("any bytes make a case");
            let s = case.scenario();
            compiled += canary_compiler::compile(&s.policy, "x").is_ok() as usize;
            assert_eq!(check_scenario(&s), Ok(()), "{}", s.to_json());
        }
        assert!(compiled >= 30, "only {compiled} of 300 generated policies compile: the generator is too wild");
    }
}
