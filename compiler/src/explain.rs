//! `canaryc eval --explain` and the playground's explain view: the evaluator's own trace of a decision
//! ([`Policy::explain`]) written in the policy language — each rule tried, which part of its condition
//! held or failed and on what value, and for a split the key, its bucket and the ranges. The CLI and the
//! page both print [`text`] of the same [`Report`], so they cannot tell different stories.

use std::fmt::Write as _;

use canary_eval::config::{Cond, Config};
use canary_eval::explain::{Node, SplitTrace};
use canary_eval::{Policy, Request, ServiceId, SubsetId};
use rand::RngCore;
use serde::Serialize;

use crate::policy_text;

/// One decision, explained.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub service: String,
    pub subset: Option<String>,
    /// The deciding rule's line (`None`: the default decided, or nothing).
    pub rule: Option<u32>,
    /// The rules tried, in order.
    pub rules: Vec<RuleReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleReport {
    pub line: u32,
    /// The rule in the policy language.
    pub rule: String,
    pub matched: bool,
    /// Why it matched or not: the tests that decided, each with the value it saw.
    pub checks: Vec<Check>,
    pub split: Option<SplitReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The test, as written (`cookie user=tester`, `android`, `not header x present`).
    pub test: String,
    pub holds: bool,
    /// What the request had (`cookie user is "alice"`, `no cookie user`).
    pub seen: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SplitReport {
    /// `cookie uid` for a sticky split.
    pub by: Option<String>,
    /// The sticky key's value; `None` for a per-request draw.
    pub key: Option<String>,
    /// Out of 10,000.
    pub bucket: u32,
    pub ranges: Vec<Range>,
    pub subset: Option<String>,
}

/// Buckets `start..=end` go to `subset` (`default`: the service's default, the split's remainder).
#[derive(Debug, Clone, Serialize)]
pub struct Range {
    pub start: u32,
    pub end: u32,
    pub subset: Option<String>,
    pub default: bool,
}

/// Decides `req` for `service` with [`Policy::explain`] and describes it. `config` is the config `policy`
/// was built from (it supplies the rules' text).
pub fn explain<Q, G>(config: &Config, policy: &Policy, service: ServiceId, req: &Q, rng: &mut G) -> Report
where
    Q: Request + ?Sized,
    G: RngCore + ?Sized,
{
    let e = policy.explain(service, req, rng);
    let name = |s: Option<SubsetId>| s.map(|s| policy.subset_name(s).to_string());
    let rules = e
        .tried
        .iter()
        .map(|t| {
            let rule = policy.config_rule(config, t.rule);
            let mut checks = Vec::new();
            if let (Some(cond), Some(node)) = (rule.and_then(|r| r.when.as_ref()), &t.when) {
                reasons(cond, node, &mut checks);
            }
            RuleReport {
                line: t.line,
                rule: rule.map(policy_text::rule).unwrap_or_default(),
                matched: t.matched,
                checks,
                split: t.split.as_ref().map(|s| split(policy, rule, s)),
            }
        })
        .collect();
    Report {
        service: policy.service_name(service).to_string(),
        subset: name(e.decision.subset),
        rule: e.decision.rule.map(|r| policy.rule_line(r)),
        rules,
    }
}

/// The report as `canaryc eval --explain` prints it.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let service = if r.service == "*" { "* (top-level rules only)".to_string() } else { r.service.clone() };
    let count = match r.rules.len() {
        0 => "no rule to try".to_string(),
        1 => "1 rule tried".to_string(),
        n => format!("{n} rules tried, top to bottom"),
    };
    let _ = writeln!(out, "service {service}: {count}");
    for rule in &r.rules {
        let verdict = if rule.matched { "matches" } else { "no match" };
        let _ = writeln!(out, "line {}: {}  — {verdict}", rule.line, rule.rule);
        for c in &rule.checks {
            let _ = writeln!(out, "    {} {}: {}", if c.holds { "✓" } else { "✗" }, c.test, c.seen);
        }
        if let Some(s) = &rule.split {
            let key = match (&s.by, &s.key) {
                (Some(by), Some(key)) => format!("{by} is {key}: sticky bucket"),
                (Some(by), None) => format!("no {by}, so a per-request draw: bucket"),
                (None, _) => "per-request draw: bucket".to_string(),
            };
            let ranges: Vec<String> = s
                .ranges
                .iter()
                .map(|g| {
                    let default = if g.default { " (default)" } else { "" };
                    format!("{}–{} {}{default}", g.start, g.end, g.subset.as_deref().unwrap_or("none"))
                })
                .collect();
            let _ = writeln!(
                out,
                "    split: {key} {} of 10,000 → {}  [{}]",
                s.bucket,
                s.subset.as_deref().unwrap_or("none"),
                ranges.join(", ")
            );
        }
    }
    let subset = r.subset.as_deref().unwrap_or("none");
    let _ = match (r.rule, &r.subset) {
        (Some(line), _) => writeln!(out, "decision: {subset} (line {line})"),
        (None, Some(_)) => writeln!(out, "decision: {subset} (no rule matched: the default)"),
        (None, None) => writeln!(out, "decision: none (no rule matched and there is no default)"),
    };
    out
}

