//! `canaryc diff OLD NEW`: which traffic changes subset, per service, from what to what, and how much.
//!
//! A service's decision is "the first rule that matches, else the default", so request space falls into
//! regions by *which rule decides* in each policy: old rule `i` and new rule `j` decide exactly the
//! requests that match both rules' conditions and none of the earlier rules' of either policy. Within such
//! a region the two outcomes are fixed (a subset, or a split's bucket ranges), so what moves is bucket
//! arithmetic ([`outcome::flows`]); the region itself is reported as a condition in the policy language,
//! with an example request found by [`crate::analysis::region`] and checked against both policies by the
//! evaluator. Regions that cannot occur (proved empty) are dropped; a region whose emptiness cannot be
//! decided (regexes) is kept, marked as having no example — a diff may over-report, never hide a move.
//!
//! The rule lists, defaults and rule numbering come from the evaluator ([`Policy::service_rules`]), so
//! global rules, TCP services and undeclared services are treated exactly as `decide` treats them.

pub mod outcome;
mod render;

use std::collections::HashMap;

use canary_eval::config::{Cond, Config, Rule, StickyKey};
use canary_eval::{Policy, RuleId, ServiceId, SimpleRequest};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::analysis::{self, region};
use crate::request::RequestSpec;
use outcome::{Flow, Outcome};

pub use render::{json, text};

/// What moves in one service. `moves` is empty when every request is decided alike.
#[derive(Debug, Clone)]
pub struct ServiceDiff {
    /// The service's name, or [`ANY_SERVICE`].
    pub service: String,
    pub moves: Vec<Move>,
}

/// The name under which moves of undeclared services (top-level rules only) are reported.
pub const ANY_SERVICE: &str = "*";

/// Traffic that changes subset.
#[derive(Debug, Clone)]
pub struct Move {
    /// `None`: no decision (Envoy's default route).
    pub from: Option<String>,
    pub to: Option<String>,
    /// The share of the traffic in `when` that moves, in percent.
    pub percent: f64,
    /// The moving share is of users with this sticky key (always the same users); `None`: of requests.
    pub by: Option<StickyKey>,
    /// Where the move happens; `None`: all of the service's traffic.
    pub when: Option<Cond>,
    /// A request (as `eval` flags) in `when`: one that really moves when its outcome is fixed or sticky.
    /// `None` when none was found — the region may then be empty.
    pub example: Option<RequestSpec>,
    /// Lines of the deciding rules (`None`: the default).
    pub old_line: Option<u32>,
    pub new_line: Option<u32>,
}

/// Compares two compiled policies, service by service: every service either declares, then (under
/// [`ANY_SERVICE`], when something moves there) the services neither declares. `only` restricts the
/// comparison to one service name (declared or not).
pub fn diff(old: &Config, new: &Config, only: Option<&str>) -> Result<Vec<ServiceDiff>, String> {
    let old_policy = Policy::new(old).map_err(|e| format!("old policy refused: {e}"))?;
    let new_policy = Policy::new(new).map_err(|e| format!("new policy refused: {e}"))?;
    let old_side = Side { config: old, policy: &old_policy };
    let new_side = Side { config: new, policy: &new_policy };
    let mut names: Vec<String> = Vec::new();
    match only {
        Some(name) => names.push(name.to_string()),
        None => {
            for name in old_policy.declared_services().chain(new_policy.declared_services()) {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
    }
    let mut out: Vec<ServiceDiff> = names
        .into_iter()
        .map(|name| {
            let moves = service_moves(&name, &old_side, &new_side);
            ServiceDiff { service: name, moves }
        })
        .collect();
    if only.is_none() {
        let moves = service_moves(ANY_SERVICE, &old_side, &new_side);
        if !moves.is_empty() {
            out.push(ServiceDiff { service: ANY_SERVICE.into(), moves });
        }
    }
    Ok(out)
}

/// One policy, as the evaluator sees it.
struct Side<'a> {
    config: &'a Config,
    policy: &'a Policy,
}

/// One step of a service's decision: a rule, or the default (`rule` is `None`), with its outcome.
struct Step<'a> {
    id: Option<RuleId>,
    rule: Option<&'a Rule>,
    /// The condition as a lookup key: equal conditions have equal keys.
    key: Option<String>,
    outcome: Outcome,
}

impl<'a> Side<'a> {
    fn service(&self, name: &str) -> ServiceId {
        if name == ANY_SERVICE {
            self.policy.fallback()
        } else {
            self.policy.service_or_global(name)
        }
    }

