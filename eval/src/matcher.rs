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
    /// Where a request's several values of one attribute are read as one (Envoy: `forEachCookie` walks every
    /// `cookie` header in order and the first cookie of a name wins, the same as one header joined with `; `),
    /// rather than value by value.
    pub fn joins_values(&self) -> bool {
        matches!(self, Extract::Cookie(_))
    }

    /// The one value a joining extract reads from all of an attribute's values: the first that yields one.
    pub fn first<'a>(&self, values: &mut dyn ValueSource<'a>) -> Option<&'a [u8]> {
        while let Some(v) = values.next_value() {
            if let Some(found) = self.apply(v) {
                return Some(found);
            }
        }
        None
    }

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

/// An attribute's values, one at a time: what [`Test::holds`] and [`Extract::first`] read. A trait of its own
/// rather than `dyn Iterator`, whose vtable would bring every iterator method into the wasm filter for each
/// kind of source; every iterator of values is one.
pub trait ValueSource<'v> {
    fn next_value(&mut self) -> Option<&'v [u8]>;
}

impl<'v, I: Iterator<Item = &'v [u8]>> ValueSource<'v> for I {
    fn next_value(&mut self) -> Option<&'v [u8]> {
        self.next()
    }
}

/// How much of a value a `~` condition with regex operators searches. A regex engine scans a few MB/s
/// (regex-lite: 2–3 ms per 60 KiB natively, slower in wasm), so without a bound one hostile header would cost
/// the proxy milliseconds; real user agents are far shorter. A `~` made only of literal text (`Chrome`,
/// `Edge/|Edg/`) is a substring search (memmem, GB/s) and reads the whole value, exactly like Envoy's
/// `contains` matcher and RE2: that is what lets such conditions lower to native routes.
pub const REGEX_SCAN_LIMIT: usize = 8 * 1024;

/// The most heap one compiled regex with operators may take (regex-lite's NFA, which `size_limit` bounds).
/// Counted repetitions expand when a regex compiles — `a{1000}{1000}` is a million states — and the search
/// costs time in proportion to that size on every request. Real patterns compile to 0.3–23 KiB (a browser
/// family 1.4 KiB, a full Chrome user agent 3 KiB, `.{0,255}` 22 KiB, `a{1000}` 31 KiB); regex-lite's own
/// default, 10 MiB, let one policy regex take each proxy up to 20 ms and 10 MiB to load (ARCHITECTURE.md).
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// Compiles a `~` operand as every stage does — the checker (for its diagnostic), the importer, the
/// evaluator and the filter — so a regex the checker accepts is one the filter loads. The size limit bounds
/// patterns with regex operators; literal text ([`literal_alternatives`]) cannot expand, compiles in
/// proportion to its length, and runs as a substring search, so it keeps regex-lite's own limit.
pub fn compile_regex(pattern: &str) -> Result<Regex, RegexError> {
    build_regex(pattern, literal_alternatives(pattern).is_none())
}

fn build_regex(pattern: &str, bounded: bool) -> Result<Regex, RegexError> {
    let mut builder = regex_lite::RegexBuilder::new(pattern);
    if bounded {
        builder.size_limit(REGEX_SIZE_LIMIT);
    }
    builder.build().map_err(|e| {
        let message = e.to_string();
        // regex-lite's errors have no kind; this is its one message for the size limit (unit-tested).
        if message.contains("exceeded size limit") {
            RegexError::TooLarge
        } else {
            RegexError::Invalid(message)
        }
    })
}

/// Why [`compile_regex`] refused a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegexError {
    /// Not regex-lite syntax; regex-lite's message.
    Invalid(String),
    /// Valid, but it compiles to more than [`REGEX_SIZE_LIMIT`] bytes.
    TooLarge,
}

impl std::fmt::Display for RegexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegexError::Invalid(message) => f.write_str(message),
            RegexError::TooLarge => {
                write!(f, "it compiles to more than {} KiB (counted repetitions expand)", REGEX_SIZE_LIMIT / 1024)
            }
        }
    }
}

/// The part of a value that a `~` condition with regex operators searches.
pub fn regex_window(v: &[u8]) -> &[u8] {
    v.get(..REGEX_SCAN_LIMIT).unwrap_or(v)
}

