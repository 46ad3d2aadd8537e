//! The regression corpus `tests/corpus/KIND/*.EXT`, listed the same way for both of its replays: the
//! fuzzers' oracles on stable (`checks/tests/corpus.rs`) and the wasm module under wasmtime
//! (`tests/tests/fuzz_targets.rs`).

use std::path::{Path, PathBuf};

/// The files of `tests/corpus/KIND` ending in `.EXT`, sorted. Panics when there are none: an empty listing
/// would let a replay pass without checking anything.
pub fn files(kind: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no .{ext} files (the corpus went missing)", dir.display());
    files
}
