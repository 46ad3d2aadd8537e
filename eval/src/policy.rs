//! [`Policy`]: a validated, precompiled [`Config`], and [`Policy::decide`], the evaluator itself.

use std::fmt;

use rand::RngCore;

use crate::config::{self, Action, Cond, Config, Protocol, Settings, BUCKETS, CONFIG_VERSION};
use crate::explain::{Explanation, Kind, Recorder, SplitTrace, Trace, Tried};
use crate::hash::{random_bucket, sticky_bucket, sticky_bucket_all};
use crate::index::{ExactTable, LiteralIndex, PrefixIndex};
use crate::matcher::{Extract, Matcher, Memo, Test};
use crate::request::{Request, Values};
use crate::wire::{host_only, path_only};

/// An attribute the policy reads. Pseudo-headers (`:path`, `:method`, `:authority`) are headers, as in Envoy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttrKey {
    /// Lowercase header name.
    Header(String),
    /// Node-metadata label of the workload running the proxy.
    Source(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubsetId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceId(pub u32);

/// The outcome for one request. `rule` is `None` when the default (or nothing) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub subset: Option<SubsetId>,
    pub rule: Option<RuleId>,
}

/// Why a config was refused; the message names the offending place (`services[0].rules[2]: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

struct CompiledRule {
    line: u32,
    when: Option<Matcher>,
    action: CompiledAction,
}

enum CompiledAction {
    Route(SubsetId),
    Split {
        /// Cumulative upper bucket bounds: bucket < bound picks that subset; past the last, the default.
        bounds: Vec<(u32, SubsetId)>,
        sticky: Option<(usize, Extract)>,
    },
}

/// A service's evaluation steps, counted (see [`Policy::evaluation_plan`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvaluationPlan {
    /// Rules tried one by one, in order.
    pub rules: Vec<RuleId>,
    /// Index lookups (exact tables, literal and prefix indexes), each standing for a run of rules.
    pub indexes: usize,
}

/// One evaluation step: a single rule, or a run of similar rules turned into an index (see [`crate::index`]),
/// so a policy of a thousand `header x = "…"` rules costs one binary search, not a scan.
enum Step {
    Rule(RuleId),
    Exact {
        slot: usize,
        extract: Extract,
        table: ExactTable,
    },
    Literals {
        slot: usize,
        index: LiteralIndex,
    },
    Prefixes {
        slot: usize,
        index: PrefixIndex,
    },
    /// Indexable rules of several kinds, interleaved in the file (`header = …`, `cookie …`, `path …`, …).
    /// Every rule belongs to exactly one part, so the first rule to match in file order is the earliest of
    /// the parts' first matches; a part starting after a match already found is skipped.
    Interleaved(Vec<Part>),
}

/// One kind's rules within [`Step::Interleaved`]: an index, or plain rules when too few for one.
struct Part {
    /// Its earliest rule (rule ids grow in evaluation order within a service).
    first: RuleId,
    steps: Vec<Step>,
}

/// What makes a rule indexable together with its neighbours.
#[derive(PartialEq)]
enum Group {
    Exact(usize, Extract),
    Literals(usize),
    Prefixes(usize),
}

impl Group {
    /// Equal exactly when the groups are equal: a sort key.
    fn key(&self) -> Vec<u8> {
        let (tag, slot, name): (u8, usize, &[u8]) = match self {
            Group::Exact(slot, Extract::Whole) => (0, *slot, &[]),
            Group::Exact(slot, Extract::Cookie(name)) => (1, *slot, name),
            Group::Exact(slot, Extract::Query(name)) => (2, *slot, name),
            Group::Exact(slot, Extract::PathOnly) => (3, *slot, &[]),
            Group::Exact(slot, Extract::HostOnly) => (4, *slot, &[]),
            Group::Literals(slot) => (5, *slot, &[]),
            Group::Prefixes(slot) => (6, *slot, &[]),
        };
        [&[tag][..], &(slot as u64).to_be_bytes(), name].concat()
    }
}

/// Consecutive table-eligible rules below this count stay plain rules (a table only pays off for runs).
const TABLE_MIN_RUN: usize = 4;

struct CompiledService {
    name: String,
    protocol: Protocol,
    steps: Vec<Step>,
    default: Option<SubsetId>,
}

/// A validated config, ready to evaluate requests. Build once (filter: at configure time), share freely.
pub struct Policy {
    attrs: Vec<AttrKey>,
    subsets: Vec<String>,
    rules: Vec<CompiledRule>,
    /// Declared services, then one last entry holding only the global rules (for any other service).
    services: Vec<CompiledService>,
    /// Per service, the rules its steps cover in evaluation order (global rules first): what `explain`
    /// walks. Kept apart from [`CompiledService`] so `decide`'s data (and code) stay as they were.
    service_rules: Vec<Vec<RuleId>>,
    settings: Settings,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("services", &self.services.iter().map(|s| &s.name).collect::<Vec<_>>())
            .field("rules", &self.rules.len())
            .field("attrs", &self.attrs)
            .finish()
    }
}

