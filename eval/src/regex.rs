//! The `~` dialect: one parser (`regex-syntax`, Unicode off, bytes), one bound on what a pattern may cost, and
//! one engine (`regex-automata`'s lazy DFA) that searches the whole value in time linear in its length.
//!
//! Why bytes: a header value is bytes, not text, and Envoy's RE2 (the native backends) reads it as bytes too
//! (Latin-1 mode: `.`, `[^;]`, `\D` match one byte). With Unicode off, `\d \w \s \b` and `(?i)` are ASCII, `.`
//! and negated classes match any byte (but `\n`), `\xHH` is the byte HH and a non-ASCII literal is its UTF-8
//! bytes, so a value never needs decoding (invalid UTF-8 is just bytes) and most patterns mean the same in RE2
//! (`canary-backends`' `native/re2.rs` decides which). `(?u)` is refused: the filter carries no Unicode
//! tables, and a pattern must mean the same in every build.
//!
//! Why a lazy DFA: regex-lite (before) scanned 2–3 ms per 60 KiB, so `~` only searched a value's first 8 KiB.
//! The lazy DFA builds each state the first time the search reaches it, at most once per byte of the value, so
//! a search costs O(value) once its states exist and O(value × NFA) at worst; the NFA is bounded at compile
//! time ([`REGEX_SIZE_LIMIT`]) and so is the DFA's cache ([`REGEX_CACHE_CAPACITY`]); when the cache fills it is
//! cleared and the search goes on (never "gives up", so there is no second engine to carry).

use std::sync::{Arc, Mutex};

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::Input;
use regex_syntax::ast::{self, Ast};
use regex_syntax::hir::Hir;

/// The most heap one pattern's NFA may take. Counted repetitions expand when a pattern compiles —
/// `a{1000}{1000}` is a million states — and a search that has to build DFA states pays in proportion to the
/// NFA. Real patterns are far smaller (a browser family ~1–2 KiB, `.{0,255}` and `a{1000}` ~20–40 KiB; the unit
/// tests pin these).
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// The most heap one pattern's lazy DFA keeps. A full cache is cleared and the search continues.
pub const REGEX_CACHE_CAPACITY: usize = 256 * 1024;

/// The most heap all of one policy's lazy DFAs may grow to, beyond each pattern's minimum: a request that no
/// rule matches runs every pattern, and 10,000 patterns at [`REGEX_CACHE_CAPACITY`] each would be 2.5 GiB in
/// one VM (where running out of memory is a trap). The first 64 patterns get the full capacity; later ones the
/// least their DFA builds with, which clears more often but still searches in time linear in the value.
pub const REGEX_CACHE_BUDGET: usize = 16 * 1024 * 1024;

/// The smallest cache tried (the lazy DFA refuses a capacity below what its start states need; doubled until
/// it builds).
const MIN_CACHE_CAPACITY: usize = 4 * 1024;

/// Why [`compile_regex`] refused a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegexError {
    /// Not in the dialect; the parser's message.
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

/// Parses a pattern into the high-level form the engine compiles and the native backends print as RE2.
pub fn parse_regex(pattern: &str) -> Result<Hir, RegexError> {
    let ast = ast::parse::ParserBuilder::new()
        .build()
        .parse(pattern)
        .map_err(|e| RegexError::Invalid(one_line(&e.to_string())))?;
    ast::visit(&ast, NoUnicodeFlag).map_err(RegexError::Invalid)?;
    regex_syntax::hir::translate::TranslatorBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .translate(pattern, &ast)
        .map_err(|e| RegexError::Invalid(one_line(&e.to_string())))
}

/// regex-syntax's messages draw the pattern with a caret on separate lines; a diagnostic wants one line.
fn one_line(message: &str) -> String {
    message.lines().last().unwrap_or(message).trim().trim_start_matches("error: ").to_string()
}

/// Refuses `(?u)`: Unicode classes would need tables the filter does not carry, and would change what `.`,
/// `\w` or `(?i)` mean.
struct NoUnicodeFlag;

impl ast::Visitor for NoUnicodeFlag {
    type Output = ();
    type Err = String;

    fn finish(self) -> Result<(), String> {
        Ok(())
    }

    fn visit_pre(&mut self, ast: &Ast) -> Result<(), String> {
        let flags = match ast {
            Ast::Flags(set) => Some(&set.flags),
            Ast::Group(group) => match &group.kind {
                ast::GroupKind::NonCapturing(flags) => Some(flags),
                _ => None,
            },
            _ => None,
        };
        match flags.and_then(|f| f.flag_state(ast::Flag::Unicode)) {
            Some(true) => Err("the `u` flag is not supported: `~` matches bytes, with ASCII classes".into()),
            _ => Ok(()),
        }
    }
}

