//! `canaryc rollout` in real Envoys: the forecast step of the weather mesh, instrumented.
//!
//! ```text
//! load (N users, cookie user=uNNNNN, R req/s) ─▶ frontend-K-sidecar Envoys (labels app=frontend,version=v1;
//!     the canary filter for forecast from ONE watched ECDS file) ─▶ forecast-v1 | forecast-v2 ─▶ recommendation
//! ```
//! [`RolloutHarness::start`] boots the stand-ins (forecast v2 good or faulty: `--fail-percent`,
//! `--extra-latency-ms`, changeable later through its `/_control` path), writes the policy
//! `service forecast { 1% v2 by cookie user; default v1 }` and pushes it with the very `canaryc manifest --kind
//! ecds … -o` command line the plan's `push` holds, starts the sidecars from the `--kind envoy --ecds-path`
//! bootstrap, and starts two observers: the load generator, which records every answer (user, proxy, the
//! version that answered, status, send and completion time), and a watcher, which records every version of the
//! watched file (which users its policy sends to v2, by the one evaluator) and when each proxy applied it
//! (the proxy's own `update_time` of that `version_text`). [`RolloutHarness::write_plan`] writes a plan for
//! the caller to run with `canaryc rollout`; [`RolloutHarness::finish`] turns the records into a [`Report`]:
//! how long from the regression's first bad answer to the rollback applied on every proxy, how many bad answers
//! were served, who saw v2, and whether any user once on v2 was sent back to v1 before the rollback.
//!
//! Everything is measured on the proxies and the answers, never taken from the controller's own account.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use canary_backends::manifest::envoy::{envoy_bootstrap, EnvoyOptions};
use canary_eval::config::Protocol;
use canary_eval::{Policy, SimpleRequest};
use canary_weather::http::Client;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::backends::FixedBucket;
use crate::envoy::{free_port, spawn, wait_listening, wait_ready};
use crate::procs::Procs;
use crate::{policy, Launcher, MeshOptions};

/// The service the rollout steps, and the line of its split rule in [`POLICY`].
pub const SERVICE: &str = "forecast";
pub const RULE_LINE: u32 = 4;
/// The policy every rollout starts from: 1 % of users (by their `user` cookie) on v2.
pub const POLICY: &str = include_str!("../../examples/rollout/weather/forecast.canary");
/// How often the watcher reads the watched file and the proxies' ECDS stats: the resolution of every
/// "applied at" figure is the proxy's own millisecond `update_time`, this only bounds how late we notice.
const WATCH_EVERY: Duration = Duration::from_millis(25);
/// How far apart a proxy's `update_time` for a push and the first or last request its worker decides by the
/// new or the old policy may be. Measured both ways: under load a worker served a push up to ~5 ms *before* the
/// stamp, and requests in flight at the stamp still finish under the old policy. Answers within this margin of
/// a push may follow either policy (and v2 answers this close after a rollback are counted apart, as
/// [`Report::stale_after_rollback`]); every other answer must follow the push in force.
pub const APPLY_MARGIN: Duration = Duration::from_millis(250);

/// How forecast v2 misbehaves (all zero: a good canary).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    pub fail_percent: f64,
    pub extra_latency_ms: u32,
}

impl Faults {
    pub fn describe(&self) -> String {
        match (self.fail_percent > 0.0, self.extra_latency_ms > 0) {
            (false, false) => "good".into(),
            (true, false) => format!("{}% 500s", self.fail_percent),
            (false, true) => format!("+{} ms", self.extra_latency_ms),
            (true, true) => format!("{}% 500s, +{} ms", self.fail_percent, self.extra_latency_ms),
        }
    }
}

/// What to boot and how hard to load it.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// Envoy, the filter, and how to start a stand-in (the `demo` binary or canary-tests' `weather-service`).
    pub mesh: MeshOptions,
    /// Caller-side proxies (frontend instances' sidecars), each picked at random per request.
    pub proxies: usize,
    /// Distinct users; each request carries one, drawn uniformly.
    pub users: usize,
    /// Requests per second over all proxies (paced; bounded so a 2-core machine keeps up).
    pub rate: f64,
    /// Client threads sharing the rate (each waits for its answer, so slow answers need a few).
    pub workers: usize,
    /// forecast v2's faults from its start.
    pub canary: Faults,
    /// Turn v2 bad mid-rollout: once a push with at least this v2 weight (percent) is applied on every proxy,
    /// the watcher sets these faults through v2's `/_control` (the regression's start is that moment).
    pub turn_bad: Option<(f64, Faults)>,
}

impl HarnessOptions {
    pub fn new(mesh: MeshOptions) -> Self {
        HarnessOptions {
            mesh,
            proxies: 2,
            users: 5_000,
            rate: 300.0,
            workers: 8,
            canary: Faults::default(),
            turn_bad: None,
        }
    }
}

/// Where the judge's counts come from.
#[derive(Debug, Clone)]
pub enum Metrics {
    /// The sidecars' admin endpoints (`metrics.envoy`).
    Envoy,
    /// A Prometheus server scraping them (`metrics.prometheus`), at this base URL.
    Prometheus { url: String },
}

