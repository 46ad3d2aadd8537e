//! How a decision shows outside the proxy: the name of the counter that counts it and the filter-state value an
//! access log prints. The filter emits both; `canaryc manifest` writes the Envoy `stats_tags` and the access-log
//! format that read them. Both sides take the spelling from here, so they cannot drift apart.
//!
//! # Counter names
//! Envoy's Prometheus output turns a stat name into labels only through tag extraction: a regex whose first
//! capture is cut out of the name and whose second becomes the tag's value. Counters are therefore named in the
//! encoding Istio's bootstrap already extracts for its `extraStatTags` (`(TAG=\.=(.*?);\.;)`):
//!
//! ```text
//! canary.service=.=frontend;.;rule=.=5;.;subset=.=v2;.;decisions_total
//!   └─ with the three tags cut out: canary.decisions_total → Prometheus canary_decisions_total{service,rule,subset}
//! ```
//! Envoy registers it under the `wasmcustom` namespace, which its Prometheus output strips without adding
//! `envoy_`. The encoding is unambiguous for every legal name: service and subset names hold only
//! `[A-Za-z0-9_.-]`, so neither `=` nor `;` can occur inside a value, and a value always ends at the first `;.;`.
//!
//! | label | value |
//! |---|---|
//! | `service` | the served service's name; `*` for requests whose host names no declared service (only top-level rules apply: `*` is no legal name, and one label for all unknown hosts keeps clients from creating stats) |
//! | `rule` | the policy line of the deciding rule; `default` when no rule decided and the default applied; `none` when nothing decided |
//! | `subset` | the decided subset; empty (Prometheus: label absent) when nothing was decided — the subset header was removed, or no tcp cluster was set |

use crate::{Decision, Policy, ServiceId};

/// Tag names, in the order they appear in a counter name.
pub const TAGS: [&str; 3] = ["service", "rule", "subset"];
/// The counter as Prometheus shows it once the tags are extracted.
pub const PROMETHEUS_NAME: &str = "canary_decisions_total";
/// Envoy's stat namespace for wasm-defined metrics: the full stat name is `wasmcustom.` + the counter name.
pub const WASM_NAMESPACE: &str = "wasmcustom";
/// The `rule` label when no rule decided and the default subset applied.
pub const RULE_DEFAULT: &str = "default";
/// The `rule` label when nothing was decided.
pub const RULE_NONE: &str = "none";
/// The property the filter sets (`proxy_set_property`) for access logs; Envoy stores it as the filter-state
/// object [`FILTER_STATE_KEY`].
pub const FILTER_STATE_PROPERTY: &str = "canary_decision";
/// The filter-state key under which Envoy keeps [`FILTER_STATE_PROPERTY`] (it prefixes wasm properties with
/// `wasm.`); an access log reads it as `%FILTER_STATE(wasm.canary_decision:PLAIN)%`.
pub const FILTER_STATE_KEY: &str = "wasm.canary_decision";

/// The Envoy `stats_tags` regex that extracts `tag` (Istio's form for `extraStatTags`, so both agree).
pub fn tag_regex(tag: &str) -> String {
    format!(r"({tag}=\.=(.*?);\.;)")
}

/// The labels of one decision for one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels<'a> {
    pub service: &'a str,
    pub rule: RuleLabel,
    /// Empty when nothing was decided.
    pub subset: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleLabel {
    Line(u32),
    Default,
    None,
}

impl<'a> Labels<'a> {
    pub fn of(policy: &'a Policy, service: ServiceId, decision: Decision) -> Self {
        let rule = match (decision.rule, decision.subset) {
            (Some(rule), _) => RuleLabel::Line(policy.rule_line(rule)),
            (None, Some(_)) => RuleLabel::Default,
            (None, None) => RuleLabel::None,
        };
        // The fallback's internal name is `*` already; spelled out here because the label promises it.
        let service = if service == policy.fallback() { "*" } else { policy.service_name(service) };
        Labels { service, rule, subset: decision.subset.map_or("", |s| policy.subset_name(s)) }
    }

    /// The counter name the filter defines (Envoy prefixes it with [`WASM_NAMESPACE`]).
    pub fn counter_name(&self) -> String {
        let mut name = String::from("canary.");
        self.each(|tag, value| {
            name.push_str(tag);
            name.push_str("=.=");
            value(&mut name);
            name.push_str(";.;");
        });
        name.push_str("decisions_total");
        name
    }

    /// The filter-state value an access log prints: `service=frontend rule=5 subset=v2`.
    pub fn log_value(&self) -> String {
        let mut out = String::new();
        self.each(|tag, value| {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(tag);
            out.push('=');
            value(&mut out);
        });
        out
    }

