//! Running cases: every answer comes from [`Policy::decide`] (through [`canary_compiler::request`]'s request
//! builder and simulation loop, as `canaryc eval` and `simulate` use them), so a test checks exactly what
//! the filter will do.
//!
//! Each case is decided [`Runner::samples`] times (10,000 by default) with a seeded generator, because
//! a split makes one evaluation a coin toss:
//! * `expect: SUBSET` / `expect: none` holds when **every** draw of the request as written decides it —
//!   a request that a split without its sticky key reaches is drawn each time, as in the filter;
//! * `expect: {v1: 75, v2: 25}` draws the request with a distinct generated value for every sticky key
//!   the request does not fix (`canaryc simulate`'s cohort: N users, not one user N times) and holds when
//!   each subset's count is within [`SIGMAS`] binomial standard deviations of its share (a subset not
//!   named has share 0 and must never appear). With N = 10,000 that is ±2.5 points at 50% and ±1.1
//!   points at 5%: a wrong rollout step (50% → 100%, 20% → 25%) fails, sampling noise (false alarm
//!   probability below 10⁻⁶ per subset) does not;
//! * `rule: LINE` (or `default`) holds when every draw was decided by the rule on that line (or by none).

use std::collections::{BTreeMap, BTreeSet};

use canary_dsl::ast::Span;
use canary_eval::config::Protocol;
use canary_eval::{Config, Decision, Policy, RuleId, ServiceId, SimpleRequest};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::file::{Case, Expect, RuleExpect};
use canary_compiler::request::{simulate_each, Keys};

/// Draws per case unless `-n` says otherwise.
pub const DEFAULT_SAMPLES: u64 = 10_000;
/// How far (in binomial standard deviations) an observed share may stray from the expected one.
pub const SIGMAS: f64 = 5.0;

/// Runs cases against one policy and remembers which rules decided something.
pub struct Runner<'p> {
    policy: &'p Policy,
    config: &'p Config,
    pub samples: u64,
    seed: u64,
    reached: Vec<bool>,
}

/// A case resolved against the policy, ready to run.
pub struct Prepared {
    service: ServiceId,
    request: SimpleRequest,
}

impl<'p> Runner<'p> {
    pub fn new(policy: &'p Policy, config: &'p Config, samples: u64, seed: u64) -> Self {
        Runner { policy, config, samples: samples.max(1), seed, reached: vec![false; policy.rule_count()] }
    }

    /// Resolves the case's service and request, or says why the case cannot run (a malformed test).
    pub fn prepare(&self, case: &Case) -> Result<Prepared, String> {
        let service = service(self.policy, case.service.as_deref())?;
        let r = &case.request;
        if self.policy.protocol(service) == Protocol::Tcp {
            let http = [
                (!r.headers.is_empty(), "header"),
                (!r.cookies.is_empty(), "cookie"),
                (!r.queries.is_empty(), "query"),
                (r.path.is_some(), "path"),
                (r.method.is_some(), "method"),
                (r.host.is_some(), "host"),
            ];
            if let Some((_, field)) = http.iter().find(|(set, _)| *set) {
                let name = self.policy.service_name(service);
                return Err(format!(
                    "`{field}` does not apply to tcp service `{name}`: a connection has only `source` labels"
                ));
            }
        }
        Ok(Prepared { service, request: r.build(self.policy.service_name(service)) })
    }

