//! The one edit a rollout makes to a policy: the canary's percentage in one split rule, spliced in at the
//! byte span of that percentage token (from the dsl's AST), so the operator's layout and comments stay byte
//! for byte and `git diff` shows exactly one changed token per step.

use canary_dsl::ast::{Span, Stmt, StmtKind};
use canary_dsl::LineIndex;

/// Which split a plan steps: the rule on `line`, inside `service NAME { … }`, and its `canary` subset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub line: usize,
    pub service: String,
    pub canary: String,
}

/// The split as found in the current policy text.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// The service's `default` subset: the baseline the canary is judged against.
    pub baseline: String,
    pub canary: String,
    /// Every share of the split, in order: subset and basis points (1 = 0.01 %).
    pub shares: Vec<(String, u32)>,
    /// The canary's `N%` token.
    pub percent_span: Span,
    /// Whether the split has `by cookie|header NAME`.
    pub sticky: bool,
    /// Where the rule starts (1-based line and column).
    pub line: usize,
    pub col: usize,
}

impl Site {
    /// The canary's share now, in basis points.
    pub fn canary_basis_points(&self) -> u32 {
        self.shares.iter().find(|(s, _)| *s == self.canary).map_or(0, |(_, bp)| *bp)
    }

    /// The other shares' sum, in basis points: what the canary's share must leave room for.
    pub fn others_basis_points(&self) -> u32 {
        self.shares.iter().filter(|(s, _)| *s != self.canary).map(|(_, bp)| bp).sum()
    }

    /// The warning for a split without `by`: each request is drawn anew, so a user sees both versions.
    pub fn sticky_warning(&self, file: &str) -> Option<String> {
        (!self.sticky).then(|| {
            format!(
                "{file}:{}:{}: warning: users will flip between versions on every request; make it sticky with \
                 `by cookie NAME`",
                self.line, self.col
            )
        })
    }
}

/// Why a target cannot be found, by the plan field it concerns (the plan reports it at that field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteError {
    /// The policy text does not compile (the rendered diagnostics).
    Policy(String),
    Rule(String),
    Service(String),
    Canary(String),
}

impl SiteError {
    pub fn message(&self) -> &str {
        match self {
            SiteError::Policy(m) | SiteError::Rule(m) | SiteError::Service(m) | SiteError::Canary(m) => m,
        }
    }
}

