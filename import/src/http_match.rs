//! One `HTTPMatchRequest` (an entry of a route's `match` list) → the canary condition that holds on the same
//! requests: every field it sets must hold (AND), as in Istio's `TranslateRouteMatch` and
//! `sourceMatchHTTP`. `None` means the block matches every request (a catch-all).

use canary_eval::config::Cond;

use super::report::Report;
use super::string_match::{self, StringMatch};
use super::yaml::{Field, Node, Path};

const QUERY: &str = "Envoy matches query parameters raw (not percent-decoded, first occurrence only) while \
                     canary's `query` compares them decoded: no exact form";
const PORT: &str = "a policy cannot tell the ports of an HTTP service apart: its filter decides for all of them";
const SOURCE_NAMESPACE: &str = "canary's `source` reads the caller's labels, not its namespace";

/// The block at `node`; `gateways` are those the VirtualService is bound to (`mesh` for sidecars).
/// `Err` when something in it has no exact canary form (reported).
pub fn block(node: Node<'_>, gateways: &[String], report: &mut Report) -> Result<Option<Cond>, ()> {
    let schema = [
        Field::Read("headers"),
        Field::Read("withoutHeaders"),
        Field::Read("uri"),
        Field::Read("method"),
        Field::Read("authority"),
        Field::Read("scheme"),
        Field::Read("sourceLabels"),
        Field::Read("gateways"),
        Field::Read("ignoreUriCase"),
        Field::Inert("name"),
        Field::Inert("statPrefix"),
        Field::Refused("queryParams", QUERY),
        Field::Refused("port", PORT),
        Field::Refused("sourceNamespace", SOURCE_NAMESPACE),
    ];
    let errors_before = report.error_count();
    if node.value.is_null() {
        return Ok(None);
    }
    let Some(fields) = node.fields(report, &schema, "a match") else { return Err(()) };
    let mut all = Vec::new();

    // Istio drops a block whose `gateways` do not include the proxy's, and ignores `sourceLabels` when
    // `gateways` is set.
    let mut labels_apply = true;
    if let Some((value, path)) = fields.get("gateways") {
        let listed = strings(Node::new(value, path), report, "gateways")?;
        if !same_set(&listed, gateways) {
            report.error(
                path,
                format!(
                    "applies at gateways [{}] of the VirtualService's [{}]: a policy decides the same wherever it \
                     runs",
                    listed.join(", "),
                    gateways.join(", ")
                ),
            );
            return Err(());
        }
        labels_apply = false;
    }
    if let Some((value, path)) = fields.get("sourceLabels") {
        let labels = labels(Node::new(value, path), report)?;
        if labels_apply {
            all.extend(labels.into_iter().map(|(label, value)| Cond::Source { label, value }));
        } else if !labels.is_empty() {
            report.note(path, "ignored, as Istio ignores `sourceLabels` in a match that lists `gateways`");
        }
    }

    let ignore_case = match fields.get("ignoreUriCase") {
        Some((value, path)) => Node::new(value, path).bool(report, "ignoreUriCase").ok_or(())?,
        None => false,
    };
    if let Some((value, path)) = fields.get("uri") {
        let m = string_match::read(Node::new(value, path), report).ok_or(())?;
        if let StringMatch::Regex(_) = m {
            if ignore_case {
                report.note(path, "`ignoreUriCase` does not apply to a regex (Envoy ignores it there)");
            }
        }
        all.extend(string_match::uri(&m, ignore_case, path, report)?);
    }
    for (field, header) in [("method", ":method"), ("authority", ":authority"), ("scheme", ":scheme")] {
        let Some((value, path)) = fields.get(field) else { continue };
        let m = string_match::read(Node::new(value, path), report).ok_or(())?;
        all.push(
            pseudo_header(header, &m).map_or_else(|| string_match::header(header, &m, path, report).ok_or(()), Ok)?,
        );
    }
    for (field, negated) in [("headers", false), ("withoutHeaders", true)] {
        let Some((value, path)) = fields.get(field) else { continue };
        let node = Node::new(value, path);
        for (name, value) in node.entries(report, field).ok_or(())? {
            let at = path.key(name);
            let Some(lower) = header_name(name, &at, report) else { continue };
            let Some(m) = string_match::read(Node::new(value, &at), report) else { continue };
            if value.is_null() && !negated {
                report.error(&at, "a header match cannot be null (Istio refuses it); write `{}` for presence");
                continue;
            }
            let Some(positive) = pseudo_header(&lower, &m).or_else(|| string_match::header(&lower, &m, &at, report))
            else {
                continue;
            };
            all.push(if negated { string_match::negate(&m, positive) } else { positive });
        }
    }
    if report.error_count() > errors_before {
        return Err(());
    }
    Ok(conjunction(all))
}

