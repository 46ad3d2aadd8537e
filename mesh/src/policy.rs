//! Policies for the mesh, compiled exactly as `canaryc compile` does (never hand-written JSON), so the real
//! filter in Envoy runs what an operator would deploy.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use canary_eval::config::Config;

use super::envoy::workspace_root;

/// Compiles policy text; compile errors come back rendered as `FILE:LINE:COL: error: …`.
pub fn compile(source: &str, file: &str) -> Result<Config> {
    match canary_compiler::compile(source, file) {
        Ok(compiled) => Ok(compiled.config),
        Err(diags) => bail!("{}", canary_compiler::render(&diags, source, file, false)),
    }
}

/// Compiles a policy file.
pub fn compile_file(path: &Path) -> Result<Config> {
    let source = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    compile(&source, &path.display().to_string())
}

/// Compiles `examples/<name>.canary` from the checkout, e.g. `example("s1-all-v1")`.
pub fn example(name: &str) -> Result<Config> {
    compile_file(&workspace_root().join("examples").join(format!("{name}.canary")))
}

/// Every policy file under `examples/` (`*.canary`), sorted by name.
pub fn example_files() -> Result<Vec<PathBuf>> {
    let dir = workspace_root().join("examples");
    let entries = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "canary"))
        .collect();
    files.sort();
    Ok(files)
}
