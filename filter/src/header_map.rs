//! A request's headers as the one proxy-wasm call that returns every value hands them over
//! (`proxy_get_header_map_pairs`). `proxy_get_header_map_value` returns only a header's first value (Envoy's
//! `Context::getHeaderMapValue`), while Envoy's own route matchers and hash policies read every value of a
//! header sent several times; reading the whole map is what lets the filter decide as they do.
//!
//! Wire format (proxy-wasm-cpp-host `PairsUtil::marshalPairs`): a little-endian u32 count, then for each pair
//! its name length and value length (u32 each), then for each pair the name, a NUL, the value, a NUL. Envoy
//! lists the pairs in header-map order, so the values of a repeated header stay in request order.
//!
//! The buffer comes from the host, so nothing about it is trusted: a count or length that overruns it makes
//! the whole map unreadable (no headers), never a panic.

/// Where a pair's name and value are in the buffer.
#[derive(Debug, Clone, Copy)]
struct Pair {
    name: (usize, usize),
    value: (usize, usize),
}

/// The decoded map: the host's buffer and where each pair is in it (no copying).
#[derive(Debug, Default)]
pub struct HeaderMap {
    buf: Vec<u8>,
    pairs: Vec<Pair>,
}

/// Where one header's values are in a [`HeaderMap`], found in one pass; allocates only for a header that
/// repeats.
#[derive(Debug)]
pub enum Found {
    None,
    One(usize),
    Many(Vec<usize>),
}

impl HeaderMap {
    /// Decodes a serialized map; an empty or malformed buffer is a map without headers.
    pub fn decode(buf: Vec<u8>) -> HeaderMap {
        let pairs = pairs(&buf).unwrap_or_default();
        HeaderMap { buf, pairs }
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every pair whose name is `name` (lowercase, as Envoy hands names over).
    pub fn find(&self, name: &[u8]) -> Found {
        let mut found = Found::None;
        for (i, pair) in self.pairs.iter().enumerate() {
            if self.bytes(pair.name) == Some(name) {
                found = match found {
                    Found::None => Found::One(i),
                    Found::One(first) => Found::Many(vec![first, i]),
                    Found::Many(mut all) => {
                        all.push(i);
                        Found::Many(all)
                    }
                };
            }
        }
        found
    }

    /// The `nth` value (request order) of a header found with [`HeaderMap::find`].
    pub fn value_of(&self, found: &Found, nth: usize) -> Option<&[u8]> {
        let i = match found {
            Found::One(i) if nth == 0 => *i,
            Found::Many(all) => *all.get(nth)?,
            _ => return None,
        };
        self.bytes(self.pairs.get(i)?.value)
    }

    /// The first value of `name`.
    pub fn first(&self, name: &[u8]) -> Option<&[u8]> {
        let pair = self.pairs.iter().find(|pair| self.bytes(pair.name) == Some(name))?;
        self.bytes(pair.value)
    }

    /// A name or value of a pair; [`pairs`] checked that the buffer holds it.
    fn bytes(&self, (start, end): (usize, usize)) -> Option<&[u8]> {
        self.buf.get(start..end)
    }
}

/// The pairs of a serialized map, or `None` if a count or length overruns the buffer or a string lacks its
/// NUL. (Bytes after the last pair are ignored.)
fn pairs(buf: &[u8]) -> Option<Vec<Pair>> {
    if buf.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let bytes = buf.get(at..)?.first_chunk::<4>()?;
        Some(u32::from_le_bytes(*bytes) as usize)
    };
    let count = word(0)?;
    // The size table must fit before anything is allocated for it: a hostile count allocates nothing.
    let mut at = count.checked_mul(8)?.checked_add(4)?;
    if at > buf.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (name_len, value_len) = (word(4 + 8 * i)?, word(8 + 8 * i)?);
        let name = (at, at.checked_add(name_len)?);
        let value = (name.1.checked_add(1)?, name.1.checked_add(1)?.checked_add(value_len)?);
        if buf.get(name.1) != Some(&0) || buf.get(value.1) != Some(&0) {
            return None;
        }
        at = value.1 + 1;
        out.push(Pair { name, value });
    }
    Some(out)
}

