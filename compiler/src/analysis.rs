//! `canaryc check`'s warnings: rules that can never decide, splits that change nothing, subsets nobody
//! can reach. Each warning carries an example request (as `canaryc eval` flags) that shows why, and every
//! example is verified by running the real evaluator on it, so a warning never claims what isn't so.

pub mod region;

use canary_eval::config::{Action, Cond, Config, Protocol, Rule, Test};
use canary_eval::{Policy, SimpleRequest};
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// One warning, located by the rule's line (the caller turns it into a diagnostic with a caret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: u32,
    pub message: String,
    /// `canaryc eval` flags for a request that demonstrates the finding.
    pub example: Option<String>,
}

/// Analyses a compiled config. `known_subsets`, when given, lists the subsets that exist (e.g. the
/// DestinationRule's); any other subset the policy names is reported.
pub fn analyse(config: &Config, known_subsets: Option<&[String]>) -> Vec<Finding> {
    let Ok(policy) = Policy::new(config) else { return Vec::new() };
    let mut findings = Vec::new();
    let global = &config.global.rules;
    // Global rules are checked on their own; then each service sees them as its first rules.
    scope(&policy, "*", global, &[], config.global.default.as_deref(), &mut findings);
    for svc in &config.services {
        let inherited: &[Rule] = if svc.protocol == Protocol::Tcp { &[] } else { global };
        let default = svc.rules.default.as_deref().or(config.global.default.as_deref());
        scope(&policy, &svc.name, &svc.rules.rules, inherited, default, &mut findings);
    }
    unreachable_subsets(config, &mut findings);
    if let Some(known) = known_subsets {
        for (line, subset) in subsets_with_lines(config) {
            if !known.iter().any(|k| k == subset) {
                findings.push(Finding {
                    line,
                    message: format!("unknown subset `{subset}` (known: {})", known.join(", ")),
                    example: None,
                });
            }
        }
    }
    findings.sort_by(|a, b| a.line.cmp(&b.line).then(a.message.cmp(&b.message)));
    findings.dedup();
    findings
}

fn scope(
    policy: &Policy,
    service: &str,
    rules: &[Rule],
    inherited: &[Rule],
    default: Option<&str>,
    out: &mut Vec<Finding>,
) {
    let earlier_all: Vec<&Rule> = inherited.iter().collect();
    for (i, rule) in rules.iter().enumerate() {
        let earlier: Vec<&Rule> = earlier_all.iter().copied().chain(&rules[..i]).collect();
        if let Some(finding) = shadowed(policy, service, rule, &earlier) {
            out.push(finding);
            continue;
        }
        if let Action::Split(split) = &rule.then {
            let total: u32 = split.to.iter().map(|s| s.weight).sum();
            let useless = total == 0 || split.to.iter().all(|s| Some(s.subset.as_str()) == default || s.weight == 0);
            if useless {
                let to = default.map_or("no decision".to_string(), |d| format!("`{d}`, the default"));
                // A request that reaches the split, to try with `canaryc eval`: it gets the default either way.
                let example = rule.when.as_ref().map_or(Some(SimpleRequest::new()), witness);
                out.push(Finding {
                    line: rule.line,
                    message: format!("this split can never change a decision: all its traffic goes to {to}"),
                    example: example.map(|req| flags(&req)),
                });
            }
        }
    }
}

/// Whether `rule` can never decide because an earlier rule always decides first.
fn shadowed(policy: &Policy, service: &str, rule: &Rule, earlier: &[&Rule]) -> Option<Finding> {
    let blocker = earlier.iter().find(|e| match (&e.when, &rule.when) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(r)) => implies(r, e),
    })?;
    let example = rule.when.as_ref().map_or(Some(SimpleRequest::new()), witness);
    let example = example.filter(|req| {
        let svc = policy.service_or_global(service);
        let decision = policy.decide(svc, req, &mut SmallRng::seed_from_u64(0));
        decision.rule.map(|r| policy.rule_line(r)) == Some(blocker.line)
    });
    let kind = if rule.when.is_none() || blocker.when.is_none() { "unreachable" } else { "shadowed" };
    Some(Finding {
        line: rule.line,
        message: format!("{kind} rule: every request it matches is already decided by line {}", blocker.line),
        example: example.map(|req| flags(&req)),
    })
}

