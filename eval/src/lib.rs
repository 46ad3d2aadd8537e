//! canary-eval: the compiled config and the one evaluator every consumer shares.
//!
//! The proxy-wasm filter, `canaryc eval`/`simulate` and the browser playground all call [`Policy::decide`],
//! so they cannot disagree. This crate deliberately depends on neither the parser nor the CLI so the filter
//! stays small.

pub mod config;
pub mod explain;
mod hash;
mod index;
mod matcher;
mod policy;
mod regex;
mod request;
#[cfg(feature = "schema")]
mod schema;
pub mod telemetry;
mod wire;

pub use config::{Config, BUCKETS, CONFIG_VERSION};
pub use hash::{sticky_bucket, sticky_bucket_all};
pub use matcher::literal_alternatives;
pub use policy::{quoted, AttrKey, ConfigError, Decision, EvaluationPlan, Policy, RuleId, ServiceId, SubsetId};
pub use regex::{
    compile_regex, parse_regex, Regex, RegexError, REGEX_CACHE_BUDGET, REGEX_CACHE_CAPACITY, REGEX_SIZE_LIMIT,
};
/// The parsed form [`parse_regex`] returns, for the native backends that print it as RE2.
pub use regex_syntax::hir;
pub use request::{Request, SimpleRequest, SlotRequest};
#[cfg(feature = "schema")]
pub use schema::schema_json;
pub use wire::{cookie_value, query_value};