/// The plan's schedule and judge.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub steps: Vec<u32>,
    pub min_time: Duration,
    pub min_requests: u64,
    pub interval: Duration,
    pub alpha: f64,
    /// Percentage points of 5xx the canary may exceed the baseline by.
    pub error_tolerance: f64,
    /// `(slower_than, tolerance in points)`; the bound must be an Envoy `upstream_rq_time` bucket bound.
    pub latency: Option<(Duration, f64)>,
    pub metrics: Metrics,
}

impl PlanOptions {
    /// Short steps for tests and the demo: 5 → 20 → 50 → 100 %, 3 s and 150 canary requests per step, a
    /// reading a second. Fewer canary requests let a 5 % error rate through: with 2 s and 50 requests the judge
    /// had 9 errors in 340 canary requests (evidence 12 of the 100 it needs at α = 0.01) when 50 % passed.
    pub fn short() -> Self {
        PlanOptions {
            steps: vec![5, 20, 50, 100],
            min_time: Duration::from_secs(3),
            min_requests: 150,
            interval: Duration::from_secs(1),
            alpha: 0.01,
            error_tolerance: 0.5,
            latency: None,
            metrics: Metrics::Envoy,
        }
    }
}

/// One answer as the load generator saw it; times are seconds since the harness started.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub sent: f64,
    pub done: f64,
    pub user: u32,
    pub proxy: u8,
    /// 0 when the request failed below HTTP (connection refused or reset).
    pub status: u16,
    /// The forecast version that answered (from its body, `forecast=vN`), if any did.
    pub subset: Option<Subset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subset {
    V1,
    V2,
}

/// One version of the watched file.
#[derive(Debug, Clone)]
pub struct Push {
    /// The resource's `version_info` (a digest; what the proxies report as `version_text`).
    pub version: String,
    /// When the watcher first saw it in the file.
    pub seen: f64,
    /// The split's v2 weight in percent, as written in the policy (None if no split names v2).
    pub weight: Option<f64>,
    /// Which of the harness's users this policy sends to v2 (decided by the evaluator, bucket by bucket).
    pub v2_users: Arc<HashSet<u32>>,
    /// When each proxy applied it (its `update_time`), by proxy index.
    pub applied: Vec<Option<f64>>,
}

impl Push {
    /// When the last proxy applied it, once all have.
    pub fn applied_everywhere(&self) -> Option<f64> {
        self.applied.iter().try_fold(0.0f64, |acc, a| a.map(|a| acc.max(a)))
    }

    pub fn applied_first(&self) -> Option<f64> {
        self.applied.iter().flatten().copied().reduce(f64::min)
    }
}

/// What the watcher and the load generator collect.
#[derive(Default)]
struct Records {
    samples: Vec<Sample>,
    pushes: Vec<Push>,
    /// Reads of a proxy's stats that failed (it was restarting or overloaded), for the report.
    watch_errors: usize,
    /// When the load started (after the proxies served the first push).
    load_started: f64,
    /// When v2 was turned bad at run time (the regression's start), if it was.
    regression_at: Option<f64>,
}

/// The booted environment; dropping it stops every process (the load and the watcher first).
pub struct RolloutHarness {
    opts: HarnessOptions,
    dir: PathBuf,
    watched: PathBuf,
    admins: Vec<SocketAddr>,
    canary_addr: SocketAddr,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Records>>,
    threads: Vec<JoinHandle<()>>,
    faults_now: Faults,
    plans: usize,
    // Declared last so the processes outlive nothing that refers to them.
    procs: Procs,
}

impl RolloutHarness {
    /// Boots everything and starts the load and the watcher; returns once every proxy serves the 1 % policy.
    pub fn start(opts: HarnessOptions) -> Result<RolloutHarness> {
        // Samples name their proxy in a byte.
        if !(1..=255).contains(&opts.proxies) || opts.users == 0 || opts.workers == 0 {
            bail!("the harness needs 1 to 255 proxies and at least one user and one worker");
        }
        if !opts.rate.is_finite() || opts.rate <= 0.0 {
            bail!("the load rate must be a positive number of requests per second, not {}", opts.rate);
        }
        let procs = Procs::new("rollout")?;
        let dir = procs.dir().to_path_buf();
        std::fs::create_dir_all(dir.join("watched"))?;
        let watched = dir.join("watched").join(format!("{SERVICE}.yaml"));
        let mut me = RolloutHarness {
            canary_addr: free_port()?,
            opts,
            dir,
            watched,
            admins: Vec::new(),
            epoch: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
            records: Arc::new(Mutex::new(Records::default())),
            threads: Vec::new(),
            faults_now: Faults::default(),
            plans: 0,
            procs,
        };
        me.faults_now = me.opts.canary;
        me.boot().map_err(|err| anyhow!("{err:#}\n--- logs ({}) ---\n{}", me.dir.display(), me.procs.all_tails()))?;
        Ok(me)
    }

