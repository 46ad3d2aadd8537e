//! canary-policy-tests — `canaryc test`: policy tests as YAML cases, so a rollout step (a pull request changing
//! one percentage) fails review when a rule stops doing what its author meant. [`file`] reads the cases (with
//! positions, through `marked-yaml`), [`run`] decides them with the one evaluator through the core's request
//! simulation. Contract: depends on the core (`canary-compiler`), `dsl` and `eval` only; never on the backends,
//! the importer or the CLI.

pub mod file;
pub mod run;

pub use file::{parse, Case, Expect, FileError, RuleExpect};
pub use run::{rule_spans, Runner, DEFAULT_SAMPLES, SIGMAS};
