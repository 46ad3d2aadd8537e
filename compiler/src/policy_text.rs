//! Compiled conditions and rules written back in the policy language, so `canaryc diff` and
//! `eval --explain` speak the language the operator wrote (`cookie user=tester and not android`), not the
//! JSON. Whatever this prints parses back to the same [`Cond`] (tested below), so a region `diff` reports
//! can be pasted into a policy.

use canary_eval::config::{Action, Cond, Rule, StickyKey, Test};

use crate::families;

/// A condition as policy text. User-agent families are printed by name; `and` binds tighter than `or`
/// and `not` tightest, so parentheses appear only where the grammar needs them.
pub fn cond(c: &Cond) -> String {
    if let Some(name) = family_name(c) {
        return name.to_string();
    }
    match c {
        Cond::Header { name, test } => {
            let name = header_name(name);
            match test {
                Test::Eq(v) => format!("header {name} = {}", quote(v)),
                Test::Ne(v) => format!("header {name} != {}", quote(v)),
                Test::Regex(re) => format!("header {name} ~ {}", quote(re)),
                Test::In(vs) => {
                    format!("header {name} in [{}]", vs.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", "))
                }
                Test::Present => format!("header {name} present"),
                Test::Absent => format!("header {name} absent"),
            }
        }
        Cond::Cookie { name, value } => format!("cookie {}={}", word_or_quoted(name), word_or_quoted(value)),
        Cond::Query { name, value } => format!("query {}={}", word_or_quoted(name), word_or_quoted(value)),
        Cond::PathPrefix(p) => format!("path {}", quote(p)),
        Cond::Method(m) => format!("method {}", word_or_quoted(m)),
        Cond::Host(h) => format!("host {}", quote(h)),
        Cond::Source { label, value } => {
            let label = if is_label(label) { label.clone() } else { quote(label) };
            format!("source {label}={}", word_or_quoted(value))
        }
        Cond::All(cs) if cs.is_empty() => "not (header x present and header x absent)".into(),
        Cond::Any(cs) if cs.is_empty() => "(header x present and header x absent)".into(),
        Cond::All(cs) => operands(cs, true, Level::And).join(" and "),
        Cond::Any(cs) => operands(cs, false, Level::Or).join(" or "),
        Cond::Not(inner) => format!("not {}", operand(inner, Level::Not)),
    }
}

/// A rule as one policy statement: `COND -> v2`, `COND: 20% v2 by cookie user`, `50% v2`.
pub fn rule(r: &Rule) -> String {
    let then = match &r.then {
        Action::Route(s) => return format!("{} -> {s}", r.when.as_ref().map(cond).unwrap_or_default()),
        Action::Split(split) => {
            let shares: Vec<String> = split.to.iter().map(|s| format!("{} {}", percent(s.weight), s.subset)).collect();
            let by = split.by.as_ref().map(|k| format!(" by {}", sticky_key(k))).unwrap_or_default();
            format!("{}{by}", shares.join(", "))
        }
    };
    match &r.when {
        Some(c) => format!("{}: {then}", cond(c)),
        None => then,
    }
}

/// `cookie user` / `header x-user-id`, as after `by`.
pub fn sticky_key(k: &StickyKey) -> String {
    match k {
        StickyKey::Cookie(c) => format!("cookie {}", word_or_quoted(c)),
        StickyKey::Header(h) => format!("header {}", header_name(h)),
    }
}

/// Basis points as the language writes a share: `20%`, `12.5%`, `0.01%`.
pub fn percent(basis_points: u32) -> String {
    let (whole, frac) = (basis_points / 100, basis_points % 100);
    match frac {
        0 => format!("{whole}%"),
        f if f % 10 == 0 => format!("{whole}.{}%", f / 10),
        f => format!("{whole}.{f:02}%"),
    }
}

/// How tightly the surrounding operator binds: an operand that binds looser needs parentheses.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Level {
    Or,
    And,
    Not,
}

/// The operands of an `all` (`and`) or `any`, a family's run of them printed as its name.
fn operands(cs: &[Cond], and: bool, level: Level) -> Vec<String> {
    runs(cs, and)
        .into_iter()
        .map(|(start, end, family)| match family {
            Some(name) => name.to_string(),
            None => operand(&cs[start..end][0], level),
        })
        .collect()
}

