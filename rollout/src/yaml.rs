//! Reading the plan's YAML node by node, with positions: every value the plan reader takes goes through
//! these helpers, so every problem is reported at the key or value it concerns as `PLAN:LINE:COL: error:
//! REASON`. Walking `marked-yaml`'s nodes by hand (rather than serde) is what lets an unknown key say
//! "did you mean" and a bad duration point at the duration itself.

use std::fmt;

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{LoadError, Node};

/// A position in the plan file, 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct At {
    pub line: usize,
    pub col: usize,
}

/// A problem in a plan: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    pub file: String,
    pub at: At,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: error: {}", self.file, self.at.line, self.at.col, self.message)
    }
}

impl std::error::Error for PlanError {}

/// The plan's text being read: names the file in every error.
pub struct Doc<'a> {
    pub file: &'a str,
}

impl Doc<'_> {
    pub fn error(&self, at: At, message: impl Into<String>) -> PlanError {
        PlanError { file: self.file.to_string(), at, message: message.into() }
    }

    /// Parses the text: a mapping at the top, no duplicate keys.
    pub fn parse(&self, text: &str) -> Result<Node, PlanError> {
        if text.trim().is_empty() {
            return Err(self.error(
                At { line: 1, col: 1 },
                "the plan is empty (it needs at least `policy`, `service`, `rule`, `steps` and `metrics`)",
            ));
        }
        let options = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
        marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| self.load_error(e))
    }

    fn load_error(&self, e: LoadError) -> PlanError {
        let at = |m: marked_yaml::Marker| At { line: m.line(), col: m.column() };
        match e {
            LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => {
                self.error(at(m), "a plan is a mapping (`policy: …`, `service: …`, …)")
            }
            LoadError::UnexpectedAnchor(m) => self.error(at(m), "YAML anchors and aliases are not supported here"),
            LoadError::MappingKeyMustBeScalar(m) => self.error(at(m), "a key must be a plain word"),
            LoadError::UnexpectedTag(m) => self.error(at(m), "YAML tags are not supported here"),
            LoadError::ScanError(m, e) if e.info().contains("cannot start with '-'") => self.error(
                at(m),
                format!("invalid YAML: {} (a lone `-` in a `[…]` list must be quoted: `\"-\"`)", e.info()),
            ),
            LoadError::ScanError(m, e) => self.error(at(m), format!("invalid YAML: {}", e.info())),
            LoadError::DuplicateKey(inner) => {
                let first = inner.prev_key.span().start().map_or(0, |m| m.line());
                let second = inner.key.span().start().map_or(At { line: 1, col: 1 }, |m| at(*m));
                self.error(second, format!("`{}` is given twice (first on line {first})", inner.key.as_str()))
            }
        }
    }
}

/// Where a node is written. A mapping's own mark sits after its first key, so a mapping is located at
/// that key.
pub fn at(node: &Node) -> At {
    let first_key = node.as_mapping().and_then(|m| m.keys().next()).and_then(|k| k.span().start().copied());
    first_key
        .or(node.span().start().copied())
        .map_or(At { line: 1, col: 1 }, |m| At { line: m.line(), col: m.column() })
}

/// A mapping whose keys were checked against the allowed ones.
pub struct Map<'a> {
    node: &'a MarkedMappingNode,
    at: At,
    what: &'a str,
}

impl<'a> Map<'a> {
    /// `node` as a mapping of `what` (e.g. "`judge`") with only `allowed` keys; an unknown key is an error at
    /// that key with the closest allowed one.
    pub fn new(doc: &Doc, node: &'a Node, what: &'a str, allowed: &[&str]) -> Result<Map<'a>, PlanError> {
        let Some(map) = node.as_mapping() else {
            return Err(
                doc.error(at(node), format!("{what} must be a mapping (`key: value` lines), not {}", kind(node)))
            );
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                let key_at = key.span().start().map_or(at(node), |m| At { line: m.line(), col: m.column() });
                let hint = match canary_dsl::closest(key.as_str(), allowed.iter().copied()) {
                    Some(near) => format!("; did you mean `{near}`?"),
                    None => format!(" (expected one of: {})", allowed.join(", ")),
                };
                return Err(doc.error(key_at, format!("unknown key `{}` in {what}{hint}", key.as_str())));
            }
        }
        Ok(Map { node: map, at: at(node), what })
    }

    pub fn at(&self) -> At {
        self.at
    }

    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.node.get_node(key)
    }

    /// A required key; missing is an error at the mapping, saying what to write.
    pub fn need(&self, doc: &Doc, key: &str, example: &str) -> Result<&'a Node, PlanError> {
        self.get(key).ok_or_else(|| doc.error(self.at, format!("{} is missing `{key}` (e.g. `{example}`)", self.what)))
    }

    /// The one key present among `keys` (exactly one must be).
    pub fn one_of(&self, doc: &Doc, keys: &[&str]) -> Result<(&'a str, &'a Node), PlanError> {
        let present: Vec<(&str, &Node)> =
            self.node.iter().filter(|(k, _)| keys.contains(&k.as_str())).map(|(k, v)| (k.as_str(), v)).collect();
        match present.as_slice() {
            [one] => Ok(*one),
            [] => Err(doc.error(self.at, format!("{} needs one of: {}", self.what, keys.join(", ")))),
            [_, second, ..] => Err(doc.error(
                at(second.1),
                format!("{} takes only one of {} (found {})", self.what, keys.join(", "), present.len()),
            )),
        }
    }
}