    fn boot(&mut self) -> Result<()> {
        // The stand-ins: forecast v2 calls recommendation directly (its own sidecar is not what this shows).
        let (v1, reco) = (free_port()?, free_port()?);
        self.service("recommendation-v1", &["--role", "recommendation", "--version", "v1"], reco, None)?;
        self.service("forecast-v1", &["--role", "forecast", "--version", "v1"], v1, None)?;
        let (fail, latency) =
            (self.opts.canary.fail_percent.to_string(), self.opts.canary.extra_latency_ms.to_string());
        let v2_args =
            ["--role", "forecast", "--version", "v2", "--fail-percent", &fail, "--extra-latency-ms", &latency];
        self.service("forecast-v2", &v2_args, self.canary_addr, Some(reco))?;
        for addr in [reco, v1, self.canary_addr] {
            wait_listening(addr)?;
        }

        // The policy and its first push, by the plan's own command line.
        std::fs::write(self.policy_path(), POLICY)?;
        let code = canaryc_in_process(
            &[&["manifest".to_string(), self.policy_path().display().to_string()], &self.push_args()[..]].concat(),
        );
        if code != 0 {
            bail!("the first push (canaryc manifest … --kind ecds) exited {code}");
        }

        // The sidecars: `canaryc manifest --kind envoy --ecds-path WATCHED`'s bootstrap, one per frontend instance.
        let config = policy::compile(POLICY, "forecast.canary")?;
        let mut listeners = Vec::new();
        for k in 0..self.opts.proxies {
            let name = format!("frontend-{k}-sidecar");
            let mut o = EnvoyOptions::new(SERVICE, free_port()?, free_port()?, &self.opts.mesh.wasm);
            o.clusters = vec![("v1".into(), v1), ("v2".into(), self.canary_addr)];
            o.default_subset = Some("v1".into());
            o.node_labels = vec![("app".into(), "frontend".into()), ("version".into(), "v1".into())];
            o.node_id = Some(name.clone());
            o.protocol = Some(Protocol::Http);
            o.ecds_path = Some(self.watched.clone());
            let yaml = envoy_bootstrap(&config, &o).map_err(anyhow::Error::msg).context(name.clone())?;
            spawn(&mut self.procs, &self.opts.mesh.envoy, &name, &yaml)?;
            self.admins.push(o.admin);
            listeners.push(o.listen);
        }
        for (k, admin) in self.admins.clone().iter().enumerate() {
            wait_ready(&mut self.procs, &format!("frontend-{k}-sidecar"), *admin)?;
        }

        // The watcher first, so the first push is on record before any answer.
        let watcher = Watcher {
            stop: self.stop.clone(),
            records: self.records.clone(),
            watched: self.watched.clone(),
            admins: self.admins.clone(),
            users: self.opts.users,
            epoch: self.epoch,
            epoch_ms: epoch_ms_now(self.epoch),
            turn_bad: self.opts.turn_bad.map(|(weight, faults)| (weight, faults, self.canary_addr)),
        };
        self.threads.push(thread::spawn(move || watcher.run()));
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.pushes().first().and_then(Push::applied_everywhere).is_none() {
            if Instant::now() > deadline {
                bail!("the proxies did not report the first push's version within 15 s");
            }
            thread::sleep(WATCH_EVERY);
        }
        if let Ok(mut r) = self.records.lock() {
            r.load_started = self.now();
        }
        for w in 0..self.opts.workers {
            let (stop, records, listeners, epoch) =
                (self.stop.clone(), self.records.clone(), listeners.clone(), self.epoch);
            let (users, period) = (self.opts.users, Duration::from_secs_f64(self.opts.workers as f64 / self.opts.rate));
            let offset = period.mul_f64(w as f64 / self.opts.workers as f64);
            self.threads
                .push(thread::spawn(move || load(&stop, &records, &listeners, users, period, offset, epoch, w)));
        }
        Ok(())
    }

    /// Starts one stand-in from the launcher with `args`, listening on `listen`.
    fn service(&mut self, name: &str, args: &[&str], listen: SocketAddr, upstream: Option<SocketAddr>) -> Result<()> {
        let launcher: &Launcher = &self.opts.mesh.services;
        let mut cmd = Command::new(&launcher.program);
        cmd.args(&launcher.args).args(args).arg("--listen").arg(listen.to_string());
        if let Some(up) = upstream {
            cmd.arg("--upstream").arg(up.to_string());
        }
        self.procs.spawn(name, cmd)?;
        Ok(())
    }

    /// The policy file the plan names (the rollout rewrites it in place).
    pub fn policy_path(&self) -> PathBuf {
        self.dir.join(format!("{SERVICE}.canary"))
    }

    /// The temp directory holding the policy, plans, state, bootstraps and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sidecars' admin endpoints (what the plan's `metrics.envoy.admin` lists, and Prometheus scrapes).
    pub fn admins(&self) -> &[SocketAddr] {
        &self.admins
    }