impl Policy {
    pub fn from_json(json: &[u8]) -> Result<Policy, ConfigError> {
        let config: Config =
            serde_json::from_slice(json).map_err(|e| ConfigError(format!("config is not valid canary JSON: {e}")))?;
        Policy::new(&config)
    }

    pub fn new(config: &Config) -> Result<Policy, ConfigError> {
        if config.version != CONFIG_VERSION {
            return Err(ConfigError(format!(
                "config version {} is not supported (this filter understands version {CONFIG_VERSION})",
                config.version
            )));
        }
        Builder::default().build(config)
    }

    /// Attributes this policy may read, indexed by the slot passed to [`Request::get`].
    pub fn attrs(&self) -> &[AttrKey] {
        &self.attrs
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The header that carries the decision (`x-canary-subset` unless configured).
    pub fn subset_header(&self) -> &str {
        self.settings.header()
    }

    /// The name of a subset of this policy (empty for an id of another policy).
    pub fn subset_name(&self, id: SubsetId) -> &str {
        self.subsets.get(id.0 as usize).map_or("", String::as_str)
    }

    pub fn subsets(&self) -> &[String] {
        &self.subsets
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The policy line of a rule (0, which no rule has, for an id of another policy).
    pub fn rule_line(&self, id: RuleId) -> u32 {
        self.rule(id).map_or(0, |r| r.line)
    }

    /// The rules a service tries, in order: the global rules (HTTP services), then its own.
    pub fn service_rules(&self, id: ServiceId) -> &[RuleId] {
        self.service_rules.get(id.0 as usize).map_or(&[], Vec::as_slice)
    }

    /// How `decide` walks a service: the rules it tries one by one, and how many indexes stand for runs of
    /// similar rules (one lookup each, whatever their length). What a request can cost depends on this plan,
    /// not on the rule count, so `canary-backends`' cost model reads it rather than restating the grouping.
    pub fn evaluation_plan(&self, id: ServiceId) -> EvaluationPlan {
        fn walk(steps: &[Step], plan: &mut EvaluationPlan) {
            for step in steps {
                match step {
                    Step::Rule(id) => plan.rules.push(*id),
                    Step::Exact { .. } | Step::Literals { .. } | Step::Prefixes { .. } => plan.indexes += 1,
                    Step::Interleaved(parts) => parts.iter().for_each(|part| walk(&part.steps, plan)),
                }
            }
        }
        let mut plan = EvaluationPlan::default();
        if let Some(service) = self.compiled(id) {
            walk(&service.steps, &mut plan);
        }
        plan
    }

    /// What a service gives when no rule decides: its default, else the global one.
    pub fn default_subset(&self, id: ServiceId) -> Option<SubsetId> {
        self.compiled(id)?.default
    }

    /// The rule of `config` that `id` was compiled from; `config` must be the one this policy was built
    /// from. Rules are numbered as [`Policy::new`] reads them: the global rules, then each service's.
    pub fn config_rule<'c>(&self, config: &'c Config, id: RuleId) -> Option<&'c config::Rule> {
        let mut all = config.global.rules.iter().chain(config.services.iter().flat_map(|s| &s.rules.rules));
        all.nth(id.0 as usize).filter(|r| r.line == self.rule_line(id))
    }

    /// All services including the trailing global-only fallback (named `*`).
    pub fn service_ids(&self) -> impl Iterator<Item = ServiceId> {
        (0..self.services.len() as u32).map(ServiceId)
    }

    /// The name of a service of this policy (empty for an id of another policy).
    pub fn service_name(&self, id: ServiceId) -> &str {
        self.compiled(id).map_or("", |s| s.name.as_str())
    }

    /// The protocol of a service of this policy (HTTP, as the fallback's, for an id of another policy).
    pub fn protocol(&self, id: ServiceId) -> Protocol {
        self.compiled(id).map_or(Protocol::Http, |s| s.protocol)
    }

    /// Declared service names (the fallback excluded).
    pub fn declared_services(&self) -> impl Iterator<Item = &str> {
        self.declared().iter().map(|s| s.name.as_str())
    }

    /// A declared service by exact name.
    pub fn service(&self, name: &str) -> Option<ServiceId> {
        self.declared().iter().position(|s| s.name == name).map(|i| ServiceId(i as u32))
    }

    /// The declared services: all but the last, the fallback.
    fn declared(&self) -> &[CompiledService] {
        self.services.split_last().map_or(&[], |(_fallback, declared)| declared)
    }

