//! canary-durable: files that survive crashes and concurrent readers.
//!
//! **Contract.** This crate owns how `canaryc` replaces a file others read (`write_atomic`: Envoy watching a
//! pushed ECDS/RDS file, a policy `fmt` or a rollout step rewrites, a rollout's state file) and the advisory
//! lock (`Lock`) that keeps one rollout controller per state file. It depends on nothing of ours and on no
//! YAML, CLI or network crate, so the CLI (`canaryc`), the backends and the rollout crate share one implementation.

mod atomic;
mod lock;

pub use atomic::write_atomic;
pub use lock::Lock;
