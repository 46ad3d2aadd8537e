//! The native backend's half that knows the policy: for one service, its rules as an ordered list of native
//! routes, or the reasons it has none. `manifest::envoy_routes` only writes these routes down as Envoy
//! configuration.
//!
//! A native route list decides like the evaluator by construction: the rules keep their order (global rules
//! first, as the evaluator tries them), each rule's condition becomes an OR of native matchers that agrees with
//! it on every request ([`cond`]), and a split becomes weighted clusters whose intervals are the evaluator's
//! buckets — the split's subsets from 0 in the order written, the default last, picked by Envoy's
//! `xxh64(key) % 10000` for a sticky split. Whatever has no exact form is refused with the rule's position
//! and the reason; nothing is approximated. `tests/tests/envoy_native.rs` checks the claim in real Envoy.

pub mod cond;
pub mod istio;
pub mod re2;
pub mod tables;
pub mod version;

use canary_dsl::ast::Span;
use canary_eval::config::{Action, Config, Protocol, Rule, StickyKey};
use canary_eval::BUCKETS;

pub use cond::{Atom, Dnf, HeaderTest};
pub use tables::{Layout, Segment, TableForm};
pub use version::{EnvoyVersion, Feature};

use canary_compiler::RuleSpans;

/// The proxy the routes are for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The oldest Envoy the routes must load in; newer features are refused below it.
    pub envoy: EnvoyVersion,
    /// The proxy's own workload labels (`--node-label`), which make `source` conditions constants.
    pub labels: Option<&'a [(String, String)]>,
    /// Who writes the routes down: Envoy configuration, or Istio resources (which Istio then translates).
    pub dialect: Dialect,
    /// How runs of table rules are written for Envoy (`--native-tables`): lists, or matcher trees ([`tables`]).
    pub tables: TableForm,
}

/// The configuration language the native routes are written in. Istio's VirtualService says less than
/// Envoy's `RouteConfiguration` (no cookie matcher, no sticky weighted clusters, no negated `sourceLabels`),
/// but says `source` itself: `sourceLabels` keeps a route only in the proxies whose labels match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Envoy,
    Istio,
}

impl Target<'_> {
    pub const fn envoy(envoy: EnvoyVersion) -> Target<'static> {
        Target { envoy, labels: None, dialect: Dialect::Envoy, tables: TableForm::DEFAULT }
    }

    /// Istio resources for the mesh's proxies (`envoy`: the Envoy its Istio release ships).
    pub const fn istio(envoy: EnvoyVersion) -> Target<'static> {
        Target { envoy, labels: None, dialect: Dialect::Istio, tables: TableForm::List }
    }

    /// `Ok` when the target Envoy has `feature`, else the reason to leave the rule to the filter.
    pub(crate) fn require(&self, feature: Feature) -> Result<(), String> {
        if self.envoy >= feature.since() {
            return Ok(());
        }
        Err(format!("{} needs Envoy {}; the target is Envoy {}", feature.name(), feature.since(), self.envoy))
    }
}

/// One service's policy as native routes, in evaluation order.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeService {
    pub name: String,
    pub protocol: Protocol,
    pub routes: Vec<NativeRoute>,
    /// The subset for requests no route takes: the service's default, else the top-level one; `None` leaves
    /// them to the proxy's own default route, as the filter does when it makes no decision.
    pub default: Option<String>,
    /// How Envoy gets `routes`: one list, or segments with matcher trees for big tables ([`tables::layout`]).
    pub layout: Layout,
}

/// One rule: any of `matches` (an AND of matchers each) selects `action`. TCP rules have no matchers left
/// (their `source` conditions are constants by then): one alternative, empty.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeRoute {
    pub line: u32,
    /// The rule in the source (its start keys the rule's `with PROFILE` in the compiler's `RouteExtras`).
    pub span: Span,
    pub matches: Dnf,
    pub action: NativeAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NativeAction {
    Subset(String),
    /// Weighted subsets in interval order, summing to [`BUCKETS`], no zero weights. `None` is "the service
    /// default" (the split's remainder when the service has none).
    Split {
        weights: Vec<(Option<String>, u32)>,
        by: Option<StickyKey>,
    },
}

/// Why a rule has no exact native form.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub line: u32,
    /// The rule in the source (empty when the config came without spans).
    pub span: Span,
    pub reason: String,
}

