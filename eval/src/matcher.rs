//! Conditions compiled for speed: attribute names resolved to slots, regexes built once, plain literals
//! turned into substring searches.

use memchr::memmem::Finder;
use regex_lite::Regex;

use crate::wire::{cookie_value, decoded_eq, host_only, path_only, query_value};

/// Where a condition reads its bytes from, relative to an attribute slot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Extract {
    Whole,
    Cookie(Box<[u8]>),
    /// Query parameter (raw; compare with [`decoded_eq`]).
    Query(Box<[u8]>),
    PathOnly,
    HostOnly,
}

impl Extract {
    pub fn apply<'a>(&self, value: &'a [u8]) -> Option<&'a [u8]> {
        match self {
            Extract::Whole => Some(value),
            Extract::Cookie(name) => cookie_value(value, name),
            Extract::Query(name) => query_value(value, name),
            Extract::PathOnly => Some(path_only(value)),
            Extract::HostOnly => Some(host_only(value)),
        }
    }
}

/// How much of a value a `~` condition with regex operators searches. A regex engine scans a few MB/s
/// (regex-lite: 2–3 ms per 60 KiB natively, slower in wasm), so without a bound one hostile header would cost
/// the proxy milliseconds; real user agents are far shorter. A `~` made only of literal text (`Chrome`,
/// `Edge/|Edg/`) is a substring search (memmem, GB/s) and reads the whole value, exactly like Envoy's
/// `contains` matcher and RE2: that is what lets such conditions lower to native routes.
pub const REGEX_SCAN_LIMIT: usize = 8 * 1024;

/// The part of a value that a `~` condition with regex operators searches.
pub fn regex_window(v: &[u8]) -> &[u8] {
    &v[..v.len().min(REGEX_SCAN_LIMIT)]
}

#[derive(Debug)]
pub enum Test {
    Eq(Box<[u8]>),
    /// Case-insensitive equality (hosts).
    EqIgnoreCase(Box<[u8]>),
    /// Form-decoded equality (query values).
    DecodedEq(Box<[u8]>),
    Ne(Box<[u8]>),
    Prefix(Box<[u8]>),
    /// A regex that is just literal alternatives: plain substring search.
    Substrings(Vec<Finder<'static>>),
    Regex(Regex),
    In(Vec<Box<[u8]>>),
    Present,
    Absent,
}

impl Test {
    /// Compiles a regex, recognising the common case of literal text (optionally `.*`-wrapped, as Istio
    /// users write it, or `|`-separated) so it runs as a memmem search over the whole value instead of a
    /// regex over [`regex_window`].
    pub fn regex(pattern: &str) -> Result<Test, String> {
        let re = Regex::new(pattern).map_err(|e| format!("invalid regex {}: {e}", crate::policy::quoted(pattern)))?;
        match literal_alternatives(pattern) {
            Some(lits) => Ok(Test::Substrings(lits.iter().map(|l| Finder::new(l).into_owned()).collect())),
            None => Ok(Test::Regex(re)),
        }
    }

