//! What the rollout end-to-end tests share beyond `canary_mesh::rollout`: a real Prometheus scraping the
//! sidecars (the plan's `metrics.prometheus` source), and `canaryc rollout` run through the CLI's own entry
//! point while the harness loads and watches the proxies.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use canary_weather::http::Client;

use crate::mesh::envoy::free_port;
use crate::mesh::procs::Procs;
use crate::mesh::rollout::{canaryc_in_process, PlanOptions, Report, RolloutHarness};

/// How long Prometheus may take to open its TSDB and answer `/-/ready` on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A Prometheus server on loopback scraping Envoy admin endpoints' `/stats/prometheus`; dropping it stops it.
pub struct Prometheus {
    pub url: String,
    procs: Procs,
}

/// `PROMETHEUS_BIN`, else Debian's `/usr/bin/prometheus` (what `scripts/setup.sh` installs).
pub fn find_prometheus() -> Result<PathBuf> {
    let bin = std::env::var_os("PROMETHEUS_BIN").map_or_else(|| PathBuf::from("/usr/bin/prometheus"), PathBuf::from);
    if !bin.is_file() {
        bail!("{} not found: run `make setup` (Debian package prometheus) or set PROMETHEUS_BIN", bin.display());
    }
    Ok(bin)
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` every `scrape` and waits until it is ready.
    pub fn start(targets: &[SocketAddr], scrape: Duration) -> Result<Prometheus> {
        let bin = find_prometheus()?;
        let mut procs = Procs::new("prometheus")?;
        let listen = free_port()?;
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let every = format!("{}ms", scrape.as_millis());
        let config = format!(
            "global: {{ scrape_interval: {every}, evaluation_interval: {every} }}\n\
             scrape_configs:\n  - job_name: envoy\n    metrics_path: /stats/prometheus\n    \
             static_configs: [{{ targets: [{}] }}]\n",
            targets.join(", ")
        );
        let config_path = procs.dir().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", procs.dir().join("data").display()))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn");
        procs.spawn("prometheus", cmd)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while !Client::new(listen).get("/-/ready", &[]).is_ok_and(|r| r.status == 200) {
            if !procs.running("prometheus") || Instant::now() > deadline {
                bail!("Prometheus did not become ready on {listen}:\n{}", procs.tail("prometheus"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Prometheus { url: format!("http://{listen}"), procs })
    }

    pub fn tail(&self) -> String {
        self.procs.tail("prometheus")
    }
}

/// One rollout run against a harness: the plan written, `canaryc rollout PLAN` run to its end while the load
/// goes on, then `linger` more of load, and the measured report.
pub struct Run {
    pub exit: i32,
    pub plan: PathBuf,
    pub report: Report,
    /// Wall time of `canaryc rollout` itself.
    pub rollout: Duration,
}

/// Writes `plan`, runs `canaryc rollout` on it in-process (plain lines on stdout: not a terminal), keeps the
/// load on for `linger`, and measures.
pub fn run_rollout(h: &mut RolloutHarness, plan: &PlanOptions, linger: Duration) -> Result<Run> {
    let path = h.write_plan(plan)?;
    println!("plan {}:\n{}", path.display(), std::fs::read_to_string(&path)?);
    let started = Instant::now();
    let exit = canaryc_in_process(&["rollout".to_string(), path.display().to_string()]);
    let rollout = started.elapsed();
    let mut report = h.finish(linger).context("measuring the run")?;
    if let Some((bound, _)) = plan.latency {
        report = report.with_latency(bound);
    }
    println!("canaryc rollout exited {exit} after {rollout:.1?}\n{}", report.render());
    Ok(Run { exit, plan: path, report, rollout })
}

/// The final state file's text, for a failure message.
pub fn state_of(plan: &Path) -> String {
    let dir = plan.parent().unwrap_or(Path::new("."));
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".rollout.json"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}
