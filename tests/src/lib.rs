//! Test harnesses for canary: a proxy-wasm host that runs the real filter module on wasmtime, and the
//! real-Envoy weather mesh, and an oracle of what istiod makes of a VirtualService.

pub mod fleet;
pub mod host;
pub mod istio_pilot;
pub mod mesh;
pub mod push;
pub mod reload;
