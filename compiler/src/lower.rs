//! Checked AST → [`Config`], the JSON the evaluator loads.
//!
//! Lowering makes the config self-contained: `let` names are inlined (the evaluator knows no names),
//! user-agent families become their header regexes, and values are normalised the way the evaluator
//! compares them (methods uppercase, hosts and header names lowercase). `and`/`or` chains are flattened,
//! so `a and (b and c)` is one `all` of three. Every output order follows the source, which keeps the JSON
//! byte-for-byte reproducible.
//!
//! It expects a policy that passed [`canary_dsl::check`]; should one slip through anyway (an unknown
//! name, a runaway `let` chain), it returns an error instead of panicking or recursing without bound.

use canary_dsl::ast::{self, CondKind, HeaderTest, Span, StickyKind, StmtKind};
use canary_dsl::scope::Scope;
use canary_dsl::{Diagnostic, LineIndex, MAX_CONDITION_DEPTH};
use canary_eval::config::{Action, Cond, Config, Protocol, Rule, RuleSet, Service, Share, Split, StickyKey, Test};
use canary_eval::CONFIG_VERSION;

use crate::families;

type Lowered<T> = Result<T, Diagnostic>;

pub fn lower(policy: &ast::Policy, source: &str) -> Result<(Config, RuleSpans), Vec<Diagnostic>> {
    let global_scope = Scope::new(&policy.stmts, None);
    let lowerer = Lowerer { lines: LineIndex::new(source) };
    let (global, global_spans) = lowerer.rule_set(&policy.stmts, &global_scope).map_err(|d| vec![d])?;
    let mut spans = RuleSpans { global: global_spans, services: Vec::new() };
    let mut services = Vec::new();
    for stmt in &policy.stmts {
        let StmtKind::Service(svc) = &stmt.kind else { continue };
        let scope = Scope::new(&svc.stmts, Some(&global_scope));
        let (rules, rule_spans) = lowerer.rule_set(&svc.stmts, &scope).map_err(|d| vec![d])?;
        spans.services.push(rule_spans);
        services.push(Service {
            name: svc.name.text.clone(),
            protocol: if svc.is_tcp() { Protocol::Tcp } else { Protocol::Http },
            rules,
        });
    }
    Ok((Config { version: CONFIG_VERSION, global, services, settings: Default::default() }, spans))
}

/// Where each compiled rule came from, parallel to the config's rule lists, so a backend that refuses a rule
/// can point at it (`FILE:LINE:COL`) even when several rules share a line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSpans {
    pub global: Vec<Span>,
    /// One list per `config.services` entry.
    pub services: Vec<Vec<Span>>,
}

impl RuleSpans {
    /// The span of rule `index` of `service` (`None`: the top-level rules); an empty span when unknown.
    pub fn rule(&self, service: Option<usize>, index: usize) -> Span {
        let list = match service {
            None => Some(&self.global),
            Some(i) => self.services.get(i),
        };
        list.and_then(|l| l.get(index)).copied().unwrap_or_default()
    }
}

struct Lowerer<'s> {
    lines: LineIndex<'s>,
}