fn split(policy: &Policy, rule: Option<&canary_eval::config::Rule>, s: &SplitTrace) -> SplitReport {
    let name = |s: Option<SubsetId>| s.map(|s| policy.subset_name(s).to_string());
    let by = rule.and_then(|r| match &r.then {
        canary_eval::config::Action::Split(split) => split.by.as_ref().map(policy_text::sticky_key),
        canary_eval::config::Action::Route(_) => None,
    });
    let last = s.ranges.len().saturating_sub(1);
    let shares = rule.map_or(0, |r| match &r.then {
        canary_eval::config::Action::Split(split) => split.to.len(),
        canary_eval::config::Action::Route(_) => 0,
    });
    SplitReport {
        by,
        key: s.key.as_deref().map(shown),
        bucket: s.bucket,
        ranges: s
            .ranges
            .iter()
            .enumerate()
            .map(|(i, &(start, end, subset))| Range {
                start,
                end: end - 1,
                subset: name(subset),
                default: i == last && i >= shares,
            })
            .collect(),
        subset: name(s.subset),
    }
}

/// Why `node` came out as it did: the tests that decided it. An `all` that failed is explained by its
/// failing operand, one that held by all of them; an `any` the other way round.
fn reasons(cond: &Cond, node: &Node, out: &mut Vec<Check>) {
    if let Some(family) = policy_text::family_name(cond) {
        out.push(Check { test: family.to_string(), holds: node.matched(), seen: seen_in(cond, node) });
        return;
    }
    match (cond, node) {
        (Cond::All(cs), Node::All { operands, matched }) | (Cond::Any(cs), Node::Any { operands, matched }) => {
            let all = matches!(cond, Cond::All(_));
            // The operands evaluated, in order, with a family's run of them as one test; the last one
            // evaluated decided the short-circuit.
            let mut evaluated: Vec<Vec<Check>> = Vec::new();
            for (start, end, family) in policy_text::runs(cs, all) {
                let nodes = &operands[start.min(operands.len())..end.min(operands.len())];
                let Some(first) = nodes.first() else { break };
                let mut checks = Vec::new();
                match family {
                    Some(name) => {
                        let holds = if all {
                            nodes.len() == end - start && nodes.iter().all(Node::matched)
                        } else {
                            nodes.iter().any(Node::matched)
                        };
                        checks.push(Check { test: name.to_string(), holds, seen: seen_in(&cs[start], first) });
                    }
                    None => reasons(&cs[start], first, &mut checks),
                }
                evaluated.push(checks);
            }
            if *matched == all {
                out.extend(evaluated.into_iter().flatten());
            } else if let Some(last) = evaluated.pop() {
                out.extend(last);
            }
        }
        (Cond::Not(inner), Node::Not { operand, matched }) => {
            if matches!(**inner, Cond::All(_) | Cond::Any(_)) && policy_text::family_name(inner).is_none() {
                reasons(inner, operand, out);
            } else {
                out.push(Check { test: policy_text::cond(cond), holds: *matched, seen: seen_in(inner, operand) });
            }
        }
        _ => out.push(Check { test: policy_text::cond(cond), holds: node.matched(), seen: seen_in(cond, node) }),
    }
}

/// What the request held for the attribute a test (or a family's tests) read.
fn seen_in(cond: &Cond, node: &Node) -> String {
    let (leaf, value) = first_test(cond, node);
    let Some(leaf) = leaf else { return String::new() };
    let v = value.map(shown);
    match (leaf, v) {
        (Cond::Header { name, .. }, Some(v)) => format!("{name} is {v}"),
        (Cond::Header { name, .. }, None) => format!("no {name} header"),
        (Cond::Cookie { name, .. }, Some(v)) => format!("cookie {name} is {v}"),
        (Cond::Cookie { name, .. }, None) => format!("no cookie {name}"),
        (Cond::Query { name, .. }, Some(v)) => format!("query {name} is {v}"),
        (Cond::Query { name, .. }, None) => format!("no query parameter {name}"),
        (Cond::PathPrefix(_), Some(v)) => format!("path is {v}"),
        (Cond::Method(_), Some(v)) => format!("method is {v}"),
        (Cond::Host(_), Some(v)) => format!("host is {v}"),
        (Cond::Source { label, .. }, Some(v)) => format!("source {label} is {v}"),
        (Cond::Source { label, .. }, None) => format!("no source label {label}"),
        (_, None) => "absent".to_string(),
        (_, Some(v)) => v,
    }
}

/// The first single test evaluated under `node`, and the value it read.
fn first_test<'c, 'n>(cond: &'c Cond, node: &'n Node) -> (Option<&'c Cond>, Option<&'n [u8]>) {
    match (cond, node) {
        (Cond::All(cs) | Cond::Any(cs), Node::All { operands, .. } | Node::Any { operands, .. }) => {
            cs.first().zip(operands.first()).map_or((None, None), |(c, n)| first_test(c, n))
        }
        (Cond::Not(c), Node::Not { operand, .. }) => first_test(c, operand),
        (leaf, Node::Test { seen, .. }) => (Some(leaf), seen.as_deref()),
        _ => (None, None),
    }
}

/// A value as shown: quoted, with quotes, backslashes and control characters escaped, cut after 100
/// characters. (Not `{:?}`, which would pull Unicode tables into the playground's wasm.)
fn shown(v: &[u8]) -> String {
    let text = String::from_utf8_lossy(v);
    let mut out = String::from("\"");
    for c in text.chars().take(100) {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    if text.chars().nth(100).is_some() {
        out.push('…');
    }
    out.push('"');
    out
}
