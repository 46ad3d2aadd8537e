//! Test harnesses for canary: a proxy-wasm host that runs the real filter module on wasmtime, an oracle of
//! what istiod makes of a VirtualService, policy pushes (one Envoy fed by canaryc's push forms, a fleet sharing
//! watched ECDS files), and a reader of Prometheus output and of the PromQL a dashboard runs; the real-Envoy
//! weather mesh itself lives in `canary-mesh` (so `make demo` never compiles wasmtime) and is re-exported here
//! as `canary_tests::mesh`.

pub mod fleet;
pub mod host;
pub mod istio_pilot;
pub mod prometheus;
pub mod push;
pub mod reload;
pub mod rollout;

/// The weather mesh harness, under the path the tests have always used (`canary_tests::mesh::…`).
pub use canary_mesh as mesh;