impl Lowerer<'_> {
    /// The rules and default of one scope; `let`s and nested services contribute no rules.
    fn rule_set(&self, stmts: &[ast::Stmt], scope: &Scope<'_>) -> Lowered<(RuleSet, Vec<Span>)> {
        let mut set = RuleSet::default();
        let mut spans = Vec::new();
        for stmt in stmts {
            let (when, then) = match &stmt.kind {
                StmtKind::Default { subset } => {
                    set.default.get_or_insert_with(|| subset.text.clone());
                    continue;
                }
                StmtKind::Let { .. } | StmtKind::Service(_) | StmtKind::Mirror(_) | StmtKind::Settings { .. } => {
                    continue
                }
                StmtKind::Route { cond, subset } => (Some(cond), Action::Route(subset.text.clone())),
                StmtKind::Split { cond, split } => (cond.as_ref(), Action::Split(lower_split(split))),
            };
            let when = when.map(|c| self.cond(c, scope, 0)).transpose()?;
            set.rules.push(Rule { line: self.line(stmt.span), when, then });
            spans.push(stmt.span);
        }
        Ok((set, spans))
    }

    /// 1-based line of the statement's first token: what `canaryc eval --json` reports as the rule.
    fn line(&self, span: ast::Span) -> u32 {
        u32::try_from(self.lines.line_col(span.start).line).unwrap_or(u32::MAX)
    }

    fn cond(&self, cond: &ast::Cond, scope: &Scope<'_>, depth: usize) -> Lowered<Cond> {
        if depth > MAX_CONDITION_DEPTH {
            return Err(Diagnostic::error(cond.span, "this condition nests too deeply once its `let`s are expanded"));
        }
        Ok(match &cond.kind {
            CondKind::Header { name, test } => {
                Cond::Header { name: name.text.to_ascii_lowercase(), test: lower_test(test) }
            }
            CondKind::Cookie { name, value } => Cond::Cookie { name: name.text.clone(), value: value.text.clone() },
            CondKind::Query { name, value } => Cond::Query { name: name.text.clone(), value: value.text.clone() },
            CondKind::Path(prefix) => Cond::PathPrefix(prefix.text.clone()),
            CondKind::Method(method) => Cond::Method(method.text.to_ascii_uppercase()),
            CondKind::Host(host) => Cond::Host(host.text.to_ascii_lowercase()),
            CondKind::Source { label, value } => Cond::Source { label: label.text.clone(), value: value.text.clone() },
            CondKind::Family(family) => families::family(family.name()).ok_or_else(|| {
                Diagnostic::error(cond.span, format!("internal error: no pattern for the `{}` family", family.name()))
            })?,
            CondKind::Ref(name) => match scope.definition(&name.text) {
                Some(def) => self.cond(def.cond, def.scope, depth + 1)?,
                None => return Err(Diagnostic::error(name.span, format!("unknown condition `{}`", name.text))),
            },
            CondKind::And(operands) => Cond::All(self.flat(operands, scope, depth, |c| match c {
                Cond::All(inner) => Ok(inner),
                other => Err(other),
            })?),
            CondKind::Or(operands) => Cond::Any(self.flat(operands, scope, depth, |c| match c {
                Cond::Any(inner) => Ok(inner),
                other => Err(other),
            })?),
            CondKind::Not(inner) => Cond::Not(Box::new(self.cond(inner, scope, depth + 1)?)),
        })
    }

    /// Lowers operands, splicing in those of an operand of the same kind (`split` returns them as `Ok`).
    fn flat(
        &self,
        operands: &[ast::Cond],
        scope: &Scope<'_>,
        depth: usize,
        split: fn(Cond) -> Result<Vec<Cond>, Cond>,
    ) -> Lowered<Vec<Cond>> {
        let mut out = Vec::with_capacity(operands.len());
        for operand in operands {
            match split(self.cond(operand, scope, depth + 1)?) {
                Ok(inner) => out.extend(inner),
                Err(single) => out.push(single),
            }
        }
        Ok(out)
    }
}

fn lower_test(test: &HeaderTest) -> Test {
    match test {
        HeaderTest::Eq(v) => Test::Eq(v.text.clone()),
        HeaderTest::Ne(v) => Test::Ne(v.text.clone()),
        HeaderTest::Regex(re) => Test::Regex(re.text.clone()),
        HeaderTest::In(values, _) => Test::In(values.iter().map(|v| v.text.clone()).collect()),
        HeaderTest::Present => Test::Present,
        HeaderTest::Absent => Test::Absent,
    }
}

