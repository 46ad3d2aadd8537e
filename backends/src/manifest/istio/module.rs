//! Where the proxies fetch the filter module from (`--wasm-url`) and the checksum they verify it with
//! (`--sha256`, or computed when the module is a file on this machine).
//!
//! Istio accepts `http(s)://`, `oci://` and `file://` URLs (a URL without a scheme is pulled as an OCI image).
//! The checksum is the SHA-256 of the `.wasm` file for http(s) and file modules; for `oci://` Istio compares it
//! with the *image* digest, so it is never computed from a module file for OCI.

use std::path::{Path, PathBuf};

use super::sha256::{is_hex_digest, sha256_hex};

/// The module as the proxies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmModule {
    /// What goes in WasmPlugin `url` (a bare local path has become `file://ABSOLUTE`).
    pub url: String,
    /// 64 lowercase hex digits, when known.
    pub sha256: Option<String>,
}

/// How Envoy itself loads the module (EnvoyFilter has no istio-agent to download it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CodeSource<'a> {
    /// A path inside the proxy container.
    Local(&'a str),
    /// Fetched by Envoy over HTTP(S) through an existing cluster; Envoy requires the checksum.
    Remote { uri: &'a str, sha256: &'a str },
}

impl WasmModule {
    /// Resolves `--wasm-url` and `--sha256` (a digest, or the path of a local copy of the module to hash).
    /// Returns the module and notes for the operator.
    pub fn resolve(url: &str, sha256: Option<&str>) -> Result<(WasmModule, Vec<String>), String> {
        let mut notes = Vec::new();
        let url = normalise_url(url, &mut notes)?;
        let oci = url.starts_with("oci://") || !url.contains("://");
        let local = url.strip_prefix("file://").map(Path::new).filter(|p| p.is_file());
        let given = match sha256 {
            None => None,
            Some(s) if is_hex_digest(s) => Some(s.to_ascii_lowercase()),
            Some(_) if oci => {
                return Err("--sha256 for an OCI image is the image digest (64 hex digits), not a module file".into())
            }
            Some(path) => Some(
                hash_file(Path::new(path))
                    .map_err(|e| format!("--sha256 is neither 64 hex digits nor a module: {e}"))?,
            ),
        };
        let sha256 = match (given, local) {
            (Some(given), Some(path)) => {
                let actual = hash_file(path)?;
                if given != actual {
                    return Err(format!("--sha256 {given} does not match {} (sha256 {actual})", path.display()));
                }
                Some(given)
            }
            (Some(given), None) => Some(given),
            (None, Some(path)) => Some(hash_file(path)?),
            (None, None) => None,
        };
        if sha256.is_none() && !url.starts_with("file://") {
            notes.push(format!("no --sha256 for {url}: proxies will load whatever that URL serves"));
        }
        Ok((WasmModule { url, sha256 }, notes))
    }

    /// The module for a plain-Envoy EnvoyFilter: a local file, or an http(s) fetch that Envoy verifies.
    pub(crate) fn code_source(&self) -> Result<CodeSource<'_>, String> {
        if let Some(path) = self.url.strip_prefix("file://") {
            return Ok(CodeSource::Local(path));
        }
        if self.url.starts_with("http://") || self.url.starts_with("https://") {
            let sha256 = self.sha256.as_deref().ok_or_else(|| {
                format!("Envoy verifies a remote module: pass --sha256 (the digest, or a local copy of {})", self.url)
            })?;
            return Ok(CodeSource::Remote { uri: &self.url, sha256 });
        }
        Err(format!(
            "{}: EnvoyFilter loads modules with Envoy itself, which cannot pull OCI images; use a file:// path \
             mounted into the sidecar, an http(s):// URL, or --kind wasmplugin",
            self.url
        ))
    }
}

fn normalise_url(url: &str, notes: &mut Vec<String>) -> Result<String, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("--wasm-url is empty".into());
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return match scheme {
            "http" | "https" | "oci" | "file" => Ok(url.to_string()),
            _ => Err(format!("--wasm-url {url}: Istio fetches modules over http, https, oci or file, not `{scheme}`")),
        };
    }
    let path = Path::new(url);
    if path.is_file() {
        let absolute = std::fs::canonicalize(path).map_err(|e| format!("{url}: {e}"))?;
        notes.push(format!(
            "--wasm-url {url} is a local file: written as file://{0}, which the proxies must see at that same path \
             (e.g. a mounted volume)",
            absolute.display()
        ));
        return Ok(format!("file://{}", absolute.display()));
    }
    if url.starts_with('/') || url.starts_with('.') || url.ends_with(".wasm") {
        return Err(format!("--wasm-url {url}: no such file (for a path inside the proxy, write file://{url})"));
    }
    notes.push(format!("--wasm-url {url} has no scheme: Istio pulls it as an OCI image (oci://{url})"));
    Ok(url.to_string())
}

fn hash_file(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read the module: {e}", path.display()))?;
    Ok(sha256_hex(&bytes))
}

/// The local path a `file://` URL or bare path names, for `--kind envoy` (Envoy reads the module itself).
pub fn local_module_path(url: &str) -> Option<PathBuf> {
    match url.split_once("://") {
        Some(("file", path)) => Some(PathBuf::from(path)),
        Some(_) => None,
        None => Some(PathBuf::from(url)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (m, notes) = WasmModule::resolve("oci://ghcr.io/x/canary:1", None).unwrap();
        assert_eq!((m.url.as_str(), m.sha256), ("oci://ghcr.io/x/canary:1", None));
        assert_eq!(notes.len(), 1);
        assert!(WasmModule::resolve("ftp://x/y.wasm", None).is_err());
        assert!(WasmModule::resolve("./missing.wasm", None).unwrap_err().contains("no such file"));
        let (m, _) = WasmModule::resolve("ghcr.io/x/canary:1", Some(&"A".repeat(64))).unwrap();
        assert_eq!(m.sha256.as_deref(), Some("a".repeat(64).as_str()));
        assert!(WasmModule::resolve("oci://x/y:1", Some("/tmp/some.wasm")).is_err());
    }

    #[test]
    fn code_sources() {
        let local = WasmModule { url: "file:///opt/canary.wasm".into(), sha256: None };
        assert_eq!(local.code_source(), Ok(CodeSource::Local("/opt/canary.wasm")));
        let remote = WasmModule { url: "https://h/c.wasm".into(), sha256: None };
        assert!(remote.code_source().is_err());
        let oci = WasmModule { url: "oci://h/c:1".into(), sha256: Some("0".repeat(64)) };
        assert!(oci.code_source().unwrap_err().contains("OCI"));
        assert_eq!(local_module_path("file:///a.wasm"), Some(PathBuf::from("/a.wasm")));
        assert_eq!(local_module_path("https://a"), None);
    }
}
