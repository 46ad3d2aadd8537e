//! A [`Config`] printed back as policy text, laid out like `examples/*.canary`: one `service` block per
//! service, two-space indent, rules in order, `default` last. [`super::import`] compiles the text it prints
//! and compares the result with the config it meant, so this printer cannot silently say something else.

use std::fmt::Write;

use canary_eval::config::{Action, Cond, Config, Protocol, Rule, Split, Test};

/// The policy text: `header` comment lines, a `settings "NAME"` line when the routes carry settings, then each
/// service with its own comment lines (if any) and its `mirror P% to SUBSET` (`mirrors` parallel to the services),
/// each rule followed by `with NAME` when it selects a settings profile (`profiles`: per service, per rule).
pub fn policy_with(
    config: &Config,
    header: &[String],
    service_notes: &[Vec<String>],
    settings: Option<&str>,
    mirrors: &[Option<(u32, String)>],
    profiles: &[Vec<Option<String>>],
) -> String {
    let mut out = String::new();
    for line in header {
        let _ = writeln!(out, "# {}", one_line(line));
    }
    if let Some(name) = settings {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(out, "settings \"{escaped}\"");
    }
    for (i, svc) in config.services.iter().enumerate() {
        for note in service_notes.get(i).into_iter().flatten().filter(|n| !n.is_empty()) {
            let _ = writeln!(out, "# {}", one_line(note));
        }
        let tcp = if svc.protocol == Protocol::Tcp { " tcp" } else { "" };
        let _ = writeln!(out, "service {}{tcp} {{", svc.name);
        if let Some(Some((bp, subset))) = mirrors.get(i) {
            let _ = writeln!(out, "  mirror {} to {subset}", percent(*bp));
        }
        for (j, rule) in svc.rules.rules.iter().enumerate() {
            match profiles.get(i).and_then(|p| p.get(j)).and_then(Option::as_deref) {
                Some(name) => {
                    let _ = writeln!(out, "  {} with {name}", self::rule(rule));
                }
                None => {
                    let _ = writeln!(out, "  {}", self::rule(rule));
                }
            }
        }
        if let Some(default) = &svc.rules.default {
            let _ = writeln!(out, "  default {default}");
        }
        out.push_str("}\n");
    }
    out
}

/// Comment text on one line, without control characters.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

pub fn rule(rule: &Rule) -> String {
    let action = |a: &Action| match a {
        Action::Route(subset) => format!("-> {subset}"),
        Action::Split(split) => shares(split),
    };
    match (&rule.when, &rule.then) {
        (None, Action::Split(split)) => shares(split),
        (Some(cond), Action::Route(_)) => format!("{} {}", self::cond(cond, Ctx::Top), action(&rule.then)),
        (Some(cond), Action::Split(split)) => format!("{}: {}", self::cond(cond, Ctx::Top), shares(split)),
        // Not a statement of the language: `super::import` never builds it.
        (None, Action::Route(subset)) => format!("default {subset}"),
    }
}

fn shares(split: &Split) -> String {
    let shares: Vec<String> = split.to.iter().map(|s| format!("{} {}", percent(s.weight), s.subset)).collect();
    shares.join(", ")
}

/// Basis points as the language writes a percentage: `50%`, `33.5%`, `0.25%`.
pub fn percent(bp: u32) -> String {
    match bp % 100 {
        0 => format!("{}%", bp / 100),
        r if r % 10 == 0 => format!("{}.{}%", bp / 100, r / 10),
        r => format!("{}.{r:02}%", bp / 100),
    }
}

/// Where a condition is printed: operands of `and` need parentheses around an `or`, and `not` around both.
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Top,
    And,
    Not,
}

fn cond(c: &Cond, ctx: Ctx) -> String {
    match c {
        Cond::Header { name, test } => format!("header {} {}", header_name(name), self::test(test)),
        Cond::Cookie { name, value } => format!("cookie {}={}", string(name), string(value)),
        Cond::Query { name, value } => format!("query {}={}", string(name), string(value)),
        Cond::PathPrefix(p) => format!("path {}", string(p)),
        Cond::Method(m) => format!("method {}", word_or_string(m)),
        Cond::Host(h) => format!("host {}", string(h)),
        Cond::Source { label, value } => format!("source {}={}", label_or_string(label), word_or_string(value)),
        Cond::All(cs) => {
            let text = cs.iter().map(|c| cond(c, Ctx::And)).collect::<Vec<_>>().join(" and ");
            if ctx == Ctx::Not {
                format!("({text})")
            } else {
                text
            }
        }
        Cond::Any(cs) => {
            let text = cs.iter().map(|c| cond(c, Ctx::Top)).collect::<Vec<_>>().join(" or ");
            if ctx == Ctx::Top {
                text
            } else {
                format!("({text})")
            }
        }
        Cond::Not(inner) => format!("not {}", cond(inner, Ctx::Not)),
    }
}