/// The AND of `conds`, flattened as the compiler flattens `a and (b and c)` (the printed policy must
/// compile back to this very tree); `None` for no condition at all.
pub fn conjunction(conds: Vec<Cond>) -> Option<Cond> {
    let mut flat = Vec::with_capacity(conds.len());
    for c in conds {
        match c {
            Cond::All(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    match flat.len() {
        0 => None,
        1 => flat.pop(),
        _ => Some(Cond::All(flat)),
    }
}

/// A header name as Envoy matches it (lowercase); JWT claims (`@request.auth.claims.…`) are routed by
/// Envoy metadata, which canary cannot read.
fn header_name(name: &str, at: &Path, report: &mut Report) -> Option<String> {
    if name.starts_with("@request.auth.claims") {
        report.error(at, "JWT claim matching reads Envoy's authentication metadata, which canary cannot see");
        return None;
    }
    let bare = name.strip_prefix(':').unwrap_or(name);
    let token = !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        report.error(at, format!("{name:?} is not a valid header name"));
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// canary's own words for tests on `:method` and `:authority` where they say exactly the same: `method GET`
/// and `host "name"`. Neither matches the empty value, so `withoutHeaders` negates them as plain `not`.
fn pseudo_header(name: &str, m: &StringMatch) -> Option<Cond> {
    match (name, m) {
        (":method", StringMatch::Exact(method)) if is_method(method) => Some(Cond::Method(method.clone())),
        (":authority", StringMatch::Regex(re)) => host_regex(re).map(Cond::Host),
        _ => None,
    }
}

/// `method: {exact: GET}` as canary's `method GET` (which compares uppercase, as it lowers the name).
fn is_method(m: &str) -> bool {
    !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The host of an `authority` regex that says exactly what canary's `host "h"` does: `:authority`, ASCII
/// case-insensitively `h`, optionally followed by `:` and anything without a `:` (the evaluator strips from
/// the last `:`). Letters may be spelled `[hH]` or under a leading `(?i)` — Envoy runs RE2 in Latin-1 mode,
/// where `(?i)` folds ASCII letters only to ASCII. This is the form `canaryc manifest --backend native`
/// writes for `host`.
pub fn host_regex(re: &str) -> Option<String> {
    let re = re.strip_prefix('^').unwrap_or(re);
    let re = re.strip_suffix('$').unwrap_or(re);
    let (fold, body) = match re.strip_prefix("(?i)") {
        Some(rest) => (true, rest),
        None => (false, re),
    };
    let body = ["(:[^:]*)?", "(?::[^:]*)?"].iter().find_map(|suffix| body.strip_suffix(suffix))?;
    let chars: Vec<char> = body.chars().collect();
    let mut host = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i..] {
            ['[', a, b, ']', ..] if a.is_ascii_alphabetic() && a.eq_ignore_ascii_case(&b) && a != b => {
                host.push(a.to_ascii_lowercase());
                i += 4;
            }
            ['\\', '.', ..] => {
                host.push('.');
                i += 2;
            }
            [c, ..] if c.is_ascii_digit() || c == '-' => {
                host.push(c);
                i += 1;
            }
            [c, ..] if fold && c.is_ascii_alphabetic() => {
                host.push(c.to_ascii_lowercase());
                i += 1;
            }
            _ => return None,
        }
    }
    let plain = !host.is_empty() && !host.starts_with('.') && !host.ends_with('.') && !host.contains("..");
    plain.then_some(host)
}

fn strings(node: Node<'_>, report: &mut Report, what: &str) -> Result<Vec<String>, ()> {
    let items = node.seq(report, what).ok_or(())?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = node.path.index(i);
        out.push(Node::new(item, &path).str(report, "a gateway name").ok_or(())?.to_string());
    }
    Ok(out)
}

/// `sourceLabels` (or a TCP match's): label → value, values must be strings.
pub fn labels(node: Node<'_>, report: &mut Report) -> Result<Vec<(String, String)>, ()> {
    let mut out = Vec::new();
    for (label, value) in node.entries(report, "sourceLabels").ok_or(())? {
        let at = node.path.key(label);
        let value = Node::new(value, &at).str(report, "a label value").ok_or(())?;
        if label.is_empty() || label.contains(['\n', '\r', '"']) || value.contains(['\n', '\r']) {
            report.error(&at, "not a Kubernetes label");
            return Err(());
        }
        out.push((label.to_string(), value.to_string()));
    }
    Ok(out)
}

/// Whether two gateway lists name the same gateways (`mesh` and a namespace-less name compare as written).
pub fn same_set(a: &[String], b: &[String]) -> bool {
    a.iter().all(|g| b.contains(g)) && b.iter().all(|g| a.contains(g))
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_eval::config::Test;

    fn translate(yaml: &str) -> (Result<Option<Cond>, ()>, Report) {
        let value: canary_yaml::Value = canary_yaml::from_str(yaml).expect("yaml");
        let path = Path::root().key("match").index(0);
        let mut report = Report::new("t.yaml", "doc 1");
        let result = block(Node::new(&value, &path), &["mesh".to_string()], &mut report);
        (result, report)
    }

    fn ok(yaml: &str) -> Option<Cond> {
        let (result, report) = translate(yaml);
        assert!(!report.has_errors(), "{yaml}: {:#?}", report.messages);
        result.expect("translated")
    }

    fn error(yaml: &str) -> String {
        let (result, report) = translate(yaml);
        assert!(result.is_err(), "{yaml} must be refused");
        let errors: Vec<String> = report.messages.iter().map(|m| format!("{}: {}", m.path, m.text)).collect();
        errors.join("\n")
    }

    fn h(name: &str, test: Test) -> Cond {
        Cond::Header { name: name.into(), test }
    }

    #[test]
    fn fields_are_anded() {
        assert_eq!(ok("{}"), None);
        assert_eq!(ok("name: x\nuri: {prefix: /}"), None);
        assert_eq!(
            ok("sourceLabels: {version: v2}\nheaders: {User-Agent: {regex: '.*Chrome.*'}, x-a: {}}"),
            Some(Cond::All(vec![
                Cond::Source { label: "version".into(), value: "v2".into() },
                h("user-agent", Test::Regex("Chrome".into())),
                h("x-a", Test::Present),
            ]))
        );
        assert_eq!(ok("method: {exact: POST}"), Some(Cond::Method("POST".into())));
        assert_eq!(ok("method: {exact: post}"), Some(h(":method", Test::Eq("post".into()))));
        assert_eq!(ok("scheme: {exact: https}"), Some(h(":scheme", Test::Eq("https".into()))));
        assert_eq!(ok("authority: {exact: forecast}"), Some(h(":authority", Test::Eq("forecast".into()))));
        assert_eq!(ok("authority: {regex: '[fF][oO]-1\\.[bB](:[^:]*)?'}"), Some(Cond::Host("fo-1.b".into())));
        assert_eq!(ok("withoutHeaders: {x-a: {}}"), Some(h("x-a", Test::Absent)));
        assert_eq!(ok("withoutHeaders: {x-a: {exact: v}}"), Some(Cond::Not(Box::new(h("x-a", Test::Eq("v".into()))))));
        assert_eq!(ok("gateways: [mesh]\nsourceLabels: {a: b}"), None);
        assert_eq!(
            ok("sourceLabels: {a: b}\nwithoutHeaders: {x: {regex: 'a*'}}"),
            Some(Cond::All(vec![
                Cond::Source { label: "a".into(), value: "b".into() },
                h("x", Test::Present),
                Cond::Not(Box::new(h("x", Test::Regex("^(?:a*)$".into())))),
            ])),
            "flat, as the compiler reads `a and b and not c`"
        );
        assert_eq!(
            ok("withoutHeaders: {':authority': {regex: '[fF](:[^:]*)?'}, ':method': {exact: GET}}"),
            Some(Cond::All(vec![
                Cond::Not(Box::new(Cond::Host("f".into()))),
                Cond::Not(Box::new(Cond::Method("GET".into()))),
            ]))
        );
    }

    #[test]
    fn what_has_no_exact_form_is_refused_with_its_path() {
        assert!(
            error("queryParams: {a: {exact: b}}").contains("match[0].queryParams: Envoy matches query parameters raw")
        );
        assert!(error("port: 8080").contains("match[0].port:"));
        assert!(error("sourceNamespace: x").contains("namespace"));
        assert!(error("gateways: [weather-gateway]").contains("match[0].gateways: applies at gateways"));
        assert!(error("headers: {'@request.auth.claims.sub': {exact: a}}").contains("JWT"));
        assert!(error("headers: {x: null}").contains("cannot be null"));
        assert!(error("headers: {x: {regex: '\\pL'}}").contains("match[0].headers.x.regex:"));
        assert!(error("uri: {exact: '/a?b'}").contains("never matches"));
        assert!(error("bogus: 1").contains("match[0].bogus: unknown field"));
        assert!(error("sourceLabels: {version: 2}").contains("quote it"));
        assert!(error("headers: {x: {exact: a, prefix: b}}").contains("not several"));
    }

    #[test]
    fn host_regexes() {
        assert_eq!(host_regex("[fF][oO][rR]\\.[wW](:[^:]*)?"), Some("for.w".into()));
        assert_eq!(host_regex("^(?i)forecast(?::[^:]*)?$"), Some("forecast".into()));
        assert_eq!(host_regex("forecast(:[^:]*)?"), None, "case-sensitive letters");
        assert_eq!(host_regex("[fF]orecast"), None, "no port part");
        assert_eq!(host_regex("[fF](:[0-9]*)?"), None, "another port part");
        assert_eq!(host_regex("[fF][xX].(:[^:]*)?"), None);
    }
}
