//! "What share of traffic does this rule get?", answered by the evaluator itself: the rule's condition
//! gives an example request ([`analysis::witness`], the one `check` uses for its warnings), and
//! [`request::simulate_each`] (the loop behind `canaryc simulate`) decides it [`SAMPLES`] times in the
//! rule's service, each copy with its own sticky key. So a split hover shows the split as it happens, and a
//! shadowed rule shows who decides instead.

use std::collections::BTreeMap;

use canary_dsl::ast::Span;
use canary_eval::config::Rule;
use canary_eval::{Policy, RuleId, ServiceId, SimpleRequest};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use canary_compiler::{analysis, request, Compiled};

/// Requests simulated per hover: each share is then within ±1 percentage point (2σ) of the split's own, and
/// a hover costs ~2 ms in a release build (`examples/weather.canary`, measured over stdio).
pub const SAMPLES: u64 = 10_000;

/// What happened to [`SAMPLES`] requests that a rule's condition matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTraffic {
    /// The rule's source span.
    pub span: Span,
    /// The service the requests were for (`*`: a top-level rule, as any service without a block sees it).
    pub service: String,
    /// The example request, as `canaryc eval` flags.
    pub example: String,
    /// Decided by this rule: requests per subset (`none` when the rule leaves it undecided).
    pub here: BTreeMap<String, u64>,
    /// Decided elsewhere: requests per deciding rule line (`None`: the default).
    pub elsewhere: BTreeMap<Option<u32>, u64>,
}

/// The traffic of the compiled rule whose span contains `offset`, or `None` when the offset is in no rule
/// or no example request could be built for it (the reason as `Err`).
pub fn at(compiled: &Compiled, policy: &Policy, offset: usize) -> Option<Result<RuleTraffic, String>> {
    let config = &compiled.config;
    let spans = &compiled.spans;
    let inside = |s: &Span| s.start <= offset && offset < s.end;
    // Rule ids are assigned in config order: the top-level rules, then each service's own.
    let mut first_id = config.global.rules.len();
    let mut found = spans.global.iter().position(inside).map(|i| (None, i, i));
    for (s, svc) in config.services.iter().enumerate() {
        if found.is_none() {
            found = spans.services.get(s).and_then(|l| l.iter().position(inside)).map(|i| (Some(s), i, first_id + i));
        }
        first_id += svc.rules.rules.len();
    }
    let (service, index, id) = found?;
    let (rule, service_id, service_name) = match service {
        None => (config.global.rules.get(index)?, policy.fallback(), "*".to_string()),
        Some(s) => {
            let svc = config.services.get(s)?;
            (svc.rules.rules.get(index)?, policy.service(&svc.name)?, svc.name.clone())
        }
    };
    let id = RuleId(id as u32);
    if id.0 as usize >= policy.rule_count() || policy.rule_line(id) != rule.line {
        return None; // the evaluator numbered rules differently: say nothing rather than something wrong
    }
    let span = spans.rule(service, index);
    Some(simulate(compiled, policy, rule, id, service_id, service_name, span))
}

fn simulate(
    compiled: &Compiled,
    policy: &Policy,
    rule: &Rule,
    id: RuleId,
    service: ServiceId,
    service_name: String,
    span: Span,
) -> Result<RuleTraffic, String> {
    let base = match &rule.when {
        None => SimpleRequest::new(),
        Some(cond) => analysis::witness(cond).ok_or("no example request could be built for this condition")?,
    };
    let mut traffic = RuleTraffic {
        span,
        service: service_name,
        example: analysis::flags(&base),
        here: BTreeMap::new(),
        elsewhere: BTreeMap::new(),
    };
    let mut rng = SmallRng::seed_from_u64(0);
    request::simulate_each(
        policy,
        &compiled.config,
        service,
        &base,
        SAMPLES,
        request::Keys::Generated,
        &mut rng,
        |d| {
            if d.rule == Some(id) {
                let subset = d.subset.map_or("none", |s| policy.subset_name(s));
                *traffic.here.entry(subset.to_string()).or_insert(0) += 1;
            } else {
                *traffic.elsewhere.entry(d.rule.map(|r| policy.rule_line(r))).or_insert(0) += 1;
            }
        },
    );
    Ok(traffic)
}

