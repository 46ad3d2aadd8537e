//! Source text to [`ast::Policy`]: the lexical pre-pass, the pest grammar, then the tree builder.

use pest::Parser as _;

use crate::ast;
use crate::builder::build;
use crate::diagnostic::Diagnostic;
use crate::prescan::prescan;
use crate::syntax_error::from_pest;

/// The pest parser generated from `grammar.pest`.
#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
pub struct PolicyParser;

/// Parses a policy. Errors are syntax errors plus the local value checks the builder makes (e.g. a
/// percentage with three decimals); cross-statement rules are [`crate::check`]'s job.
///
/// Never panics, whatever the input.
pub fn parse(source: &str) -> Result<ast::Policy, Vec<Diagnostic>> {
    match parse_tolerant(source)? {
        (policy, errors) if errors.is_empty() => Ok(policy),
        (_, errors) => Err(errors),
    }
}

/// Like [`parse`], but a tree is still returned when only token values are wrong (e.g. `101%`), with
/// those errors, so the checker can report the file's other errors in the same run.
pub(crate) fn parse_tolerant(source: &str) -> Result<(ast::Policy, Vec<Diagnostic>), Vec<Diagnostic>> {
    let joined = prescan(source)?;
    let pairs = PolicyParser::parse(Rule::file, &joined).map_err(|e| vec![from_pest(source, &e)])?;
    build(pairs, source).map_err(|internal| vec![internal])
}
