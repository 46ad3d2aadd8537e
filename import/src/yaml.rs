//! Reading Kubernetes YAML with a path at hand, so that every complaint names the exact place
//! (`spec.http[2].match[0].queryParams.a`) and no field is ever skipped without a word.

use canary_yaml::Value;

use super::report::{Message, Report, Severity};

/// A value in a document and where it is.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    pub value: &'a Value,
    pub path: &'a Path,
}

pub use canary_yaml::{kind, Path};

/// What becomes of a field the walk meets.
pub enum Field {
    /// Read by the import.
    Read(&'static str),
    /// Part of the schema but without effect on which subset a request reaches (a route's `name`).
    Inert(&'static str),
    /// Part of the schema, but a policy cannot carry it: the reason.
    Refused(&'static str, &'static str),
}

/// The fields of a mapping, after [`Node::fields`] has accounted for every key.
pub struct Fields<'a> {
    entries: Vec<(&'a str, &'a Value)>,
    path: &'a Path,
    paths: Vec<Path>,
}

impl<'a> Fields<'a> {
    /// A present, non-null field. (Kubernetes reads `field: null` as an absent field.)
    pub fn get(&self, name: &str) -> Option<(&'a Value, &Path)> {
        self.entries.iter().zip(&self.paths).find(|((k, v), _)| *k == name && !v.is_null()).map(|((_, v), p)| (*v, p))
    }

    pub fn path(&self) -> &Path {
        self.path
    }
}

impl<'a> Node<'a> {
    pub fn new(value: &'a Value, path: &'a Path) -> Self {
        Node { value, path }
    }

    /// The mapping's fields, each checked against `schema`: unknown and refused fields are reported (and
    /// left out), so a caller only ever sees what it reads. `None` (reported) when this is not a mapping.
    pub fn fields(&self, report: &mut Report, schema: &[Field], what: &str) -> Option<Fields<'a>> {
        let entries = self.entries(report, what)?;
        let mut kept = Vec::new();
        let mut paths = Vec::new();
        for (key, value) in entries {
            let path = self.path.key(key);
            let known = schema.iter().find(|f| match f {
                Field::Read(n) | Field::Inert(n) | Field::Refused(n, _) => *n == key,
            });
            match known {
                Some(Field::Read(_)) => {
                    kept.push((key, value));
                    paths.push(path);
                }
                Some(Field::Inert(_)) => {}
                Some(Field::Refused(_, why)) if !value.is_null() => report.error(&path, why.to_string()),
                Some(Field::Refused(..)) => {}
                None => {
                    let known: Vec<&str> = schema
                        .iter()
                        .map(|f| match f {
                            Field::Read(n) | Field::Inert(n) | Field::Refused(n, _) => *n,
                        })
                        .collect();
                    report.error(&path, format!("unknown field in {what} (known: {})", known.join(", ")));
                }
            }
        }
        Some(Fields { entries: kept, path: self.path, paths })
    }

    /// The entries of a mapping with string keys, in document order; a free-form map (`sourceLabels`,
    /// `headers`) is read this way.
    pub fn entries(&self, report: &mut Report, what: &str) -> Option<Vec<(&'a str, &'a Value)>> {
        let Value::Mapping(map) = untag(self.value, report, self.path)? else {
            report.error(self.path, format!("{what} must be a mapping, not {}", kind(self.value)));
            return None;
        };
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            match k {
                Value::String(s) => out.push((s.as_str(), v)),
                other => report.error(self.path, format!("a key of {what} must be a string, not {}", kind(other))),
            }
        }
        Some(out)
    }

    pub fn seq(&self, report: &mut Report, what: &str) -> Option<&'a [Value]> {
        match untag(self.value, report, self.path)? {
            Value::Sequence(items) => Some(items),
            other => {
                report.error(self.path, format!("{what} must be a list, not {}", kind(other)));
                None
            }
        }
    }

    pub fn str(&self, report: &mut Report, what: &str) -> Option<&'a str> {
        match untag(self.value, report, self.path)? {
            Value::String(s) => Some(s),
            other => {
                let hint = if matches!(other, Value::Number(_) | Value::Bool(_)) { " (quote it)" } else { "" };
                report.error(self.path, format!("{what} must be a string, not {}{hint}", kind(other)));
                None
            }
        }
    }

    pub fn bool(&self, report: &mut Report, what: &str) -> Option<bool> {
        match untag(self.value, report, self.path)? {
            Value::Bool(b) => Some(*b),
            other => {
                report.error(self.path, format!("{what} must be true or false, not {}", kind(other)));
                None
            }
        }
    }

    /// An integer in `range` (the schema's `int32`/`uint32` bounds).
    pub fn int(&self, report: &mut Report, what: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        let n = match untag(self.value, report, self.path)? {
            Value::Number(n) => n.as_i64(),
            other => {
                report.error(self.path, format!("{what} must be an integer, not {}", kind(other)));
                return None;
            }
        };
        match n.filter(|n| range.contains(n)) {
            Some(n) => Some(n),
            None => {
                let shown = canary_yaml::to_string(self.value).unwrap_or_default();
                let message = format!(
                    "{what} must be an integer from {} to {}, not {}",
                    range.start(),
                    range.end(),
                    shown.trim()
                );
                report.error(self.path, message);
                None
            }
        }
    }
}

/// The value under a YAML tag is refused: the API server would not see what the tag means.
fn untag<'a>(value: &'a Value, report: &mut Report, path: &Path) -> Option<&'a Value> {
    match value {
        Value::Tagged(t) => {
            report.error(path, format!("YAML tag {} is not supported in Kubernetes objects", t.tag));
            None
        }
        v => Some(v),
    }
}

/// The documents of a YAML stream, with YAML merge keys (`<<: *anchor`) applied as kubectl does and aliases
/// within canary-yaml's budget. `Err` is the message for the file: "not YAML" (line and column) for text that
/// is not YAML, or the document and YAML path of what canary-yaml refused (an alias bomb, a duplicate key).
pub fn documents(file: &str, text: &str) -> Result<Vec<Value>, Message> {
    canary_yaml::documents(text).map_err(|e| {
        let (line, column) = e.position().unwrap_or_default();
        let (doc, path, text) = match (e.is_syntax(), e.doc()) {
            (false, Some(doc)) => (format!("doc {doc}"), e.path().to_string(), e.message().to_string()),
            _ => (String::new(), String::new(), format!("not YAML: {}", e.message())),
        };
        let text = format!("{text} at line {line} column {column}");
        Message { severity: Severity::Error, file: file.to_string(), doc, path, text }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_apply_merge_keys_and_keep_empty_documents() {
        let docs = documents("f", "a: &x {b: 1}\nc:\n  <<: *x\n  d: 2\n---\n").expect("yaml");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["c"]["b"], Value::from(1));
        assert!(docs[1].is_null());
        assert!(documents("f", "a: [").is_err_and(|m| m.to_string().starts_with("f: error: not YAML: ")));
    }
}