/// Sticky splits are unsalted (Envoy's hash policy cannot salt): every split on one key shares its cohort.
fn lower_split(split: &ast::Split) -> Split {
    Split {
        to: split.shares.iter().map(|s| Share { subset: s.subset.text.clone(), weight: s.basis_points }).collect(),
        by: split.by.as_ref().map(|by| match by.kind {
            StickyKind::Cookie => StickyKey::Cookie(by.name.text.clone()),
            StickyKind::Header => StickyKey::Header(by.name.text.to_ascii_lowercase()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lowered(source: &str) -> Config {
        match crate::compile(source, "test.canary") {
            Ok(compiled) => compiled.config,
            Err(diags) => panic!("{}", crate::render(&diags, source, "test.canary", false)),
        }
    }

    #[test]
    fn pins_the_exact_json_of_a_tcp_split() {
        let json = crate::config_json(&lowered("service tcp-echo tcp {\n  20% v2\n  default v1\n}\n"));
        let want = r#"{
  "version": 1,
  "services": [
    {
      "name": "tcp-echo",
      "protocol": "tcp",
      "rules": [
        {
          "line": 2,
          "then": {
            "split": {
              "to": [
                {
                  "subset": "v2",
                  "weight": 2000
                }
              ]
            }
          }
        }
      ],
      "default": "v1"
    }
  ]
}
"#;
        assert_eq!(json, want);
    }

    #[test]
    fn pins_every_condition_kind_with_lets_inlined_and_chains_flattened() {
        let source = r#"
let tester = cookie user=tester or header X-Tester present
let api = (method get and path "/api") and not host "Internal.Example.com"
service frontend {
  tester -> v2
  api and query beta=1: 12.5% v2, 0.01% v3 by header X-User-Id
  header accept in ["a", "b\"c"] and header x != "y" or header ua ~ "\d+" -> v3
  default v1
}
service tcp-echo tcp {
  source app.kubernetes.io/version=v2 -> v2
}
50% v1 by cookie session
"#;
        let got = serde_json::to_value(lowered(source)).expect("serializes");
        let want = json!({
            "version": 1,
            "global": {"rules": [
                {"line": 13, "then": {"split": {"to": [{"subset": "v1", "weight": 5000}], "by": {"cookie": "session"}}}}
            ]},
            "services": [
                {"name": "frontend", "protocol": "http", "default": "v1", "rules": [
                    {"line": 5, "when": {"any": [
                        {"cookie": {"name": "user", "value": "tester"}},
                        {"header": {"name": "x-tester", "test": "present"}}
                    ]}, "then": {"route": "v2"}},
                    {"line": 6, "when": {"all": [
                        {"method": "GET"},
                        {"path_prefix": "/api"},
                        {"not": {"host": "internal.example.com"}},
                        {"query": {"name": "beta", "value": "1"}}
                    ]}, "then": {"split": {
                        "to": [{"subset": "v2", "weight": 1250}, {"subset": "v3", "weight": 1}],
                        "by": {"header": "x-user-id"}
                    }}},
                    {"line": 7, "when": {"any": [
                        {"all": [
                            {"header": {"name": "accept", "test": {"in": ["a", "b\"c"]}}},
                            {"header": {"name": "x", "test": {"ne": "y"}}}
                        ]},
                        {"header": {"name": "ua", "test": {"regex": "\\d+"}}}
                    ]}, "then": {"route": "v3"}}
                ]},
                {"name": "tcp-echo", "protocol": "tcp", "rules": [
                    {"line": 11, "when": {"source": {"label": "app.kubernetes.io/version", "value": "v2"}},
                     "then": {"route": "v2"}}
                ]}
            ]
        });
        assert_eq!(got, want);
    }

    #[test]
    fn the_design_card_one_liner_is_two_global_rules_on_line_one() {
        let config = lowered("android: 50% v2; cookie user=tester -> v2");
        let rules = &config.global.rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].when, families::family("android"));
        assert_eq!(
            rules[0].then,
            Action::Split(Split { to: vec![Share { subset: "v2".into(), weight: 5000 }], by: None })
        );
        assert_eq!(rules[1].when, Some(Cond::Cookie { name: "user".into(), value: "tester".into() }));
        assert_eq!(rules[1].then, Action::Route("v2".into()));
        assert!(rules.iter().all(|r| r.line == 1));
    }

    #[test]
    fn families_inside_chains_are_flattened_too() {
        let config = lowered("android and not chrome -> v2");
        let Some(Cond::All(parts)) = &config.global.rules[0].when else { panic!("an `all`") };
        let Some(Cond::All(android)) = families::family("android") else { panic!("android is an `all`") };
        assert_eq!(parts.len(), android.len() + 1, "{parts:?}");
    }

    #[test]
    fn a_service_let_can_use_a_file_let() {
        let source = "let a = header x present\nservice s {\n  let b = a and header y present\n  b -> v2\n}\n";
        let when = &lowered(source).services[0].rules.rules[0].when;
        let header = |name: &str| Cond::Header { name: name.into(), test: Test::Present };
        assert_eq!(when, &Some(Cond::All(vec![header("x"), header("y")])));
    }

    #[test]
    fn scenario_examples_compile_and_load() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "canary")) {
            let source = std::fs::read_to_string(&path).expect("readable");
            let config = lowered(&source);
            assert!(canary_eval::Policy::new(&config).is_ok(), "{}", path.display());
        }
    }
}
