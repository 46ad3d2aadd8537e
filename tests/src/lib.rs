//! Test harnesses for canary: a proxy-wasm host that runs the real filter module on wasmtime, an oracle of
//! what istiod makes of a VirtualService, policy pushes (one Envoy fed by canaryc's push forms, a fleet sharing
//! watched ECDS files); the real-Envoy weather mesh and the real Prometheus launcher live in `canary-mesh` (so
//! `make demo` never compiles wasmtime) and are re-exported here as `canary_tests::mesh`.

pub mod bootstrap;
pub mod envoy_gateway;
pub mod fleet;
pub mod host;
pub mod istio_pilot;
pub mod push;
pub mod reload;
pub mod rollout;

/// The weather mesh harness, under the path the tests have always used (`canary_tests::mesh::…`).
pub use canary_mesh as mesh;