#[derive(Debug, Clone)]
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
        let literals = literal_alternatives(pattern);
        let re = build_regex(pattern, literals.is_none())
            .map_err(|e| format!("invalid regex {}: {e}", crate::policy::quoted(pattern)))?;
        match literals {
            Some(lits) => Ok(Test::Substrings(lits.iter().map(|l| Finder::new(l).into_owned()).collect())),
            None => Ok(Test::Regex(re)),
        }
    }

    /// Whether an attribute with these values (none: it is missing) passes, with Envoy's meaning for a header
    /// sent several times: a value test holds when ANY value passes it; `present` and `absent` ask whether
    /// there is a value; `!=` holds when there is a value and none equals the operand — what the native
    /// backend's "present and not (inverted) exact" computes in Envoy, value by value (README "Backends").
    pub fn holds<'v>(&self, values: &mut dyn ValueSource<'v>) -> bool {
        match self {
            Test::Absent => values.next_value().is_none(),
            Test::Present => values.next_value().is_some(),
            Test::Ne(unwanted) => {
                let mut any = false;
                while let Some(v) = values.next_value() {
                    if v == &**unwanted {
                        return false;
                    }
                    any = true;
                }
                any
            }
            _ => {
                while let Some(v) = values.next_value() {
                    if self.passes(v) {
                        return true;
                    }
                }
                false
            }
        }
    }

    /// [`Test::holds`] for an attribute with at most one value.
    pub fn matches(&self, value: Option<&[u8]>) -> bool {
        self.holds(&mut value.into_iter())
    }

    /// One value against a value test.
    fn passes(&self, v: &[u8]) -> bool {
        match self {
            Test::Eq(want) => v == &**want,
            Test::EqIgnoreCase(want) => v.eq_ignore_ascii_case(want),
            Test::DecodedEq(want) => decoded_eq(v, want),
            Test::Ne(unwanted) => v != &**unwanted,
            Test::Prefix(p) => v.starts_with(p),
            Test::Substrings(fs) => fs.iter().any(|f| f.find(v).is_some()),
            Test::Regex(re) => {
                let v = regex_window(v);
                match std::str::from_utf8(v) {
                    Ok(s) => re.is_match(s),
                    // Cut inside a character by the window: search the complete characters.
                    Err(e) if e.error_len().is_none() => v
                        .get(..e.valid_up_to())
                        .and_then(|complete| std::str::from_utf8(complete).ok())
                        .is_some_and(|s| re.is_match(s)),
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
        if let Some((_, v)) = self.entries.iter().take(self.len).find(|(k, _)| *k == key) {
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
        if let Some(entry) = self.entries.get_mut(i) {
            *entry = (key, v);
        }
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

    fn holds(test: &Test, values: &[&str]) -> bool {
        test.holds(&mut values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn a_value_test_holds_when_any_value_passes() {
        let eq = Test::Eq(b"z"[..].into());
        assert!(holds(&eq, &["a", "z"]) && holds(&eq, &["z", "a"]) && !holds(&eq, &["a", "b"]) && !holds(&eq, &[]));
        assert!(!holds(&eq, &["a,z"]), "values are not split on commas");
        let within = Test::In(vec![b"x"[..].into(), b"y"[..].into()]);
        assert!(holds(&within, &["a", "y"]) && !holds(&within, &["a"]));
        let ua = Test::regex("Android|Silk/").expect("valid");
        assert!(holds(&ua, &["curl", "x Silk/1"]) && !holds(&ua, &["curl", "iPhone"]));
        let re = Test::regex("^And[a-z]+$").expect("valid");
        assert!(holds(&re, &["curl", "Android"]) && !holds(&re, &["curl"]));
    }

    #[test]
    fn presence_and_not_equal_look_at_all_values() {
        let ne = Test::Ne(b"b"[..].into());
        assert!(holds(&ne, &["a"]) && holds(&ne, &["a", "c"]));
        assert!(!holds(&ne, &["a", "b"]) && !holds(&ne, &["b", "a"]) && !holds(&ne, &[]));
        assert!(holds(&Test::Present, &[""]) && holds(&Test::Present, &["a", "b"]) && !holds(&Test::Present, &[]));
        assert!(holds(&Test::Absent, &[]) && !holds(&Test::Absent, &[""]));
    }

    #[test]
    fn cookies_are_read_across_cookie_headers() {
        let cookie = Extract::Cookie(b"uid"[..].into());
        let headers = [&b"a=1"[..], b"uid=first; uid=x", b"uid=second"];
        assert_eq!(cookie.first(&mut headers.into_iter()), Some(&b"first"[..]));
        assert_eq!(cookie.first(&mut [&b"a=1"[..]].into_iter()), None);
        assert!(cookie.joins_values() && !Extract::Whole.joins_values());
    }

    #[test]
    fn regexes_past_the_size_limit_are_refused_as_too_large() {
        // Real patterns and the largest counted repetition regex-lite allows on its own fit.
        for ok in ["Android|android|Adr |Silk/|OculusBrowser|JUC", r"\w{1,64}", ".{0,255}", "a{1000}"] {
            assert!(compile_regex(ok).is_ok(), "{ok}");
        }
        // Stacked repetitions multiply: regex-lite's 10 MiB default took milliseconds to refuse these.
        for big in ["a{1000}{1000}", "(?:[a-z]{100}){100}", r"\w{0,1000}"] {
            assert_eq!(compile_regex(big).unwrap_err(), RegexError::TooLarge, "{big}");
            assert!(Test::regex(big).unwrap_err().contains("more than 64 KiB"), "{big}");
        }
        // Literal text never expands and runs as a substring search: a long one is not "too large".
        let long_literal = "abcdefgh".repeat(300);
        for literal in [long_literal.clone(), format!(".*{long_literal}.*"), format!("x|{long_literal}")] {
            assert!(compile_regex(&literal).is_ok());
            assert!(matches!(Test::regex(&literal), Ok(Test::Substrings(_))));
        }
        assert!(matches!(compile_regex("a{2,1}"), Err(RegexError::Invalid(_))));
        assert!(matches!(compile_regex("("), Err(RegexError::Invalid(_))));
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