fn kind(node: &Node) -> &'static str {
    match node {
        Node::Scalar(_) => "a single value",
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
    }
}

/// A scalar as text (`what` names it in the error).
pub fn string(doc: &Doc, node: &Node, what: &str) -> Result<String, PlanError> {
    match node.as_scalar() {
        Some(s) if !s.as_str().trim().is_empty() => Ok(s.as_str().to_string()),
        Some(_) => Err(doc.error(at(node), format!("{what} is empty"))),
        None => Err(doc.error(at(node), format!("{what} must be a single value, not {}", kind(node)))),
    }
}

/// A finite number.
pub fn number(doc: &Doc, node: &Node, what: &str) -> Result<f64, PlanError> {
    let text = string(doc, node, what)?;
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => Err(doc.error(at(node), format!("{what} must be a number, not `{text}`"))),
    }
}

/// A whole number ≥ 0.
pub fn count(doc: &Doc, node: &Node, what: &str) -> Result<u64, PlanError> {
    let text = string(doc, node, what)?;
    text.trim()
        .parse::<u64>()
        .map_err(|_| doc.error(at(node), format!("{what} must be a whole number ≥ 0, not `{text}`")))
}

/// A duration with a unit (`250ms`, `5s`, `1m`, `2h`, decimals allowed), in seconds.
pub fn duration(doc: &Doc, node: &Node, what: &str) -> Result<f64, PlanError> {
    let text = string(doc, node, what)?;
    parse_duration(&text).map_err(|why| doc.error(at(node), format!("{what}: {why}")))
}

/// `250ms` → 0.25, `5s` → 5, `1.5m` → 90, `1h` → 3600.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "" => return Err(format!("`{t}` has no unit: write e.g. `{t}s` (units: ms, s, m, h)")),
        other => return Err(format!("`{other}` is not a unit of time (units: ms, s, m, h)")),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n * scale),
        _ => Err(format!("`{t}` is not a duration (e.g. `250ms`, `5s`, `1m`, `2h`)")),
    }
}

/// A list of single values; a lone value counts as a list of one.
pub fn strings(doc: &Doc, node: &Node, what: &str) -> Result<Vec<String>, PlanError> {
    match node {
        Node::Sequence(items) => items.iter().map(|item| string(doc, item, what)).collect(),
        Node::Scalar(_) => Ok(vec![string(doc, node, what)?]),
        Node::Mapping(_) => Err(doc.error(at(node), format!("{what} must be a list, not a mapping"))),
    }
}

/// A list of nodes (items keep their positions).
pub fn list<'a>(doc: &Doc, node: &'a Node, what: &str) -> Result<Vec<&'a Node>, PlanError> {
    match node {
        Node::Sequence(items) => Ok(items.iter().collect()),
        _ => Err(doc.error(at(node), format!("{what} must be a list, not {}", kind(node)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("250ms"), Ok(0.25));
        assert_eq!(parse_duration("5s"), Ok(5.0));
        assert_eq!(parse_duration("1.5m"), Ok(90.0));
        assert_eq!(parse_duration("2h"), Ok(7200.0));
        assert!(parse_duration("60").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 days").unwrap_err().contains("not a unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.2.3s").is_err());
    }

    #[test]
    fn unknown_keys_suggest_the_closest() {
        let doc = Doc { file: "p.yaml" };
        let node = doc.parse("judge:\n  alpah: 0.1\n").unwrap();
        let top = Map::new(&doc, &node, "the plan", &["judge"]).unwrap();
        let judge = top.get("judge").unwrap();
        let e = Map::new(&doc, judge, "`judge`", &["alpha", "errors"]).err().unwrap();
        assert_eq!(e.to_string(), "p.yaml:2:3: error: unknown key `alpah` in `judge`; did you mean `alpha`?");
    }
}
