//! Byte-level parsing of cookies, query strings and hosts, without allocating: the hot path scans the
//! header value in place and compares slices.

/// The value of cookie `name` in a `Cookie` header, parsed exactly as Envoy parses it for `RouteMatch.cookies`
/// and cookie hash policies (`Http::Utility::forEachCookie`), so the filter and native routes agree: pairs
/// separated by `;`, leading spaces before a name skipped, the first `=` splits name from value, the value
/// taken verbatim and unwrapped from DQUOTEs, pairs without `=` skipped. Cookie names are case-sensitive. The
/// first occurrence wins, as browsers send the most specific first.
pub fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let start = pair.iter().position(|&b| b != b' ').unwrap_or(eq);
        if &pair[start..eq] != name {
            return None;
        }
        let v = &pair[eq + 1..];
        Some(match v {
            [b'"', inner @ .., b'"'] => inner,
            _ => v,
        })
    })
}

/// The raw (still percent-encoded) value of query parameter `name` in a `:path`; the name is compared
/// after decoding. A parameter without `=` has the empty value.
pub fn query_value<'a>(path: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let q = &path[path.iter().position(|&b| b == b'?')? + 1..];
    let q = &q[..q.iter().position(|&b| b == b'#').unwrap_or(q.len())];
    q.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        decoded_eq(k, name).then_some(v)
    })
}

/// The path without its query string or fragment.
pub fn path_only(path: &[u8]) -> &[u8] {
    let end = path.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(path.len());
    &path[..end]
}

/// `:authority` without the port (keeps IPv6 brackets intact).
pub fn host_only(authority: &[u8]) -> &[u8] {
    if authority.first() == Some(&b'[') {
        return match authority.iter().position(|&b| b == b']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.iter().rposition(|&b| b == b':') {
        Some(colon) => &authority[..colon],
        None => authority,
    }
}

/// Whether form-urlencoded `raw` decodes to exactly `want` (`+` is a space, `%XY` a byte; a malformed
/// escape stands for itself, as browsers and Envoy leave it).
pub fn decoded_eq(raw: &[u8], want: &[u8]) -> bool {
    let mut want = want.iter();
    let mut i = 0;
    while i < raw.len() {
        let (byte, used) = match raw[i] {
            b'+' => (b' ', 1),
            b'%' if i + 2 < raw.len() && hex(raw[i + 1]).is_some() && hex(raw[i + 2]).is_some() => {
                (hex(raw[i + 1]).unwrap_or(0) << 4 | hex(raw[i + 2]).unwrap_or(0), 3)
            }
            b => (b, 1),
        };
        if want.next() != Some(&byte) {
            return false;
        }
        i += used;
    }
    want.next().is_none()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_as_envoy_parses_them() {
        let h = b"session=abc; user=tester;theme=\"dark\" ; empty=; user=second";
        assert_eq!(cookie_value(h, b"user"), Some(&b"tester"[..]));
        assert_eq!(cookie_value(h, b"theme"), Some(&b"\"dark\" "[..]), "a value is taken verbatim");
        assert_eq!(cookie_value(b"theme=\"dark\"", b"theme"), Some(&b"dark"[..]));
        assert_eq!(cookie_value(h, b"empty"), Some(&b""[..]));
        assert_eq!(cookie_value(h, b"User"), None);
        assert_eq!(cookie_value(h, b"ser"), None);
        assert_eq!(cookie_value(b"xuser=tester", b"user"), None);
        assert_eq!(cookie_value(b"user =tester", b"user"), None, "no trimming after the name");
        assert_eq!(cookie_value(b"\tuser=tester", b"user"), None, "only spaces are skipped");
        assert_eq!(cookie_value(b"noequals; user=a=b", b"user"), Some(&b"a=b"[..]));
        assert_eq!(cookie_value(b"", b"user"), None);
    }

    #[test]
    fn query_values_decode_names() {
        let p = b"/a?x=1&user%20id=7&flag&q=a+b#frag=2";
        assert_eq!(query_value(p, b"x"), Some(&b"1"[..]));
        assert_eq!(query_value(p, b"user id"), Some(&b"7"[..]));
        assert_eq!(query_value(p, b"flag"), Some(&b""[..]));
        assert_eq!(query_value(p, b"frag"), None);
        assert!(decoded_eq(query_value(p, b"q").unwrap(), b"a b"));
        assert_eq!(query_value(b"/a", b"x"), None);
    }

    #[test]
    fn decoding_handles_malformed_escapes() {
        assert!(decoded_eq(b"%41%2", b"A%2"));
        assert!(decoded_eq(b"%zz", b"%zz"));
        assert!(decoded_eq(b"%", b"%"));
        assert!(!decoded_eq(b"ab", b"abc"));
        assert!(!decoded_eq(b"abc", b"ab"));
    }

    #[test]
    fn hosts_and_paths() {
        assert_eq!(host_only(b"forecast:8080"), b"forecast");
        assert_eq!(host_only(b"[::1]:80"), b"[::1]");
        assert_eq!(host_only(b"example.com"), b"example.com");
        assert_eq!(path_only(b"/api/x?y=1"), b"/api/x");
    }
}
