//! The compiled config: the versioned JSON contract between `canaryc compile` and every evaluator.
//!
//! This is a plain data model (serde); [`crate::Policy::new`] validates it and precompiles matchers.
//! Field names are part of the public contract (operators read and diff this JSON), so keep them stable and
//! bump [`CONFIG_VERSION`] for any incompatible change.

use serde::{Deserialize, Serialize};

/// The only config version this evaluator understands.
pub const CONFIG_VERSION: u32 = 1;

/// Number of buckets a split is drawn from: percentages have two decimals, so 100.00% = 10,000 buckets.
pub const BUCKETS: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Always 1 for this format.
    pub version: u32,
    /// Rules written outside any `service` block; tried before a service's own rules, for every service.
    #[serde(default, skip_serializing_if = "RuleSet::is_empty")]
    pub global: RuleSet,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// Deployment settings that the operator (or `canaryc manifest`) adds; never produced by `compile`.
    #[serde(default, skip_serializing_if = "Settings::is_default")]
    pub settings: Settings,
}

/// How one proxy applies the policy. Everything is optional, with defaults an operator expects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The service this filter serves. Unset: HTTP uses the request's `:authority` host (port and any
    /// `.namespace…` suffix stripped); TCP requires it unless the policy has exactly one tcp service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Request header that carries the decision. Default `x-canary-subset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Keep a subset header that arrives on the request instead of overwriting it. Only for a proxy whose
    /// callers are trusted hops (e.g. behind an ingress that already ran this filter). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trust_incoming: bool,
    /// TCP cluster name pattern; `{service}` and `{subset}` are replaced. Default `{service}-{subset}`;
    /// for Istio use e.g. `outbound|9000|{subset}|tcp-echo.weather.svc.cluster.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Write each decision (`service=… rule=… subset=…`) into filter state `wasm.canary_decision`, which an
    /// access log prints with `%FILTER_STATE(wasm.canary_decision:PLAIN)%`. Off by default: it costs one host
    /// call per request (BENCHMARKS.md, "Decisions in the access log").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub access_log: bool,
}

impl Settings {
    /// The subset header when `header` is unset.
    pub const DEFAULT_HEADER: &'static str = "x-canary-subset";
    /// The TCP cluster pattern when `cluster` is unset.
    pub const DEFAULT_CLUSTER: &'static str = "{service}-{subset}";

    fn is_default(&self) -> bool {
        self == &Settings::default()
    }

    /// The request header that carries the decision.
    pub fn header(&self) -> &str {
        self.header.as_deref().unwrap_or(Self::DEFAULT_HEADER)
    }

    /// The cluster a decided subset maps to. The filter (TCP) and the generated Envoy/Istio clusters both
    /// name clusters through this, so they cannot disagree.
    pub fn cluster_name(&self, service: &str, subset: &str) -> String {
        let pattern = self.cluster.as_deref().unwrap_or(Self::DEFAULT_CLUSTER);
        pattern.replace("{service}", service).replace("{subset}", subset)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Subset for requests no rule decides; absent means "no decision" (Envoy's default route applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl RuleSet {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.default.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, from = "ServiceFields")]
pub struct Service {
    pub name: String,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(flatten)]
    pub rules: RuleSet,
}

// How a `Service` is read: its rule set's fields spelled out rather than `flatten`ed (same JSON). Reading a
// flattened field, serde first buffers the whole object into its generic `Content` tree and then decodes every
// rule a second time from that tree: a second copy of all the rule decoders (~33 KiB of the proxy-wasm module after wasm-opt),
// and error positions that point at the end of the service. (A plain comment, not a doc comment: the schema's
// description of `Service` must not change.)
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct ServiceFields {
    name: String,
    #[serde(default)]
    protocol: Protocol,
    #[serde(default)]
    rules: Vec<Rule>,
    /// Subset for requests no rule decides; absent means "no decision" (Envoy's default route applies).
    #[serde(default)]
    default: Option<String>,
}

impl From<ServiceFields> for Service {
    fn from(f: ServiceFields) -> Service {
        Service { name: f.name, protocol: f.protocol, rules: RuleSet { rules: f.rules, default: f.default } }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// 1-based line of the rule in the policy source, reported as "the deciding rule".
    pub line: u32,
    /// Condition; absent means the rule applies to all traffic that reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Cond>,
    pub then: Action,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// `COND -> SUBSET`
    Route(String),
    /// `COND: P% SUBSET, …`; the remainder falls through to the default.
    Split(Split),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// Shares in basis points (1 = 0.01%); their sum is at most [`BUCKETS`].
    pub to: Vec<Share>,
    /// Sticky key; absent means every request is drawn independently. The bucket is Envoy's
    /// `xxh64(key, 0) % 10000`, unsalted: every split on the same key shares one cohort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<StickyKey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub subset: String,
    /// Basis points: 5000 = 50%.
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StickyKey {
    Cookie(String),
    Header(String),
}

/// A condition tree. Header names are stored lowercase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Cond {
    Header {
        name: String,
        test: Test,
    },
    /// RFC 6265 cookie `name=value` from the `cookie` header(s).
    Cookie {
        name: String,
        value: String,
    },
    /// Query parameter, percent-decoded (`+` is a space) before comparing.
    Query {
        name: String,
        value: String,
    },
    /// Path prefix (query string excluded).
    PathPrefix(String),
    /// Exact, case-sensitive HTTP method.
    Method(String),
    /// Host from `:authority`, port stripped, compared case-insensitively.
    Host(String),
    /// A label of the workload running this proxy (Envoy node metadata `LABELS`).
    Source {
        label: String,
        value: String,
    },
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Test {
    Eq(String),
    /// False when the header is absent.
    Ne(String),
    /// Unanchored regex searched in the whole value, as bytes (ASCII classes; at most 64 KiB of NFA compiled).
    Regex(String),
    In(Vec<String>),
    Present,
    Absent,
}