/// `cs` cut into runs `[start, end)`: single operands, and the runs that spell out a family. Lowering
/// flattens `android and not chrome` into one `all` of android's parts and `not chrome`, so a family
/// inside an `and` (`or`) is a run of operands equal to its own `all` (`any`).
pub(crate) fn runs(cs: &[Cond], and: bool) -> Vec<(usize, usize, Option<&'static str>)> {
    let families: Vec<(&'static str, Vec<Cond>)> = families::names()
        .filter_map(|name| match families::family(name)? {
            Cond::All(parts) if and => Some((name, parts)),
            Cond::Any(parts) if !and => Some((name, parts)),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let family = families.iter().find(|(_, parts)| cs[i..].starts_with(parts));
        match family {
            Some((name, parts)) => {
                out.push((i, i + parts.len(), Some(*name)));
                i += parts.len();
            }
            None => {
                out.push((i, i + 1, None));
                i += 1;
            }
        }
    }
    out
}

fn operand(c: &Cond, inside: Level) -> String {
    if level(c) < inside {
        format!("({})", cond(c))
    } else {
        cond(c)
    }
}

/// How tightly `cond(c)`'s text binds at its top.
fn level(c: &Cond) -> Level {
    match c {
        _ if family_name(c).is_some() => Level::Not,
        Cond::Any(cs) | Cond::All(cs) if cs.len() == 1 => level(&cs[0]),
        Cond::Any(cs) if cs.len() > 1 => Level::Or,
        Cond::All(cs) if cs.len() > 1 => Level::And,
        // `not (…)` and `(…)`: the texts of the empty `all`/`any`.
        _ => Level::Not,
    }
}

/// The family a condition is, if it is exactly one (`android`).
pub(crate) fn family_name(c: &Cond) -> Option<&'static str> {
    families::names().find(|name| families::family(name).as_ref() == Some(c))
}

/// A quoted string: `"` and a backslash that the parser would read as an escape are escaped; any other
/// backslash stays as written (`"\d+"`), as the language reads it. (The importer prints its strings with it too.)
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' if matches!(chars.get(i + 1), None | Some('"' | '\\')) => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A bare word where the grammar takes one (`tester`, `v2.1`), else a quoted string.
fn word_or_quoted(s: &str) -> String {
    if is_word(s) {
        s.to_string()
    } else {
        quote(s)
    }
}

fn header_name(name: &str) -> String {
    if is_word(name.strip_prefix(':').unwrap_or(name)) {
        name.to_string()
    } else {
        quote(name)
    }
}

fn is_label(s: &str) -> bool {
    match s.split_once('/') {
        Some((a, b)) => is_word(a) && is_word(b),
        None => is_word(s),
    }
}

/// The grammar's `word`: a letter, digit or `_`, then those or `.` or `-` (a `-` never before `>`).
fn is_word(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().enumerate().all(|(i, &c)| {
            c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || (c == b'-' && b.get(i + 1) != Some(&b'>'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles `when -> v2` and returns the rule's condition.
    fn compiled(when: &str) -> Cond {
        let source = format!("{when} -> v2\n");
        match crate::compile(&source, "t.canary") {
            Ok(c) => c.config.global.rules[0].when.clone().expect("a condition"),
            Err(d) => panic!("{source}: {}", crate::render(&d, &source, "t.canary", false)),
        }
    }

    #[test]
    fn prints_what_the_operator_writes_and_parses_back() {
        for text in [
            "cookie user=tester",
            "cookie user=\"a b\"",
            "header user-agent ~ \"Chrome\"",
            "header x-n ~ \"\\d+\\.\\\"\"",
            "header accept in [\"a\", \"b\\\"c\"]",
            "header x != \"y\" and header z absent",
            "android and not chrome",
            "mobile or path \"/api\"",
            "(cookie a=1 or cookie b=2) and not (method POST or host \"h.example\")",
            "source app.kubernetes.io/version=v2",
            "query beta=\"1 2\"",
            "not (header x present and method GET)",
        ] {
            let c = compiled(text);
            assert_eq!(cond(&c), text, "{c:?}");
            assert_eq!(compiled(&cond(&c)), c);
        }
    }

    #[test]
    fn rules_and_percentages() {
        let source = "service s {\n  android: 12.5% v2, 0.01% v3 by cookie user\n  50% v2\n  cookie u=t -> v3\n}\n";
        let config = crate::compile(source, "t.canary").map_err(|_| ()).expect("compiles").config;
        let rules: Vec<String> = config.services[0].rules.rules.iter().map(rule).collect();
        assert_eq!(rules, ["android: 12.5% v2, 0.01% v3 by cookie user", "50% v2", "cookie u=t -> v3"]);
    }
}
