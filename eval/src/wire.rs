//! Byte-level parsing of cookies, query strings and hosts, without allocating: the hot path scans the
//! header value in place and compares slices.

/// The value of cookie `name` in a `Cookie` header, parsed exactly as Envoy parses it for `RouteMatch.cookies`
/// and cookie hash policies (`Http::Utility::forEachCookie`), so the filter and native routes agree: pairs
/// separated by `;`, leading spaces before a name skipped, the first `=` splits name from value, the value
/// taken verbatim and unwrapped from DQUOTEs, pairs without `=` skipped. Cookie names are case-sensitive. The
/// first occurrence wins, as browsers send the most specific first.
pub fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let (mut key, v) = split_once(pair, b'=')?;
        while let [b' ', rest @ ..] = key {
            key = rest;
        }
        if key != name {
            return None;
        }
        Some(match v {
            [b'"', inner @ .., b'"'] => inner,
            _ => v,
        })
    })
}

/// The raw (still percent-encoded) value of query parameter `name` in a `:path`; the name is compared
/// after decoding. A parameter without `=` has the empty value.
pub fn query_value<'a>(path: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let (_, query) = split_once(path, b'?')?;
    let query = split_once(query, b'#').map_or(query, |(query, _)| query);
    query.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = split_once(pair, b'=').unwrap_or((pair, &[]));
        decoded_eq(k, name).then_some(v)
    })
}

/// The bytes before and after the first `sep`; `None` without one.
fn split_once(bytes: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == sep)?;
    let (before, from_sep) = bytes.split_at_checked(at)?;
    Some((before, from_sep.split_first()?.1))
}

/// The path without its query string or fragment.
pub fn path_only(path: &[u8]) -> &[u8] {
    match path.iter().position(|&b| b == b'?' || b == b'#') {
        Some(end) => path.get(..end).unwrap_or(path),
        None => path,
    }
}

/// `:authority` without the port (keeps IPv6 brackets intact).
pub fn host_only(authority: &[u8]) -> &[u8] {
    let end = if authority.first() == Some(&b'[') {
        authority.iter().position(|&b| b == b']').map(|bracket| bracket + 1)
    } else {
        authority.iter().rposition(|&b| b == b':')
    };
    end.and_then(|end| authority.get(..end)).unwrap_or(authority)
}

/// Whether form-urlencoded `raw` decodes to exactly `want` (`+` is a space, `%XY` a byte; a malformed
/// escape stands for itself, as browsers and Envoy leave it).
pub fn decoded_eq(raw: &[u8], want: &[u8]) -> bool {
    let mut want = want.iter();
    let mut rest = raw;
    while let Some((&b, after)) = rest.split_first() {
        let (byte, after) = match (b, after) {
            (b'+', _) => (b' ', after),
            (b'%', [hi, lo, after_escape @ ..]) => match (hex(*hi), hex(*lo)) {
                (Some(hi), Some(lo)) => (hi << 4 | lo, after_escape),
                _ => (b'%', after),
            },
            _ => (b, after),
        };
        if want.next() != Some(&byte) {
            return false;
        }
        rest = after;
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
