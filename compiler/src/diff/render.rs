//! `canaryc diff`'s two outputs: text for people, JSON for scripts (SCENARIOS.md §3 fixes its shape:
//! `{"services": {NAME: [{"from", "to", "percent", "when", "example"}]}}`, plus `by`, `old_rule`, `new_rule`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use canary_eval::config::Cond;

use super::{Move, ServiceDiff, ANY_SERVICE};
use crate::policy_text;

/// The human report: each service with moves, its moves one per line with the region and an example, then
/// the unchanged services; or a single line saying nothing moves.
pub fn text(diffs: &[ServiceDiff]) -> String {
    let mut out = String::new();
    let changed: Vec<&ServiceDiff> = diffs.iter().filter(|d| !d.moves.is_empty()).collect();
    if changed.is_empty() {
        return "no moves: both policies give every request the same subset\n".to_string();
    }
    for d in &changed {
        let _ = writeln!(out, "{}", service_label(&d.service));
        for m in &d.moves {
            let region = m.when.as_ref().map(|c| format!(" where {}", shortened(c))).unwrap_or_default();
            let _ = writeln!(out, "  {} → {}  {}{region}", subset(&m.from), subset(&m.to), who(m));
            let example = match &m.example {
                Some(spec) if spec.args().is_empty() => "e.g. any request (no flags)".to_string(),
                Some(spec) => format!("e.g. {}", shell(&spec.args())),
                None => "no example found: this region may be empty".to_string(),
            };
            let _ = writeln!(out, "      was {}, now {} · {example}", rule(m.old_line), rule(m.new_line));
        }
    }
    let unchanged: Vec<&str> = diffs.iter().filter(|d| d.moves.is_empty()).map(|d| service_label(&d.service)).collect();
    if !unchanged.is_empty() {
        let _ = writeln!(out, "unchanged: {}", unchanged.join(", "));
    }
    out
}

/// `{"services": {NAME: [MOVE…]}}`, one line, every compared service present (`[]` when unchanged).
pub fn json(diffs: &[ServiceDiff]) -> String {
    #[derive(Serialize)]
    struct Entry {
        from: String,
        to: String,
        percent: f64,
        /// The sticky key whose users move (`cookie uid`), or null: a share of requests.
        by: Option<String>,
        when: Option<String>,
        example: Option<Vec<String>>,
        old_rule: Option<u32>,
        new_rule: Option<u32>,
    }
    #[derive(Serialize)]
    struct Report {
        services: BTreeMap<String, Vec<Entry>>,
    }
    let services = diffs
        .iter()
        .map(|d| {
            let entries = d
                .moves
                .iter()
                .map(|m| Entry {
                    from: subset(&m.from).to_string(),
                    to: subset(&m.to).to_string(),
                    percent: m.percent,
                    by: m.by.as_ref().map(policy_text::sticky_key),
                    when: m.when.as_ref().map(policy_text::cond),
                    example: m.example.as_ref().map(|s| s.args()),
                    old_rule: m.old_line,
                    new_rule: m.new_line,
                })
                .collect();
            (d.service.clone(), entries)
        })
        .collect();
    let mut json = serde_json::to_string(&Report { services }).unwrap_or_default();
    json.push('\n');
    json
}

/// A region as text, cut after [`REGION_CHARS`] characters: a rule deep in a long policy is decided only
/// when hundreds of earlier rules are not, and people need the first few (the JSON has them all).
fn shortened(c: &Cond) -> String {
    let full = policy_text::cond(c);
    let Cond::All(parts) = c else { return full };
    if full.chars().count() <= REGION_CHARS {
        return full;
    }
    let mut shown: Vec<String> = Vec::new();
    let mut len = 0;
    for part in parts {
        let text = policy_text::cond(&Cond::All(vec![part.clone()]));
        if !shown.is_empty() && len + text.len() > REGION_CHARS {
            break;
        }
        len += text.len() + 5;
        shown.push(text);
    }
    format!("{} and … ({} more conditions; --json lists them)", shown.join(" and "), parts.len() - shown.len())
}

/// Longest region printed whole in the text report.
const REGION_CHARS: usize = 240;

fn service_label(name: &str) -> &str {
    if name == ANY_SERVICE {
        "* (services neither policy declares)"
    } else {
        name
    }
}

fn subset(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("none")
}

/// `30% of users (by cookie uid)`, `all requests`.
fn who(m: &Move) -> String {
    let share = if m.percent >= 100.0 { "all".to_string() } else { format!("{}% of", trim(m.percent)) };
    match &m.by {
        Some(key) => format!("{share} users (by {})", policy_text::sticky_key(key)),
        None => format!("{share} requests"),
    }
}

fn rule(line: Option<u32>) -> String {
    line.map_or("the default".to_string(), |l| format!("line {l}"))
}

/// `30`, `12.5`, `0.01`.
fn trim(percent: f64) -> String {
    let s = format!("{percent:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Arguments as one pastes them into a shell: anything beyond plain characters in single quotes.
fn shell(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=./:,@%+".contains(&b)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
