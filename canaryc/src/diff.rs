//! `canaryc diff OLD NEW [--service S] [--json] [--exit-code]`: the glue around [`canary_compiler::diff`].
//!
//! Exit codes: 0 whether or not anything moves (a diff is a report), 1 on an error in either policy — unless
//! `--exit-code` (as `git diff --exit-code`): then 0 when nothing moves, 1 when something does, 2 on an error.

use std::path::PathBuf;

use clap::Args;

use super::{load, Failure};

#[derive(Args)]
pub struct DiffArgs {
    /// The policy in force.
    old: PathBuf,
    /// The policy about to replace it.
    new: PathBuf,
    /// Compare only this service (a name neither policy declares gets their top-level rules).
    #[arg(long)]
    service: Option<String>,
    /// `{"services": {NAME: [{"from", "to", "percent", "by", "when", "example", "old_rule", "new_rule"}]}}`.
    #[arg(long)]
    json: bool,
    /// Exit 1 when something moves, 0 when nothing does (errors: 2).
    #[arg(long)]
    exit_code: bool,
}

pub fn run(args: DiffArgs) -> Result<(), Failure> {
    let exit_code = args.exit_code;
    match compare(args) {
        Ok(_) if !exit_code => Ok(()),
        Ok(moved) => Err(Failure::Exit(i32::from(moved))),
        Err(e) if !exit_code => Err(e),
        Err(Failure::Message(m)) => {
            eprintln!("error: {m}");
            Err(Failure::Exit(2))
        }
        Err(_) => Err(Failure::Exit(2)),
    }
}

/// Prints the diff; whether anything moves.
fn compare(args: DiffArgs) -> Result<bool, Failure> {
    let old = load(&args.old)?.0.config;
    let new = load(&args.new)?.0.config;
    let diffs = canary_compiler::diff::diff(&old, &new, args.service.as_deref())?;
    let out = if args.json { canary_compiler::diff::json(&diffs) } else { canary_compiler::diff::text(&diffs) };
    super::print(&out);
    Ok(diffs.iter().any(|d| !d.moves.is_empty()))
}