    /// The rules that can decide, in order, then the default — up to the first unconditional rule, after
    /// which nothing else is ever tried.
    fn steps(&self, service: ServiceId) -> Vec<Step<'a>> {
        let default = self.policy.default_subset(service).map(|s| self.policy.subset_name(s));
        let mut steps = Vec::new();
        for &id in self.policy.service_rules(service) {
            let Some(rule) = self.policy.config_rule(self.config, id) else { continue };
            let key = rule.when.as_ref().map(|c| format!("{c:?}"));
            steps.push(Step { id: Some(id), rule: Some(rule), key, outcome: Outcome::of(Some(rule), default) });
            if rule.when.is_none() {
                return steps;
            }
        }
        steps.push(Step { id: None, rule: None, key: None, outcome: Outcome::of(None, default) });
        steps
    }
}

/// Negations kept as written past this many (each redundancy check is a search of its own).
const SIMPLIFY_LIMIT: usize = 32;

fn service_moves(name: &str, old: &Side<'_>, new: &Side<'_>) -> Vec<Move> {
    let (old_svc, new_svc) = (old.service(name), new.service(name));
    let (olds, news) = (old.steps(old_svc), new.steps(new_svc));
    // Where each condition first appears: a rule whose condition appeared earlier (in its own policy, or
    // among the other policy's earlier rules) decides nothing in that region.
    let (old_first, new_first) = (first_positions(&olds), first_positions(&news));
    let earlier = |map: &HashMap<&str, usize>, key: &Option<String>, before: usize| {
        key.as_deref().and_then(|k| map.get(k)).is_some_and(|&at| at < before)
    };
    let mut moves = Vec::new();
    for (i, o) in olds.iter().enumerate() {
        if earlier(&old_first, &o.key, i) {
            continue;
        }
        for (j, n) in news.iter().enumerate() {
            let flows = outcome::flows(&o.outcome, &n.outcome);
            if flows.is_empty()
                || earlier(&new_first, &n.key, j)
                || earlier(&new_first, &o.key, j)
                || earlier(&old_first, &n.key, i)
            {
                continue;
            }
            let region = Region::new(&olds[..i], o, &news[..j], n);
            moves.extend(region.moves(name, old, new, (old_svc, new_svc), (o, n), flows));
        }
    }
    moves
}

/// Each condition's first position among `steps`.
fn first_positions<'s>(steps: &'s [Step<'_>]) -> HashMap<&'s str, usize> {
    let mut map = HashMap::new();
    for (i, s) in steps.iter().enumerate() {
        if let Some(k) = &s.key {
            map.entry(k.as_str()).or_insert(i);
        }
    }
    map
}

/// The requests old step `i` and new step `j` both decide: their conditions hold, no earlier one does.
struct Region<'c> {
    must: Vec<&'c Cond>,
    must_not: Vec<&'c Cond>,
}

