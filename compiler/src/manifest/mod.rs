//! `canaryc manifest`: deployment artifacts generated from a compiled policy.
//!
//! Each kind lives in its own module so the CLI only picks one by `--kind`; every generator takes the
//! already-compiled [`canary_eval::Config`], so what is deployed is exactly what `canaryc compile` prints.

pub mod envoy;

pub use envoy::{envoy_bootstrap, EnvoyOptions};