/// Serializes pairs as the host does: what the native hosts that drive the engine (`canary-checks`) and the
/// wasmtime host of the tests hand over. Not exported from the module, so the wasm build drops it.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let count = pairs.clone().into_iter().count() as u32;
    let mut out = count.to_le_bytes().to_vec();
    for (name, value) in pairs.clone() {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend_from_slice(name);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        HeaderMap::decode(encode(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()))))
    }

    fn values(m: &HeaderMap, name: &str) -> Vec<String> {
        let found = m.find(name.as_bytes());
        (0..).map_while(|n| m.value_of(&found, n)).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
    }

    #[test]
    fn encodes_as_the_host_marshals() {
        let bytes = encode([(b"a".as_slice(), b"bc".as_slice())]);
        assert_eq!(bytes, [1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'b', b'c', 0]);
    }

    #[test]
    fn every_value_of_a_repeated_header_in_order() {
        let m = map(&[(":authority", "a"), ("x-env", "1"), ("cookie", "c=1"), ("x-env", ""), ("x-env", "3")]);
        assert_eq!(m.len(), 5);
        assert_eq!(values(&m, "x-env"), ["1", "", "3"]);
        assert_eq!(values(&m, "cookie"), ["c=1"]);
        assert!(values(&m, "x-none").is_empty());
        assert_eq!(m.first(b"x-env"), Some(&b"1"[..]));
        assert_eq!(m.first(b"x-none"), None);
        assert!(matches!(m.find(b"cookie"), Found::One(2)));
    }

    #[test]
    fn values_are_bytes_and_may_hold_nul() {
        let m = HeaderMap::decode(encode([(&b"x"[..], &b"\xff\x00\xfe"[..])]));
        assert_eq!(m.first(b"x"), Some(&b"\xff\x00\xfe"[..]));
    }

    #[test]
    fn an_empty_buffer_is_an_empty_map() {
        assert!(HeaderMap::decode(Vec::new()).is_empty());
        assert!(map(&[]).is_empty());
    }

    #[test]
    fn malformed_buffers_are_empty_maps_never_panics() {
        let good = encode([(&b"x-env"[..], &b"a"[..]), (&b"cookie"[..], &b"b=1"[..])]);
        // Every truncation, and every single-byte corruption, of a valid buffer.
        for len in 0..good.len() {
            let m = HeaderMap::decode(good[..len].to_vec());
            assert!(m.is_empty() || m.len() == 2, "{len}");
        }
        for at in 0..good.len() {
            for byte in [0u8, 1, 0x7f, 0xff] {
                let mut bad = good.clone();
                bad[at] = byte;
                let m = HeaderMap::decode(bad);
                let _ = (m.first(b"x-env"), values(&m, "cookie"));
            }
        }
        // Counts and lengths near the top of the range allocate nothing and overflow nothing.
        for count in [u32::MAX, u32::MAX / 8, 1 << 28] {
            let mut bad = count.to_le_bytes().to_vec();
            bad.extend_from_slice(&[0xff; 16]);
            assert!(HeaderMap::decode(bad).is_empty());
        }
        let mut huge_len = 1u32.to_le_bytes().to_vec();
        huge_len.extend_from_slice(&u32::MAX.to_le_bytes());
        huge_len.extend_from_slice(&u32::MAX.to_le_bytes());
        huge_len.extend_from_slice(b"x\0y\0");
        assert!(HeaderMap::decode(huge_len).is_empty());
        // Trailing bytes after the last pair are ignored.
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"junk");
        assert_eq!(HeaderMap::decode(trailing).first(b"cookie"), Some(&b"b=1"[..]));
    }

    #[test]
    fn many_pairs_and_many_repeats() {
        let pairs: Vec<(String, String)> = (0..5000).map(|i| (format!("h{}", i % 7), format!("{i}"))).collect();
        let m = HeaderMap::decode(encode(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()))));
        assert_eq!(m.len(), 5000);
        let h3 = values(&m, "h3");
        assert_eq!(h3.len(), 714);
        assert_eq!(h3[..2], ["3", "10"]);
    }
}
