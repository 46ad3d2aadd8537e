//! Why a stream was not read, and where: the document (from 1, as an editor counts `---`), the YAML path
//! inside it and the line and column, so a caller can report in its own format (the importer's
//! `FILE: doc N: PATH: error: …`).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    at: Option<Location>,
    syntax: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    doc: usize,
    path: String,
    line: usize,
    column: usize,
}

impl Error {
    /// The text is not YAML (saphyr-parser's scanner or parser said so).
    pub(crate) fn syntax(doc: usize, path: String, e: &saphyr_parser::ScanError) -> Error {
        let (line, column) = (e.marker().line(), e.marker().col() + 1);
        Error { message: e.info().to_string(), at: Some(Location { doc, path, line, column }), syntax: true }
    }

    /// YAML, but refused while building its values (a budget, a duplicate key, a merge key, a tag).
    pub(crate) fn refused(doc: usize, path: String, at: saphyr_parser::Marker, message: String) -> Error {
        let location = Location { doc, path, line: at.line(), column: at.col() + 1 };
        Error { message, at: Some(location), syntax: false }
    }

    /// Not tied to a place: a value that does not deserialize into a type, or does not serialize.
    pub(crate) fn other(message: String) -> Error {
        Error { message, at: None, syntax: false }
    }

    /// The text is not YAML at all, rather than YAML refused.
    pub fn is_syntax(&self) -> bool {
        self.syntax
    }

    /// The document, counted from 1.
    pub fn doc(&self) -> Option<usize> {
        self.at.as_ref().map(|at| at.doc)
    }

    /// The YAML path inside the document; empty for the document itself.
    pub fn path(&self) -> &str {
        self.at.as_ref().map_or("", |at| &at.path)
    }

    /// Line and column, both from 1 (the column counts characters).
    pub fn position(&self) -> Option<(usize, usize)> {
        self.at.as_ref().map(|at| (at.line, at.column))
    }

    /// What went wrong, without the place.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// `doc 2: spec.http[0]: MESSAGE at line 7 column 9`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            None => f.write_str(&self.message),
            Some(at) => {
                write!(f, "doc {}: ", at.doc)?;
                if !at.path.is_empty() {
                    write!(f, "{}: ", at.path)?;
                }
                write!(f, "{} at line {} column {}", self.message, at.line, at.column)
            }
        }
    }
}

impl std::error::Error for Error {}
