//! Test files: a YAML list of cases, read with positions so every problem and every failing case is
//! reported as `FILE:LINE`.
//!
//! ```yaml
//! - name: Android users are split half and half
//!   service: frontend
//!   header: {user-agent: "Mozilla/5.0 (Linux; Android 14; Pixel 8)"}
//!   expect: {v1: 50, v2: 50}
//!   rule: 3
//! ```
//!
//! `marked-yaml` parses (with `serde_path_to_error`, so a type error also names its YAML path, e.g.
//! `[2].expect.v2`); serde's `deny_unknown_fields` turns a misspelt field into an error naming it.

use std::fmt;

use marked_yaml::{LoadError, LoaderOptions, Marker, Node, Spanned};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use canary_compiler::request::RequestSpec;

/// One test case.
pub struct Case {
    /// 1-based line and column where the case starts.
    pub line: usize,
    pub column: usize,
    pub name: String,
    pub service: Option<String>,
    pub request: RequestSpec,
    pub expect: Expect,
    pub rule: Option<RuleExpect>,
}

/// What a case expects the policy to decide.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// This subset, on every evaluation.
    Subset(String),
    /// No decision (`none`): no rule decided and there is no default.
    Nothing,
    /// Shares in percent per subset (`none` included), summing to 100: checked by simulation.
    Split(Vec<(String, f64)>),
}

/// `rule:`: the line of the deciding rule, or `default` (no rule decided).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleExpect {
    Line(u32),
    Default,
}

/// A malformed test file: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// The cases of a test file, or the first problem in it.
pub fn parse(text: &str) -> Result<Vec<Case>, FileError> {
    if text.trim().is_empty() {
        return Err(FileError { line: 1, column: 1, message: "the test file has no cases".into() });
    }
    let options = LoaderOptions::default().toplevel_sequence().error_on_duplicate_keys(true);
    let node = marked_yaml::parse_yaml_with_options(0, text, options).map_err(load_error)?;
    let raw: Vec<Spanned<RawCase>> = marked_yaml::from_node(&node).map_err(|e| {
        let mark = e.path().and_then(|path| locate(&node, path)).or(e.start_mark());
        let (line, column) = mark.map_or((1, 1), |m| (m.line(), m.column()));
        let message = match e.path() {
            Some(path) => format!("{path}: {}", *e),
            None => e.to_string(),
        };
        FileError { line, column, message }
    })?;
    raw.into_iter().map(|r| case(r, text)).collect()
}

/// Where a serde path such as `[2].expect` or `[0].expct` is written: the value's node, or for a key
/// that is not in the mapping (an unknown field) the key itself. The deserializer's own mark is the
/// enclosing mapping's, which is less precise.
fn locate(node: &Node, path: &str) -> Option<Marker> {
    let mut node = node;
    let mut mark = None;
    for segment in path.split('.').flat_map(|s| s.split_inclusive(']')) {
        let segment = segment.trim_start_matches('[');
        if let Some(index) = segment.strip_suffix(']') {
            node = node.as_sequence()?.get(index.parse::<usize>().ok()?)?;
        } else {
            let map = node.as_mapping()?;
            let (key, value) = map.iter().find(|(k, _)| k.as_str() == segment)?;
            mark = key.span().start().copied();
            node = value;
            continue;
        }
        // A mapping's own mark sits after its first key: point at that key.
        let first_key = node.as_mapping().and_then(|m| m.keys().next()).and_then(|k| k.span().start().copied());
        mark = first_key.or(node.span().start().copied());
    }
    mark
}

fn case(raw: Spanned<RawCase>, text: &str) -> Result<Case, FileError> {
    let line = raw.span().start().map_or(1, |m| m.line());
    // The mapping's own mark sits after its first key; point at the key instead (`- name: …` → `name`).
    let column = text
        .lines()
        .nth(line.saturating_sub(1))
        .map_or(1, |l| l.chars().take_while(|c| matches!(c, ' ' | '-')).count() + 1);
    // `Spanned` only derefs; the copy is of a few short strings.
    let r = RawCase::clone(&raw);
    if let Expect::Split(shares) = &*r.expect {
        let (line, column) = r.expect.span().start().map_or((line, column), |m| (m.line(), m.column()));
        let total: f64 = shares.iter().map(|(_, p)| p).sum();
        if (total - 100.0).abs() > 1e-6 {
            let message = format!(
                "case {:?}: the expected split sums to {total}%, not 100% (name every subset, the default's share included)",
                r.name
            );
            return Err(FileError { line, column, message });
        }
    }
    Ok(Case {
        line,
        column,
        name: r.name,
        service: r.service,
        request: RequestSpec {
            method: r.method,
            path: r.path,
            host: r.host,
            headers: r.header,
            cookies: r.cookie,
            queries: r.query,
            sources: r.source,
        },
        expect: Expect::clone(&r.expect),
        rule: r.rule,
    })
}

