//! How the evaluator sees a request: a lookup by attribute slot, so the filter can fetch lazily from the
//! host and each caller decides how values are stored.

use crate::policy::AttrKey;

/// Source of request attributes. `slot` indexes [`crate::Policy::attrs`]; `key` is that entry, passed so
/// simple implementations can ignore slots. Values are raw bytes: header values need not be UTF-8.
pub trait Request {
    fn get(&self, slot: usize, key: &AttrKey) -> Option<&[u8]>;
}

/// A request held in memory, for the CLI, the playground, tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct SimpleRequest {
    /// Lowercase names; pseudo-headers (`:path`, `:method`, `:authority`) included.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Labels of the calling workload (node metadata `LABELS`).
    pub source: Vec<(String, String)>,
}

impl SimpleRequest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header; a repeated `cookie` header is folded into one, as RFC 6265 §5.4 requires of clients.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        let name = name.to_ascii_lowercase();
        let value = value.as_ref();
        if name == "cookie" {
            if let Some((_, v)) = self.headers.iter_mut().find(|(n, _)| n == "cookie") {
                v.extend_from_slice(b"; ");
                v.extend_from_slice(value);
                return self;
            }
        }
        self.headers.push((name, value.to_vec()));
        self
    }

    pub fn cookie(self, name: &str, value: &str) -> Self {
        self.header("cookie", format!("{name}={value}"))
    }

    /// Appends `name=value` to the query string of `:path` (values are taken as already encoded).
    pub fn query(mut self, name: &str, value: &str) -> Self {
        let mut path = self.take(":path").unwrap_or_else(|| b"/".to_vec());
        path.push(if path.contains(&b'?') { b'&' } else { b'?' });
        path.extend_from_slice(format!("{name}={value}").as_bytes());
        self.headers.push((":path".into(), path));
        self
    }

    /// Sets the path, keeping any query already added.
    pub fn path(mut self, path: &str) -> Self {
        let old = self.take(":path").unwrap_or_default();
        let query = old.iter().position(|&b| b == b'?').map(|q| old[q..].to_vec()).unwrap_or_default();
        let mut p = path.as_bytes().to_vec();
        p.extend_from_slice(&query);
        self.headers.push((":path".into(), p));
        self
    }

    pub fn method(mut self, method: &str) -> Self {
        self.take(":method");
        self.header(":method", method)
    }

    pub fn host(mut self, host: &str) -> Self {
        self.take(":authority");
        self.header(":authority", host)
    }

    pub fn source(mut self, label: &str, value: &str) -> Self {
        self.source.push((label.into(), value.into()));
        self
    }

    fn take(&mut self, name: &str) -> Option<Vec<u8>> {
        let i = self.headers.iter().position(|(n, _)| n == name)?;
        Some(self.headers.remove(i).1)
    }
}

impl Request for SimpleRequest {
    fn get(&self, _slot: usize, key: &AttrKey) -> Option<&[u8]> {
        match key {
            AttrKey::Header(name) => self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice()),
            AttrKey::Source(label) => self.source.iter().find(|(l, _)| l == label).map(|(_, v)| v.as_bytes()),
        }
    }
}

/// A request resolved against one policy's attribute slots: each lookup is an index, as in the filter's
/// per-request cache. Build it once per request when evaluating many times (simulation, benchmarks).
#[derive(Debug)]
pub struct SlotRequest<'a> {
    values: Vec<Option<&'a [u8]>>,
}

impl<'a> SlotRequest<'a> {
    pub fn new(attrs: &[AttrKey], req: &'a SimpleRequest) -> Self {
        SlotRequest { values: attrs.iter().enumerate().map(|(slot, key)| req.get(slot, key)).collect() }
    }
}

impl Request for SlotRequest<'_> {
    fn get(&self, slot: usize, _key: &AttrKey) -> Option<&[u8]> {
        self.values.get(slot).copied().flatten()
    }
}