    /// A service of this policy. Ids are numbers a caller could make up: one that is not this policy's finds
    /// nothing (every accessor then answers as for a service without rules or default) instead of panicking.
    fn compiled(&self, id: ServiceId) -> Option<&CompiledService> {
        self.services.get(id.0 as usize)
    }

    /// A rule of this policy; see [`Policy::compiled`].
    fn rule(&self, id: RuleId) -> Option<&CompiledRule> {
        self.rules.get(id.0 as usize)
    }

    /// The service for any name: a declared one, else the fallback that holds only the global rules.
    pub fn service_or_global(&self, name: &str) -> ServiceId {
        self.service(name).unwrap_or(self.fallback())
    }

    pub fn fallback(&self) -> ServiceId {
        ServiceId(self.services.len() as u32 - 1)
    }

    /// The service a request is for when the settings don't fix one: the configured service, else the
    /// `:authority` host with its port removed, matched whole (`forecast.weather.svc`) or by its first
    /// label (`forecast`), else the fallback.
    pub fn service_for_authority(&self, authority: &[u8]) -> ServiceId {
        if let Some(name) = &self.settings.service {
            return self.service_or_global(name);
        }
        let host = host_only(authority);
        let first_label = host.split(|&b| b == b'.').next().unwrap_or(host);
        let declared = self.declared();
        declared
            .iter()
            .position(|s| s.name.as_bytes().eq_ignore_ascii_case(host))
            .or_else(|| declared.iter().position(|s| s.name.as_bytes().eq_ignore_ascii_case(first_label)))
            .map_or(self.fallback(), |i| ServiceId(i as u32))
    }

    /// The TCP cluster for a decided subset, from the `cluster` setting pattern (default `{service}-{subset}`).
    pub fn cluster_name(&self, service: ServiceId, subset: SubsetId) -> String {
        self.settings.cluster_name(self.service_name(service), self.subset_name(subset))
    }

    /// Decides the subset for one request: rules top to bottom, first match wins, then the default.
    /// Reads only the attributes the deciding path needs; draws from `rng` only for a non-sticky split.
    pub fn decide<Q, G>(&self, service: ServiceId, req: &Q, rng: &mut G) -> Decision
    where
        Q: Request + ?Sized,
        G: RngCore + ?Sized,
    {
        let Some(svc) = self.compiled(service) else {
            return Decision { subset: None, rule: None };
        };
        let mut memo = Memo::new();
        if let Some(id) = svc.steps.iter().find_map(|step| self.hit(step, req, &mut memo)) {
            // `hit` finds only this policy's rules.
            let subset = self.rule(id).and_then(|rule| self.act(&rule.action, req, rng, &mut ())).or(svc.default);
            return Decision { subset, rule: Some(id) };
        }
        Decision { subset: svc.default, rule: None }
    }

    /// Decides like [`Policy::decide`] (same rule, same subset, same draws from `rng`) and records how:
    /// each rule tried in order, the value every test saw, a split's bucket. For `canaryc eval --explain`
    /// and the playground; the filter never calls it.
    pub fn explain<Q, G>(&self, service: ServiceId, req: &Q, rng: &mut G) -> Explanation
    where
        Q: Request + ?Sized,
        G: RngCore + ?Sized,
    {
        let mut tried = Vec::new();
        let Some(svc) = self.compiled(service) else {
            return Explanation { service, tried, decision: Decision { subset: None, rule: None } };
        };
        let mut memo = Memo::new();
        for &id in self.service_rules(service) {
            let Some(rule) = self.rule(id) else { continue };
            let mut rec = Recorder::new();
            let matched = rule.when.as_ref().is_none_or(|m| self.matches(m, req, &mut memo, &mut rec));
            let when = rule.when.as_ref().and_then(|_| rec.root());
            if !matched {
                tried.push(Tried { rule: id, line: rule.line, when, matched, split: None });
                continue;
            }
            let subset = self.act(&rule.action, req, rng, &mut rec).or(svc.default);
            let split = match (&rule.action, rec.split.take()) {
                (CompiledAction::Split { bounds, sticky }, Some((key, bucket))) => {
                    let mut ranges = Vec::with_capacity(bounds.len() + 1);
                    let mut start = 0;
                    for &(end, s) in bounds.iter().filter(|(end, _)| *end > 0) {
                        if end > start {
                            ranges.push((start, end, Some(s)));
                            start = end;
                        }
                    }
                    if start < BUCKETS {
                        ranges.push((start, BUCKETS, svc.default));
                    }
                    Some(SplitTrace { sticky: sticky.is_some(), key, bucket, ranges, subset })
                }
                _ => None,
            };
            tried.push(Tried { rule: id, line: rule.line, when, matched, split });
            debug_assert_eq!(Some(id), self.first_hit(service, req), "explain and decide disagree");
            return Explanation { service, tried, decision: Decision { subset, rule: Some(id) } };
        }
        debug_assert_eq!(None, self.first_hit(service, req), "explain and decide disagree");
        Explanation { service, tried, decision: Decision { subset: svc.default, rule: None } }
    }