fn test(t: &Test) -> String {
    match t {
        Test::Eq(v) => format!("= {}", string(v)),
        Test::Ne(v) => format!("!= {}", string(v)),
        Test::Regex(p) => format!("~ {}", string(p)),
        Test::In(vs) => format!("in [{}]", vs.iter().map(|v| string(v)).collect::<Vec<_>>().join(", ")),
        Test::Present => "present".into(),
        Test::Absent => "absent".into(),
    }
}

/// A header name bare when the grammar reads it as one (`user-agent`, `:path`), else quoted.
fn header_name(name: &str) -> String {
    let bare = name.strip_prefix(':').unwrap_or(name);
    if is_word(bare) {
        name.to_string()
    } else {
        string(name)
    }
}

fn label_or_string(label: &str) -> String {
    let simple = label.split_once('/').map_or(is_word(label), |(a, b)| is_word(a) && is_word(b));
    if simple {
        label.to_string()
    } else {
        string(label)
    }
}

fn word_or_string(text: &str) -> String {
    if is_word(text) && !canary_dsl::KEYWORDS.contains(&text) {
        text.to_string()
    } else {
        string(text)
    }
}

/// The grammar's `word`: a letter, digit or `_`, then those and `.`, `-` (a `-` never before `>`).
fn is_word(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !s.contains("->")
}

/// A quoted string as the language reads it: `\"` is a quote, `\\` a backslash, and any other backslash
/// stands for itself — so a backslash is doubled only where it would otherwise join the next character
/// (a quote, a backslash, or the closing quote).
pub fn string(text: &str) -> String {
    canary_compiler::policy_text::quote(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_eval::config::{RuleSet, Service, Share};

    #[test]
    fn strings_survive_the_language_unescape() {
        for text in ["plain", "a\"b", "a\\d", "a\\\\d", "end\\", "\\\"", "é → ✓", ""] {
            let source = format!("service s {{\n  header x = {} -> v2\n}}\n", string(text));
            let config = canary_compiler::compile(&source, "t.canary").expect("compiles").config;
            let when = config.services[0].rules.rules[0].when.clone();
            assert_eq!(when, Some(Cond::Header { name: "x".into(), test: Test::Eq(text.into()) }), "{source}");
        }
        assert_eq!(string("^(?:a\\.b)$"), "\"^(?:a\\.b)$\"");
    }

    #[test]
    fn percentages() {
        assert_eq!(percent(5000), "50%");
        assert_eq!(percent(3350), "33.5%");
        assert_eq!(percent(25), "0.25%");
        assert_eq!(percent(10000), "100%");
    }

    #[test]
    fn policies_read_like_the_examples() {
        let h = |name: &str, test| Cond::Header { name: name.into(), test };
        let config = Config {
            version: 1,
            global: RuleSet::default(),
            services: vec![Service {
                name: "forecast".into(),
                protocol: Protocol::Http,
                rules: RuleSet {
                    rules: vec![
                        Rule {
                            line: 0,
                            when: Some(Cond::All(vec![
                                Cond::Source { label: "version".into(), value: "v2".into() },
                                Cond::Any(vec![h("x", Test::Present), h(":path", Test::Regex("^/a".into()))]),
                                Cond::Not(Box::new(Cond::All(vec![
                                    h("y", Test::Eq("1".into())),
                                    h("z", Test::Absent),
                                ]))),
                            ])),
                            then: Action::Route("v2".into()),
                        },
                        Rule {
                            line: 0,
                            when: None,
                            then: Action::Split(Split {
                                to: vec![Share { subset: "v2".into(), weight: 2550 }],
                                by: None,
                            }),
                        },
                    ],
                    default: Some("v1".into()),
                },
            }],
            settings: Default::default(),
        };
        let text =
            policy_with(&config, &["Imported.".into()], &[vec!["from VirtualService forecast".into()]], None, &[], &[]);
        assert_eq!(
            text,
            "# Imported.\n# from VirtualService forecast\nservice forecast {\n  source version=v2 and (header x present \
             or header :path ~ \"^/a\") and not (header y = \"1\" and header z absent) -> v2\n  25.5% v2\n  default \
             v1\n}\n"
        );
        let compiled = canary_compiler::compile(&text, "t.canary").expect("compiles").config;
        assert_eq!(compiled.services[0].rules.rules.len(), 2);
    }
}
