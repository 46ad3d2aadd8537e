//! Completion: after `->`, `default` or a percentage, the subsets the document already names; after `by`,
//! `cookie` and `header`; elsewhere the keywords, the user-agent families and the `let` names in scope.
//!
//! The context is read from the text before the cursor, since the document rarely parses while a rule is
//! being typed; names come from the current tree, else from the last version that parsed.

use std::collections::BTreeSet;

use canary_dsl::ast::{Policy, Stmt, StmtKind};
use lsp_types::{CompletionItem, CompletionItemKind, Documentation, MarkupContent, MarkupKind};

use super::document::Document;
use super::hover::KEYWORDS;
use super::lexical::{self, Place};
use canary_compiler::families;

pub fn complete(doc: &Document, offset: usize) -> Vec<CompletionItem> {
    if lexical::place(&doc.text, offset) != Place::Code {
        return Vec::new();
    }
    let start = lexical::word_start(&doc.text, offset);
    let names = doc.names_source();
    match lexical::previous_token(&doc.text, start) {
        Some("->" | "default" | "%") => {
            let subsets = names.map(subsets).unwrap_or_default();
            subsets.iter().map(|s| item(s, CompletionItemKind::ENUM_MEMBER, "subset", None)).collect()
        }
        Some("by") => ["cookie", "header"].iter().map(|k| keyword(k)).collect(),
        Some("service" | "let") => Vec::new(), // a new name: nothing to suggest
        _ => {
            let mut items: Vec<CompletionItem> = KEYWORDS.iter().map(|(k, _)| keyword(k)).collect();
            items.extend(families::FAMILIES.iter().map(|(name, description)| {
                item(name, CompletionItemKind::CONSTANT, "user-agent family", Some(description))
            }));
            let lets = names.map(|p| let_names(p, doc.policy.as_ref().map(|_| offset))).unwrap_or_default();
            items.extend(lets.iter().map(|n| item(n, CompletionItemKind::VARIABLE, "let", None)));
            items
        }
    }
}

fn keyword(k: &str) -> CompletionItem {
    let doc = KEYWORDS.iter().find(|(w, _)| *w == k).map(|(_, d)| *d);
    item(k, CompletionItemKind::KEYWORD, "keyword", doc)
}

fn item(label: &str, kind: CompletionItemKind, detail: &str, doc: Option<&str>) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: Some(detail.to_string()),
        documentation: doc
            .map(|d| Documentation::MarkupContent(MarkupContent { kind: MarkupKind::Markdown, value: d.to_string() })),
        ..Default::default()
    }
}

/// Every subset the policy names (routes, splits, defaults), sorted.
fn subsets(policy: &Policy) -> BTreeSet<String> {
    fn walk(stmts: &[Stmt], out: &mut BTreeSet<String>) {
        for stmt in stmts {
            match &stmt.kind {
                StmtKind::Route { subset, .. } | StmtKind::Default { subset } => {
                    out.insert(subset.text.clone());
                }
                StmtKind::Split { split, .. } => out.extend(split.shares.iter().map(|s| s.subset.text.clone())),
                StmtKind::Service(svc) => walk(&svc.stmts, out),
                StmtKind::Mirror(m) => {
                    out.insert(m.subset.text.clone());
                }
                StmtKind::Let { .. } | StmtKind::Settings { .. } => {}
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&policy.stmts, &mut out);
    out
}

/// `let` names visible at `offset`: the file's, plus the enclosing service's. Without an offset (the tree
/// is from an older text), every `let` of the policy.
fn let_names(policy: &Policy, offset: Option<usize>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for stmt in &policy.stmts {
        match &stmt.kind {
            StmtKind::Let { name, .. } => {
                out.insert(name.text.clone());
            }
            StmtKind::Service(svc) if offset.is_none_or(|o| stmt.span.start < o && o < stmt.span.end) => {
                for inner in &svc.stmts {
                    if let StmtKind::Let { name, .. } = &inner.kind {
                        out.insert(name.text.clone());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(src: &str, at: &str) -> Vec<String> {
        let doc = Document::new(src.into());
        let offset = src.find(at).unwrap() + at.len();
        complete(&doc, offset).into_iter().map(|i| i.label).collect()
    }

    #[test]
    fn subsets_after_an_arrow_default_or_percentage() {
        let src = "service a {\n  android: 50% canary, 10% v3\n  default v1\n}\nios -> v1";
        assert_eq!(labels(src, "ios -> "), ["canary", "v1", "v3"]);
        assert_eq!(labels(src, "ios -> v"), ["canary", "v1", "v3"], "the word being typed is replaced");
        assert_eq!(labels(src, "default "), ["canary", "v1", "v3"]);
        assert_eq!(labels(src, "50% "), ["canary", "v1", "v3"]);
        assert_eq!(labels(src, "canary, 10% "), ["canary", "v1", "v3"]);
    }

    #[test]
    fn keywords_families_and_lets_elsewhere() {
        let src = "let beta = cookie b=1\nservice a {\n  let inner = ios\n  \n}\nservice b {\n  \n}\n";
        let in_a = labels(src, "ios\n  ");
        for expected in ["service", "header", "cookie", "android", "mobile", "beta", "inner"] {
            assert!(in_a.contains(&expected.to_string()), "{expected} missing from {in_a:?}");
        }
        let in_b = labels(src, "service b {\n  ");
        assert!(in_b.contains(&"beta".to_string()) && !in_b.contains(&"inner".to_string()), "{in_b:?}");
        assert_eq!(labels(src, "let "), Vec::<String>::new());
        assert_eq!(labels("x by ", "by "), ["cookie", "header"]);
        assert!(labels("# a comment ", "comment ").is_empty());
    }

    #[test]
    fn names_survive_a_broken_edit() {
        let doc = Document::new("let beta = cookie b=1\nbeta -> green\n".into());
        let text = "let beta = cookie b=1\nbeta -> green\nandroid -> ";
        let doc = doc.update(text.into());
        let got: Vec<String> = complete(&doc, text.len()).into_iter().map(|i| i.label).collect();
        assert_eq!(got, ["green"]);
        let got: Vec<String> = complete(&doc, text.find("android").unwrap()).into_iter().map(|i| i.label).collect();
        assert!(got.contains(&"beta".to_string()));
    }
}
