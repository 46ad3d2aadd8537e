//! Embeds the playground bundle (`build/playground/`, made by `scripts/build-playground.sh`) into `canaryc`,
//! so `canaryc playground` serves the very page that was built and tested, with no files to install.
//!
//! The generated `playground_bundle.rs` defines `BUNDLE: &[(&str, &str, &[u8])]` (path, content type,
//! bytes). When the bundle has not been built, `BUNDLE` is empty and the server refuses to start rather
//! than serve a placeholder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("playground_bundle.rs");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let bundle = manifest.parent().unwrap_or(&manifest).join("build").join("playground");
    println!("cargo:rerun-if-changed=build.rs");

    let mut files = Vec::new();
    // Only native builds embed: the wasm32 build of this crate (linked into the playground module itself)
    // must not carry a copy of the previous bundle.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("wasm32") {
        // Watch the directory even before it exists: cargo re-runs a build script whose watched path is
        // missing on every build (and so recompiles this crate every time), so an empty directory is
        // created once; the bundle script fills it and the changed mtimes re-run this script.
        let _ = std::fs::create_dir_all(&bundle);
        println!("cargo:rerun-if-changed={}", bundle.display());
        collect(&bundle, &bundle, &mut files);
    }
    files.sort();
    // Without index.html there is no page to serve: treat a partial directory as "not built".
    if !files.iter().any(|(rel, _)| rel == "index.html") {
        files.clear();
    }

    let mut code = String::from("/// The embedded playground: (path, content type, bytes).\n");
    code.push_str("pub static BUNDLE: &[(&str, &str, &[u8])] = &[\n");
    for (rel, path) in &files {
        let _ =
            writeln!(code, "    ({rel:?}, {:?}, include_bytes!({:?})),", content_type(rel), path.display().to_string());
    }
    code.push_str("];\n");
    std::fs::write(&out, code).expect("write playground_bundle.rs");
}

/// Every regular file under `dir`, as (`/`-separated path relative to `root`, absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            files.push((rel.join("/"), path.canonicalize().unwrap_or(path)));
        }
    }
}

/// The type browsers need; `application/wasm` in particular is required by `WebAssembly.instantiateStreaming`.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt" | "canary") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
