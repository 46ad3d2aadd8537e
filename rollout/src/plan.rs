//! The rollout plan (`canaryc rollout PLAN.yaml`): which split to step, the steps, the judge's settings,
//! where metrics come from and how each step is pushed. Read with positions; every problem is
//! `PLAN:LINE:COL: error: REASON`, including those found in the policy the plan names (missing file, a
//! rule line that is not a split, a canary the split does not have), since they are mistakes in the plan.
//!
//! ```yaml
//! policy: forecast.canary
//! service: forecast
//! rule: 3
//! canary: v2
//! steps: [1, 5, 20, 50, 100]
//! min_time: 60s
//! min_requests: 200
//! interval: 5s
//! judge: { alpha: 0.01, errors: { tolerance: 0.5 }, latency: { slower_than: 250ms, tolerance: 1 }, promote: evidence, beta: 0.05 }
//! metrics: { envoy: { admin: [127.0.0.1:9901], baseline: forecast-v1, canary: forecast-v2 } }
//! push:
//!   - manifest: [--kind, ecds, --service, forecast, --wasm, /var/lib/canary/canary_filter.wasm, -o, /etc/canary/forecast.yaml]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use marked_yaml::Node;
use sha2::{Digest, Sha256};

use crate::edit::{self, SiteError, Target};
use crate::judge::{JudgeSettings, LatencyCheck, Tolerance};
use crate::metrics::{EnvoyAdminConfig, PrometheusConfig, PrometheusFlavor};
use crate::stepper::{Promote, StepSettings};
use crate::yaml::{self, Doc, Map};
pub use crate::yaml::{At, PlanError};

/// A checked plan; paths are resolved against the plan file's directory.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The plan file as given (messages name it so).
    pub file: PathBuf,
    /// SHA-256 of the plan's text: a state file written for another plan is refused.
    pub digest: String,
    pub policy: PathBuf,
    pub target: Target,
    /// The service's default subset, judged as the baseline.
    pub baseline: String,
    pub steps: StepSettings,
    pub interval_secs: f64,
    pub judge: JudgeSettings,
    pub metrics: MetricsPlan,
    pub push: Vec<Push>,
    pub state: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
}

/// Where counts come from.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricsPlan {
    Envoy(EnvoyAdminConfig),
    Prometheus(PrometheusConfig),
}

/// One push of every step: `canaryc manifest POLICY ARGS…`, its output piped into `command` if given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    pub manifest: Vec<String>,
    pub command: Option<Vec<String>>,
}

impl Plan {
    /// Reads and checks the plan at `path` (and the policy it names).
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PlanError {
            file: file.clone(),
            at: At { line: 1, col: 1 },
            message: format!("cannot read the plan: {e}"),
        })?;
        Plan::parse(path, &text)
    }

    /// Checks `text` as the plan at `path` (the policy is read relative to it).
    pub fn parse(path: &Path, text: &str) -> Result<Plan, PlanError> {
        let file = path.display().to_string();
        let doc = Doc { file: &file };
        let root = doc.parse(text)?;
        let top = Map::new(&doc, &root, "the plan", TOP_KEYS)?;
        let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);

        let policy_node = top.need(&doc, "policy", "policy: forecast.canary")?;
        let policy = dir.join(yaml::string(&doc, policy_node, "`policy`")?);
        let policy_text = std::fs::read_to_string(&policy).map_err(|e| {
            doc.error(yaml::at(policy_node), format!("cannot read the policy {}: {e}", policy.display()))
        })?;
        let service_node = top.need(&doc, "service", "service: forecast")?;
        let service = yaml::string(&doc, service_node, "`service`")?;
        let rule_node = top.need(&doc, "rule", "rule: 3")?;
        let line = yaml::count(&doc, rule_node, "`rule` (the line of the split in the policy)")? as usize;
        let canary_node = top.get("canary");
        let canary = canary_node.map(|n| yaml::string(&doc, n, "`canary`")).transpose()?;
        let site = edit::locate(&policy_text, &policy.display().to_string(), line, &service, canary.as_deref())
            .map_err(|e| {
                let node = match &e {
                    SiteError::Policy(_) => policy_node,
                    SiteError::Rule(_) => rule_node,
                    SiteError::Service(_) => service_node,
                    SiteError::Canary(_) => canary_node.unwrap_or(rule_node),
                };
                let message = match e {
                    SiteError::Policy(diags) => format!("the policy does not compile:\n{}", diags.trim_end()),
                    other => other.message().to_string(),
                };
                doc.error(yaml::at(node), message)
            })?;

        let mut steps = steps(&doc, &top, site.others_basis_points())?;
        let (judge, promote) = judge(&doc, top.get("judge"))?;
        steps.promote = promote;
        let interval_secs = match top.get("interval") {
            Some(n) => positive_duration(&doc, n, "`interval`")?,
            None => 5.0,
        };
        let latency_bound_ms = judge.latency.map(|l| l.bound_ms);
        let metrics = metrics(
            &doc,
            top.need(&doc, "metrics", "metrics: { envoy: { admin: [127.0.0.1:9901], … } }")?,
            latency_bound_ms,
        )?;
        let push = match top.get("push") {
            Some(n) => pushes(&doc, n, &dir)?,
            None => Vec::new(),
        };
        let state = match top.get("state") {
            Some(n) => dir.join(yaml::string(&doc, n, "`state`")?),
            None => default_state_path(path),
        };
        let metrics_listen = top
            .get("metrics_listen")
            .map(|n| {
                let text = yaml::string(&doc, n, "`metrics_listen`")?;
                text.parse::<SocketAddr>().map_err(|_| {
                    doc.error(yaml::at(n), format!("`metrics_listen`: `{text}` is not HOST:PORT (e.g. 127.0.0.1:9464)"))
                })
            })
            .transpose()?;
        Ok(Plan {
            file: path.to_path_buf(),
            digest: hex(&Sha256::digest(text.as_bytes())),
            policy,
            target: Target { line, service, canary: site.canary },
            baseline: site.baseline,
            steps,
            interval_secs,
            judge,
            metrics,
            push,
            state,
            metrics_listen,
        })
    }
}

