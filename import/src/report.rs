//! What `canaryc import` tells the operator: errors (nothing is printed on stdout), warnings (the policy is
//! printed, but decides differently on some requests) and notes (what was ignored, and why).
//!
//! Every message names its file, document and YAML path: `lab.yaml: doc 2 VirtualService/forecast:
//! spec.http[0].match[0].queryParams.a: error: …` — documents count from 1, as an editor shows them.

use std::fmt;

use super::yaml::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Note,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub severity: Severity,
    pub file: String,
    /// `doc 2 VirtualService/forecast`; empty for a message about the whole file.
    pub doc: String,
    /// YAML path inside the document; empty for the whole document.
    pub path: String,
    pub text: String,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if !self.doc.is_empty() {
            write!(f, "{}: ", self.doc)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        let severity = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{severity}: {}", self.text)
    }
}

/// Collects messages for one document (or one file).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub file: String,
    pub doc: String,
    pub messages: Vec<Message>,
}

impl Report {
    pub fn new(file: &str, doc: &str) -> Self {
        Report { file: file.to_string(), doc: doc.to_string(), messages: Vec::new() }
    }

    pub fn error(&mut self, path: &Path, text: impl Into<String>) {
        self.push(Severity::Error, path, text.into());
    }

    pub fn warning(&mut self, path: &Path, text: impl Into<String>) {
        self.push(Severity::Warning, path, text.into());
    }

    pub fn note(&mut self, path: &Path, text: impl Into<String>) {
        self.push(Severity::Note, path, text.into());
    }

    #[cfg(test)]
    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    pub fn error_count(&self) -> usize {
        self.messages.iter().filter(|m| m.severity == Severity::Error).count()
    }

    fn push(&mut self, severity: Severity, path: &Path, text: String) {
        let message =
            Message { severity, file: self.file.clone(), doc: self.doc.clone(), path: path.as_str().to_string(), text };
        if !self.messages.contains(&message) {
            self.messages.push(message);
        }
    }
}
