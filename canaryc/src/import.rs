//! `canaryc import FILE.yaml…`: Istio VirtualServices (+ DestinationRules) → a policy on stdout. The
//! translation lives in [`canary_import`]; this only reads the files and prints what it says.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use super::{print, Failure};
use canary_import::{import, Input};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Istio YAML (multi-document streams and `kind: List` too); `-` reads stdin. Kinds other than
    /// VirtualService and DestinationRule are ignored with a note.
    #[arg(required = true, value_name = "FILE.yaml")]
    files: Vec<PathBuf>,
}

/// Prints the policy, or nothing when anything was refused (exit 1); notes, warnings and errors go to stderr
/// as `FILE: doc N KIND/NAME: YAML.PATH: severity: message`.
pub fn run(args: ImportArgs) -> Result<(), Failure> {
    let mut texts = Vec::with_capacity(args.files.len());
    for file in &args.files {
        let name = file.display().to_string();
        let text = if name == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| format!("stdin: cannot read: {e}"))?;
            text
        } else {
            std::fs::read_to_string(file).map_err(|e| format!("{name}: cannot read: {e}"))?
        };
        texts.push((name, text));
    }
    let inputs: Vec<Input<'_>> = texts.iter().map(|(name, text)| Input { name, text }).collect();
    let outcome = import(&inputs);
    for message in &outcome.messages {
        eprintln!("{message}");
    }
    match outcome.policy {
        Some(policy) => {
            print(&policy);
            Ok(())
        }
        None => Err(Failure::Reported),
    }
}
