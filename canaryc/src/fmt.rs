//! `canaryc fmt [--check] FILE…`: rewrites policies in the canonical layout of [`canary_dsl::fmt`].

use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use super::{color, print, Failure};

#[derive(Args)]
pub struct FmtArgs {
    /// Policies to format in place; `-` reads standard input and writes standard output.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Change nothing: list the files that are not formatted and exit 1 if there is any.
    #[arg(long)]
    check: bool,
}

/// What formatting one file found.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Formatted,
    Changed,
    /// Diagnostics were printed; the file is untouched.
    Refused,
}

pub fn run(args: FmtArgs) -> Result<(), Failure> {
    let mut failed = false;
    for file in &args.files {
        match one(file, args.check)? {
            Outcome::Formatted => {}
            Outcome::Changed if args.check => {
                print(&format!("would reformat {}\n", display(file)));
                failed = true;
            }
            Outcome::Changed => {}
            Outcome::Refused => failed = true,
        }
    }
    if failed {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}

fn display(file: &std::path::Path) -> String {
    if file.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        file.display().to_string()
    }
}

fn one(file: &std::path::Path, check: bool) -> Result<Outcome, Failure> {
    let name = display(file);
    let stdin = file.as_os_str() == "-";
    let source = if stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| format!("{name}: cannot read: {e}"))?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("{name}: cannot read: {e}"))?
    };
    let formatted = match canary_dsl::fmt::format(&source) {
        Ok(f) => f,
        Err(diags) => {
            eprint!("{}", canary_compiler::render(&diags, &source, &name, color()));
            return Ok(Outcome::Refused);
        }
    };
    if stdin && !check {
        print(&formatted);
    }
    if formatted == source {
        return Ok(Outcome::Formatted);
    }
    if !stdin && !check {
        // Atomically (a full disk or a kill never leaves the policy half-written), through a symlink to the file
        // it names, keeping that file's permissions.
        let target = std::fs::canonicalize(file).map_err(|e| format!("{name}: cannot write: {e}"))?;
        canary_backends::manifest::write_atomic(&target, formatted.as_bytes())
            .map_err(|e| format!("{name}: cannot write: {e}"))?;
    }
    Ok(Outcome::Changed)
}