/// A service's rules in the evaluator's order — top-level rules first (HTTP only), then the service's own — each
/// with its span, and the default it falls back to (its own, else the top-level one). Every backend that lowers a
/// service's rule list starts here, so they cannot disagree on order.
pub fn service_rules<'c>(
    config: &'c Config,
    spans: &RuleSpans,
    service: &str,
    protocol: Protocol,
) -> (Vec<(&'c Rule, Span)>, Option<String>) {
    let index = config.services.iter().position(|s| s.name == service);
    let own = index.and_then(|i| config.services.get(i)).map(|s| &s.rules);
    let mut rules: Vec<(&Rule, Span)> = Vec::new();
    if protocol == Protocol::Http {
        rules.extend(config.global.rules.iter().enumerate().map(|(i, r)| (r, spans.rule(None, i))));
    }
    if let Some(set) = own {
        rules.extend(set.rules.iter().enumerate().map(|(i, r)| (r, spans.rule(index, i))));
    }
    let default = own.and_then(|s| s.default.clone()).or_else(|| config.global.default.clone());
    (rules, default)
}

/// Lowers `service` (declared or not: an undeclared one gets the top-level rules) for `target`, or returns
/// every rule that has no exact native form.
pub fn lower_service(
    config: &Config,
    spans: &RuleSpans,
    service: &str,
    protocol: Protocol,
    target: &Target<'_>,
) -> Result<NativeService, Vec<Refusal>> {
    let (rules, default) = service_rules(config, spans, service, protocol);

    let mut routes = Vec::new();
    let mut refusals = Vec::new();
    let mut refuse = |rule: &Rule, span: Span, reason: String| {
        refusals.push(Refusal { line: rule.line, span, reason });
    };
    if protocol == Protocol::Http {
        if let (Err(reason), Some((rule, span))) = (target.require(Feature::HeaderStringMatch), rules.first()) {
            refuse(rule, *span, reason);
        }
    }
    for (rule, span) in &rules {
        let matches = match rule.when.as_ref().map(|c| cond::lower(c, false, target)) {
            None => vec![vec![]],
            Some(Ok(dnf)) => dnf,
            Some(Err(reason)) => {
                refuse(rule, *span, reason);
                continue;
            }
        };
        let matches = match target.dialect {
            Dialect::Envoy => matches,
            Dialect::Istio => {
                let matches: Dnf = matches
                    .into_iter()
                    .filter(|and| !istio::contradictory(and))
                    .map(istio::join_inverted_contains)
                    .collect();
                if let Some(reason) = matches.iter().find_map(|and| istio::conflict(and)) {
                    refuse(rule, *span, reason);
                    continue;
                }
                matches
            }
        };
        if protocol == Protocol::Tcp && matches.iter().flatten().any(|a| !matches!(a, Atom::Source { .. })) {
            refuse(rule, *span, "a tcp route has no request to match: only `source` selects".into());
            continue;
        }
        let action = match &rule.then {
            Action::Route(subset) => NativeAction::Subset(subset.clone()),
            Action::Split(split) => {
                if split.by.is_some() && target.dialect == Dialect::Istio {
                    refuse(
                        rule,
                        *span,
                        "a VirtualService draws its weights per request: a sticky split needs the filter (a \
                         DestinationRule's consistentHash picks an endpoint within a subset, not the subset)"
                            .into(),
                    );
                    continue;
                }
                let needs = match (protocol, &split.by) {
                    (Protocol::Tcp, _) => Some(Feature::TcpWeightedClusters),
                    (Protocol::Http, Some(_)) => Some(Feature::WeightedHashPolicy),
                    (Protocol::Http, None) => None,
                };
                if let Some(Err(reason)) = needs.map(|f| target.require(f)) {
                    refuse(rule, *span, reason);
                    continue;
                }
                let mut weights: Vec<(Option<String>, u32)> =
                    split.to.iter().map(|s| (Some(s.subset.clone()), s.weight)).collect();
                let rest = BUCKETS.saturating_sub(weights.iter().map(|w| w.1).sum());
                weights.push((default.clone(), rest));
                let weights = tidy(weights, split.by.is_some());
                match weights.as_slice() {
                    [(Some(only), _)] => NativeAction::Subset(only.clone()),
                    _ => NativeAction::Split { weights, by: split.by.clone() },
                }
            }
        };
        if !matches.is_empty() {
            routes.push(NativeRoute { line: rule.line, span: *span, matches, action });
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    // A TCP connection has no request to match: the first route that holds on this proxy decides (only
    // `source` selects, and Istio keeps a `sourceLabels` route only in the proxies it holds for).
    if let Some(always) = routes.iter().position(|r| r.matches.iter().any(Vec::is_empty)) {
        if protocol == Protocol::Tcp {
            routes.truncate(always + 1);
        }
    }
    let layout = match protocol {
        Protocol::Http => tables::layout(&routes, target),
        Protocol::Tcp => Layout::list(&routes),
    };
    Ok(NativeService { name: service.to_string(), protocol, routes, default, layout })
}

/// Drops zero weights and merges entries for the same subset: neighbours always (the same interval), any two
/// for a split drawn per request (where only the shares matter).
fn tidy(weights: Vec<(Option<String>, u32)>, sticky: bool) -> Vec<(Option<String>, u32)> {
    let mut out: Vec<(Option<String>, u32)> = Vec::new();
    for (subset, weight) in weights.into_iter().filter(|w| w.1 > 0) {
        let same =
            if sticky { out.last_mut().filter(|l| l.0 == subset) } else { out.iter_mut().find(|l| l.0 == subset) };
        match same {
            Some(entry) => entry.1 += weight,
            None => out.push((subset, weight)),
        }
    }
    out
}

/// The refusals as diagnostics (`FILE:LINE:COL: error: …` once rendered), one per rule.
pub fn diagnostics(service: &str, refusals: &[Refusal], backend: &str) -> Vec<canary_dsl::Diagnostic> {
    refusals
        .iter()
        .map(|r| {
            canary_dsl::Diagnostic::error(
                r.span,
                format!("no exact {backend} form for service `{service}`: {}", r.reason),
            )
            .with_label("this rule")
            .with_hint("use --backend auto (the filter takes such services) or --backend filter")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(src: &str) -> canary_compiler::Compiled {
        canary_compiler::compile(src, "t.canary")
            .unwrap_or_else(|d| panic!("{}", canary_compiler::render(&d, src, "t.canary", false)))
    }

    fn lower(src: &str, service: &str, target: &Target<'_>) -> Result<NativeService, Vec<Refusal>> {
        let c = compiled(src);
        let protocol = c.config.services.iter().find(|s| s.name == service).map_or(Protocol::Http, |s| s.protocol);
        lower_service(&c.config, &c.spans, service, protocol, target)
    }

    #[test]
    fn a_split_is_its_subsets_in_order_then_the_default() {
        let src = "service f {\n  20% v2, 10% v3 by cookie u\n  default v1\n}\n";
        let n = lower(src, "f", &Target::envoy(EnvoyVersion::LATEST)).unwrap();
        assert_eq!(
            n.routes[0].action,
            NativeAction::Split {
                weights: vec![(Some("v2".into()), 2000), (Some("v3".into()), 1000), (Some("v1".into()), 7000)],
                by: Some(StickyKey::Cookie("u".into()))
            }
        );
        let full =
            lower("service f {\n  100% v2\n  default v1\n}\n", "f", &Target::envoy(EnvoyVersion::LATEST)).unwrap();
        assert_eq!(full.routes[0].action, NativeAction::Subset("v2".into()));
    }

    #[test]
    fn global_rules_come_first_and_refusals_point_at_the_rule() {
        let src = "header x present -> v3\nservice f {\n  query a=b -> v2\n  default v1\n}\n";
        let err = lower(src, "f", &Target::envoy(EnvoyVersion::LATEST)).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!((err[0].line, err[0].span.start), (3, src.find("query").unwrap()));
        let ok = lower(src, "other", &Target::envoy(EnvoyVersion::LATEST)).unwrap();
        assert_eq!(ok.routes.len(), 1);
        assert_eq!(ok.routes[0].line, 1);
    }

    #[test]
    fn older_envoys_get_the_filter_for_newer_features() {
        let src = "service f {\n  cookie user=tester -> v2\n  50% v2 by header x-user\n  default v1\n}\n";
        assert!(lower(src, "f", &Target::envoy(EnvoyVersion::LATEST)).is_ok());
        let err = lower(src, "f", &Target::envoy(EnvoyVersion::new(1, 28))).unwrap_err();
        assert_eq!(err.len(), 2);
        assert!(err[0].reason.contains("cookie matcher") && err[0].reason.contains("1.37"), "{err:?}");
        assert!(err[1].reason.contains("use_hash_policy"), "{err:?}");
    }

    #[test]
    fn tcp_lowers_once_the_proxy_is_known() {
        let src = "service t tcp {\n  source version=v2 -> v2\n  20% v2\n  default v1\n}\n";
        assert!(lower(src, "t", &Target::envoy(EnvoyVersion::LATEST)).is_err());
        let labels = [("version".to_string(), "v1".to_string())];
        let t = Target { labels: Some(&labels), ..Target::envoy(EnvoyVersion::LATEST) };
        let n = lower(src, "t", &t).unwrap();
        assert_eq!(n.routes.len(), 1);
        assert_eq!(
            n.routes[0].action,
            NativeAction::Split { weights: vec![(Some("v2".into()), 2000), (Some("v1".into()), 8000)], by: None }
        );
    }

    #[test]
    fn weights_are_tidied() {
        let w = |v: &[(&str, u32)]| v.iter().map(|(s, w)| (Some(s.to_string()), *w)).collect::<Vec<_>>();
        assert_eq!(tidy(w(&[("v1", 10), ("v2", 0), ("v1", 5), ("v2", 3)]), true), w(&[("v1", 15), ("v2", 3)]));
        assert_eq!(tidy(w(&[("v1", 10), ("v2", 5), ("v1", 5)]), true), w(&[("v1", 10), ("v2", 5), ("v1", 5)]));
        assert_eq!(tidy(w(&[("v1", 10), ("v2", 5), ("v1", 5)]), false), w(&[("v1", 15), ("v2", 5)]));
    }
}