    /// `None` when the case passes, else what went wrong: `expected …, got … (decided by …)`.
    pub fn run(&mut self, case: &Case, prepared: &Prepared) -> Option<String> {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut seen = Observed::default();
        let (policy, service, request) = (self.policy, prepared.service, &prepared.request);
        let mut record = |d: Decision| {
            if let Some(id) = d.rule {
                self.reached[id.0 as usize] = true;
            }
            seen.add(policy, d);
        };
        match case.expect {
            Expect::Split(_) => {
                simulate_each(policy, self.config, service, request, self.samples, Keys::Missing, &mut rng, record)
            }
            Expect::Subset(_) | Expect::Nothing => {
                for _ in 0..self.samples {
                    record(policy.decide(service, request, &mut rng));
                }
            }
        }
        let subset_ok = match &case.expect {
            Expect::Subset(s) => seen.only(s),
            Expect::Nothing => seen.only("none"),
            Expect::Split(shares) => within_bounds(shares, &seen.subsets, self.samples).is_none(),
        };
        let rule_ok = case.rule.is_none_or(|want| seen.rules.len() == 1 && seen.rules.contains(&rule_line(want)));
        if subset_ok && rule_ok {
            return None;
        }
        let mut expected = expect_text(&case.expect);
        if let Some(rule) = case.rule {
            expected = format!("{expected} ({})", decided_text(&BTreeSet::from([rule_line(rule)])));
        }
        let as_shares = matches!(case.expect, Expect::Split(_));
        let mut got = seen.describe(self.samples, as_shares);
        if let (Expect::Split(shares), true) = (&case.expect, seen.subsets.len() > 1) {
            if let Some(subset) = within_bounds(shares, &seen.subsets, self.samples) {
                got = format!("{got}, `{subset}` beyond {SIGMAS}σ");
            }
        }
        Some(format!("expected {expected}, got {got} ({})", decided_text(&seen.rules)))
    }

    /// Rules that decided no draw of any case run so far.
    pub fn unreached(&self) -> impl Iterator<Item = RuleId> + '_ {
        self.reached.iter().enumerate().filter(|(_, r)| !**r).map(|(i, _)| RuleId(i as u32))
    }
}

/// Outcomes of a case's draws: subsets (`none` for no decision) and deciding rules' lines.
#[derive(Default)]
struct Observed {
    subsets: BTreeMap<String, u64>,
    /// `None`: no rule decided.
    rules: BTreeSet<Option<u32>>,
}

impl Observed {
    fn add(&mut self, policy: &Policy, d: Decision) {
        let subset = d.subset.map_or("none", |s| policy.subset_name(s));
        *self.subsets.entry(subset.to_string()).or_insert(0) += 1;
        self.rules.insert(d.rule.map(|r| policy.rule_line(r)));
    }

    fn only(&self, subset: &str) -> bool {
        self.subsets.len() == 1 && self.subsets.contains_key(subset)
    }

    /// `v1`, or `{v1: 49.62%, v2: 50.38%} of 10000 draws` (always so when `as_shares`, to compare with an
    /// expected split).
    fn describe(&self, n: u64, as_shares: bool) -> String {
        match self.subsets.keys().collect::<Vec<_>>().as_slice() {
            [one] if !as_shares => one.to_string(),
            _ => {
                let shares: Vec<String> = self
                    .subsets
                    .iter()
                    .map(|(s, c)| format!("{s}: {}%", percent(*c as f64 * 100.0 / n as f64)))
                    .collect();
                format!("{{{}}} of {n} draws", shares.join(", "))
            }
        }
    }
}