    /// `value` is `None` when the attribute is missing; only `absent` matches then.
    pub fn matches(&self, value: Option<&[u8]>) -> bool {
        let Some(v) = value else {
            return matches!(self, Test::Absent);
        };
        match self {
            Test::Eq(want) => v == &**want,
            Test::EqIgnoreCase(want) => v.eq_ignore_ascii_case(want),
            Test::DecodedEq(want) => decoded_eq(v, want),
            Test::Ne(want) => v != &**want,
            Test::Prefix(p) => v.starts_with(p),
            Test::Substrings(fs) => fs.iter().any(|f| f.find(v).is_some()),
            Test::Regex(re) => {
                let v = regex_window(v);
                match std::str::from_utf8(v) {
                    Ok(s) => re.is_match(s),
                    // Cut inside a character by the window: search the complete characters.
                    Err(e) if e.error_len().is_none() => {
                        std::str::from_utf8(&v[..e.valid_up_to()]).is_ok_and(|s| re.is_match(s))
                    }
                    // Not UTF-8: match against the lossy text so a hostile byte can neither crash nor evade.
                    Err(_) => re.is_match(&String::from_utf8_lossy(v)),
                }
            }
            Test::In(set) => set.iter().any(|w| v == &**w),
            Test::Present => true,
            Test::Absent => false,
        }
    }
}

/// Values extracted while deciding one request, so a hundred rules on cookie `user` parse the cookie
/// header once. Fixed-size and on the stack: the hot path allocates nothing.
pub struct Memo<'r> {
    entries: [(u32, Option<&'r [u8]>); 8],
    len: usize,
    next: usize,
}

impl<'r> Memo<'r> {
    pub fn new() -> Self {
        Memo { entries: [(0, None); 8], len: 0, next: 0 }
    }

    pub fn get_or(&mut self, key: u32, compute: impl FnOnce() -> Option<&'r [u8]>) -> Option<&'r [u8]> {
        if let Some((_, v)) = self.entries[..self.len].iter().find(|(k, _)| *k == key) {
            return *v;
        }
        let v = compute();
        let i = if self.len < self.entries.len() {
            self.len += 1;
            self.len - 1
        } else {
            self.next = (self.next + 1) % self.entries.len();
            self.next
        };
        self.entries[i] = (key, v);
        v
    }
}

/// The literal texts a `~` pattern searches for, when it is nothing but literal text (optionally wrapped
/// in `.*`, as Istio users write it) and `|` alternatives; `None` for a pattern with regex operators. Such a
/// pattern matches exactly when one of the texts occurs anywhere in the value — the evaluator runs it as a
/// substring search, and the native backends lower it to Envoy's `contains`: one definition for both.
pub fn literal_alternatives(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let bare = pattern.strip_prefix(".*").unwrap_or(pattern);
    let bare = bare.strip_suffix(".*").filter(|b| !b.ends_with('\\')).unwrap_or(bare);
    let literals: Vec<Vec<u8>> = bare.split('|').map(literal).collect::<Option<_>>()?;
    (!literals.is_empty()).then_some(literals)
}

/// The text a regex fragment matches if it is a plain literal (metacharacters only as `\.`-style
/// escapes), else `None`.
fn literal(fragment: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(fragment.len());
    let mut chars = fragment.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => out.push(e as u8),
                _ => return None,
            },
            c if "\\.+*?()|[]{}^$".contains(c) => return None,
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Debug)]
pub enum Matcher {
    /// `memo` numbers the (slot, extract) pair so rules reading the same cookie or query parameter
    /// parse the request once (see [`Memo`]).
    Attr {
        slot: usize,
        extract: Extract,
        memo: u32,
        test: Test,
    },
    All(Vec<Matcher>),
    Any(Vec<Matcher>),
    Not(Box<Matcher>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(pattern: &str) -> &'static str {
        match Test::regex(pattern).expect("valid") {
            Test::Substrings(_) => "substrings",
            Test::Regex(_) => "regex",
            _ => "other",
        }
    }

    #[test]
    fn literal_regexes_become_substring_searches() {
        assert_eq!(kind("Chrome"), "substrings");
        assert_eq!(kind(".*Android.*"), "substrings");
        assert_eq!(kind("CriOS/|Chrome/"), "substrings");
        assert_eq!(kind("MyApp/1\\.2"), "substrings");
        assert_eq!(kind("^Chrome"), "regex");
        assert_eq!(kind("Android [0-9]+"), "regex");
        assert_eq!(kind("a\\d"), "regex");
        assert_eq!(kind("a|"), "regex");
    }

    #[test]
    fn substring_and_regex_forms_agree() {
        for (pattern, text) in
            [("MyApp/1\\.2", "x MyApp/1.2 y"), ("MyApp/1\\.2", "MyApp/132"), (".*Android.*", "Android")]
        {
            let fast = Test::regex(pattern).expect("valid");
            let slow = Test::Regex(Regex::new(pattern).expect("valid"));
            assert_eq!(fast.matches(Some(text.as_bytes())), slow.matches(Some(text.as_bytes())), "{pattern} on {text}");
        }
    }
}
