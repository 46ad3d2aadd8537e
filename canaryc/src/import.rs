//! `canaryc import FILE.yaml…`: Istio VirtualServices (+ DestinationRules) → a policy on stdout. The
//! translation lives in [`canary_import`]; this only reads the files and prints what it says.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use super::{print, Failure};
use canary_import::{import_with, Input};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Istio YAML (multi-document streams and `kind: List` too); `-` reads stdin. Kinds other than
    /// VirtualService and DestinationRule are ignored with a note.
    #[arg(required = true, value_name = "FILE.yaml")]
    files: Vec<PathBuf>,
    /// Write the routes' settings (timeout, retries, rewrite, headers, corsPolicy) to FILE, which the policy
    /// names as `settings "FILE"` (save the policy in the directory FILE is relative to). Without it, routes
    /// with settings are refused.
    #[arg(long, value_name = "FILE")]
    settings_out: Option<PathBuf>,
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
    let name = args.settings_out.as_ref().map(|p| p.display().to_string());
    let outcome = import_with(&inputs, name.as_deref());
    for message in &outcome.messages {
        eprintln!("{message}");
    }
    match outcome.policy {
        Some(policy) => {
            if let Some(out) = &args.settings_out {
                if !outcome.settings.services.is_empty() {
                    let yaml = canary_settings::to_yaml(&outcome.settings);
                    canary_durable::write_atomic(out, yaml.as_bytes())
                        .map_err(|e| format!("{}: cannot write: {e}", out.display()))?;
                }
            }
            print(&policy);
            Ok(())
        }
        None => Err(Failure::Reported),
    }
}
