//! Prometheus from the outside: series parsed from Envoy's `/stats/prometheus` text, and the metric and label
//! names a PromQL expression (or a Grafana variable query) refers to, so a dashboard can be checked against what
//! a real proxy emits.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format (comments skipped; label values unescaped).
pub fn parse(text: &str) -> Result<Vec<Series>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(sample(line).with_context(|| format!("line {}: {line}", n + 1))?);
    }
    Ok(out)
}

fn sample(line: &str) -> Result<Series> {
    let name_end = line.find(['{', ' ']).context("no value")?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end = loop {
            let Some(&(start, c)) = chars.peek() else { bail!("unclosed {{") };
            if c == '}' {
                break start;
            }
            if c == ',' {
                chars.next();
                continue;
            }
            let eq = body[start..].find('=').context("label without =")? + start;
            let label = body[start..eq].trim().to_string();
            while chars.next_if(|&(i, _)| i <= eq).is_some() {}
            if chars.next().map(|(_, c)| c) != Some('"') {
                bail!("label {label}: value not quoted");
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => bail!("label {label}: unterminated value"),
                    },
                    Some((_, c)) => value.push(c),
                    None => bail!("label {label}: unterminated value"),
                }
            }
            labels.insert(label, value);
        };
        rest = &body[end + 1..];
    }
    let value = rest.split_whitespace().next().context("no value")?;
    let value = value.parse().with_context(|| format!("value {value:?}"))?;
    Ok(Series { name, labels, value })
}

/// Metric and label names an expression refers to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refs {
    pub metrics: BTreeSet<String>,
    pub labels: BTreeSet<String>,
}

/// PromQL functions and aggregations a dashboard may call: an identifier before `(` that is not one of these is
/// reported, so a misspelt function cannot pass as a metric name.
const FUNCTIONS: &str = "sum avg min max count topk bottomk quantile stddev stdvar count_values rate irate \
    increase delta idelta deriv changes resets abs round clamp_min clamp_max sort sort_desc label_replace label_join \
    absent vector scalar time sum_over_time avg_over_time max_over_time min_over_time last_over_time \
    histogram_quantile";
/// Keywords whose parenthesised list holds label names.
const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan"];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// A string literal, a number, a duration/range in `[…]` or a Grafana variable: a value, never a name.
    Value,
    Punct(char),
}

fn tokens(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            let close = chars[i + 1..].iter().position(|&d| d == c).ok_or("unterminated string")?;
            i += close + 2;
            out.push(Token::Value);
        } else if c == '[' {
            let close = chars[i..].iter().position(|&d| d == ']').ok_or("unclosed [")?;
            i += close + 1;
            out.push(Token::Value);
        } else if c == '$' {
            // $var, ${var}, $__rate_interval
            i += 1;
            if chars.get(i) == Some(&'{') {
                i += chars[i..].iter().position(|&d| d == '}').ok_or("unclosed ${")? + 1;
            } else {
                while chars.get(i).is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_') {
                    i += 1;
                }
            }
            out.push(Token::Value);
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while chars.get(i).is_some_and(|d| d.is_ascii_alphanumeric() || *d == '.') {
                i += 1;
            }
            out.push(Token::Value);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while chars.get(i).is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_' || *d == ':') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    Ok(out)
}