    /// The rule `decide` picks, through the indexes.
    fn first_hit<Q: Request + ?Sized>(&self, service: ServiceId, req: &Q) -> Option<RuleId> {
        let mut memo = Memo::new();
        self.compiled(service)?.steps.iter().find_map(|step| self.hit(step, req, &mut memo))
    }

    /// The rule a step matches, if any (the earliest, for an index).
    fn hit<'r, Q: Request + ?Sized>(&self, step: &Step, req: &'r Q, memo: &mut Memo<'r>) -> Option<RuleId> {
        match step {
            Step::Rule(id) => {
                let rule = self.rule(*id)?;
                rule.when.as_ref().is_none_or(|m| self.matches(m, req, memo, &mut ())).then_some(*id)
            }
            // A header sent several times: the earliest rule any of its values matches (Envoy matches each
            // value, README "Backends").
            Step::Exact { slot, extract, table } if extract.joins_values() => {
                extract.first(&mut self.values(req, *slot)).and_then(|v| table.get(v))
            }
            Step::Exact { slot, .. } | Step::Literals { slot, .. } | Step::Prefixes { slot, .. } => {
                let mut earliest: Option<RuleId> = None;
                for value in self.values(req, *slot) {
                    if let Some(id) = Self::index_hit(step, value) {
                        earliest = Some(earliest.map_or(id, |e| if id.0 < e.0 { id } else { e }));
                    }
                }
                earliest
            }
            Step::Interleaved(parts) => {
                let mut best: Option<RuleId> = None;
                for part in parts {
                    if best.is_some_and(|b| b.0 < part.first.0) {
                        continue;
                    }
                    if let Some(id) = part.steps.iter().find_map(|s| self.hit(s, req, memo)) {
                        best = Some(best.map_or(id, |b| if id.0 < b.0 { id } else { b }));
                    }
                }
                best
            }
        }
    }

    /// The rule an index step gives for one value of its attribute.
    fn index_hit(step: &Step, value: &[u8]) -> Option<RuleId> {
        match step {
            Step::Exact { extract, table, .. } => extract.apply(value).and_then(|v| table.get(v)),
            Step::Literals { index, .. } => index.first_match(value),
            Step::Prefixes { index, .. } => index.first_match(path_only(value)),
            Step::Rule(_) | Step::Interleaved(_) => None,
        }
    }

    fn act<Q, G, T>(&self, action: &CompiledAction, req: &Q, rng: &mut G, trace: &mut T) -> Option<SubsetId>
    where
        Q: Request + ?Sized,
        G: RngCore + ?Sized,
        T: Trace,
    {
        match action {
            CompiledAction::Route(s) => Some(*s),
            CompiledAction::Split { bounds, sticky } => {
                let keyed = sticky.as_ref().and_then(|(slot, extract)| self.sticky_bucket(req, *slot, extract));
                // Missing sticky key: an independent draw, so such traffic still splits as configured.
                let bucket = keyed.unwrap_or_else(|| random_bucket(rng.next_u32()));
                trace.split(
                    || {
                        let (slot, extract) = sticky.as_ref().filter(|_| keyed.is_some())?;
                        extract.first(&mut self.values(req, *slot))
                    },
                    bucket,
                );
                bounds.iter().find(|(bound, _)| bucket < *bound).map(|(_, s)| *s)
            }
        }
    }

    /// The bucket of a sticky key, `None` when the request has none. A header key hashes every value of the
    /// header as Envoy's header hash policy does ([`sticky_bucket_all`]), an empty value included; a cookie
    /// key is the first cookie of that name, and Envoy's cookie hash treats an empty cookie as missing
    /// (tests/tests/envoy_native.rs pins both).
    fn sticky_bucket<Q: Request + ?Sized>(&self, req: &Q, slot: usize, extract: &Extract) -> Option<u32> {
        let values = &mut self.values(req, slot);
        if *extract != Extract::Whole {
            return extract.first(values).filter(|k| !k.is_empty()).map(sticky_bucket);
        }
        let first = values.next()?;
        let Some(second) = values.next() else {
            return Some(sticky_bucket(first));
        };
        let mut all = Vec::with_capacity(4);
        all.push(first);
        all.push(second);
        for value in values {
            all.push(value);
        }
        Some(sticky_bucket_all(&all))
    }

    /// Every value of attribute `slot`, in request order.
    fn values<'r, 's, Q: Request + ?Sized>(&'s self, req: &'r Q, slot: usize) -> Values<'r, 's, Q> {
        Values::new(req, slot, self.attrs.get(slot))
    }

    /// Whether `m` holds; `trace` sees every test and operator as it is evaluated (`()` for `decide`). A test
    /// holds when any value of a repeated header passes it (Envoy matches value by value); the trace shows the
    /// first value.
    fn matches<'r, Q, T>(&self, m: &Matcher, req: &'r Q, memo: &mut Memo<'r>, trace: &mut T) -> bool
    where
        Q: Request + ?Sized,
        T: Trace,
    {
        match m {
            Matcher::Attr { slot, extract, memo: key, test } => {
                let matched = if *extract == Extract::Whole {
                    test.holds(&mut self.values(req, *slot))
                } else {
                    let values = &mut self.values(req, *slot);
                    // A joining extract (cookies) reads one value from all; any other reads a pseudo-header, with
                    // one value in Envoy: extracted once per request either way, and value by value otherwise.
                    if extract.joins_values() || self.attrs.get(*slot).and_then(|key| req.get(*slot, key, 1)).is_none()
                    {
                        test.matches(memo.get_or(*key, || extract.first(values)))
                    } else {
                        test.holds(&mut values.filter_map(|v| extract.apply(v)))
                    }
                };
                trace.test(|| extract.first(&mut self.values(req, *slot)), matched);
                matched
            }
            Matcher::All(ms) => {
                trace.open();
                let matched = ms.iter().all(|m| self.matches(m, req, memo, trace));
                trace.close(Kind::All, matched);
                matched
            }
            Matcher::Any(ms) => {
                trace.open();
                let matched = ms.iter().any(|m| self.matches(m, req, memo, trace));
                trace.close(Kind::Any, matched);
                matched
            }
            Matcher::Not(m) => {
                trace.open();
                let matched = !self.matches(m, req, memo, trace);
                trace.close(Kind::Not, matched);
                matched
            }
        }
    }
}

