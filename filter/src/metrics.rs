//! Counter names: readable, stable, one per (service, deciding rule, subset). See the crate docs.

use canary_eval::{Decision, Policy, ServiceId};

/// The counter that counts `decision` for `service`.
pub fn counter_name(policy: &Policy, service: ServiceId, decision: Decision) -> String {
    let mut name = String::from("canary.");
    name.push_str(service_label(policy, service));
    match decision.rule {
        Some(rule) => {
            name.push_str(".rule_");
            push_u32(&mut name, policy.rule_line(rule));
        }
        None if decision.subset.is_some() => name.push_str(".default"),
        None => {}
    }
    name.push('.');
    name.push_str(decision.subset.map_or("no_decision", |s| policy.subset_name(s)));
    name
}

/// The service as it appears in a counter name; the global-rules fallback (`*`) reads `_global`.
fn service_label(policy: &Policy, service: ServiceId) -> &str {
    if service == policy.fallback() {
        "_global"
    } else {
        policy.service_name(service)
    }
}

/// Decimal digits without `fmt` (which would pull formatting machinery into the module's hot path).
fn push_u32(out: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[i..].iter().for_each(|&d| out.push(d as char));
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_eval::{RuleId, SubsetId};

    fn policy() -> Policy {
        Policy::from_json(
            br#"{"version":1,"global":{"rules":[{"line":1,"when":{"header":{"name":"x","test":"present"}},"then":{"route":"v3"}}]},
               "services":[{"name":"frontend","rules":[{"line":12,"then":{"split":{"to":[{"subset":"v2","weight":5000}]}}}],"default":"v1"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn names() {
        let p = policy();
        let fe = p.service("frontend").unwrap();
        let sub = |n: &str| SubsetId(p.subsets().iter().position(|s| s == n).unwrap() as u32);
        let rule = |line: u32| RuleId((0..p.rule_count() as u32).find(|&r| p.rule_line(RuleId(r)) == line).unwrap());
        let d = |rule, subset| Decision { rule, subset };
        assert_eq!(counter_name(&p, fe, d(Some(rule(12)), Some(sub("v2")))), "canary.frontend.rule_12.v2");
        assert_eq!(counter_name(&p, fe, d(None, Some(sub("v1")))), "canary.frontend.default.v1");
        assert_eq!(counter_name(&p, p.fallback(), d(Some(rule(1)), Some(sub("v3")))), "canary._global.rule_1.v3");
        assert_eq!(counter_name(&p, p.fallback(), d(None, None)), "canary._global.no_decision");
        assert_eq!(counter_name(&p, fe, d(Some(rule(12)), None)), "canary.frontend.rule_12.no_decision");
    }

    #[test]
    fn digits() {
        for n in [0, 7, 10, 4_294_967_295] {
            let mut s = String::new();
            push_u32(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }
}
