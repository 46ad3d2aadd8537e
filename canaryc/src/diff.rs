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
    /// Exit 1 when something moves or a route setting changes, 0 when nothing does (errors: 2).
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
    let (old, old_text) = load(&args.old)?;
    let (new, new_text) = load(&args.new)?;
    // Route settings change no decision, so the regions below never show them: they get lines of their own.
    let settings = if old.extras.is_empty() && new.extras.is_empty() {
        Vec::new()
    } else {
        let a = super::route_settings::all_services(&args.old, &old, &old_text)?;
        let b = super::route_settings::all_services(&args.new, &new, &new_text)?;
        super::route_settings::diff_lines(&a, &b, args.service.as_deref())
    };
    let diffs = canary_compiler::diff::diff(&old.config, &new.config, args.service.as_deref())?;
    let mut out = if args.json { canary_compiler::diff::json(&diffs) } else { canary_compiler::diff::text(&diffs) };
    if !settings.is_empty() {
        if args.json {
            if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&out) {
                v["settings"] = serde_json::json!(settings);
                out = serde_json::to_string_pretty(&v).unwrap_or(out) + "\n";
            }
        } else {
            out.push_str("route settings change:\n");
            for line in &settings {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    super::print(&out);
    Ok(diffs.iter().any(|d| !d.moves.is_empty()) || !settings.is_empty())
}