/// A compiled pattern: the lazy DFA, shared by every rule that tests the same pattern, and its cache.
#[derive(Clone)]
pub struct Regex {
    inner: Arc<Compiled>,
}

struct Compiled {
    dfa: DFA,
    /// One cache per pattern: the filter is single-threaded; elsewhere a search that finds it busy builds a
    /// cache of its own rather than wait.
    cache: Mutex<Cache>,
    /// What `cache` may grow to.
    capacity: usize,
}

impl std::fmt::Debug for Regex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Regex").field("nfa_bytes", &self.inner.dfa.get_nfa().memory_usage()).finish()
    }
}

/// Compiles a `~` operand as every stage does — the checker (for its diagnostic), the importer, the
/// evaluator and the filter — so a pattern the checker accepts is one the filter loads. The size limit bounds
/// patterns with regex operators; literal text ([`crate::literal_alternatives`]) cannot expand, compiles in
/// proportion to its length, and runs as a substring search, so it is exempt.
pub fn compile_regex(pattern: &str) -> Result<Regex, RegexError> {
    compile_regex_bounded(pattern, crate::literal_alternatives(pattern).is_none(), REGEX_CACHE_CAPACITY)
}

/// `bounded`: whether [`REGEX_SIZE_LIMIT`] applies (not to literal text). `cache`: the capacity wanted, raised
/// (doubling) to the least the DFA builds with; a bounded pattern that needs more than [`REGEX_CACHE_CAPACITY`]
/// is too large, literal text gets what its length needs.
pub(crate) fn compile_regex_bounded(pattern: &str, bounded: bool, cache: usize) -> Result<Regex, RegexError> {
    let hir = parse_regex(pattern)?;
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .utf8(false)
                .which_captures(WhichCaptures::None)
                .nfa_size_limit(bounded.then_some(REGEX_SIZE_LIMIT)),
        )
        .build_from_hir(&hir)
        .map_err(
            |e| if e.size_limit().is_some() { RegexError::TooLarge } else { RegexError::Invalid(e.to_string()) },
        )?;
    let most = if bounded { REGEX_CACHE_CAPACITY } else { usize::MAX / 2 };
    let mut capacity = cache.clamp(MIN_CACHE_CAPACITY, REGEX_CACHE_CAPACITY);
    let dfa = loop {
        let built = DFA::builder()
            .configure(
                DFA::config()
                    .cache_capacity(capacity)
                    // Never give up: a search that thrashes the cache keeps going, still linear in the value.
                    .minimum_cache_clear_count(None),
            )
            .build_from_nfa(nfa.clone());
        match built {
            Ok(dfa) => break dfa,
            // The one build error left is a cache too small for the NFA's states.
            Err(_) if capacity < most => capacity = capacity.saturating_mul(2),
            Err(_) => return Err(RegexError::TooLarge),
        }
    };
    let cache = Mutex::new(dfa.create_cache());
    Ok(Regex { inner: Arc::new(Compiled { dfa, cache, capacity }) })
}

impl Regex {
    /// Whether the pattern matches anywhere in `value` (all of it, whatever its length or bytes).
    pub fn is_match(&self, value: &[u8]) -> bool {
        let input = Input::new(value).earliest(true);
        let Compiled { dfa, cache, .. } = &*self.inner;
        let found = match cache.try_lock() {
            Ok(mut cache) => dfa.try_search_fwd(&mut cache, &input),
            Err(_) => dfa.try_search_fwd(&mut dfa.create_cache(), &input),
        };
        // An error would be a quit byte (only Unicode word boundaries have them; `(?u)` is refused) or giving up
        // (turned off above): neither can happen, and no match is the answer that routes to the default.
        matches!(found, Ok(Some(_)))
    }