/// How many distinct regexes [`Builder`] keeps compiled for reuse.
const REGEX_CACHE: usize = 32;

/// Validates and lowers a [`Config`]; every error names where in the config it is.
#[derive(Default)]
struct Builder {
    attrs: Vec<AttrKey>,
    /// Distinct (slot, extract) pairs; a matcher's memo key is its index here.
    extracts: Vec<(usize, Extract)>,
    subsets: Vec<String>,
    rules: Vec<CompiledRule>,
    /// The first [`REGEX_CACHE`] distinct `~` operands, each compiled once: families lower to the same few
    /// regexes, and a policy that tests `android` in a thousand rules shares one compiled program (a clone
    /// shares it) instead of building a thousand. A short list, not a map: a map cost the module 5.3 KiB,
    /// and an unbounded list made 10,000 distinct regexes load in 540 ms instead of 57.
    regexes: Vec<(String, Test)>,
    /// Lazy-DFA cache capacity given out so far (bounded by [`crate::REGEX_CACHE_BUDGET`]).
    regex_cache_given: usize,
}

impl Builder {
    fn build(mut self, config: &Config) -> Result<Policy, ConfigError> {
        validate_settings(&config.settings)?;
        let global_default = config.global.default.as_deref().map(|s| self.subset(s, "global.default")).transpose()?;
        let global = self.rules(&config.global.rules, Protocol::Http, "global")?;
        let mut names: Vec<&str> = Vec::new();
        let mut services = Vec::new();
        let mut service_rules = Vec::new();
        for (i, svc) in config.services.iter().enumerate() {
            let at = format!("services[{i}]");
            if !valid_name(&svc.name) {
                return Err(ConfigError(format!("{at}: invalid service name {}", quoted(&svc.name))));
            }
            if names.contains(&svc.name.as_str()) {
                return Err(ConfigError(format!("{at}: service {} is declared twice", quoted(&svc.name))));
            }
            names.push(&svc.name);
            let own = self.rules(&svc.rules.rules, svc.protocol, &at)?;
            let default = svc.rules.default.as_deref().map(|s| self.subset(s, &format!("{at}.default"))).transpose()?;
            // Global rules come first; they only read headers, which TCP connections lack.
            let mut ids = if svc.protocol == Protocol::Tcp { Vec::new() } else { global.clone() };
            ids.extend(own);
            let steps = self.steps(&ids);
            services.push(CompiledService {
                name: svc.name.clone(),
                protocol: svc.protocol,
                steps,
                default: default.or(global_default),
            });
            service_rules.push(ids);
        }
        let steps = self.steps(&global);
        services.push(CompiledService { name: "*".into(), protocol: Protocol::Http, steps, default: global_default });
        service_rules.push(global);
        Ok(Policy {
            attrs: self.attrs,
            subsets: self.subsets,
            rules: self.rules,
            services,
            service_rules,
            settings: config.settings.clone(),
        })
    }