/// The first subset (in name order) whose count is not within [`SIGMAS`] of its expected share.
fn within_bounds(shares: &[(String, f64)], counts: &BTreeMap<String, u64>, n: u64) -> Option<String> {
    let names: BTreeSet<&str> =
        shares.iter().map(|(s, _)| s.as_str()).chain(counts.keys().map(String::as_str)).collect();
    names.into_iter().find_map(|name| {
        let p = shares.iter().find(|(s, _)| s == name).map_or(0.0, |(_, pct)| pct / 100.0);
        let count = counts.get(name).copied().unwrap_or(0) as f64;
        let (mean, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
        ((count - mean).abs() > SIGMAS * sd + 1e-9).then(|| name.to_string())
    })
}

fn rule_line(rule: RuleExpect) -> Option<u32> {
    match rule {
        RuleExpect::Line(l) => Some(l),
        RuleExpect::Default => None,
    }
}

fn expect_text(expect: &Expect) -> String {
    match expect {
        Expect::Subset(s) => s.clone(),
        Expect::Nothing => "none".into(),
        Expect::Split(shares) => {
            let parts: Vec<String> = shares.iter().map(|(s, p)| format!("{s}: {}%", percent(*p))).collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// `decided by line 3`, `decided by lines 3, 5`, `no rule matched`, `decided by line 3 or no rule`.
fn decided_text(rules: &BTreeSet<Option<u32>>) -> String {
    let lines: Vec<String> = rules.iter().flatten().map(u32::to_string).collect();
    let by = match lines.len() {
        0 => return "no rule matched".into(),
        1 => format!("decided by line {}", lines[0]),
        _ => format!("decided by lines {}", lines.join(", ")),
    };
    if rules.contains(&None) {
        format!("{by}, or no rule matched")
    } else {
        by
    }
}

/// `50`, `12.5`, `0.01`: at most two decimals, no trailing zeros.
fn percent(p: f64) -> String {
    let s = format!("{p:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The case's service, as `canaryc eval --service` resolves it (`service:` names it).
fn service(policy: &Policy, name: Option<&str>) -> Result<ServiceId, String> {
    canary_compiler::request::resolve_service(policy, name)
        .map(|(id, _)| id)
        .map_err(|many| format!("the policy has several services ({}); add `service:`", many.join(", ")))
}

/// Where each rule of the policy is, indexed by [`RuleId`]: the evaluator numbers the top-level rules
/// first, then each service's own, in the config's order; `None` if that ever stops matching the lines.
pub fn rule_spans(policy: &Policy, config: &Config, spans: &canary_compiler::RuleSpans) -> Option<Vec<Span>> {
    let mut all = Vec::new();
    for (i, rule) in config.global.rules.iter().enumerate() {
        all.push((rule.line, spans.rule(None, i)));
    }
    for (s, svc) in config.services.iter().enumerate() {
        for (i, rule) in svc.rules.rules.iter().enumerate() {
            all.push((rule.line, spans.rule(Some(s), i)));
        }
    }
    let agree = all.len() == policy.rule_count()
        && all.iter().enumerate().all(|(i, (line, _))| policy.rule_line(RuleId(i as u32)) == *line);
    agree.then(|| all.into_iter().map(|(_, span)| span).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_sigma_bounds() {
        let counts = |v1: u64, v2: u64| BTreeMap::from([("v1".to_string(), v1), ("v2".to_string(), v2)]);
        let half = [("v1".to_string(), 50.0), ("v2".to_string(), 50.0)];
        // σ = 50 at n = 10,000, p = 0.5: 250 either way is allowed, 251 is not.
        assert_eq!(within_bounds(&half, &counts(5250, 4750), 10_000), None);
        assert_eq!(within_bounds(&half, &counts(5251, 4749), 10_000).as_deref(), Some("v1"));
        // A subset not expected must not appear at all; an expected 100% must be all.
        let all_v1 = [("v1".to_string(), 100.0)];
        assert_eq!(within_bounds(&all_v1, &counts(10_000, 0), 10_000), None);
        assert_eq!(within_bounds(&all_v1, &counts(9_999, 1), 10_000).as_deref(), Some("v1"));
    }

    #[test]
    fn texts() {
        assert_eq!(percent(50.0), "50");
        assert_eq!(percent(12.5), "12.5");
        assert_eq!(percent(49.625), "49.62");
        assert_eq!(decided_text(&BTreeSet::from([Some(3)])), "decided by line 3");
        assert_eq!(decided_text(&BTreeSet::from([None])), "no rule matched");
        assert_eq!(
            decided_text(&BTreeSet::from([None, Some(3), Some(5)])),
            "decided by lines 3, 5, or no rule matched"
        );
    }
}