    /// What the pattern's DFA cache may grow to (what [`REGEX_CACHE_BUDGET`] shares out).
    pub fn cache_capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Heap held by the pattern's NFA (what [`REGEX_SIZE_LIMIT`] bounds).
    pub fn nfa_bytes(&self) -> usize {
        self.inner.dfa.get_nfa().memory_usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_match(pattern: &str, value: &[u8]) -> bool {
        compile_regex(pattern).expect("valid").is_match(value)
    }

    #[test]
    fn real_patterns_fit_and_stacked_repetitions_are_too_large() {
        for ok in
            ["Android|android|Adr |Silk/|OculusBrowser|JUC", r"\w{1,64}", ".{0,255}", "a{1000}", "Chrome/1[0-9]{2}"]
        {
            let re = compile_regex(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(re.nfa_bytes() <= REGEX_SIZE_LIMIT, "{ok}");
        }
        for big in ["a{1000}{1000}", "(?:[a-z]{100}){100}", r"\w{0,1000}{10}", "[0-9]{1000}[a-z]{1000}[A-Z]{1000}"] {
            assert_eq!(compile_regex(big).unwrap_err(), RegexError::TooLarge, "{big}");
        }
        assert!(matches!(compile_regex("a{2,1}"), Err(RegexError::Invalid(_))));
        assert!(matches!(compile_regex("("), Err(RegexError::Invalid(_))));
        assert!(matches!(compile_regex(r"\pL"), Err(RegexError::Invalid(_))));
        for unicode in ["(?u)a", "(?u:.)", "(?i-s:(?u)x)"] {
            let e = compile_regex(unicode).unwrap_err().to_string();
            assert!(e.contains("`u` flag"), "{unicode}: {e}");
        }
        assert!(compile_regex("(?-u:a)").is_ok(), "turning Unicode off changes nothing");
    }

    #[test]
    fn a_small_cache_is_raised_to_what_the_dfa_needs_and_decides_alike() {
        // Debug builds thrash a 16 KiB cache slowly (`.{0,255}$`): 4 KiB values.
        let value: Vec<u8> =
            (0..4 * 1024u32).map(|i| b"abcdefghijklmnopqrstuvwxyz/0123456789"[(i * 7 % 37) as usize]).collect();
        for pattern in ["Chrome/1[0-9]{2}", r"[a-q][^u-z]{13}x", r"\w{1,64}z9", ".{0,255}$"] {
            let full = compile_regex_bounded(pattern, true, REGEX_CACHE_CAPACITY).expect("valid");
            let small = compile_regex_bounded(pattern, true, 0).expect("raised, not refused");
            assert!(small.cache_capacity() >= MIN_CACHE_CAPACITY && small.cache_capacity() <= full.cache_capacity());
            for end in [0, 100, 1000, value.len()] {
                assert_eq!(small.is_match(&value[..end]), full.is_match(&value[..end]), "{pattern} on {end} bytes");
            }
        }
        // Literal text gets what its length needs, however long.
        // (40 KB needs 2 MiB; its search is only ever a substring search in the evaluator.)
        let long = "abcdefgh".repeat(5_000);
        let re = compile_regex_bounded(&long, false, 0).expect("literal");
        assert!(re.cache_capacity() > REGEX_CACHE_CAPACITY && !re.is_match(b"abcdefgh"));
    }

    #[test]
    fn values_are_bytes_with_ascii_classes() {
        // `.` and negated classes match one byte, invalid UTF-8 included.
        assert!(is_match("^.$", b"\xff") && !is_match("^.$", "é".as_bytes()) && is_match("^..$", "é".as_bytes()));
        assert!(is_match("^[^a]+$", b"\x80\xfe\xff") && is_match(r"^\D\W\S$", b"\xe9\xe9\xe9"));
        // A non-ASCII literal is its UTF-8 bytes; `\xHH` is one byte.
        assert!(
            is_match("é", "café".as_bytes()) && is_match(r"^\xe9$", b"\xe9") && !is_match(r"^\xe9$", "é".as_bytes())
        );
        // ASCII classes and case folding only.
        assert!(
            !is_match(r"\w", "é".as_bytes()) && !is_match("(?i)k", "\u{212a}".as_bytes()) && is_match("(?i)k", b"K")
        );
        assert!(is_match(r"\bChrome\b", b"x Chrome/1") && !is_match(r"\bChrome\b", b"xChrome"));
        assert!(!is_match(r"\s", b"\xa0") && is_match(r"\s", b"\x0b"));
    }

    #[test]
    fn the_whole_value_is_searched() {
        let far = [b"x".repeat(60 * 1024), b"Chrome/123".to_vec()].concat();
        assert!(is_match("Chrome/1[0-9]{2}", &far) && is_match("[0-9]{2}$", &far) && !is_match("^Chrome", &far));
        // A pattern whose DFA outgrows its cache keeps searching (cleared, not given up) and still answers.
        let thrash = r"[a-q][^u-z]{13}x";
        let value: Vec<u8> = (0..60 * 1024u32).map(|i| b"abcdefghijklmnopqrstuvwxyz"[(i * 7 % 26) as usize]).collect();
        let re = compile_regex(thrash).expect("valid");
        assert_eq!(
            re.is_match(&value),
            regex_lite::Regex::new(thrash).expect("valid").is_match(std::str::from_utf8(&value).expect("ascii"))
        );
        let hit = [value.clone(), b"abbbbbbbbbbbbbx".to_vec()].concat();
        assert!(re.is_match(&hit));
    }
}
