//! canary-dsl: the `.canary` policy language (SCENARIOS.md §2).
//!
//! [`parse`] turns source text into an [`ast::Policy`] with byte spans, [`check`] enforces the rules that
//! span statements (duplicates, unknown `let`s, split sums, TCP restrictions…), and [`render`] prints
//! [`Diagnostic`]s as `FILE:LINE:COL: error: MESSAGE` followed by a caret excerpt. Lowering to the JSON
//! config lives in `canary-compiler`, so this crate depends on nothing but the parser stack and `canary-eval`'s
//! `compile_regex` (one regex compiler: a pattern the checker accepts is one the evaluator loads).
//!
//! [`fmt::format`] prints a policy in its canonical layout (`canaryc fmt`).
//!
//! Nothing here panics on user input: every malformed policy yields diagnostics.

pub mod ast;
mod builder;
mod check;
pub mod diagnostic;
pub mod fmt;
mod parser;
pub mod position;
mod prescan;
pub mod scope;
mod suggest;
mod syntax_error;

pub use check::{check, percent, MAX_CONDITION_DEPTH};
pub use diagnostic::{render, Diagnostic, Note, Severity};
pub use parser::parse;
pub use position::{line_col, LineCol, LineIndex};
pub use prescan::MAX_NESTING;
pub use suggest::closest;
pub use syntax_error::RESERVED as KEYWORDS;

/// Parses and checks a policy: the AST and its warnings when there is no error, else the errors (in
/// source order). Warnings are dropped on failure: they are often consequences of the error (a `let`
/// looks unused because its one use is misspelt) and would push the first error off the first line.
pub fn parse_and_check(source: &str) -> Result<(ast::Policy, Vec<Diagnostic>), Vec<Diagnostic>> {
    let (policy, mut errors) = parser::parse_tolerant(source)?;
    let (more, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) =
        check(&policy).into_iter().partition(Diagnostic::is_error);
    errors.extend(more);
    if !errors.is_empty() {
        errors.sort_by_key(|d| d.span.start);
        return Err(errors);
    }
    Ok((policy, warnings))
}