const TOP_KEYS: &[&str] = &[
    "policy",
    "service",
    "rule",
    "canary",
    "steps",
    "min_time",
    "min_requests",
    "interval",
    "judge",
    "metrics",
    "push",
    "state",
    "metrics_listen",
];

/// `forecast.yaml` → `forecast.state.json`, beside the plan.
pub fn default_state_path(plan: &Path) -> PathBuf {
    let stem = plan.file_stem().map_or_else(|| "rollout".into(), |s| s.to_string_lossy().into_owned());
    plan.with_file_name(format!("{stem}.state.json"))
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn positive_duration(doc: &Doc, node: &Node, what: &str) -> Result<f64, PlanError> {
    let secs = yaml::duration(doc, node, what)?;
    if secs <= 0.0 {
        return Err(doc.error(yaml::at(node), format!("{what} must be longer than 0")));
    }
    Ok(secs)
}

/// Steps: strictly ascending percentages in (0, 100], two decimals at most, ending at 100, each leaving room
/// for the split's other shares.
fn steps(doc: &Doc, top: &Map, others: u32) -> Result<StepSettings, PlanError> {
    let node = top.need(doc, "steps", "steps: [1, 5, 20, 50, 100]")?;
    let items = yaml::list(doc, node, "`steps`")?;
    let mut steps = Vec::new();
    for item in &items {
        let pct = yaml::number(doc, item, "a step")?;
        let bp = edit::basis_points(pct).map_err(|why| doc.error(yaml::at(item), format!("step {why}")))?;
        if bp == 0 {
            return Err(doc.error(yaml::at(item), "a step must be above 0% (0% is where a rollback goes)"));
        }
        if let Some(&prev) = steps.last() {
            if pct <= prev {
                return Err(doc.error(yaml::at(item), format!("steps must ascend: {pct} comes after {prev}")));
            }
        }
        if others + bp > 10_000 {
            return Err(doc.error(
                yaml::at(item),
                format!(
                    "{pct}% for the canary and the split's other shares ({}) add up to over 100%",
                    canary_dsl::percent(others)
                ),
            ));
        }
        steps.push(pct);
    }
    match steps.last() {
        None => return Err(doc.error(yaml::at(node), "`steps` is empty: list the canary's percentages, ending at 100")),
        Some(&last) if last != 100.0 => {
            let at = items.last().map_or(yaml::at(node), |n| yaml::at(n));
            return Err(doc.error(at, format!("the last step is {last}, but a rollout ends at 100 (promotion)")));
        }
        Some(_) => {}
    }
    let min_secs = match top.get("min_time") {
        Some(n) => yaml::duration(doc, n, "`min_time`")?,
        None => 60.0,
    };
    let min_requests = match top.get("min_requests") {
        Some(n) => yaml::count(doc, n, "`min_requests`")?,
        None => 200,
    };
    Ok(StepSettings { steps, min_secs, min_requests, promote: Promote::Time })
}

/// `judge:` (optional): alpha 0.01, errors with no tolerance, no latency check, promotion by time by
/// default; `promote: evidence` (with `beta`, default 0.05) gates each step on evidence that every judged
/// metric is within its tolerance.
fn judge(doc: &Doc, node: Option<&Node>) -> Result<(JudgeSettings, Promote), PlanError> {
    let mut settings = JudgeSettings { alpha: 0.01, errors: Tolerance { points: 0.0, ratio: 1.0 }, latency: None };
    let Some(node) = node else { return Ok((settings, Promote::Time)) };
    let map = Map::new(doc, node, "`judge`", &["alpha", "errors", "latency", "promote", "beta"])?;
    if let Some(n) = map.get("alpha") {
        let alpha = yaml::number(doc, n, "`alpha`")?;
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(
                doc.error(yaml::at(n), format!("`alpha` is a probability between 0 and 1 (exclusive), not {alpha}"))
            );
        }
        settings.alpha = alpha;
    }
    if let Some(n) = map.get("errors") {
        let errors = Map::new(doc, n, "`judge.errors`", &["tolerance", "ratio"])?;
        settings.errors = tolerance(doc, &errors)?;
    }
    if let Some(n) = map.get("latency") {
        let latency = Map::new(doc, n, "`judge.latency`", &["slower_than", "tolerance", "ratio"])?;
        let bound = latency.need(doc, "slower_than", "slower_than: 250ms")?;
        let bound_ms = positive_duration(doc, bound, "`slower_than`")? * 1000.0;
        settings.latency = Some(LatencyCheck { bound_ms, tolerance: tolerance(doc, &latency)? });
    }
    let promote = promote(doc, &map, &settings)?;
    Ok((settings, promote))
}