    fn rules(&mut self, rules: &[config::Rule], protocol: Protocol, at: &str) -> Result<Vec<RuleId>, ConfigError> {
        rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let at = format!("{at}.rules[{i}] (line {})", rule.line);
                let when = rule.when.as_ref().map(|c| self.cond(c, protocol, &at)).transpose()?;
                let action = self.action(&rule.then, protocol, &at)?;
                self.rules.push(CompiledRule { line: rule.line, when, action });
                Ok(RuleId(self.rules.len() as u32 - 1))
            })
            .collect()
    }

    fn action(&mut self, action: &Action, protocol: Protocol, at: &str) -> Result<CompiledAction, ConfigError> {
        Ok(match action {
            Action::Route(s) => CompiledAction::Route(self.subset(s, at)?),
            Action::Split(split) => {
                let mut total = 0u32;
                let mut bounds = Vec::with_capacity(split.to.len());
                for share in &split.to {
                    total = total.saturating_add(share.weight);
                    bounds.push((total, self.subset(&share.subset, at)?));
                }
                if total > BUCKETS {
                    return Err(ConfigError(format!(
                        "{at}: split weights sum to {}.{:02}% (over 100%)",
                        total / 100,
                        total % 100
                    )));
                }
                let sticky = match &split.by {
                    None => None,
                    Some(_) if protocol == Protocol::Tcp => {
                        return Err(ConfigError(format!("{at}: a tcp service cannot split `by` a request attribute")))
                    }
                    Some(config::StickyKey::Header(h)) => Some((self.header_slot(h, at)?, Extract::Whole)),
                    Some(config::StickyKey::Cookie(c)) => {
                        Some((self.header_slot("cookie", at)?, Extract::Cookie(c.as_bytes().into())))
                    }
                };
                CompiledAction::Split { bounds, sticky }
            }
        })
    }

    fn regex(&mut self, pattern: &str, at: &str) -> Result<Test, ConfigError> {
        if let Some((_, test)) = self.regexes.iter().find(|(p, _)| p == pattern) {
            return Ok(test.clone());
        }
        let wanted = crate::REGEX_CACHE_BUDGET.saturating_sub(self.regex_cache_given).min(crate::REGEX_CACHE_CAPACITY);
        let test = Test::regex_with_cache(pattern, wanted).map_err(|e| ConfigError(format!("{at}: {e}")))?;
        if let Test::Regex(re) = &test {
            self.regex_cache_given = self.regex_cache_given.saturating_add(re.cache_capacity());
        }
        if self.regexes.len() < REGEX_CACHE {
            self.regexes.push((pattern.to_string(), test.clone()));
        }
        Ok(test)
    }

    fn cond(&mut self, cond: &Cond, protocol: Protocol, at: &str) -> Result<Matcher, ConfigError> {
        if protocol == Protocol::Tcp
            && !matches!(cond, Cond::Source { .. } | Cond::All(_) | Cond::Any(_) | Cond::Not(_))
        {
            return Err(ConfigError(format!("{at}: a tcp service can only match `source` labels")));
        }
        let (slot, extract, test) = match cond {
            Cond::Header { name, test } => {
                let test = match test {
                    config::Test::Eq(v) => Test::Eq(bytes(v)),
                    config::Test::Ne(v) => Test::Ne(bytes(v)),
                    config::Test::Regex(re) => self.regex(re, at)?,
                    config::Test::In(vs) => Test::In(vs.iter().map(|v| bytes(v)).collect()),
                    config::Test::Present => Test::Present,
                    config::Test::Absent => Test::Absent,
                };
                (self.header_slot(name, at)?, Extract::Whole, test)
            }
            Cond::Cookie { name, value } => {
                (self.header_slot("cookie", at)?, Extract::Cookie(bytes(name)), Test::Eq(bytes(value)))
            }
            Cond::Query { name, value } => {
                (self.header_slot(":path", at)?, Extract::Query(bytes(name)), Test::DecodedEq(bytes(value)))
            }
            Cond::PathPrefix(p) => (self.header_slot(":path", at)?, Extract::PathOnly, Test::Prefix(bytes(p))),
            Cond::Method(m) => (self.header_slot(":method", at)?, Extract::Whole, Test::Eq(bytes(m))),
            Cond::Host(h) => (self.header_slot(":authority", at)?, Extract::HostOnly, Test::EqIgnoreCase(bytes(h))),
            Cond::Source { label, value } => {
                if label.is_empty() {
                    return Err(ConfigError(format!("{at}: empty source label")));
                }
                (self.slot(AttrKey::Source(label.clone())), Extract::Whole, Test::Eq(bytes(value)))
            }
            Cond::All(cs) => {
                return Ok(Matcher::All(cs.iter().map(|c| self.cond(c, protocol, at)).collect::<Result<_, _>>()?))
            }
            Cond::Any(cs) => {
                return Ok(Matcher::Any(cs.iter().map(|c| self.cond(c, protocol, at)).collect::<Result<_, _>>()?))
            }
            Cond::Not(c) => return Ok(Matcher::Not(Box::new(self.cond(c, protocol, at)?))),
        };
        let memo = match self.extracts.iter().position(|e| e.0 == slot && e.1 == extract) {
            Some(i) => i,
            None => {
                self.extracts.push((slot, extract.clone()));
                self.extracts.len() - 1
            }
        } as u32;
        Ok(Matcher::Attr { slot, extract, memo, test })
    }

    fn header_slot(&mut self, name: &str, at: &str) -> Result<usize, ConfigError> {
        if !valid_header_name(name) {
            return Err(ConfigError(format!("{at}: invalid header name {} (use lowercase)", quoted(name))));
        }
        Ok(self.slot(AttrKey::Header(name.to_string())))
    }

    fn slot(&mut self, key: AttrKey) -> usize {
        self.attrs.iter().position(|k| *k == key).unwrap_or_else(|| {
            self.attrs.push(key);
            self.attrs.len() - 1
        })
    }

    fn subset(&mut self, name: &str, at: &str) -> Result<SubsetId, ConfigError> {
        if !valid_name(name) {
            return Err(ConfigError(format!("{at}: invalid subset name {}", quoted(name))));
        }
        let i = self.subsets.iter().position(|s| s == name).unwrap_or_else(|| {
            self.subsets.push(name.to_string());
            self.subsets.len() - 1
        });
        Ok(SubsetId(i as u32))
    }

    /// Turns a service's rule list into steps. Consecutive indexable rules (exact matches on one attribute,
    /// literal substrings of one header, path prefixes) form a block; within it each kind's rules become one
    /// index once there are enough of them (else they stay plain rules). A block of one kind is that index; a
    /// block of interleaved kinds is [`Step::Interleaved`]. Everything else stays a plain rule.
    fn steps(&self, ids: &[RuleId]) -> Vec<Step> {
        let rules: Vec<(RuleId, Option<Group>)> = ids.iter().map(|&id| (id, self.group(id))).collect();
        let mut steps = Vec::new();
        // Each chunk: a block (the longest run of indexable rules, perhaps empty), then the plain rule that
        // ends it unless the list ended first.
        for chunk in rules.split_inclusive(|(_, group)| group.is_none()) {
            let (block, plain) = match chunk.split_last() {
                Some(((id, None), block)) => (block, Some(*id)),
                _ => (chunk, None),
            };
            let block: Vec<(RuleId, &Group)> = block.iter().filter_map(|(id, g)| Some((*id, g.as_ref()?))).collect();
            self.block_steps(&block, &mut steps);
            steps.extend(plain.map(Step::Rule));
        }
        steps
    }

    /// The steps for a block of indexable rules (see [`Builder::steps`]).
    fn block_steps(&self, block: &[(RuleId, &Group)], steps: &mut Vec<Step>) {
        // Each kind's rules in file order: one sort by (kind, position), so a block where every rule names
        // another header or cookie costs O(n log n), not a search per rule. (The same sort as the indexes'
        // `permute`, so the wasm filter carries one copy of it.)
        let mut order: Vec<(Vec<u8>, usize)> = block.iter().map(|(_, g)| g.key()).zip(0..).collect();
        order.sort_unstable();
        let mut kinds: Vec<(&Group, Vec<RuleId>)> = Vec::new();
        let mut previous: Option<&[u8]> = None;
        for (key, at) in &order {
            let Some(&(id, group)) = block.get(*at) else { continue };
            match kinds.last_mut() {
                Some((_, ids)) if previous == Some(key) => ids.push(id),
                _ => kinds.push((group, vec![id])),
            }
            previous = Some(key);
        }
        if kinds.iter().all(|(_, ids)| ids.len() < TABLE_MIN_RUN) {
            steps.extend(block.iter().map(|(id, _)| Step::Rule(*id)));
            return;
        }
        let mut parts: Vec<Part> = kinds
            .into_iter()
            .filter_map(|(g, ids)| {
                Some(Part {
                    first: *ids.first()?,
                    steps: if ids.len() < TABLE_MIN_RUN {
                        ids.iter().map(|id| Step::Rule(*id)).collect()
                    } else {
                        vec![self.index(g, &ids)]
                    },
                })
            })
            .collect();
        // One kind, so enough rules of it for an index (else all kinds were too few): the index alone.
        let index = match parts.as_mut_slice() {
            [only] if only.steps.len() == 1 => only.steps.pop(),
            _ => None,
        };
        steps.push(match index {
            Some(index) => index,
            None => Step::Interleaved(parts),
        });
    }

    /// The kind of index a rule can join, if any: a single condition of an indexable form.
    fn group(&self, id: RuleId) -> Option<Group> {
        match self.rules.get(id.0 as usize)?.when.as_ref()? {
            // An `in` list is its values' equalities, each deciding for the same rule: one table holds both.
            Matcher::Attr {
                slot,
                extract: e @ (Extract::Whole | Extract::Cookie(_)),
                test: Test::Eq(_) | Test::In(_),
                ..
            } => Some(Group::Exact(*slot, e.clone())),
            Matcher::Attr { slot, extract: Extract::Whole, test: Test::Substrings(_), .. } => {
                Some(Group::Literals(*slot))
            }
            Matcher::Attr { slot, extract: Extract::PathOnly, test: Test::Prefix(_), .. } => {
                Some(Group::Prefixes(*slot))
            }
            _ => None,
        }
    }

    /// One index over rules of kind `g`, in file order.
    fn index(&self, g: &Group, ids: &[RuleId]) -> Step {
        let tests = ids.iter().filter_map(|id| match self.rules.get(id.0 as usize)?.when.as_ref()? {
            Matcher::Attr { test, .. } => Some((test, *id)),
            _ => None,
        });
        match g {
            Group::Exact(slot, extract) => {
                let values = tests.flat_map(|(t, id)| match t {
                    Test::Eq(v) => vec![(v.clone(), id)],
                    Test::In(vs) => vs.iter().map(|v| (v.clone(), id)).collect(),
                    _ => Vec::new(),
                });
                Step::Exact { slot: *slot, extract: extract.clone(), table: ExactTable::new(values.collect()) }
            }
            Group::Literals(slot) => {
                let literals = tests.flat_map(|(t, id)| match t {
                    Test::Substrings(fs) => fs.iter().map(|f| (Box::from(f.needle()), id)).collect(),
                    _ => Vec::new(),
                });
                Step::Literals { slot: *slot, index: LiteralIndex::new(literals.collect()) }
            }
            Group::Prefixes(slot) => {
                let prefixes = tests.filter_map(|(t, id)| match t {
                    Test::Prefix(p) => Some((p.clone(), id)),
                    _ => None,
                });
                Step::Prefixes { slot: *slot, index: PrefixIndex::new(prefixes.collect()) }
            }
        }
    }
}