/// Syntactic implication: `a` matches only requests that `b` matches too. Sound, not complete.
pub(crate) fn implies(a: &Cond, b: &Cond) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Cond::All(xs), _) if xs.iter().any(|x| implies(x, b)) => true,
        (_, Cond::Any(ys)) if ys.iter().any(|y| implies(a, y)) => true,
        (Cond::Any(xs), _) => xs.iter().all(|x| implies(x, b)),
        (_, Cond::All(ys)) => ys.iter().all(|y| implies(a, y)),
        (Cond::Header { name: n1, test: t1 }, Cond::Header { name: n2, test: Test::Present }) => {
            n1 == n2 && !matches!(t1, Test::Absent)
        }
        (Cond::Header { name: n1, test: Test::Eq(v) }, Cond::Header { name: n2, test: Test::In(vs) }) => {
            n1 == n2 && vs.contains(v)
        }
        _ => false,
    }
}

/// A request that satisfies `cond`, if a simple one can be built; the caller verifies it by evaluation.
pub fn witness(cond: &Cond) -> Option<SimpleRequest> {
    build(cond, SimpleRequest::new())
}

fn build(cond: &Cond, req: SimpleRequest) -> Option<SimpleRequest> {
    Some(match cond {
        Cond::Header { name, test } => match test {
            Test::Eq(v) => req.header(name, v),
            Test::Ne(v) => req.header(name, format!("not-{v}")),
            Test::In(vs) => req.header(name, vs.first()?),
            Test::Present => req.header(name, "1"),
            Test::Absent => req,
            Test::Regex(re) => req.header(name, regex_example(re)?),
        },
        Cond::Cookie { name, value } => req.cookie(name, value),
        Cond::Query { name, value } => req.query(name, value),
        Cond::PathPrefix(p) => req.path(p),
        Cond::Method(m) => req.method(m),
        Cond::Host(h) => req.host(h),
        Cond::Source { label, value } => req.source(label, value),
        Cond::All(cs) => cs.iter().try_fold(req, |r, c| build(c, r))?,
        Cond::Any(cs) => cs.iter().find_map(|c| build(c, req.clone()))?,
        // Most negations hold for a request that lacks the attribute.
        Cond::Not(_) => req,
    })
}

/// A string the regex matches: tried from real user agents first (families lower to UA regexes), then
/// the pattern with its metacharacters stripped.
fn regex_example(pattern: &str) -> Option<String> {
    const CANDIDATES: &[&str] = &[
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
    ];
    let re = canary_eval::compile_regex(pattern).ok()?;
    let stripped: String = pattern.chars().filter(|c| !"\\^$.*+?()[]{}|".contains(*c)).collect();
    CANDIDATES.iter().map(|s| s.to_string()).chain([stripped]).find(|s| re.is_match(s.as_bytes()))
}

/// The request as `canaryc eval` flags, so the user can paste it.
pub fn flags(req: &SimpleRequest) -> String {
    let mut out = Vec::new();
    for (name, value) in &req.headers {
        let value = String::from_utf8_lossy(value);
        match name.as_str() {
            ":path" => out.push(format!("--path '{value}'")),
            ":method" => out.push(format!("--method {value}")),
            ":authority" => out.push(format!("--host {value}")),
            "cookie" => out.extend(value.split("; ").map(|c| format!("--cookie '{c}'"))),
            _ => out.push(format!("--header '{name}: {value}'")),
        }
    }
    out.extend(req.source.iter().map(|(k, v)| format!("--source '{k}={v}'")));
    if out.is_empty() {
        "any request".to_string()
    } else {
        out.join(" ")
    }
}