/// Finds the split `line` of `service`. `canary`: the subset to step, or `None` for the split's only subset.
pub fn locate(text: &str, file: &str, line: usize, service: &str, canary: Option<&str>) -> Result<Site, SiteError> {
    let (policy, _) = canary_dsl::parse_and_check(text)
        .map_err(|diags| SiteError::Policy(canary_dsl::render(&diags, text, file, false)))?;
    let exists = policy.stmts.iter().any(|s| matches!(&s.kind, StmtKind::Service(b) if b.name.text == service));
    if !exists {
        return Err(SiteError::Service(format!("the policy has no `service {service} {{ … }}` block")));
    }
    let index = LineIndex::new(text);
    let line_of = |span: Span| index.line_col(span.start).line;
    let mut split_lines = Vec::new();
    for stmt in &policy.stmts {
        match &stmt.kind {
            StmtKind::Service(block) => {
                for inner in &block.stmts {
                    let on_line = line_of(inner.span) == line;
                    if let StmtKind::Split { .. } = inner.kind {
                        if block.name.text == service {
                            split_lines.push(line_of(inner.span));
                        }
                    }
                    if !on_line {
                        continue;
                    }
                    if block.name.text != service {
                        return Err(SiteError::Rule(format!(
                            "line {line} is a rule of service `{}`, not of `{service}`",
                            block.name.text
                        )));
                    }
                    return site(text, &index, inner, &block.stmts, canary, service, line);
                }
            }
            _ if line_of(stmt.span) == line => {
                return Err(SiteError::Rule(format!(
                    "line {line} is a top-level rule, which applies to every service: step a split inside \
                     `service {service} {{ … }}`"
                )))
            }
            _ => {}
        }
    }
    let known = match split_lines.as_slice() {
        [] => format!("service `{service}` has no split rule"),
        lines => format!(
            "the splits of `{service}` are on line(s) {}",
            lines.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    Err(SiteError::Rule(format!("no rule starts on line {line} ({known})")))
}

fn site(
    text: &str,
    index: &LineIndex,
    stmt: &Stmt,
    siblings: &[Stmt],
    canary: Option<&str>,
    service: &str,
    line: usize,
) -> Result<Site, SiteError> {
    let StmtKind::Split { split, .. } = &stmt.kind else {
        let excerpt = text.get(stmt.span.start..stmt.span.end).unwrap_or("").trim();
        return Err(SiteError::Rule(format!("line {line} is `{excerpt}`, not a split (`[COND:] N% SUBSET`)")));
    };
    let baseline = siblings.iter().find_map(|s| match &s.kind {
        StmtKind::Default { subset } => Some(subset.text.clone()),
        _ => None,
    });
    let Some(baseline) = baseline else {
        return Err(SiteError::Service(format!(
            "service `{service}` has no `default SUBSET`: the baseline the canary is judged against is the default"
        )));
    };
    let subsets: Vec<&str> = split.shares.iter().map(|s| s.subset.text.as_str()).collect();
    let chosen = match (canary, subsets.as_slice()) {
        (Some(c), _) if subsets.contains(&c) => c,
        (Some(c), _) => {
            let hint = canary_dsl::closest(c, subsets.iter().copied())
                .map_or(String::new(), |n| format!("; did you mean `{n}`?"));
            return Err(SiteError::Canary(format!(
                "the split on line {line} has no subset `{c}` (it splits to {}){hint}",
                subsets.join(", ")
            )));
        }
        (None, [only]) => only,
        (None, _) => {
            return Err(SiteError::Canary(format!(
                "the split on line {line} has several subsets ({}): say which one is the canary with `canary: NAME`",
                subsets.join(", ")
            )))
        }
    };
    if chosen == baseline {
        return Err(SiteError::Canary(format!(
            "`{chosen}` is the service's default (the baseline): the canary must be another subset"
        )));
    }
    let share = split.shares.iter().find(|s| s.subset.text == chosen);
    let Some(share) = share else {
        return Err(SiteError::Canary(format!("the split on line {line} has no subset `{chosen}`")));
    };
    let at = index.line_col(stmt.span.start);
    Ok(Site {
        baseline,
        canary: chosen.to_string(),
        shares: split.shares.iter().map(|s| (s.subset.text.clone(), s.basis_points)).collect(),
        percent_span: share.percent_span,
        sticky: split.by.is_some(),
        line: at.line,
        col: at.col,
    })
}

/// `text` with the target's canary share set to `basis_points` (1 = 0.01 %), written as the language
/// writes percentages (`5%`, `0.5%`, `12.25%`); nothing else changes. Refused when the split's shares
/// would then add up to more than 100 %.
pub fn set_canary(text: &str, file: &str, target: &Target, basis_points: u32) -> Result<String, String> {
    let site = locate(text, file, target.line, &target.service, Some(&target.canary)).map_err(|e| match e {
        SiteError::Policy(m) => m,
        other => format!("{file}:{}: {}", target.line, other.message()),
    })?;
    let total = site.others_basis_points().saturating_add(basis_points);
    if total > 10_000 {
        return Err(format!(
            "{file}:{}:{}: setting `{}` to {} would make the split add up to {} (over 100%)",
            site.line,
            site.col,
            site.canary,
            canary_dsl::percent(basis_points),
            canary_dsl::percent(total)
        ));
    }
    let (start, end) = (site.percent_span.start, site.percent_span.end);
    let (Some(before), Some(after)) = (text.get(..start), text.get(end..)) else {
        return Err(format!("{file}: the split's percentage is not where the parser put it"));
    };
    Ok(format!("{before}{}{after}", canary_dsl::percent(basis_points)))
}

/// Percent (as in the plan, e.g. 12.25) → basis points, or why it is not a share the language can write.
pub fn basis_points(percent: f64) -> Result<u32, String> {
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!("{percent}% is not between 0% and 100%"));
    }
    let bp = (percent * 100.0).round();
    if (bp - percent * 100.0).abs() > 1e-6 {
        return Err(format!("{percent}% has more than two decimals (the language splits in steps of 0.01%)"));
    }
    Ok(bp as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "# forecast rollout\nservice forecast {\n  source version=v2 -> v2\n\n  # the canary\n  chrome: 5% v2, 10% v3 by cookie user   # keep\n  default v1\n}\n";

    fn target(canary: &str) -> Target {
        Target { line: 6, service: "forecast".into(), canary: canary.into() }
    }

    #[test]
    fn only_the_percentage_token_changes() {
        let out = set_canary(POLICY, "p.canary", &target("v2"), 2000).unwrap();
        assert_eq!(out, POLICY.replace("5% v2", "20% v2"));
        let out = set_canary(POLICY, "p.canary", &target("v3"), 50).unwrap();
        assert_eq!(out, POLICY.replace("10% v3", "0.5% v3"));
        let out = set_canary(POLICY, "p.canary", &target("v2"), 1225).unwrap();
        assert_eq!(out, POLICY.replace("5% v2", "12.25% v2"));
    }

    #[test]
    fn zero_and_hundred() {
        let one = "service forecast {\n  50% v2   # half\n  default v1\n}\n";
        let t = Target { line: 2, service: "forecast".into(), canary: "v2".into() };
        assert_eq!(set_canary(one, "p", &t, 0).unwrap(), one.replace("50%", "0%"));
        assert_eq!(set_canary(one, "p", &t, 10_000).unwrap(), one.replace("50%", "100%"));
    }

    #[test]
    fn refuses_over_a_hundred_with_the_other_shares() {
        let e = set_canary(POLICY, "p.canary", &target("v2"), 9500).unwrap_err();
        assert!(e.contains("p.canary:6:3:") && e.contains("105%"), "{e}");
        assert!(set_canary(POLICY, "p.canary", &target("v2"), 9000).is_ok());
    }

    #[test]
    fn locates_the_split_and_its_baseline() {
        let site = locate(POLICY, "p", 6, "forecast", Some("v3")).unwrap();
        assert_eq!((site.baseline.as_str(), site.canary.as_str()), ("v1", "v3"));
        assert_eq!(site.shares, vec![("v2".to_string(), 500), ("v3".to_string(), 1000)]);
        assert!(site.sticky && site.sticky_warning("p").is_none());
        assert_eq!(site.others_basis_points(), 500);
    }

    #[test]
    fn names_what_is_wrong_with_the_target() {
        assert!(
            matches!(locate(POLICY, "p", 3, "forecast", None), Err(SiteError::Rule(m)) if m.contains("not a split"))
        );
        assert!(matches!(locate(POLICY, "p", 4, "forecast", None), Err(SiteError::Rule(m)) if m.contains("line(s) 6")));
        assert!(matches!(locate(POLICY, "p", 6, "forecast", None), Err(SiteError::Canary(m)) if m.contains("several")));
        assert!(
            matches!(locate(POLICY, "p", 6, "forecast", Some("v4")), Err(SiteError::Canary(m)) if m.contains("v2, v3"))
        );
        assert!(matches!(locate(POLICY, "p", 6, "frontend", None), Err(SiteError::Service(_))));
        assert!(matches!(locate("service x {", "p", 1, "x", None), Err(SiteError::Policy(m)) if m.starts_with("p:1:")));
        let top = "10% v2\nservice x {\n  default v1\n}\n";
        assert!(matches!(locate(top, "p", 1, "x", None), Err(SiteError::Rule(m)) if m.contains("top-level")));
    }

    #[test]
    fn a_split_without_by_is_warned_about() {
        let one = "service forecast {\n  50% v2\n  default v1\n}\n";
        let site = locate(one, "f.canary", 2, "forecast", None).unwrap();
        assert_eq!(
            site.sticky_warning("f.canary").unwrap(),
            "f.canary:2:3: warning: users will flip between versions on every request; make it sticky with `by cookie NAME`"
        );
    }

    #[test]
    fn plan_percentages_become_basis_points() {
        assert_eq!(basis_points(12.25), Ok(1225));
        assert_eq!(basis_points(0.5), Ok(50));
        assert_eq!(basis_points(100.0), Ok(10_000));
        assert!(basis_points(1.234).is_err());
        assert!(basis_points(101.0).is_err());
        assert!(basis_points(f64::NAN).is_err());
    }
}
