//! Conditions compiled for speed: attribute names resolved to slots, regexes built once, plain literals
//! turned into substring searches.

use crate::regex::{compile_regex_bounded, Regex};
use memchr::memmem::Finder;

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
    /// [`Test::regex_with_cache`] with a whole cache (the unit tests').
    #[cfg(test)]
    pub fn regex(pattern: &str) -> Result<Test, String> {
        Test::regex_with_cache(pattern, crate::REGEX_CACHE_CAPACITY)
    }

    /// Compiles a regex, recognising the common case of literal text (optionally `.*`-wrapped, as Istio
    /// users write it, or `|`-separated) so it runs as a memmem search (GB/s, SIMD128 in wasm) rather than
    /// through the lazy DFA; both search the whole value and decide alike. Literal text is only parsed: it never
    /// runs through a DFA, so it builds none. `cache`: the DFA cache capacity wanted (a policy shares a budget
    /// out, `crate::REGEX_CACHE_BUDGET`).
    pub(crate) fn regex_with_cache(pattern: &str, cache: usize) -> Result<Test, String> {
        let invalid = |e: crate::RegexError| format!("invalid regex {}: {e}", crate::policy::quoted(pattern));
        match literal_alternatives(pattern) {
            Some(lits) => {
                crate::parse_regex(pattern).map_err(invalid)?;
                Ok(Test::Substrings(lits.iter().map(|l| Finder::new(l).into_owned()).collect()))
            }
            None => Ok(Test::Regex(compile_regex_bounded(pattern, true, cache).map_err(invalid)?)),
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
            Test::Regex(re) => re.is_match(v),
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
                // `\<` and `\>` are word assertions, not text (regex-syntax's own rule for escapes).
                Some(e) if e.is_ascii_punctuation() && regex_syntax::is_escapeable_character(e) => out.push(e as u8),
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
    fn literal_text_is_exempt_from_the_size_limit() {
        // Literal text never expands and runs as a substring search: a long one is not "too large" (40 KB is
        // past what a default-sized DFA cache builds with).
        let long_literal = "abcdefgh".repeat(5_000);
        for literal in [long_literal.clone(), format!(".*{long_literal}.*"), format!("x|{long_literal}")] {
            assert!(crate::compile_regex(&literal).is_ok());
            assert!(matches!(Test::regex(&literal), Ok(Test::Substrings(_))));
        }
        assert!(Test::regex("a{1000}{1000}").unwrap_err().contains("more than 64 KiB"));
        assert_eq!(kind(r"a\<b"), "regex", "a word assertion, not text");
    }

    #[test]
    fn substring_and_regex_forms_agree() {
        for (pattern, text) in
            [("MyApp/1\\.2", "x MyApp/1.2 y"), ("MyApp/1\\.2", "MyApp/132"), (".*Android.*", "Android")]
        {
            let fast = Test::regex(pattern).expect("valid");
            let slow = Test::Regex(compile_regex_bounded(pattern, true, crate::REGEX_CACHE_CAPACITY).expect("valid"));
            assert_eq!(fast.matches(Some(text.as_bytes())), slow.matches(Some(text.as_bytes())), "{pattern} on {text}");
        }
    }
}
