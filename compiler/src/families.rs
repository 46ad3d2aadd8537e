//! The user-agent families of the policy language (`android`, `ios`, `chrome`, …), lowered to conditions over
//! the `user-agent` header.
//!
//! Why patterns and not a UA parser: the evaluator runs in the proxy on every request and only knows plain
//! conditions, so a family must be a handful of regexes, not uap-core's thousand. The patterns below are
//! chosen by *shape* rather than by listing rebrands: Chrome, Safari and Firefox put their own product
//! token last (or right after the engine comment), and derived browsers (Edge, Opera, Samsung Internet, in-app
//! browsers, …) insert or append a token of their own, so "nothing but the vendor's tokens there" rejects
//! derivatives we have never heard of, too.
//!
//! Accuracy is measured, not asserted by hand: `tests/ua_families.rs` runs every family through the real
//! evaluator over uap-core's test corpus and requires ≥ 95% balanced accuracy per family (they score 99%+).
//! If you change a pattern, run `cargo test -p canary-compiler --test ua_families -- --nocapture`.
//!
//! Regexes use canary's `~` dialect (Rust regex syntax over bytes, ASCII classes; no lookaround, no backreferences), so "A but not B" is `All[A, Not(B)]`.
//! Patterns made only of literal alternatives (`Edge/|Edg/`) run as substring searches in the evaluator;
//! we use those where they are accurate enough.

use canary_eval::config::{Cond, Test};

/// The header every family reads. Lowercase, as [`Cond::Header`] requires.
pub const HEADER: &str = "user-agent";

/// `(name, what it matches)` for every family, in the order the README lists them.
pub const FAMILIES: &[(&str, &str)] = &[
    (
        "android",
        "contains `Android`, `android`, `Adr ` (UC Browser), `Silk/` (Kindle Fire), `OculusBrowser` (Quest) or \
         `JUC` (UC Browser for Java on Android), and not `Windows Phone`, `CrKey` or `iPhone` (Windows Phone 8.1, \
         Chromecast and iOS apps named `…-Android` mention Android too)",
    ),
    (
        "ios",
        "contains `iPhone`, `iPad`, `iPod`, `iOS` (also inside `CriOS`, `FxiOS`, `EdgiOS`) or `CFNetwork/` (native \
         apps), and not `KaiOS`, `x86_64` or `i386` (CFNetwork on a Mac names its CPU). iPadOS 13+ Safari sends a \
         Mac user-agent and is not recognised",
    ),
    (
        "chrome",
        "`Chrome/<version>` directly after the engine comment `(KHTML, like Gecko)` (or after Android WebView's \
         `Version/4.0`), followed by nothing but `Mobile` and `Safari/…`; or `CriOS/` (Chrome on iOS). Chromium \
         rebrands (Edge, Opera, Samsung Internet, Yandex, Brave's old UA, in-app browsers) add their own token and \
         do not match; Android WebView counts as Chrome",
    ),
    (
        "firefox",
        "ends with `Firefox/<version>` (also `Firefox-4.0/…` betas), or contains `FxiOS/` (Firefox on iOS) or \
         `Shiretoko/` (3.5 pre-releases). Forks that append their own token (Pale Moon, Waterfox, SeaMonkey) do not \
         match",
    ),
    ("edge", "contains `Edge/` (legacy EdgeHTML), `Edg/` (Chromium Edge), `EdgA/` (Android) or `EdgiOS/` (iOS)"),
    (
        "safari",
        "after the engine comment `(KHTML, like Gecko)` only `Version/…`, `Mobile/…` or plain words, then a final \
         `Safari` token; or starts with `Safari/` (CFNetwork requests of Safari on macOS). Excludes `Android` \
         (the stock Android browser copies Safari's shape), `Symbian` and `MQQBrowser`. In-app web views \
         (no `Safari` token) and Chrome/Firefox/Edge on iOS (own token) do not match",
    ),
    (
        "mobile",
        "a phone or tablet: anything `android` or `ios` matches, or contains `Mobi` (MDN's recommended test: \
         `Mobile`, `IEMobile`, …), `Opera Mini`, `BlackBerry`, `BB10`, `Symbian`, `Kindle`, `KaiOS` or \
         `Windows Phone`. Tablets count as mobile; iPadOS 13+ Safari (Mac user-agent) does not",
    ),
];

/// Names of all families, for error messages ("expected one of …") and completion.
pub fn names() -> impl Iterator<Item = &'static str> {
    FAMILIES.iter().map(|(name, _)| *name)
}

/// The condition a family name stands for, or `None` if `name` is not a family.
pub fn family(name: &str) -> Option<Cond> {
    Some(match name {
        "android" => android(),
        "ios" => ios(),
        // `[\d. ]+` tolerates the stray space of some bots' `Chrome/27.0 .1453`; `Safari/\S+ Chrome/` is the
        // KitKat-era WebView that puts Chrome last.
        "chrome" => ua(r"(\)|Version/\S+|Safari/\S+) Chrome/[\d. ]+(Mobile\S* ?)?(Safari/\S+)?$|CriOS/"),
        "firefox" => ua(r"Firefox[\w.-]*/[\w.]+$|FxiOS/|Shiretoko/"),
        "edge" => ua("Edge/|Edg/|EdgA/|EdgiOS/"),
        // `[ +]`: some clients send the UA form-encoded, `+` for space. Plain words are allowed before `Safari`
        // because some WebKit shells (LG webOS's `Large Screen WebAppManager`) put a description there, and
        // uap-core counts those as Safari; the price is the odd browser naming itself without a version
        // (`rekonq Safari/…`, `HeadlessChrome Safari/…`).
        "safari" => but_not(
            ua(r"Gecko\)[ +]([A-Za-z]+[ +]|(Version|Mobile)/[\w.]+[ +])*Safari(/[\d.]+)?$|^Safari/"),
            "Android|Symbian|MQQBrowser",
        ),
        "mobile" => {
            Cond::Any(vec![android(), ios(), ua("Mobi|Opera Mini|BlackBerry|BB10|Symbian|Kindle|KaiOS|Windows Phone")])
        }
        _ => return None,
    })
}

fn android() -> Cond {
    but_not(ua("Android|android|Adr |Silk/|OculusBrowser|JUC"), "Windows Phone|CrKey|iPhone")
}

fn ios() -> Cond {
    but_not(ua("iPhone|iPad|iPod|iOS|CFNetwork/"), "KaiOS|x86_64|i386")
}

/// The user-agent header matches `pattern` (unanchored).
fn ua(pattern: &str) -> Cond {
    Cond::Header { name: HEADER.into(), test: Test::Regex(pattern.into()) }
}

/// `yes`, unless the user-agent also matches `no`.
fn but_not(yes: Cond, no: &str) -> Cond {
    Cond::All(vec![yes, Cond::Not(Box::new(ua(no)))])
}
