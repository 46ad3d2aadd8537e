//! placeholder
pub mod mesh;
