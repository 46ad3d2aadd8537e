//! What the rollout needs from the compiler, handed in by the CLI (`canaryc rollout`), so this crate never
//! depends on `canary-compiler`.

use std::path::Path;

/// Compile/check, diff and push a policy. The `canaryc` crate implements it with its own `compile`,
/// `diff` and `manifest` code paths; tests may implement it directly.
pub trait PolicyOps {
    /// Compile and check `text` (the policy file at `path`): `Err` holds the rendered diagnostics
    /// (`FILE:LINE:COL: error: …`).
    fn check(&self, path: &Path, text: &str) -> Result<(), String>;

    /// `canaryc diff`'s human summary of who moves from `old` to `new` for `service`.
    fn diff_summary(&self, old: &str, new: &str, service: &str) -> Result<String, String>;

    /// Run one push of the policy file at `policy` (already rewritten on disk): `canaryc manifest POLICY
    /// ARGS…`, its stdout piped into `command` when one is given (e.g. `kubectl apply -f -`).
    fn push(&self, policy: &Path, manifest_args: &[String], command: Option<&[String]>) -> Result<(), String>;
}