/// The hover text: a Markdown paragraph and list.
pub fn describe(t: &RuleTraffic, default: Option<&str>) -> String {
    let pct = |n: u64| format!("{:.1}%", n as f64 * 100.0 / SAMPLES as f64);
    let service = if t.service == "*" { "any service".to_string() } else { format!("service `{}`", t.service) };
    let like = match t.example.as_str() {
        "any request" => String::new(), // an unconditional rule: any request reaches it
        example => format!(" like `{example}`"),
    };
    let mut out =
        format!("**Traffic through this rule** — {SAMPLES} requests{like} for {service}, decided by the evaluator:\n");
    let here: u64 = t.here.values().sum();
    if here > 0 {
        let shares: Vec<String> = t
            .here
            .iter()
            .map(|(subset, n)| {
                let note = if Some(subset.as_str()) == default { " (the default)" } else { "" };
                format!("`{subset}`{note} {}", pct(*n))
            })
            .collect();
        out.push_str(&format!("\n- this rule decides {}: {}", pct(here), shares.join(", ")));
    }
    for (line, n) in &t.elsewhere {
        match line {
            Some(line) => out.push_str(&format!("\n- line {line} decides {} first", pct(*n))),
            None => out.push_str(&format!("\n- no rule matches {}: the default applies", pct(*n))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(src: &str, at_text: &str) -> RuleTraffic {
        let compiled = canary_compiler::compile(src, "t").unwrap();
        let policy = Policy::new(&compiled.config).unwrap();
        at(&compiled, &policy, src.find(at_text).unwrap()).expect("a rule there").expect("simulated")
    }

    /// Binomial bound: `count` out of SAMPLES is within 5σ of `p`.
    fn near(count: u64, p: f64) -> bool {
        let n = SAMPLES as f64;
        (count as f64 - n * p).abs() <= 5.0 * (n * p * (1.0 - p)).sqrt()
    }

    #[test]
    fn a_split_shows_its_shares_and_the_remainder() {
        let src = "service frontend {\n  cookie user=tester -> v2\n  android: 30% v2, 10% v3\n  default v1\n}\n";
        let t = traffic(src, "android");
        assert_eq!(t.service, "frontend");
        assert!(t.example.starts_with("--header 'user-agent: Mozilla/5.0 (Linux; Android"), "{}", t.example);
        assert!(t.elsewhere.is_empty(), "{t:?}");
        assert!(near(t.here["v2"], 0.3) && near(t.here["v3"], 0.1) && near(t.here["v1"], 0.6), "{t:?}");
        let text = describe(&t, Some("v1"));
        assert!(text.contains("this rule decides 100.0%: `v1` (the default) "), "{text}");
    }

    #[test]
    fn a_shadowed_rule_shows_who_decides_instead() {
        let src = "cookie user=tester -> v2\ncookie user=tester -> v3; default v1\n";
        let t = traffic(src, "-> v3");
        assert!(t.here.is_empty());
        assert_eq!(t.elsewhere, BTreeMap::from([(Some(1), SAMPLES)]));
        assert!(describe(&t, Some("v1")).contains("line 1 decides 100.0% first"));
        assert_eq!(t.example, "--cookie 'user=tester'");
    }

    #[test]
    fn rules_of_later_services_and_sticky_splits() {
        let src = "android -> v9\nservice a {\n  default v1\n}\nservice b {\n  50% v2 by cookie user\n}\n";
        let t = traffic(src, "50%");
        assert_eq!(t.service, "b");
        assert!(near(t.here["v2"], 0.5) && near(t.here["none"], 0.5), "{t:?}");
        let top = traffic(src, "android");
        assert_eq!((top.service.as_str(), top.here.get("v9")), ("*", Some(&SAMPLES)));
        let compiled = canary_compiler::compile(src, "t").unwrap();
        let policy = Policy::new(&compiled.config).unwrap();
        assert!(at(&compiled, &policy, src.find("default").unwrap()).is_none(), "a default is not a rule");
    }
}