    /// `canaryc manifest POLICY` + these = one push (the plan's `push[0].manifest`).
    pub fn push_args(&self) -> Vec<String> {
        let wasm = self.opts.mesh.wasm.display().to_string();
        ["--kind", "ecds", "--service", SERVICE, "--wasm", &wasm, "-o", &self.watched.display().to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Writes a plan for the 1 % policy (`plan-N.yaml`, its own state file) and returns its path.
    pub fn write_plan(&mut self, plan: &PlanOptions) -> Result<PathBuf> {
        self.plans += 1;
        let n = self.plans;
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let mut y = String::new();
        let _ = writeln!(y, "# written by canary-mesh's rollout harness ({})", self.opts.canary.describe());
        let _ = writeln!(y, "policy: {SERVICE}.canary\nservice: {SERVICE}\nrule: {RULE_LINE}\ncanary: v2");
        let steps: Vec<String> = plan.steps.iter().map(u32::to_string).collect();
        let _ = writeln!(y, "steps: [{}]", steps.join(", "));
        let _ = writeln!(y, "min_time: {}ms\nmin_requests: {}", plan.min_time.as_millis(), plan.min_requests);
        let _ = writeln!(y, "interval: {}ms", plan.interval.as_millis());
        let _ = writeln!(y, "judge:\n  alpha: {}\n  errors: {{ tolerance: {} }}", plan.alpha, plan.error_tolerance);
        if let Some((bound, tolerance)) = plan.latency {
            let _ = writeln!(y, "  latency: {{ slower_than: {}ms, tolerance: {tolerance} }}", bound.as_millis());
        }
        let clusters = format!("baseline: {SERVICE}-v1, canary: {SERVICE}-v2");
        match &plan.metrics {
            Metrics::Envoy => {
                let admins: Vec<String> = self.admins.iter().map(SocketAddr::to_string).collect();
                let _ = writeln!(y, "metrics:\n  envoy: {{ admin: [{}], {clusters} }}", admins.join(", "));
            }
            Metrics::Prometheus { url } => {
                let _ = writeln!(y, "metrics:\n  prometheus: {{ url: {}, envoy: {{ {clusters} }} }}", quote(url));
            }
        }
        let args: Vec<String> = self.push_args().iter().map(|a| quote(a)).collect();
        let _ = writeln!(y, "push:\n  - manifest: [{}]", args.join(", "));
        let _ = writeln!(y, "state: {SERVICE}-{n}.rollout.json");
        let path = self.dir.join(format!("plan-{n}.yaml"));
        std::fs::write(&path, y).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Seconds since the harness started (the time base of every figure).
    pub fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Turns forecast v2 bad (or good again) while it serves, through its `/_control` path; the first call
    /// that makes it bad marks the regression's start.
    pub fn set_canary_faults(&mut self, faults: Faults) -> Result<()> {
        set_faults(self.canary_addr, faults)?;
        if faults != Faults::default() && self.faults_now == Faults::default() {
            let now = self.now();
            if let Ok(mut r) = self.records.lock() {
                r.regression_at.get_or_insert(now);
            }
        }
        self.faults_now = faults;
        Ok(())
    }

    /// Every version of the watched file so far.
    pub fn pushes(&self) -> Vec<Push> {
        self.records.lock().map(|r| r.pushes.clone()).unwrap_or_default()
    }

    /// Answers so far.
    pub fn answers(&self) -> usize {
        self.records.lock().map(|r| r.samples.len()).unwrap_or(0)
    }

    /// Keeps the load on for `linger` (to see what the proxies do after the last push), stops the observers
    /// and measures.
    pub fn finish(&mut self, linger: Duration) -> Result<Report> {
        thread::sleep(linger);
        // Let the watcher see the proxies apply a push made just before.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.pushes().last().is_some_and(|p| p.applied_everywhere().is_none()) && Instant::now() < deadline {
            thread::sleep(WATCH_EVERY);
        }
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().map_err(|_| anyhow!("a harness thread panicked"))?;
        }
        let records = self.records.lock().map_err(|_| anyhow!("records poisoned"))?;
        Ok(Report::measure(&records, self.opts.users, self.now()))
    }

    /// Tails of every log, for a failure message.
    pub fn logs(&self) -> String {
        self.procs.all_tails()
    }
}

impl Drop for RolloutHarness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `POST /_control?…` to a stand-in.
fn set_faults(addr: SocketAddr, faults: Faults) -> Result<()> {
    let query = format!("/_control?fail_percent={}&extra_latency_ms={}", faults.fail_percent, faults.extra_latency_ms);
    let answer = Client::new(addr).request("POST", &query, &[])?;
    if answer.status != 200 {
        bail!("the stand-in at {addr} refused {query}: {} {}", answer.status, answer.body);
    }
    Ok(())
}

/// `canaryc ARGS…` through the CLI's own entry point (the harness needs canaryc's push before any binary is
/// built, and the tests run the rollout this way); the exit code.
pub fn canaryc_in_process(args: &[String]) -> i32 {
    canaryc::run_with(std::iter::once("canaryc".to_string()).chain(args.iter().cloned()))
}

/// The wall clock at `epoch`, in ms since the Unix epoch: proxies stamp `update_time` on that clock.
fn epoch_ms_now(epoch: Instant) -> f64 {
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1000.0;
    wall - epoch.elapsed().as_secs_f64() * 1000.0
}

// ----- the load generator --------------------------------------------------------------------------------

/// One worker: a request every `period` (late ones are sent at once, never in a burst to catch up), a random
/// user to a random proxy, each answer recorded.
#[allow(clippy::too_many_arguments)]
fn load(
    stop: &AtomicBool,
    records: &Mutex<Records>,
    listeners: &[SocketAddr],
    users: usize,
    period: Duration,
    offset: Duration,
    epoch: Instant,
    worker: usize,
) {
    let mut rng = SmallRng::seed_from_u64(0x5EED_0000 + worker as u64);
    let mut clients: Vec<Client> = listeners.iter().map(|a| Client::new(*a)).collect();
    let mut next = Instant::now() + offset;
    let mut batch = Vec::with_capacity(64);
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        }
        next = (next + period).max(Instant::now());
        let user = rng.random_range(0..users) as u32;
        let proxy = rng.random_range(0..clients.len());
        let cookie = format!("user={}", user_name(user));
        let sent = epoch.elapsed().as_secs_f64();
        let answer = clients[proxy].get("/forecast", &[("host", SERVICE), ("cookie", &cookie)]);
        let done = epoch.elapsed().as_secs_f64();
        let (status, subset) = match &answer {
            Ok(r) => (r.status, subset_of(&r.body)),
            Err(_) => (0, None),
        };
        batch.push(Sample { sent, done, user, proxy: proxy as u8, status, subset });
        if batch.len() == batch.capacity() || stop.load(Ordering::Relaxed) {
            if let Ok(mut r) = records.lock() {
                r.samples.append(&mut batch);
            }
        }
    }
    if let Ok(mut r) = records.lock() {
        r.samples.append(&mut batch);
    }
}