fn validate_settings(s: &Settings) -> Result<(), ConfigError> {
    if let Some(h) = &s.header {
        if !valid_header_name(h) || h.starts_with(':') {
            return Err(ConfigError(format!("settings.header: invalid header name {} (use lowercase)", quoted(h))));
        }
    }
    if let Some(name) = &s.service {
        if !valid_name(name) {
            return Err(ConfigError(format!("settings.service: invalid service name {}", quoted(name))));
        }
    }
    if let Some(c) = &s.cluster {
        if !c.contains("{subset}") {
            return Err(ConfigError(format!("settings.cluster: pattern {} must contain {{subset}}", quoted(c))));
        }
    }
    Ok(())
}

/// `"text"` with quotes, backslashes and anything outside printable ASCII escaped, so a hostile name can't
/// forge log lines. (`{:?}` would do, but pulls Unicode printability tables into the wasm filter.)
pub fn quoted(s: &str) -> String {
    format!("\"{}\"", s.escape_default())
}

fn bytes(s: &str) -> Box<[u8]> {
    s.as_bytes().into()
}

/// Service and subset names: what a DNS label or Istio subset name may hold (plus `_` and `.`).
fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// RFC 9110 token characters, lowercase only (HTTP/2 and Envoy store header names lowercase), or a
/// pseudo-header.
fn valid_header_name(s: &str) -> bool {
    let name = s.strip_prefix(':').unwrap_or(s);
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_caches_share_one_budget() {
        let mut builder = Builder::default();
        let full = crate::REGEX_CACHE_BUDGET / crate::REGEX_CACHE_CAPACITY;
        for i in 0..full + 200 {
            let test = builder.regex(&format!("t{i}-[0-9]+x"), "here").expect("valid");
            let Test::Regex(re) = test else { panic!("not a regex") };
            if i < full {
                assert_eq!(re.cache_capacity(), crate::REGEX_CACHE_CAPACITY, "pattern {i}");
            } else {
                assert!(re.cache_capacity() <= 16 * 1024, "pattern {i}: {}", re.cache_capacity());
                assert!(re.is_match(format!("a t{i}-42x b").as_bytes()) && !re.is_match(b"t1-x"));
            }
        }
        assert!(builder.regex_cache_given <= crate::REGEX_CACHE_BUDGET + 200 * 16 * 1024);
    }
}