/// `promote: time | evidence` and `beta` (evidence only). Evidence needs a tolerance on every judged
/// metric: with none, a canary exactly as good as the baseline sits on the null's boundary ("at least as
/// bad as the tolerance allows") and the data can never show it within, so every step would wait for ever.
fn promote(doc: &Doc, map: &Map, settings: &JudgeSettings) -> Result<Promote, PlanError> {
    let mode = match map.get("promote") {
        Some(n) => {
            let text = yaml::string(doc, n, "`promote`")?;
            match text.as_str() {
                "time" => None,
                "evidence" => Some(n),
                _ => {
                    return Err(doc
                        .error(yaml::at(n), format!("`promote` is `time` (the default) or `evidence`, not `{text}`")))
                }
            }
        }
        None => None,
    };
    let Some(mode_node) = mode else {
        if let Some(n) = map.get("beta") {
            return Err(doc.error(yaml::at(n), "`beta` is the risk of promoting a bad canary under `promote: evidence`: add `promote: evidence`, or remove `beta`"));
        }
        return Ok(Promote::Time);
    };
    let beta = match map.get("beta") {
        Some(n) => {
            let beta = yaml::number(doc, n, "`beta`")?;
            if !(beta > 0.0 && beta < 1.0) {
                return Err(
                    doc.error(yaml::at(n), format!("`beta` is a probability between 0 and 1 (exclusive), not {beta}"))
                );
            }
            beta
        }
        None => 0.05,
    };
    let untolerant = |t: &Tolerance| t.points == 0.0 && t.ratio == 1.0;
    let metric = if untolerant(&settings.errors) {
        Some("errors")
    } else if settings.latency.is_some_and(|l| untolerant(&l.tolerance)) {
        Some("latency")
    } else {
        None
    };
    if let Some(metric) = metric {
        return Err(doc.error(
            yaml::at(mode_node),
            format!(
                "`promote: evidence` needs a tolerance on {metric} (`tolerance: POINTS` or `ratio: R` above 1): \
                 with none, a canary as good as the baseline can never be shown within it and every step would wait for ever"
            ),
        ));
    }
    Ok(Promote::Evidence { beta })
}

/// `tolerance` (percentage points, default 0) and `ratio` (≥ 1, default 1).
fn tolerance(doc: &Doc, map: &Map) -> Result<Tolerance, PlanError> {
    let mut t = Tolerance { points: 0.0, ratio: 1.0 };
    if let Some(n) = map.get("tolerance") {
        t.points = yaml::number(doc, n, "`tolerance` (percentage points)")?;
        if !(0.0..=100.0).contains(&t.points) {
            return Err(doc.error(yaml::at(n), "`tolerance` is in percentage points, from 0 to 100"));
        }
    }
    if let Some(n) = map.get("ratio") {
        t.ratio = yaml::number(doc, n, "`ratio`")?;
        if t.ratio < 1.0 {
            return Err(doc
                .error(yaml::at(n), format!("`ratio` must be at least 1 (1.2 = 20% worse allowed), not {}", t.ratio)));
        }
    }
    Ok(t)
}