impl<'c> Region<'c> {
    fn new(old_before: &[Step<'c>], old: &Step<'c>, new_before: &[Step<'c>], new: &Step<'c>) -> Self {
        let mut must: Vec<&Cond> = Vec::new();
        for c in [old, new].iter().filter_map(|s| s.rule.and_then(|r| r.when.as_ref())) {
            if !must.contains(&c) {
                must.push(c);
            }
        }
        let mut must_not: Vec<&Cond> = Vec::new();
        for c in old_before.iter().chain(new_before).filter_map(|s| s.rule.and_then(|r| r.when.as_ref())) {
            if !must_not.contains(&c) {
                must_not.push(c);
            }
        }
        Region { must, must_not }
    }

    /// The moves of this region, or none when it cannot occur.
    fn moves(
        mut self,
        name: &str,
        old: &Side<'_>,
        new: &Side<'_>,
        services: (ServiceId, ServiceId),
        steps: (&Step<'_>, &Step<'_>),
        flows: Vec<Flow>,
    ) -> Vec<Move> {
        // `*` builds the request `canaryc eval` builds without `--service` (host `localhost`).
        let service = name;
        let found = match region::example(service, &self.must, &self.must_not) {
            region::Search::Empty => return Vec::new(),
            region::Search::Example(spec) => Some(spec),
            region::Search::Unknown => None,
        };
        self.simplify(service);
        let check = Check { service, old, new, services, ids: (steps.0.id, steps.1.id) };
        // The example must be decided by exactly these two rules: the evaluator has the last word.
        let found = found.filter(|spec| check.decided(spec).is_some());
        let when = self.condition();
        let line = |s: &Step<'_>| s.rule.map(|r| r.line);
        flows
            .into_iter()
            .map(|flow| {
                let example = found.as_ref().map(|spec| check.moving(spec, &flow).unwrap_or_else(|| spec.clone()));
                Move {
                    percent: (flow.share * 10_000.0).round() / 100.0,
                    from: flow.from,
                    to: flow.to,
                    by: flow.by,
                    when: when.clone(),
                    example,
                    old_line: line(steps.0),
                    new_line: line(steps.1),
                }
            })
            .collect()
    }

    /// Drops negations that cannot change the region: one whose condition never holds together with the
    /// deciding conditions, or one implied by another negation.
    fn simplify(&mut self, service: &str) {
        if self.must_not.len() > SIMPLIFY_LIMIT {
            return;
        }
        let must = self.must.clone();
        self.must_not.retain(|n| {
            let with: Vec<&Cond> = must.iter().copied().chain([*n]).collect();
            !matches!(region::example(service, &with, &[]), region::Search::Empty)
        });
        // `not m` makes `not n` redundant when `n` implies `m`; kept in order, so of two conditions that
        // imply each other one stays.
        let mut kept: Vec<&Cond> = Vec::new();
        for n in std::mem::take(&mut self.must_not) {
            if !kept.iter().any(|m| analysis::implies(n, m)) {
                kept.retain(|m| !analysis::implies(m, n));
                kept.push(n);
            }
        }
        self.must_not = kept;
    }

    /// The region as one condition; `None` when it is all traffic.
    fn condition(&self) -> Option<Cond> {
        let mut parts: Vec<Cond> = self.must.iter().map(|c| (*c).clone()).collect();
        parts.extend(self.must_not.iter().map(|c| Cond::Not(Box::new((*c).clone()))));
        match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Cond::All(parts)),
        }
    }
}

/// Requests checked against both policies by the evaluator.
struct Check<'a> {
    service: &'a str,
    old: &'a Side<'a>,
    new: &'a Side<'a>,
    services: (ServiceId, ServiceId),
    ids: (Option<RuleId>, Option<RuleId>),
}

impl Check<'_> {
    /// The subsets both policies give `spec`, when the expected rules decide it.
    fn decided(&self, spec: &RequestSpec) -> Option<(Option<String>, Option<String>)> {
        let req = spec.build(self.service);
        let decide = |side: &Side<'_>, svc: ServiceId, req: &SimpleRequest| {
            let d = side.policy.decide(svc, req, &mut SmallRng::seed_from_u64(0));
            (d.rule, d.subset.map(|s| side.policy.subset_name(s).to_string()))
        };
        let (old_rule, old_subset) = decide(self.old, self.services.0, &req);
        let (new_rule, new_subset) = decide(self.new, self.services.1, &req);
        ((old_rule, new_rule) == self.ids).then_some((old_subset, new_subset))
    }

    /// `spec` with a sticky key whose bucket moves as `flow` says (a user who really moves), when the flow
    /// is one of fixed or sticky outcomes and such a key exists.
    fn moving(&self, spec: &RequestSpec, flow: &Flow) -> Option<RequestSpec> {
        let want = (flow.from.clone(), flow.to.clone());
        let Some(key) = &flow.by else {
            // A fixed outcome on both sides: the region's example moves as it is.
            return (flow.buckets.as_ref().is_some_and(|b| b == &[(0, canary_eval::BUCKETS)])
                && self.decided(spec) == Some(want))
            .then(|| spec.clone());
        };
        let (start, end) = flow.buckets.as_ref()?.first().copied()?;
        let mut misses = 0;
        for i in 1..=KEY_TRIES {
            let value = format!("user-{i}");
            let bucket = canary_eval::sticky_bucket(value.as_bytes());
            if bucket < start || bucket >= end {
                continue;
            }
            let mut with = spec.clone();
            match key {
                StickyKey::Cookie(c) => with.cookies.push((c.clone(), value)),
                StickyKey::Header(h) => with.headers.push((h.clone(), value)),
            }
            if self.decided(&with).as_ref() == Some(&want) {
                return Some(with);
            }
            // The region fixes the key itself (e.g. `cookie uid=alice`): no generated key gets in.
            misses += 1;
            if misses == KEY_MISSES {
                return None;
            }
        }
        None
    }
}

/// Generated keys tried for a user in a moving range: a range of 0.01% has one in 10,000.
const KEY_TRIES: u32 = 200_000;

/// Keys in the moving range that fail to move before the search stops.
const KEY_MISSES: u32 = 20;
