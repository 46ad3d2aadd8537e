//! Real browser user-agent strings the scenarios send (current releases, as browsers send them).

/// Chrome on Windows.
pub const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
/// Firefox on Windows.
pub const FIREFOX: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0";
/// Chrome on an Android phone.
pub const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
                           Chrome/124.0.6367.82 Mobile Safari/537.36";
/// Safari on macOS.
pub const MACOS: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                         Version/17.4 Safari/605.1.15";
