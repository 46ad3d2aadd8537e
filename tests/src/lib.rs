//! Test harnesses for canary: a proxy-wasm host that runs the real filter module on wasmtime, and the
//! real-Envoy weather mesh, an oracle of what istiod makes of a VirtualService, and a reader of Prometheus
//! output and of the PromQL a dashboard runs.

pub mod host;
pub mod istio_pilot;
pub mod mesh;
pub mod prometheus;
pub mod reload;
