//! When each proxy has taken a push: its ECDS counters, polled every [`POLL`] from the rename on.
//!
//! `config_reload` counts updates the proxy applied, `config_fail` updates it rejected (the filter refused
//! the configuration, so Envoy could not create the wasm plugin and keeps the last good one). Envoy bumps
//! `config_reload` on its main thread right after handing the new filter factory to the workers, so the
//! counter is what an operator can watch; whether a request sent after it can still meet the old policy is
//! measured by the load's stale count (see `verdict`), not assumed.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::client::Conn;
use super::Proxy;
use crate::reload::stat_value;
use canary_backends::manifest::envoy::filter_name;

/// The ECDS counters of the proxy's canary filter (`canary-SERVICE`, as canaryc names it).
fn counter(p: &Proxy, which: &str) -> String {
    format!("extension_config_discovery.http_filter.{}.{which}", filter_name(p.kind.service()))
}

/// How often each proxy's admin is asked: the resolution of the push latencies.
pub const POLL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub reloads: u64,
    pub fails: u64,
}

/// Both counters in one admin request (over a kept-alive connection).
pub fn counters(p: &Proxy, admin: &mut Conn) -> Result<Counters> {
    let (status, body) = admin.get("/stats?filter=http_filter.canary-[a-z0-9_-]*.config_", &[])?;
    if status != 200 {
        bail!("admin /stats answered {status}: {body}");
    }
    Ok(Counters {
        reloads: stat_value(&body, &counter(p, "config_reload")).unwrap_or(0),
        fails: stat_value(&body, &counter(p, "config_fail")).unwrap_or(0),
    })
}

/// Every proxy's counters, read before a push.
pub fn baseline(proxies: &[Proxy]) -> Result<Vec<Counters>> {
    proxies.iter().map(|p| counters(p, &mut Conn::new(p.admin)).with_context(|| p.name.clone())).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Refused,
}

/// How a push landed on one proxy.
#[derive(Debug, Clone, Copy)]
pub struct Landed {
    pub outcome: Outcome,
    /// When the poll saw the counter move (an upper bound: it moved at most one poll earlier).
    pub at: Instant,
    /// `at` minus the rename.
    pub after: Duration,
}

/// Polls every proxy (one thread each) until its `config_reload` or `config_fail` moved past `before`
/// (see `wait_one` for a push `expected` to be refused).
pub fn wait_all(
    proxies: &[Proxy],
    before: &[Counters],
    expected: Outcome,
    published: Instant,
    timeout: Duration,
) -> Result<Vec<Landed>> {
    let results: Vec<Result<Landed>> = thread::scope(|s| {
        let handles: Vec<_> = proxies
            .iter()
            .zip(before)
            .map(|(p, &b)| s.spawn(move || wait_one(p, b, expected, published, timeout)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| bail!("a poller panicked"))).collect()
    });
    results.into_iter().collect()
}

fn wait_one(p: &Proxy, before: Counters, expected: Outcome, published: Instant, timeout: Duration) -> Result<Landed> {
    let mut admin = Conn::new(p.admin);
    loop {
        // The admin shares Envoy's main thread with the update itself (a 10,000-rule policy keeps it busy for
        // seconds on a loaded machine): an admin timeout is a reason to ask again, until `timeout`.
        let now = match counters(p, &mut admin) {
            Ok(now) => now,
            Err(e) if published.elapsed() > timeout => return Err(e.context(format!("{}'s admin", p.name))),
            Err(_) => {
                thread::sleep(POLL);
                continue;
            }
        };
        let at = Instant::now();
        // A rejected update moves `config_fail` and, in Envoy 1.40, `config_reload` too (seen in one poll), so a
        // moved `config_fail` decides; a push expected to fail is waited on until `config_fail` moves.
        let (reloaded, failed) = (now.reloads > before.reloads, now.fails > before.fails);
        let outcome = match (failed, reloaded, expected) {
            (true, _, _) => Some(Outcome::Refused),
            (false, true, Outcome::Applied) => Some(Outcome::Applied),
            _ => None,
        };
        if let Some(outcome) = outcome {
            return Ok(Landed { outcome, at, after: at.duration_since(published) });
        }
        if at.duration_since(published) > timeout {
            if reloaded {
                return Ok(Landed { outcome: Outcome::Applied, at, after: at.duration_since(published) });
            }
            bail!("{} neither applied nor refused the push within {timeout:?} (counters {now:?})", p.name);
        }
        thread::sleep(POLL);
    }
}
