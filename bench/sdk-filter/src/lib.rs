//! S3 and S4 as an idiomatic proxy-wasm Rust SDK filter: the measured peer of canary's hand-written ABI glue.
//!
//! It does the job `bench/lua/s3.lua` and `bench/lua/s4.lua` do, the way the SDK's examples are written (a
//! `RootContext` that reads the plugin configuration and creates an `HttpContext` per request):
//!
//! - configuration `s3`: `user-agent` contains `Chrome` → `x-canary-subset: v2`, anything else (no
//!   user agent included) → `v1`;
//! - configuration `s4`: `user-agent` contains `Android` → a fresh 50/50 draw between `v2` and `v1`,
//!   anything else → `v1`.
//!
//! Any other configuration is refused (`on_configure` returns false, so Envoy rejects the plugin). The
//! header is read with `get_http_request_header_bytes`, which takes the value as bytes; the `String` variant
//! panics on a value that is not UTF-8 (see the `utf8-header` feature and `non-utf8.py`).
//!
//! What it does NOT do that the canary filter does, so the comparison flatters it: no policy language or
//! evaluator (the two rules are compiled in), no choice of service by `:authority`, no user-agent families
//! (`Android` is a plain substring, as in the Lua scripts), no sticky splits, no source labels, no TCP, no
//! metrics, and no validation of a configuration beyond its name. What it costs per request beyond the
//! host calls it shares with canary (one header read, one header replace) is therefore the SDK's own
//! dispatch: 25 exported `proxy_on_*` callbacks, a boxed context per request and its map bookkeeping.

use std::cell::Cell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(SubsetRoot { scenario: None, rng: Rc::new(Rng(Cell::new(0))) })
    });
}}

const SUBSET_HEADER: &str = "x-canary-subset";

/// Which of the two benchmark rules this plugin applies (its configuration string).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    /// `header user-agent ~ "Chrome" -> v2; default v1`
    S3,
    /// `android: 50% v2; default v1`, with `android` as a plain substring
    S4,
}

impl Scenario {
    fn parse(config: &[u8]) -> Option<Scenario> {
        match config {
            b"s3" => Some(Scenario::S3),
            b"s4" => Some(Scenario::S4),
            _ => None,
        }
    }

    /// The subset for a request with this user agent; `coin` is drawn only when a split needs it.
    fn decide(self, user_agent: Option<&[u8]>, coin: impl FnOnce() -> bool) -> &'static str {
        let ua = user_agent.unwrap_or_default();
        let hit = match self {
            Scenario::S3 => contains(ua, b"Chrome"),
            Scenario::S4 => contains(ua, b"Android") && coin(),
        };
        if hit {
            "v2"
        } else {
            "v1"
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// xorshift64*: the SDK has no random source, so the VM seeds one from the host clock (as `math.random`
/// in Envoy's Lua is seeded once per VM). One per VM, shared by its requests.
struct Rng(Cell<u64>);

impl Rng {
    fn seed(&self, seed: u64) {
        // Never zero (xorshift's fixed point).
        self.0.set(seed | 1);
    }

    fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn coin(&self) -> bool {
        self.next() >> 63 == 1
    }
}

struct SubsetRoot {
    scenario: Option<Scenario>,
    rng: Rc<Rng>,
}

impl Context for SubsetRoot {}

impl RootContext for SubsetRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        self.scenario = Scenario::parse(&config);
        if self.scenario.is_none() {
            log::error!(
                "sdk-filter: the configuration must be \"s3\" or \"s4\", not {:?}",
                String::from_utf8_lossy(&config)
            );
            return false;
        }
        let now = self.get_current_time();
        let nanos = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        self.rng.seed(nanos);
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        let scenario = self.scenario?;
        Some(Box::new(SubsetRequest { scenario, rng: Rc::clone(&self.rng) }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct SubsetRequest {
    scenario: Scenario,
    rng: Rc<Rng>,
}

impl Context for SubsetRequest {}

impl HttpContext for SubsetRequest {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        #[cfg(not(feature = "utf8-header"))]
        let ua = self.get_http_request_header_bytes("user-agent");
        #[cfg(feature = "utf8-header")]
        let ua = self.get_http_request_header("user-agent").map(String::into_bytes);
        let subset = self.scenario.decide(ua.as_deref(), || self.rng.coin());
        self.set_http_request_header(SUBSET_HEADER, Some(subset));
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_names_the_scenario() {
        assert_eq!(Scenario::parse(b"s3"), Some(Scenario::S3));
        assert_eq!(Scenario::parse(b"s4"), Some(Scenario::S4));
        assert_eq!(Scenario::parse(b""), None);
        assert_eq!(Scenario::parse(b"S3 "), None);
    }

    #[test]
    fn s3_routes_chrome_to_v2() {
        let no_coin = || panic!("S3 draws nothing");
        assert_eq!(Scenario::S3.decide(Some(b"Mozilla Chrome/124.0"), no_coin), "v2");
        assert_eq!(Scenario::S3.decide(Some(b"Firefox/125.0 \xff"), no_coin), "v1");
        assert_eq!(Scenario::S3.decide(Some(b"chrome"), no_coin), "v1");
        assert_eq!(Scenario::S3.decide(None, no_coin), "v1");
    }

    #[test]
    fn s4_draws_only_for_android() {
        assert_eq!(Scenario::S4.decide(Some(b"Linux; Android 14"), || true), "v2");
        assert_eq!(Scenario::S4.decide(Some(b"Linux; Android 14"), || false), "v1");
        assert_eq!(Scenario::S4.decide(Some(b"iPhone"), || panic!("no draw")), "v1");
        assert_eq!(Scenario::S4.decide(None, || panic!("no draw")), "v1");
    }

    /// 10,000 draws: v2's share within 4.5σ of 1/2 (σ = 0.005), so a broken generator (stuck bit, constant)
    /// fails and a working one passes but for odds of ~1e-5.
    #[test]
    fn coin_is_fair() {
        let rng = Rng(Cell::new(0));
        rng.seed(0x1234_5678_9abc_def0);
        let n = 10_000;
        let heads = (0..n).filter(|_| rng.coin()).count();
        let share = heads as f64 / n as f64;
        assert!((share - 0.5).abs() < 4.5 * 0.005, "share {share}");
    }
}
