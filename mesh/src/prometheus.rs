//! A real Prometheus on loopback for tests and the demo: `/usr/bin/prometheus` (Debian's package, installed by
//! `scripts/setup.sh`) with a generated config that scrapes the given Envoy admin listeners'
//! `/stats/prometheus` every second, its own temp storage, a free port; ready when `/-/ready` answers, killed
//! on drop. A stand-in would only test our reading of our own assumptions; the real server also checks that
//! every PromQL we write (the rollout's queries, the Grafana dashboard's) parses and runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use canary_weather::http::Client;
use serde_json::Value;

use super::envoy::free_port;
use super::procs::Procs;

/// Scrape (and rule evaluation) interval: short, so a test sees its traffic within seconds.
pub const SCRAPE_INTERVAL: &str = "1s";
/// Prometheus opens its TSDB and web listener in about a second; generous for a loaded 2-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `PROMETHEUS_BIN`, else Debian's `/usr/bin/prometheus`.
pub fn find_prometheus() -> Result<PathBuf> {
    let bin = std::env::var_os("PROMETHEUS_BIN").map_or_else(|| PathBuf::from("/usr/bin/prometheus"), PathBuf::from);
    if !bin.is_file() {
        bail!("Prometheus not found at {}: run scripts/setup.sh (or set PROMETHEUS_BIN)", bin.display());
    }
    Ok(bin)
}

/// The config file: one job, `envoy`, scraping every target's `/stats/prometheus`; `extra_jobs` (YAML list
/// items, indented by two spaces) are appended to `scrape_configs`.
pub fn scrape_config(targets: &[SocketAddr], extra_jobs: &str) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: {SCRAPE_INTERVAL}\n  \
         evaluation_interval: {SCRAPE_INTERVAL}\nscrape_configs:\n  - job_name: envoy\n    \
         metrics_path: /stats/prometheus\n    static_configs:\n      - targets: [{}]\n{extra_jobs}",
        list.join(", ")
    )
}

/// A running Prometheus; dropping it stops the process and removes its storage.
pub struct Prometheus {
    pub addr: SocketAddr,
    /// The config file's text (targets are written `'HOST:PORT'`).
    config: String,
    procs: Procs,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`HOST:PORT` of Envoy admin listeners) and waits until it is ready.
    pub fn start(targets: &[SocketAddr]) -> Result<Prometheus> {
        Prometheus::start_with(targets, "")
    }

    /// [`Prometheus::start`] with more scrape jobs (see [`scrape_config`]), e.g. one relabelling Envoy's series.
    pub fn start_with(targets: &[SocketAddr], extra_jobs: &str) -> Result<Prometheus> {
        let bin = find_prometheus()?;
        let mut procs = Procs::new("prometheus")?;
        let addr = free_port()?;
        let config = procs.dir().join("prometheus.yml");
        let text = scrape_config(targets, extra_jobs);
        std::fs::write(&config, &text).with_context(|| format!("writing {}", config.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", procs.dir().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        procs.spawn("prometheus", cmd)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if !procs.running("prometheus") {
                bail!("Prometheus exited during startup; its log ends with:\n{}", procs.tail("prometheus"));
            }
            if Client::new(addr).get("/-/ready", &[]).is_ok_and(|r| r.status == 200) {
                break;
            }
            if Instant::now() > deadline {
                bail!("Prometheus not ready after {READY_TIMEOUT:?}; its log ends with:\n{}", procs.tail("prometheus"));
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(Prometheus { addr, config: text, procs })
    }

    /// `http://HOST:PORT`, as a Prometheus source is configured.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The last lines of Prometheus's log, for a failure message.
    pub fn log_tail(&self) -> String {
        self.procs.tail("prometheus")
    }

    /// Runs an instant query; the HTTP status and the API's JSON answer, whatever they are (a test asserts on
    /// both: a refused query is a 400 with `status: error`).
    pub fn query(&self, promql: &str) -> Result<(u16, Value)> {
        self.api("query", &[("query", promql)])
    }

    /// `GET /api/v1/PATH?K=V&…` (e.g. `label/service/values` with `match[]`): the HTTP status and the JSON.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<(u16, Value)> {
        let query: Vec<String> =
            params.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect();
        let path = format!("/api/v1/{path}?{}", query.join("&"));
        let answer = Client::new(self.addr).get(&path, &[]).with_context(|| format!("GET {path}"))?;
        let json = serde_json::from_str(&answer.body)
            .with_context(|| format!("Prometheus answered {path} with no JSON: {}", answer.body))?;
        Ok((answer.status, json))
    }

    /// Waits until `target` has been scraped successfully after `after` by every job of the config that names
    /// it: each of its `up` series has a newer sample, and a 1.
    pub fn wait_scraped(&self, target: SocketAddr, after: SystemTime, timeout: Duration) -> Result<()> {
        let after = after.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        // Jobs start scraping a few seconds apart, so each job's `up` series must be fresh, not just one.
        let jobs = self.config.split("- job_name:").skip(1).filter(|job| job.contains(&format!("'{target}'"))).count();
        if jobs == 0 {
            bail!("no scrape job of this Prometheus names {target}");
        }
        // `timestamp` of a raw selector is the sample's scrape time (of an expression, the evaluation time).
        let up = format!("up{{instance=\"{target}\"}}");
        let promql = format!("count((timestamp({up}) >= {after:.3}) and ({up} == 1))");
        let deadline = Instant::now() + timeout;
        loop {
            let (_, answer) = self.query(&promql)?;
            let fresh = answer["data"]["result"]
                .get(0)
                .and_then(|s| s["value"].get(1))
                .and_then(Value::as_str)
                .and_then(|v| v.parse::<f64>().ok());
            if fresh.is_some_and(|n| n >= jobs as f64) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{target} not scraped successfully by all {jobs} jobs within {timeout:?} ({fresh:?} were); log:\n{}",
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Percent-encodes a query-string value (everything but RFC 3986's unreserved characters).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_encoding() {
        let t: SocketAddr = "127.0.0.1:9901".parse().unwrap();
        let config = scrape_config(&[t], "");
        assert!(config.contains("metrics_path: /stats/prometheus") && config.contains("targets: ['127.0.0.1:9901']"));
        assert_eq!(percent_encode("up{a=\"b c\"}"), "up%7Ba%3D%22b%20c%22%7D");
    }
}
