//! Test harnesses for canary: a proxy-wasm host that runs the real filter module on wasmtime, and the
//! real-Envoy weather mesh.

pub mod host;
pub mod mesh;
pub mod reload;