/// A subset named only by rules that never decide is never chosen: usually a typo'd or stale rollout step.
fn unreachable_subsets(config: &Config, findings: &mut Vec<Finding>) {
    let dead: Vec<u32> = findings.iter().filter(|f| f.message.contains("already decided")).map(|f| f.line).collect();
    let defaults: Vec<&str> = std::iter::once(&config.global)
        .chain(config.services.iter().map(|s| &s.rules))
        .filter_map(|set| set.default.as_deref())
        .collect();
    let uses = subsets_with_lines(config);
    let mut reported = Vec::new();
    for &(line, subset) in &uses {
        let live = defaults.contains(&subset) || uses.iter().any(|&(l, s)| s == subset && !dead.contains(&l));
        if !live && !reported.contains(&subset) {
            reported.push(subset);
            findings.push(Finding {
                line,
                message: format!("subset `{subset}` is never chosen: only rules that never decide name it"),
                example: None,
            });
        }
    }
}

fn subsets_with_lines(config: &Config) -> Vec<(u32, &str)> {
    let sets = std::iter::once(&config.global).chain(config.services.iter().map(|s| &s.rules));
    let mut out = Vec::new();
    for set in sets {
        for rule in &set.rules {
            match &rule.then {
                Action::Route(s) => out.push((rule.line, s.as_str())),
                Action::Split(split) => out.extend(split.to.iter().map(|s| (rule.line, s.subset.as_str()))),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_eval::config::{RuleSet, Service, Share, Split};

    fn route(line: u32, when: Option<Cond>, to: &str) -> Rule {
        Rule { line, when, then: Action::Route(to.into()) }
    }

    fn cookie(v: &str) -> Cond {
        Cond::Cookie { name: "user".into(), value: v.into() }
    }

    fn config(rules: Vec<Rule>, default: Option<&str>) -> Config {
        Config {
            version: 1,
            global: RuleSet::default(),
            services: vec![Service {
                name: "frontend".into(),
                protocol: Protocol::Http,
                rules: RuleSet { rules, default: default.map(Into::into) },
            }],
            settings: Default::default(),
        }
    }

    #[test]
    fn rule_after_catch_all_is_unreachable() {
        let c = config(vec![route(2, None, "v2"), route(3, Some(cookie("tester")), "v3")], Some("v1"));
        let f = analyse(&c, None);
        assert_eq!(f.len(), 2, "{f:?}");
        let unreachable = f.iter().find(|f| f.message.starts_with("unreachable rule")).expect("unreachable rule found");
        assert_eq!(unreachable.line, 3);
        assert_eq!(unreachable.example.as_deref(), Some("--cookie 'user=tester'"));
        assert!(f.iter().any(|f| f.message == "subset `v3` is never chosen: only rules that never decide name it"));
    }

    #[test]
    fn narrower_condition_after_broader_is_shadowed() {
        let both = Cond::All(vec![cookie("tester"), Cond::Method("GET".into())]);
        let c = config(vec![route(2, Some(cookie("tester")), "v2"), route(3, Some(both), "v3")], Some("v1"));
        let f = analyse(&c, None);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].message.contains("already decided by line 2"));
        assert_eq!(f[0].example.as_deref(), Some("--cookie 'user=tester' --method GET"));
    }

    #[test]
    fn splits_to_the_default_change_nothing() {
        let split = |w, to: &str| Action::Split(Split { to: vec![Share { subset: to.into(), weight: w }], by: None });
        let c = config(
            vec![
                Rule { line: 2, when: Some(cookie("a")), then: split(0, "v2") },
                Rule { line: 3, when: Some(cookie("b")), then: split(5000, "v1") },
                Rule { line: 4, when: Some(cookie("c")), then: split(5000, "v2") },
            ],
            Some("v1"),
        );
        let findings = analyse(&c, None);
        let lines: Vec<u32> = findings.iter().map(|f| f.line).collect();
        assert_eq!(lines, vec![2, 3]);
        assert_eq!(findings[0].example.as_deref(), Some("--cookie 'user=a'"));
    }

    #[test]
    fn unknown_subsets_are_reported_when_known_ones_are_given() {
        let c = config(vec![route(2, Some(cookie("a")), "v3")], Some("v1"));
        let f = analyse(&c, Some(&["v1".to_string(), "v2".to_string()]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].message, "unknown subset `v3` (known: v1, v2)");
    }

    #[test]
    fn independent_rules_are_fine() {
        let c = config(vec![route(2, Some(cookie("a")), "v2"), route(3, Some(cookie("b")), "v2")], Some("v1"));
        assert!(analyse(&c, None).is_empty());
    }
}