/// The metric and label names a PromQL expression refers to: identifiers in selector position are metrics;
/// names in `{…}` matchers and `by`/`on`/`without`/`ignoring`/`group_*` lists are labels.
pub fn promql_refs(expr: &str) -> Result<Refs, String> {
    let toks = tokens(expr)?;
    let mut refs = Refs::default();
    let mut i = 0;
    let ident = |t: Option<&Token>| match t {
        Some(Token::Ident(s)) => Some(s.clone()),
        _ => None,
    };
    while i < toks.len() {
        match &toks[i] {
            Token::Ident(word) if GROUPING.contains(&word.as_str()) => {
                i += 1;
                if toks.get(i) == Some(&Token::Punct('(')) {
                    i += 1;
                    while i < toks.len() && toks[i] != Token::Punct(')') {
                        if let Some(label) = ident(toks.get(i)) {
                            refs.labels.insert(label);
                        }
                        i += 1;
                    }
                    i += 1;
                }
            }
            Token::Ident(word) if KEYWORDS.contains(&word.as_str()) => i += 1,
            // An aggregation may put its `by (…)` between its name and its argument: `sum by (l) (…)`.
            Token::Ident(word) if FUNCTIONS.split_whitespace().any(|f| f == word) => i += 1,
            Token::Ident(word) if toks.get(i + 1) == Some(&Token::Punct('(')) => {
                return Err(format!("unknown function `{word}`"));
            }
            Token::Ident(word) => {
                refs.metrics.insert(word.clone());
                i += 1;
            }
            Token::Punct('{') => {
                i += 1;
                while i < toks.len() && toks[i] != Token::Punct('}') {
                    // label op value [,]
                    let label = ident(toks.get(i)).ok_or_else(|| format!("expected a label name in `{expr}`"))?;
                    refs.labels.insert(label);
                    i += 1;
                    while i < toks.len() && !matches!(toks[i], Token::Punct(',') | Token::Punct('}')) {
                        i += 1;
                    }
                    if toks.get(i) == Some(&Token::Punct(',')) {
                        i += 1;
                    }
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(refs)
}

/// A Grafana Prometheus variable query: `label_values(SELECTOR, LABEL)`, `label_values(LABEL)`, `metrics(…)`
/// or a plain PromQL expression (`query_result(EXPR)` or bare).
pub fn grafana_query_refs(query: &str) -> Result<Refs, String> {
    let q = query.trim();
    if let Some(args) = q.strip_prefix("label_values(").and_then(|a| a.strip_suffix(')')) {
        let (selector, label) = match args.rsplit_once(',') {
            Some((selector, label)) => (selector, label),
            None => ("", args),
        };
        let mut refs = promql_refs(selector)?;
        refs.labels.insert(label.trim().to_string());
        return Ok(refs);
    }
    let inner = q.strip_prefix("query_result(").and_then(|a| a.strip_suffix(')')).unwrap_or(q);
    promql_refs(inner)
}

/// `{{label}}` placeholders of a Grafana legend format.
pub fn legend_labels(format: &str) -> BTreeSet<String> {
    format.split("{{").skip(1).filter_map(|s| s.split_once("}}")).map(|(l, _)| l.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envoy_prometheus_text() {
        let text = "# TYPE canary_decisions_total counter\n\
                    canary_decisions_total{service=\"frontend\",rule=\"2\",subset=\"v2\"} 40\n\
                    canary_decisions_total{service=\"*\",rule=\"none\",subset=\"\"} 3\n\
                    envoy_server_live{} 1\nenvoy_x 7\nweird{a=\"q\\\"\\\\,}\"} 2\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].labels["rule"], "2");
        assert_eq!(s[0].value, 40.0);
        assert_eq!(s[1].labels["service"], "*");
        assert_eq!(s[1].labels["subset"], "");
        assert_eq!((s[3].name.as_str(), s[3].value), ("envoy_x", 7.0));
        assert_eq!(s[4].labels["a"], "q\"\\,}");
        assert!(parse("x{a=b} 1").is_err());
    }

    #[test]
    fn finds_metrics_and_labels_in_promql() {
        let r = promql_refs(
            r#"sum by (service, subset) (rate(canary_decisions_total{service=~"$service", rule!="none"}[$__rate_interval]))
               / on (service) group_left sum by (service) (rate(canary_decisions_total[5m])) > 0.5"#,
        )
        .unwrap();
        assert_eq!(r.metrics.iter().collect::<Vec<_>>(), ["canary_decisions_total"]);
        assert_eq!(r.labels.iter().collect::<Vec<_>>(), ["rule", "service", "subset"]);
        assert!(promql_refs("summ(canary_decisions_total)").unwrap_err().contains("summ"));
        let r = grafana_query_refs("label_values(canary_decisions_total{rule=\"2\"}, service)").unwrap();
        assert_eq!((r.metrics.len(), r.labels.len()), (1, 2));
        assert_eq!(legend_labels("{{service}} line {{ rule }} → {{subset}}").len(), 3);
    }
}
