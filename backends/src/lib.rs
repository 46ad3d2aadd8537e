//! canary-backends: every lowering of the compiled config into something a proxy runs. It owns the native
//! backend (`native/`: a service's rules as ordered Envoy route matchers, or Istio VirtualService match blocks,
//! exact or refused with `FILE:LINE:COL`) and the manifests that carry either backend to a proxy (`manifest/`:
//! Envoy bootstraps and routes, Istio WasmPlugin/EnvoyFilter/DestinationRule/VirtualService, the ECDS/RDS
//! push forms), and the cost model (`cost`) that weighs a service's exact forms for `--backend auto`. Every
//! function takes an already-compiled [`canary_eval::Config`], so what is deployed is what
//! `canaryc compile` prints; nothing here decides a request (that is `canary-eval`'s alone) or reads YAML
//! (that is `canary-import`, the other direction). It may depend on the core (`canary-compiler`), `dsl`,
//! `eval` and `durable`, never on the CLI, the importer, the language server or the rollout.

pub mod cost;
pub mod manifest;
pub mod native;
pub mod route_settings;