    /// Calls `f` with each tag and a writer of its value, in [`TAGS`] order.
    fn each(&self, mut f: impl FnMut(&str, &dyn Fn(&mut String))) {
        f(TAGS[0], &|out| out.push_str(self.service));
        f(TAGS[1], &|out| match self.rule {
            RuleLabel::Line(line) => push_u32(out, line),
            RuleLabel::Default => out.push_str(RULE_DEFAULT),
            RuleLabel::None => out.push_str(RULE_NONE),
        });
        f(TAGS[2], &|out| out.push_str(self.subset));
    }
}

/// Decimal digits without `fmt` (which would pull formatting machinery into the filter's per-outcome path).
fn push_u32(out: &mut String, n: u32) {
    if n >= 10 {
        push_u32(out, n / 10); // at most 9 levels deep
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RuleId, SubsetId};
    use proptest::prelude::*;

    fn policy() -> Policy {
        Policy::from_json(
            br#"{"version":1,"global":{"rules":[{"line":1,"when":{"header":{"name":"x","test":"present"}},"then":{"route":"v3"}}]},
               "services":[{"name":"frontend","rules":[{"line":12,"then":{"split":{"to":[{"subset":"v2","weight":5000}]}}}],"default":"v1"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn names_and_log_values() {
        let p = policy();
        let fe = p.service("frontend").unwrap();
        let sub = |n: &str| Some(SubsetId(p.subsets().iter().position(|s| s == n).unwrap() as u32));
        let rule =
            |line: u32| Some(RuleId((0..p.rule_count() as u32).find(|&r| p.rule_line(RuleId(r)) == line).unwrap()));
        let l = |service, rule, subset| Labels::of(&p, service, Decision { rule, subset });
        let cases = [
            (
                l(fe, rule(12), sub("v2")),
                "service=.=frontend;.;rule=.=12;.;subset=.=v2;.;",
                "service=frontend rule=12 subset=v2",
            ),
            (
                l(fe, None, sub("v1")),
                "service=.=frontend;.;rule=.=default;.;subset=.=v1;.;",
                "service=frontend rule=default subset=v1",
            ),
            (
                l(p.fallback(), rule(1), sub("v3")),
                "service=.=*;.;rule=.=1;.;subset=.=v3;.;",
                "service=* rule=1 subset=v3",
            ),
            (l(p.fallback(), None, None), "service=.=*;.;rule=.=none;.;subset=.=;.;", "service=* rule=none subset="),
            (
                l(fe, rule(12), None),
                "service=.=frontend;.;rule=.=12;.;subset=.=;.;",
                "service=frontend rule=12 subset=",
            ),
        ];
        for (labels, tags, log) in cases {
            assert_eq!(labels.counter_name(), format!("canary.{tags}decisions_total"));
            assert_eq!(labels.log_value(), log);
        }
    }

    #[test]
    fn digits() {
        for n in [0, 7, 10, 4_294_967_295] {
            let mut s = String::new();
            push_u32(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    /// Envoy's regex tag extraction (`TagExtractorStdRegexImpl`): search the full name, cut capture 1 out, take
    /// capture 2 as the value. Every extractor runs over the original name.
    fn extract(name: &str) -> (String, Vec<(String, String)>) {
        let mut cut = vec![false; name.len()];
        let mut tags = Vec::new();
        for tag in TAGS {
            let re = regex_lite::Regex::new(&tag_regex(tag)).unwrap();
            if let Some(c) = re.captures(name) {
                let whole = c.get(1).unwrap();
                cut[whole.start()..whole.end()].iter_mut().for_each(|b| *b = true);
                tags.push((tag.to_string(), c.get(2).unwrap().as_str().to_string()));
            }
        }
        let rest = name.char_indices().filter(|(i, _)| !cut[*i]).map(|(_, c)| c).collect();
        (rest, tags)
    }

    proptest! {
        /// Any legal service and subset name (what `valid_name` accepts) comes back out of the counter name
        /// exactly, and what remains is the one metric name.
        #[test]
        fn tag_extraction_recovers_any_legal_name(service in "[A-Za-z0-9_.-]{1,40}", subset in "[A-Za-z0-9_.-]{0,40}",
                                                  line in proptest::option::of(0u32..100_000)) {
            let rule = line.map_or(RuleLabel::Default, RuleLabel::Line);
            let labels = Labels { service: &service, rule, subset: &subset };
            let full = format!("{WASM_NAMESPACE}.{}", labels.counter_name());
            let (rest, tags) = extract(&full);
            prop_assert_eq!(rest, format!("{WASM_NAMESPACE}.canary.decisions_total"));
            let rule = line.map_or(RULE_DEFAULT.to_string(), |l| l.to_string());
            let want = [("service", service.clone()), ("rule", rule), ("subset", subset.clone())];
            prop_assert_eq!(tags, want.map(|(t, v)| (t.to_string(), v)).to_vec());
        }
    }
}