pub fn user_name(user: u32) -> String {
    format!("u{user:05}")
}

/// `forecast=vN` in an answer's body (`forecast=v2 fault=500` included), else None.
fn subset_of(body: &str) -> Option<Subset> {
    body.split_whitespace().find_map(|w| match w {
        "forecast=v1" => Some(Subset::V1),
        "forecast=v2" => Some(Subset::V2),
        _ => None,
    })
}

// ----- the watcher ----------------------------------------------------------------------------------------

struct Watcher {
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Records>>,
    watched: PathBuf,
    admins: Vec<SocketAddr>,
    users: usize,
    epoch: Instant,
    /// The wall clock at `epoch` (ms since the Unix epoch), to place the proxies' `update_time` on our clock.
    epoch_ms: f64,
    /// (weight, faults, v2's address): see [`HarnessOptions::turn_bad`].
    turn_bad: Option<(f64, Faults, SocketAddr)>,
}

impl Watcher {
    fn run(mut self) {
        let mut clients: Vec<Client> = self.admins.iter().map(|a| Client::new(*a)).collect();
        let mut last_file = String::new();
        while !self.stop.load(Ordering::Relaxed) {
            self.read_file(&mut last_file);
            // Which version each proxy runs, and since when (its own clock).
            for (k, client) in clients.iter_mut().enumerate() {
                let stats = client.get(&format!("/stats?filter=canary-{SERVICE}\\."), &[]);
                let applied = stats.ok().and_then(|s| {
                    let version = ecds_stat(&s.body, "version_text")?;
                    let at_ms = ecds_stat(&s.body, "update_time")?.parse::<f64>().ok()?;
                    Some((version, (at_ms - self.epoch_ms) / 1000.0))
                });
                let Ok(mut r) = self.records.lock() else { continue };
                match applied {
                    Some((version, at)) => {
                        if let Some(push) = r.pushes.iter_mut().rev().find(|p| p.version == version) {
                            push.applied[k].get_or_insert(at);
                        }
                    }
                    None => r.watch_errors += 1,
                }
            }
            self.maybe_turn_bad();
            thread::sleep(WATCH_EVERY);
        }
    }

    /// A new version of the file: decide every user under its policy.
    fn read_file(&self, last: &mut String) {
        let Ok(text) = std::fs::read_to_string(&self.watched) else { return };
        let Some((version, policy_json)) = parse_ecds_yaml(&text) else { return };
        if version == *last {
            return;
        }
        last.clone_from(&version);
        let push = Push {
            weight: v2_weight(&policy_json),
            v2_users: Arc::new(v2_users(&policy_json, self.users)),
            version,
            seen: self.epoch.elapsed().as_secs_f64(),
            applied: vec![None; self.admins.len()],
        };
        if let Ok(mut r) = self.records.lock() {
            r.pushes.push(push);
        }
    }

    fn maybe_turn_bad(&mut self) {
        let Some((weight, faults, addr)) = self.turn_bad else { return };
        let reached = self.records.lock().is_ok_and(|r| {
            r.pushes.last().is_some_and(|p| p.weight.is_some_and(|w| w >= weight) && p.applied_everywhere().is_some())
        });
        if reached && set_faults(addr, faults).is_ok() {
            self.turn_bad = None;
            let now = self.epoch.elapsed().as_secs_f64();
            if let Ok(mut r) = self.records.lock() {
                r.regression_at.get_or_insert(now);
            }
        }
    }
}

/// `extension_config_discovery.http_filter.canary-forecast.NAME: VALUE` (quotes stripped).
fn ecds_stat(stats: &str, name: &str) -> Option<String> {
    let key = format!("canary-{SERVICE}.{name}: ");
    stats.lines().find_map(|l| l.split_once(&key).map(|(_, v)| v.trim().trim_matches('"').to_string()))
}

/// `version_info` and the policy JSON of an ECDS file as `canaryc manifest --kind ecds` writes YAML: the JSON
/// is the single-quoted `value:` scalar (`''` escapes a quote). None for a file in any other shape.
pub fn parse_ecds_yaml(text: &str) -> Option<(String, String)> {
    let version = text.lines().find_map(|l| l.trim().strip_prefix("version_info: "))?.trim().trim_matches('"');
    let value = text.lines().find_map(|l| l.trim().strip_prefix("value: '"))?;
    let json = value.strip_suffix('\'')?.replace("''", "'");
    Some((version.to_string(), json))
}