fn metrics(doc: &Doc, node: &Node, latency_bound_ms: Option<f64>) -> Result<MetricsPlan, PlanError> {
    let map = Map::new(doc, node, "`metrics`", &["envoy", "prometheus"])?;
    let (key, inner) = map.one_of(doc, &["envoy", "prometheus"])?;
    if key == "envoy" {
        let envoy = Map::new(doc, inner, "`metrics.envoy`", &["admin", "baseline", "canary"])?;
        let admins = yaml::strings(doc, envoy.need(doc, "admin", "admin: [127.0.0.1:9901]")?, "`admin`")?;
        if admins.is_empty() {
            return Err(doc.error(envoy.at(), "`admin` lists no Envoy admin address (HOST:PORT)"));
        }
        return Ok(MetricsPlan::Envoy(EnvoyAdminConfig {
            admins,
            baseline_cluster: yaml::string(doc, envoy.need(doc, "baseline", "baseline: forecast-v1")?, "`baseline`")?,
            canary_cluster: yaml::string(doc, envoy.need(doc, "canary", "canary: forecast-v2")?, "`canary`")?,
            latency_bound_ms,
        }));
    }
    let prom = Map::new(doc, inner, "`metrics.prometheus`", &["url", "envoy", "istio"])?;
    let url = yaml::string(doc, prom.need(doc, "url", "url: http://127.0.0.1:9090")?, "`url`")?;
    let (flavor, series) = prom.one_of(doc, &["envoy", "istio"])?;
    let flavor = if flavor == "envoy" {
        let e = Map::new(doc, series, "`metrics.prometheus.envoy`", &["baseline", "canary"])?;
        PrometheusFlavor::Envoy {
            baseline_cluster: yaml::string(doc, e.need(doc, "baseline", "baseline: forecast-v1")?, "`baseline`")?,
            canary_cluster: yaml::string(doc, e.need(doc, "canary", "canary: forecast-v2")?, "`canary`")?,
        }
    } else {
        let keys = ["service", "namespace", "baseline", "canary", "reporter"];
        let i = Map::new(doc, series, "`metrics.prometheus.istio`", &keys)?;
        let reporter = match i.get("reporter") {
            Some(n) => yaml::string(doc, n, "`reporter`")?,
            None => "source".to_string(),
        };
        if reporter != "source" && reporter != "destination" {
            let at = i.get("reporter").map_or(i.at(), yaml::at);
            return Err(doc.error(at, format!("`reporter` is `source` or `destination`, not `{reporter}`")));
        }
        PrometheusFlavor::Istio {
            service: yaml::string(doc, i.need(doc, "service", "service: forecast")?, "`service`")?,
            namespace: i.get("namespace").map(|n| yaml::string(doc, n, "`namespace`")).transpose()?,
            baseline_version: yaml::string(doc, i.need(doc, "baseline", "baseline: v1")?, "`baseline`")?,
            canary_version: yaml::string(doc, i.need(doc, "canary", "canary: v2")?, "`canary`")?,
            reporter,
        }
    };
    Ok(MetricsPlan::Prometheus(PrometheusConfig { url, flavor, latency_bound_ms }))
}

/// `push:` entries. A relative `-o FILE` is resolved against the plan's directory, like every other path
/// in the plan; an entry must send its manifest somewhere (`-o FILE` or a `command`).
fn pushes(doc: &Doc, node: &Node, dir: &Path) -> Result<Vec<Push>, PlanError> {
    let mut out = Vec::new();
    for item in yaml::list(doc, node, "`push`")? {
        let map = Map::new(doc, item, "a `push` entry", &["manifest", "command"])?;
        let manifest_node = map.need(doc, "manifest", "manifest: [--kind, ecds, -o, out.yaml]")?;
        let mut manifest = yaml::strings(doc, manifest_node, "`manifest`")?;
        let command = map.get("command").map(|n| yaml::strings(doc, n, "`command`")).transpose()?;
        if command.as_ref().is_some_and(Vec::is_empty) {
            let at = map.get("command").map_or(map.at(), yaml::at);
            return Err(doc.error(at, "`command` is empty (e.g. [kubectl, apply, -f, \"-\"])"));
        }
        let output = manifest.iter().position(|a| a == "-o" || a == "--output");
        match (output.and_then(|i| manifest.get_mut(i + 1)), &command) {
            (Some(file), _) => *file = dir.join(&*file).display().to_string(),
            (None, None) => {
                return Err(doc.error(
                    yaml::at(manifest_node),
                    "this push sends the manifest nowhere: add `-o FILE` to `manifest` (a file the proxies watch), or \
                     a `command` to pipe it into",
                ))
            }
            (None, Some(_)) => {}
        }
        out.push(Push { manifest, command });
    }
    Ok(out)
}
