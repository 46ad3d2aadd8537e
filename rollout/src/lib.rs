//! canary-rollout: `canaryc rollout` as a library.
//!
//! **Contract.** This crate owns progressive delivery: the rollout plan (`plan`), the rewrite of one split's
//! percentages in the policy text (`edit`), the anytime-valid judge (`judge`) and the pure step machine that
//! uses it (`stepper`), the metric sources that feed it (`metrics`: Envoy admin endpoints, a Prometheus
//! server), the crash-safe state file (`state`), the controller loop with its live view and JSON events
//! (`controller`, `view`), and the traffic simulator that tests the judge's guarantee (`sim`). It depends on
//! `canary-dsl` (spans of the split to rewrite) and `canary-eval` (the one evaluator: the simulator routes
//! users through `Policy::decide`), never on `canary-compiler`: compiling, diffing and pushing a policy are
//! handed in by the CLI through the [`ops::PolicyOps`] trait, so `canaryc` can depend on this crate
//! without a cycle and the judge stays testable without manifests, YAML backends or the network.

pub mod clock;
pub mod control;
pub mod controller;
pub mod counts;
pub mod edit;
pub mod events;
pub mod exposition;
pub mod judge;
pub mod metrics;
pub mod ops;
pub mod plan;
pub mod sim;
pub mod source_of_plan;
pub mod state;
pub mod stepper;
pub mod transition;
pub mod view;
mod yaml;