/// The v2 weight of the first split naming v2, in percent (the JSON holds basis points).
fn v2_weight(policy_json: &str) -> Option<f64> {
    let at = policy_json.find("{\"subset\":\"v2\",\"weight\":")? + "{\"subset\":\"v2\",\"weight\":".len();
    let digits: String = policy_json[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<f64>().ok().map(|bp| bp / 100.0)
}

/// The harness's users a policy sends to forecast v2, by the evaluator (a sticky split draws nothing random;
/// a non-sticky one is decided as bucket 0, which a sticky-only plan never meets).
fn v2_users(policy_json: &str, users: usize) -> HashSet<u32> {
    let Ok(policy) = Policy::from_json(policy_json.as_bytes()) else { return HashSet::new() };
    let service = policy.service_or_global(SERVICE);
    (0..users as u32)
        .filter(|&u| {
            let req = SimpleRequest::new().cookie("user", &user_name(u));
            let d = policy.decide(service, &req, &mut FixedBucket(0));
            d.subset.is_some_and(|s| policy.subset_name(s) == "v2")
        })
        .collect()
}

// ----- the report ----------------------------------------------------------------------------------------

/// What happened, measured on the answers and the proxies. Times are seconds since the harness started.
#[derive(Debug, Clone)]
pub struct Report {
    pub duration: f64,
    pub load_started: f64,
    pub answers: usize,
    /// Answers that were not HTTP 200, by status (0: no HTTP answer at all).
    pub non_200: BTreeMap<u16, usize>,
    pub v2_answers: usize,
    /// v2 answers that were 5xx, or slower than the latency bound when one is given to [`Report::with_latency`].
    pub bad_answers: usize,
    pub first_bad: Option<f64>,
    /// When the caller turned v2 bad at run time (None: bad from the start, or never).
    pub regression_at: Option<f64>,
    /// Users who got at least one answer from v2.
    pub users_on_v2: usize,
    /// Users who got v2 and later got v1 answered [`APPLY_MARGIN`] before any proxy applied a rollback
    /// (stickiness broken).
    pub users_moved_back: usize,
    /// Answers that contradict the policy in force on their proxy: v1 for a user it sends to v2, or v2 for one
    /// it keeps on v1 — where an answer within [`APPLY_MARGIN`] of a push may follow either side of it.
    pub contradictions: usize,
    /// The first few of them, described (when, which proxy and user, what answered, which push was in force).
    pub contradiction_examples: Vec<String>,
    pub pushes: Vec<Push>,
    /// The first push that sends none of the users to v2 after one that sent some.
    pub rollback: Option<usize>,
    /// The first push that sends every user to v2.
    pub promotion: Option<usize>,
    /// v2 answers to requests sent after their proxy stamped the rollback applied: within [`APPLY_MARGIN`]
    /// (`stale_after_rollback`: its worker not switched yet), and later (`v2_after_rollback`, which must be 0).
    pub stale_after_rollback: usize,
    pub v2_after_rollback: usize,
    /// The last v2 answer's send time.
    pub last_v2: Option<f64>,
    pub watch_errors: usize,
    latency_bound: Option<f64>,
    samples: Arc<Vec<Sample>>,
}

impl Report {
    fn measure(records: &Records, users: usize, now: f64) -> Report {
        let mut samples = records.samples.clone();
        samples.sort_by(|a, b| a.sent.total_cmp(&b.sent));
        let pushes = records.pushes.clone();
        let rollback = (1..pushes.len()).find(|&i| pushes[i].v2_users.is_empty() && !pushes[i - 1].v2_users.is_empty());
        let promotion = pushes.iter().position(|p| p.weight == Some(100.0) || p.v2_users.len() == users);
        let mut report = Report {
            duration: now,
            load_started: records.load_started,
            answers: samples.len(),
            non_200: BTreeMap::new(),
            v2_answers: 0,
            bad_answers: 0,
            first_bad: None,
            regression_at: records.regression_at,
            users_on_v2: 0,
            users_moved_back: 0,
            contradictions: 0,
            contradiction_examples: Vec::new(),
            pushes,
            rollback,
            promotion,
            stale_after_rollback: 0,
            v2_after_rollback: 0,
            last_v2: None,
            watch_errors: records.watch_errors,
            latency_bound: None,
            samples: Arc::new(samples),
        };
        report.tally();
        report
    }

    /// Counts v2 answers slower than `bound` as bad too (the latency regression).
    pub fn with_latency(mut self, bound: Duration) -> Report {
        self.latency_bound = Some(bound.as_secs_f64());
        self.tally();
        self
    }

    fn is_bad(&self, s: &Sample) -> bool {
        s.subset == Some(Subset::V2)
            && (s.status >= 500 || self.latency_bound.is_some_and(|b| s.done - s.sent > b))
            && self.regression_at.is_none_or(|r| s.sent >= r)
    }

    /// The push in force on `proxy` at time `t` (the last it applied by then).
    fn in_force(&self, proxy: usize, t: f64) -> Option<usize> {
        (0..self.pushes.len())
            .rev()
            .find(|&i| self.pushes[i].applied.get(proxy).copied().flatten().is_some_and(|a| a <= t))
    }

    fn tally(&mut self) {
        let rollback_first = self.rollback.and_then(|i| self.pushes[i].applied_first());
        let (mut non_200, mut v2, mut bad, mut first_bad, mut last_v2) = (BTreeMap::new(), 0, 0, None, None);
        let (mut contradictions, mut stale, mut after) = (0, 0, 0);
        let mut examples = Vec::new();
        let mut saw_v2: HashMap<u32, f64> = HashMap::new();
        let mut moved: HashSet<u32> = HashSet::new();
        let samples = self.samples.clone();
        for s in samples.iter() {
            if s.status != 200 {
                *non_200.entry(s.status).or_insert(0) += 1;
            }
            if self.is_bad(s) {
                bad += 1;
                first_bad.get_or_insert(s.sent);
            }
            match s.subset {
                Some(Subset::V2) => {
                    v2 += 1;
                    last_v2 = Some(s.sent);
                    saw_v2.entry(s.user).or_insert(s.done);
                }
                Some(Subset::V1) => {
                    // Sent after the user's first v2 answer came back, and answered before any proxy ran the
                    // rollback: that answer was decided under a policy that should have kept the user on v2.
                    let before_rollback = rollback_first.is_none_or(|r| s.done < r - APPLY_MARGIN.as_secs_f64());
                    if saw_v2.get(&s.user).is_some_and(|&t| t < s.sent) && before_rollback {
                        moved.insert(s.user);
                    }
                }
                None => {}
            }
            // The pushes that may have decided this answer: the one in force a margin before it was sent, and
            // any its proxy applied from then until a margin after it was answered.
            let (proxy, margin) = (s.proxy as usize, APPLY_MARGIN.as_secs_f64());
            let Some(base) = self.in_force(proxy, s.sent - margin) else { continue };
            let applied_at = |i: usize| self.pushes[i].applied[proxy];
            let candidates: Vec<usize> = std::iter::once(base)
                .chain((base + 1..self.pushes.len()).filter(|&j| applied_at(j).is_some_and(|a| a <= s.done + margin)))
                .collect();
            if let (Some(r), Some(Subset::V2)) = (self.rollback, s.subset) {
                match applied_at(r) {
                    Some(a) if s.sent >= a + margin => after += 1,
                    Some(a) if s.sent >= a => stale += 1,
                    _ => {}
                }
            }
            let fits = |i: &usize| match s.subset {
                Some(Subset::V1) => !self.pushes[*i].v2_users.contains(&s.user),
                Some(Subset::V2) => self.pushes[*i].v2_users.contains(&s.user),
                None => true,
            };
            if !candidates.iter().any(fits) {
                contradictions += 1;
                if examples.len() < 5 {
                    let pushes: Vec<String> = candidates
                        .iter()
                        .map(|&i| {
                            format!(
                                "push {i} ({:?}%) applied at {:.3} s",
                                self.pushes[i].weight,
                                applied_at(i).unwrap_or(0.0)
                            )
                        })
                        .collect();
                    examples.push(format!(
                        "sent {:.3} s, done {:.3} s, proxy {proxy}, user {}, answered {:?} (status {}); in force: {}",
                        s.sent,
                        s.done,
                        user_name(s.user),
                        s.subset,
                        s.status,
                        pushes.join(", ")
                    ));
                }
            }
        }
        self.non_200 = non_200;
        self.v2_answers = v2;
        self.bad_answers = bad;
        self.first_bad = first_bad;
        self.last_v2 = last_v2;
        self.users_on_v2 = saw_v2.len();
        self.users_moved_back = moved.len();
        self.contradictions = contradictions;
        self.contradiction_examples = examples;
        self.stale_after_rollback = stale;
        self.v2_after_rollback = after;
    }

    /// From the regression's first bad answer to the rollback applied on every proxy, in seconds.
    pub fn detect_to_rollback(&self) -> Option<f64> {
        let applied = self.pushes.get(self.rollback?)?.applied_everywhere()?;
        Some(applied - self.first_bad?)
    }

    /// When every proxy ran the rollback.
    pub fn rollback_applied(&self) -> Option<f64> {
        self.pushes.get(self.rollback?)?.applied_everywhere()
    }

    /// When every proxy ran the promotion.
    pub fn promotion_applied(&self) -> Option<f64> {
        self.pushes.get(self.promotion?)?.applied_everywhere()
    }

    /// The widest spread between the first and the last proxy applying one push (seconds).
    pub fn max_apply_skew(&self) -> f64 {
        self.pushes.iter().filter_map(|p| Some(p.applied_everywhere()? - p.applied_first()?)).fold(0.0, f64::max)
    }

    /// Answers sent in `[from, to)` that came from v2, and all answers then.
    pub fn v2_share_between(&self, from: f64, to: f64) -> (usize, usize) {
        let window: Vec<&Sample> = self.samples.iter().filter(|s| s.sent >= from && s.sent < to).collect();
        (window.iter().filter(|s| s.subset == Some(Subset::V2)).count(), window.len())
    }

    /// The figures, one per line, for the test log, the demo and the docs.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let secs = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.2} s"));
        let _ = writeln!(
            out,
            "  answers: {} in {:.1} s of load ({:.0}/s); times below are seconds since the harness started, the \
             load at {:.2} s",
            self.answers,
            self.duration - self.load_started,
            self.answers as f64 / (self.duration - self.load_started).max(1e-9),
            self.load_started
        );
        let non_200: Vec<String> = self.non_200.iter().map(|(s, n)| format!("{n}×{s}")).collect();
        let _ = writeln!(out, "  not 200: {}", if non_200.is_empty() { "none".into() } else { non_200.join(", ") });
        let _ = writeln!(out, "  pushes (v2 weight, users on v2, applied on every proxy at, first-to-last proxy):");
        for (i, p) in self.pushes.iter().enumerate() {
            let weight = p.weight.map_or("-".into(), |w| format!("{w}%"));
            let skew = match (p.applied_first(), p.applied_everywhere()) {
                (Some(a), Some(b)) => format!("{:.0} ms", (b - a) * 1000.0),
                _ => "-".into(),
            };
            let tag = if Some(i) == self.rollback {
                "  ← rollback"
            } else if Some(i) == self.promotion {
                "  ← promotion"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {:>6}  {:>5} users  {:>9}  {:>6}{tag}",
                weight,
                p.v2_users.len(),
                secs(p.applied_everywhere()),
                skew
            );
        }
        let _ = writeln!(
            out,
            "  v2 answers: {}; bad (5xx{}): {}",
            self.v2_answers,
            if self.latency_bound.is_some() { " or slow" } else { "" },
            self.bad_answers
        );
        if let Some(r) = self.regression_at {
            let _ = writeln!(out, "  regression started at {r:.2} s (v2 turned bad through its /_control)");
        }
        let _ = writeln!(out, "  first bad answer: {}", secs(self.first_bad));
        if self.rollback.is_some() {
            let _ = writeln!(out, "  rollback applied on every proxy: {}", secs(self.rollback_applied()));
            let _ =
                writeln!(out, "  first bad answer → rollback applied everywhere: {}", secs(self.detect_to_rollback()));
            let _ = writeln!(
                out,
                "  v2 answers after the rollback applied: {} within {} ms, {} later",
                self.stale_after_rollback,
                APPLY_MARGIN.as_millis(),
                self.v2_after_rollback
            );
        }
        if self.promotion.is_some() {
            let _ = writeln!(out, "  promotion applied on every proxy: {}", secs(self.promotion_applied()));
        }
        let _ = writeln!(out, "  users who saw v2: {}", self.users_on_v2);
        let _ = writeln!(out, "  users moved v2 → v1 before a rollback: {}", self.users_moved_back);
        let _ = writeln!(out, "  answers contradicting the policy in force on their proxy: {}", self.contradictions);
        for e in &self.contradiction_examples {
            let _ = writeln!(out, "    {e}");
        }
        let _ = writeln!(out, "  widest apply skew between proxies: {:.0} ms", self.max_apply_skew() * 1000.0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_names_the_split_of_the_policy() {
        let line = POLICY.lines().nth(RULE_LINE as usize - 1).unwrap_or_default();
        assert_eq!(line.trim(), "1% v2 by cookie user");
        policy::compile(POLICY, "forecast.canary").unwrap();
    }

    /// The file as `canaryc manifest --kind ecds` writes it (YAML), for the policy at `percent`.
    fn ecds_file(percent: u32) -> String {
        use canary_backends::manifest::push::{ecds_resource, render, Format, PushOptions};
        let config = policy::compile(&POLICY.replace("1% v2", &format!("{percent}% v2")), "f.canary").unwrap();
        let opts = PushOptions { wasm_path: "/it's/canary_filter.wasm".into(), ..PushOptions::new(SERVICE) };
        render(&ecds_resource(&config, &opts).unwrap(), Format::Yaml, "").unwrap()
    }

    #[test]
    fn ecds_yaml_yields_version_policy_and_users() {
        let (version, json) = parse_ecds_yaml(&ecds_file(20)).unwrap();
        assert_eq!(version.len(), 16, "{version}");
        assert_eq!(v2_weight(&json), Some(20.0));
        // 20 % of 5,000 users by their sticky bucket: mean 1,000, σ = √(5000·0.2·0.8) ≈ 28; 5σ is 859..=1141.
        let users = v2_users(&json, 5_000).len();
        assert!((859..=1141).contains(&users), "{users} of 5000 users on v2 at 20 %");
        let (other, json) = parse_ecds_yaml(&ecds_file(0)).unwrap();
        assert_ne!(other, version);
        assert_eq!((v2_weight(&json), v2_users(&json, 5_000).len()), (Some(0.0), 0));
        assert_eq!(v2_users(&parse_ecds_yaml(&ecds_file(100)).unwrap().1, 5_000).len(), 5_000);
        assert!(parse_ecds_yaml("version_info: x\n").is_none());
    }

    #[test]
    fn bodies_name_the_version() {
        assert_eq!(subset_of("forecast=v2 recommendation=v1"), Some(Subset::V2));
        assert_eq!(subset_of("forecast=v2 fault=500"), Some(Subset::V2));
        assert_eq!(subset_of("forecast=v1"), Some(Subset::V1));
        assert_eq!(subset_of("no filter configured"), None);
    }
}