fn load_error(e: LoadError) -> FileError {
    let at = |m: marked_yaml::Marker| (m.line(), m.column());
    let ((line, column), message) = match e {
        LoadError::TopLevelMustBeSequence(m) | LoadError::TopLevelMustBeMapping(m) => {
            (at(m), "a test file is a list of cases (`- name: …`)".to_string())
        }
        LoadError::UnexpectedAnchor(m) => (at(m), "YAML anchors and aliases are not supported here".into()),
        LoadError::MappingKeyMustBeScalar(m) => (at(m), "a key must be a plain word".into()),
        LoadError::UnexpectedTag(m) => (at(m), "YAML tags are not supported here".into()),
        LoadError::ScanError(m, e) => (at(m), format!("invalid YAML: {}", e.info())),
        LoadError::DuplicateKey(inner) => {
            let first = inner.prev_key.span().start().map_or(0, |m| m.line());
            let second = inner.key.span().start().map_or((1, 1), |m| at(*m));
            (second, format!("`{}` is given twice (first on line {first})", inner.key.as_str()))
        }
    };
    FileError { line, column, message }
}

/// A case as written; field names are the flags of `canaryc eval`.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    #[serde(default)]
    service: Option<String>,
    #[serde(default, deserialize_with = "pairs")]
    header: Vec<(String, String)>,
    #[serde(default, deserialize_with = "pairs")]
    cookie: Vec<(String, String)>,
    #[serde(default, deserialize_with = "pairs")]
    query: Vec<(String, String)>,
    #[serde(default, deserialize_with = "pairs")]
    source: Vec<(String, String)>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    host: Option<String>,
    expect: Spanned<Expect>,
    #[serde(default)]
    rule: Option<RuleExpect>,
}

/// A `{NAME: VALUE, …}` map, in the order written.
fn pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of names to values, e.g. {user-agent: \"Mozilla/5.0 …\"}")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_map(Pairs)
}

impl<'de> Deserialize<'de> for Expect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Expect;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a subset, `none`, or a split in percent such as {v1: 75, v2: 25}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Expect, E> {
                match v.trim() {
                    "" => Err(E::custom("`expect` is empty: write a subset, `none`, or a split")),
                    "none" => Ok(Expect::Nothing),
                    subset => Ok(Expect::Subset(subset.to_string())),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Expect, A::Error> {
                let mut shares = Vec::new();
                while let Some((subset, pct)) = map.next_entry::<String, String>()? {
                    let number = pct.trim().trim_end_matches('%').trim();
                    match number.parse::<f64>() {
                        Ok(p) if (0.0..=100.0).contains(&p) => shares.push((subset, p)),
                        _ => {
                            return Err(de::Error::custom(format!(
                                "`{subset}: {pct}`: a share is a percentage from 0 to 100"
                            )))
                        }
                    }
                }
                if shares.is_empty() {
                    return Err(de::Error::custom("an expected split names at least one subset"));
                }
                Ok(Expect::Split(shares))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RuleExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RuleExpect;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the deciding rule's line number, or `default`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RuleExpect, E> {
                u32::try_from(v).ok().filter(|&l| l > 0).map(RuleExpect::Line).ok_or_else(|| {
                    E::custom(format!("`rule: {v}`: expected the deciding rule's line number, or `default`"))
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RuleExpect, E> {
                self.visit_u64(u64::try_from(v).unwrap_or(0))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RuleExpect, E> {
                match v.trim() {
                    "default" => Ok(RuleExpect::Default),
                    n => match n.parse::<u64>() {
                        Ok(n) => self.visit_u64(n),
                        Err(_) => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                    },
                }
            }
        }
        d.deserialize_any(V)
    }
}
