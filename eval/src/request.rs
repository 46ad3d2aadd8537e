//! How the evaluator sees a request: a lookup by attribute slot, so the filter can fetch lazily from the
//! host and each caller decides how values are stored.

use crate::policy::AttrKey;

/// Source of request attributes. `slot` indexes [`crate::Policy::attrs`]; `key` is that entry, passed so
/// simple implementations can ignore slots. Values are raw bytes: header values need not be UTF-8.
///
/// A header sent several times (separate header lines, as HTTP/1.1 and HTTP/2 allow) has several values,
/// and the evaluator reads all of them, as Envoy's own route matchers and hash policies do: `nth` numbers
/// them in request order from 0, and `None` ends the list (a missing header has no value 0). A
/// single-valued source returns its value for `nth == 0` only.
pub trait Request {
    fn get(&self, slot: usize, key: &AttrKey, nth: usize) -> Option<&[u8]>;
}

/// The values of one attribute, in request order: [`Request::get`] for `nth` = 0, 1, … until `None`.
pub(crate) struct Values<'r, 'k, Q: ?Sized> {
    req: &'r Q,
    slot: usize,
    /// The attribute in `slot`; `None` (no values) for a slot the policy does not have.
    key: Option<&'k AttrKey>,
    nth: usize,
}

impl<'r, 'k, Q: Request + ?Sized> Values<'r, 'k, Q> {
    pub(crate) fn new(req: &'r Q, slot: usize, key: Option<&'k AttrKey>) -> Self {
        Values { req, slot, key, nth: 0 }
    }
}

impl<Q: ?Sized> Clone for Values<'_, '_, Q> {
    fn clone(&self) -> Self {
        Values { ..*self }
    }
}

impl<'r, Q: Request + ?Sized> Iterator for Values<'r, '_, Q> {
    type Item = &'r [u8];

    fn next(&mut self) -> Option<&'r [u8]> {
        let value = self.req.get(self.slot, self.key?, self.nth)?;
        self.nth += 1;
        Some(value)
    }
}

/// A request held in memory, for the CLI, the playground, tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct SimpleRequest {
    /// Lowercase names, in request order; a name may repeat (one entry per header line). Pseudo-headers
    /// (`:path`, `:method`, `:authority`) included.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Labels of the calling workload (node metadata `LABELS`).
    pub source: Vec<(String, String)>,
}

impl SimpleRequest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header line; a name added twice is a header sent twice (every value counts, as in Envoy).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }

    /// Adds a cookie, in the first `cookie` header if there is one (as `name=value; …` pairs), else in a new
    /// one. Several `cookie` headers mean the same as one joined with `; ` either way (see
    /// [`crate::cookie_value`]).
    pub fn cookie(mut self, name: &str, value: &str) -> Self {
        let pair = format!("{name}={value}");
        match self.headers.iter_mut().find(|(n, _)| n == "cookie") {
            Some((_, v)) => {
                v.extend_from_slice(b"; ");
                v.extend_from_slice(pair.as_bytes());
                self
            }
            None => self.header("cookie", pair),
        }
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
        let query = old.iter().position(|&b| b == b'?').and_then(|q| old.get(q..)).unwrap_or_default();
        let mut p = path.as_bytes().to_vec();
        p.extend_from_slice(query);
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

    /// Every value of header `name` (lowercase), in request order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// Removes every value of `name`, returning the first.
    fn take(&mut self, name: &str) -> Option<Vec<u8>> {
        let first = self.headers.iter().position(|(n, _)| n == name).map(|i| self.headers.remove(i).1);
        self.headers.retain(|(n, _)| n != name);
        first
    }
}

impl Request for SimpleRequest {
    fn get(&self, _slot: usize, key: &AttrKey, nth: usize) -> Option<&[u8]> {
        match key {
            AttrKey::Header(name) => self.headers.iter().filter(|(n, _)| n == name).nth(nth).map(|(_, v)| v.as_slice()),
            AttrKey::Source(label) if nth == 0 => {
                self.source.iter().find(|(l, _)| l == label).map(|(_, v)| v.as_bytes())
            }
            AttrKey::Source(_) => None,
        }
    }
}

/// A request resolved against one policy's attribute slots: each lookup is an index, as in the filter's
/// per-request cache. Build it once per request when evaluating many times (simulation, benchmarks).
#[derive(Debug)]
pub struct SlotRequest<'a> {
    /// Every slot's values, slot after slot.
    values: Vec<&'a [u8]>,
    /// Where each slot's values start in `values`; one more entry than there are slots.
    starts: Vec<usize>,
}

impl<'a> SlotRequest<'a> {
    pub fn new(attrs: &[AttrKey], req: &'a SimpleRequest) -> Self {
        let (mut values, mut starts) = (Vec::new(), vec![0]);
        for (slot, key) in attrs.iter().enumerate() {
            values.extend((0..).map_while(|nth| req.get(slot, key, nth)));
            starts.push(values.len());
        }
        SlotRequest { values, starts }
    }
}

impl Request for SlotRequest<'_> {
    fn get(&self, slot: usize, _key: &AttrKey, nth: usize) -> Option<&[u8]> {
        let (start, end) = (*self.starts.get(slot)?, *self.starts.get(slot + 1)?);
        self.values.get(start..end)?.get(nth).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(req: &'a dyn Request, slot: usize, key: &AttrKey) -> Vec<&'a [u8]> {
        Values::new(req, slot, Some(key)).collect()
    }

    #[test]
    fn repeated_headers_keep_every_value_in_order() {
        let req = SimpleRequest::new().header("X-Env", "a").header("x-other", "o").header("x-env", "b");
        let key = AttrKey::Header("x-env".into());
        assert_eq!(values(&req, 0, &key), [&b"a"[..], b"b"]);
        let attrs = [AttrKey::Header("x-other".into()), key.clone(), AttrKey::Header("x-none".into())];
        let slots = SlotRequest::new(&attrs, &req);
        assert_eq!(values(&slots, 1, &key), [&b"a"[..], b"b"]);
        assert_eq!(values(&slots, 0, &attrs[0]), [&b"o"[..]]);
        assert!(values(&slots, 2, &attrs[2]).is_empty());
        assert_eq!(slots.get(3, &key, 0), None);
    }

    #[test]
    fn setters_replace_every_value_and_cookies_join_the_first_cookie_header() {
        let req = SimpleRequest::new().header(":method", "A").header(":method", "B").method("GET");
        assert_eq!(req.values(":method").collect::<Vec<_>>(), [&b"GET"[..]]);
        let req = SimpleRequest::new().cookie("a", "1").header("cookie", "b=2").cookie("c", "3");
        assert_eq!(req.values("cookie").collect::<Vec<_>>(), [&b"a=1; c=3"[..], b"b=2"]);
        let labels = SimpleRequest::new().source("version", "v2");
        assert_eq!(labels.get(0, &AttrKey::Source("version".into()), 0), Some(&b"v2"[..]));
        assert_eq!(labels.get(0, &AttrKey::Source("version".into()), 1), None);
    }
}
