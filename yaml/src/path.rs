//! YAML paths as `yq` writes them (`spec.http[2].match[0].headers["x.y"]`): the same form the importer
//! names fields by, so a refusal while reading and a refusal while importing point the same way.

use std::fmt;

/// A YAML path, built as a walk descends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    pub fn root() -> Path {
        Path(String::new())
    }

    /// A mapping key: `.key` when it reads as an identifier, `["key"]` (escaped) otherwise.
    pub fn key(&self, key: &str) -> Path {
        let simple = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '@')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || "_-@".contains(c));
        match (simple, self.0.is_empty()) {
            (true, true) => Path(key.to_string()),
            (true, false) => Path(format!("{}.{key}", self.0)),
            (false, _) => Path(format!("{}[{}]", self.0, quote(key))),
        }
    }

    pub fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `"text"`, escaped so that a hostile key cannot forge a line of a report.
pub(crate) fn quote(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_yq() {
        let p = Path::root().key("spec").key("http").index(2);
        assert_eq!(p.key("headers").key("user-agent").as_str(), "spec.http[2].headers.user-agent");
        assert_eq!(p.key("x.y").as_str(), "spec.http[2][\"x.y\"]");
        assert_eq!(Path::root().key("<<").as_str(), "[\"<<\"]");
        assert_eq!(Path::root().key("a\nb").as_str(), "[\"a\\nb\"]");
        assert_eq!(Path::root().key("").as_str(), "[\"\"]");
    }
}
