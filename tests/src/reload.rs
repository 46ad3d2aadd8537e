//! One plain Envoy for hostile-request tests: the canary filter discovered over ECDS from a watched file, in
//! the forms `canaryc manifest` emits (the `config_discovery` entry of `--kind envoy --ecds-path` and the
//! `--kind ecds` resource, written with its atomic `-o` writer), around a hand-built listener that raises
//! Envoy's header limits (`max_request_headers_kb`, `max_headers_count`), which canaryc's bootstrap leaves at
//! Envoy's defaults. The policy-push tests use `canary_tests::push`, which runs canaryc's own command lines.
//!
//! The routes answer directly (`direct_response`) with the subset the filter chose (`subset=v2`, or
//! `subset=none` on the default route), so a test needs no upstream services and every answer shows the
//! decision.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use canary_backends::manifest::push::{ecds_resource, ecds_response, filter_discovery, render, Format, PushOptions};
use canary_durable::write_atomic;
use canary_eval::config::{Config, Protocol};
use serde_json::{json, Value};

use crate::mesh::envoy::{find_envoy, find_wasm, free_port, wait_ready};
use crate::mesh::procs::Procs;

/// The service the proxy serves (requests are sent with `host: frontend`).
pub const SERVICE: &str = "frontend";

/// What the proxy looks like; the policy comes separately (it is what gets pushed).
#[derive(Debug, Clone)]
pub struct ReloadOptions {
    /// Subsets with a route each (`x-canary-subset: vN` → direct response `subset=vN`).
    pub subsets: Vec<String>,
    /// Envoy's `max_request_headers_kb` (default 60; at most 8192).
    pub max_request_headers_kb: Option<u32>,
    /// Envoy's `max_headers_count` (default 100).
    pub max_headers_count: Option<u32>,
    /// Node metadata `LABELS` (what `source` conditions read).
    pub node_labels: Vec<(String, String)>,
    /// The service whose canary filter the proxy discovers (names the filter: `canary-SERVICE`).
    pub service: String,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        ReloadOptions {
            subsets: vec!["v1".into(), "v2".into()],
            max_request_headers_kb: None,
            max_headers_count: None,
            node_labels: Vec::new(),
            service: SERVICE.to_string(),
        }
    }
}

/// The ECDS file for `policy_json` (a compiled policy), exactly as `canaryc manifest --kind ecds` writes it.
pub fn ecds_file(policy_json: &str, wasm: &Path) -> Result<String> {
    let config: Config = serde_json::from_str(policy_json).context("the compiled policy")?;
    let mut opts = PushOptions::new(SERVICE);
    opts.wasm_path = wasm.to_path_buf();
    let resource = ecds_resource(&config, &opts).map_err(anyhow::Error::msg)?;
    render(&resource, Format::Json, "").map_err(anyhow::Error::msg)
}

/// The bootstrap: one listener whose HTTP filter chain discovers the canary filter from `ecds_file` (watched
/// through its directory), then routes by the subset header to direct responses.
pub fn bootstrap(opts: &ReloadOptions, listen: SocketAddr, admin: SocketAddr, ecds_file: &Path) -> String {
    let addr = |a: SocketAddr| json!({ "socket_address": { "address": a.ip().to_string(), "port_value": a.port() } });
    let answer = |body: String| json!({ "status": 200, "body": { "inline_string": body } });
    let mut routes: Vec<Value> = opts
        .subsets
        .iter()
        .map(|s| {
            json!({
                "match": { "prefix": "/", "headers": [{ "name": "x-canary-subset", "string_match": { "exact": s } }] },
                "direct_response": answer(format!("subset={s}\n")),
            })
        })
        .collect();
    routes.push(json!({ "match": { "prefix": "/" }, "direct_response": answer("subset=none\n".into()) }));
    let hcm_type =
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
    let mut hcm = json!({
        "@type": hcm_type,
        "stat_prefix": "reload",
        "route_config": { "name": "local", "virtual_hosts": [{ "name": "all", "domains": ["*"], "routes": routes }] },
        "http_filters": [
            filter_discovery(&opts.service, Protocol::Http, ecds_file),
            {
                "name": "envoy.filters.http.router",
                "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
            },
        ],
    });
    if let Some(kb) = opts.max_request_headers_kb {
        hcm["max_request_headers_kb"] = json!(kb);
    }
    if let Some(count) = opts.max_headers_count {
        hcm["common_http_protocol_options"] = json!({ "max_headers_count": count });
    }
    let labels: serde_json::Map<String, Value> =
        opts.node_labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let bootstrap = json!({
        "node": { "id": "reload", "cluster": "reload", "metadata": { "LABELS": labels } },
        "admin": { "address": addr(admin) },
        "static_resources": {
            "listeners": [{
                "name": "reload-http",
                "address": addr(listen),
                "filter_chains": [{
                    "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm }],
                }],
            }],
        },
    });
    serde_json::to_string_pretty(&bootstrap).expect("JSON values serialize")
}

/// An ECDS file holding `policy_json` as is, in canaryc's form (its filter name and typed config) but without
/// its checks: how a fleet pushes exactly the bytes it wants, a configuration the filter must refuse included.
pub fn raw_ecds_file(policy_json: &str, wasm: &Path, service: &str, version: &str) -> String {
    let mut response = ecds_response(service, Protocol::Http, wasm, policy_json);
    response["version_info"] = json!(version);
    serde_json::to_string_pretty(&response).expect("JSON values serialize")
}

/// One watched ECDS file and how a push replaces it; shared by [`ReloadableEnvoy`] and the fleet
/// (`crate::fleet`), where many Envoys watch the same file.
#[derive(Debug)]
pub struct EcdsFile {
    /// The file Envoys read (`<dir>/canary.json`); its directory is the one they watch.
    pub path: PathBuf,
    /// Where a push is written before the rename: a sibling directory, so the rename stays on one filesystem
    /// and no half-written file ever appears in the watched one.
    staging: PathBuf,
    wasm: PathBuf,
    service: String,
    pushes: u32,
}

impl EcdsFile {
    /// Creates `<dir>/ecds` (watched) and `<dir>/staging`; nothing is written until the first push.
    pub fn new(dir: &Path, wasm: &Path, service: &str) -> Result<EcdsFile> {
        let (watched, staging) = (dir.join("ecds"), dir.join("staging"));
        std::fs::create_dir_all(&watched).with_context(|| format!("creating {}", watched.display()))?;
        std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
        Ok(EcdsFile {
            path: watched.join("canary.json"),
            staging,
            wasm: wasm.to_path_buf(),
            service: service.to_string(),
            pushes: 0,
        })
    }

    /// Writes the next version into the staging directory without making it visible; [`Staged::publish`]
    /// renames it in. Split in two so a fleet can stage every service's file first and then publish them all
    /// within microseconds.
    pub fn stage(&mut self, policy_json: &str) -> Result<Staged> {
        self.pushes += 1;
        let version = format!("push-{}", self.pushes);
        let tmp = self.staging.join("canary.json");
        std::fs::write(&tmp, raw_ecds_file(policy_json, &self.wasm, &self.service, &version))
            .with_context(|| format!("writing {}", tmp.display()))?;
        Ok(Staged { tmp, path: self.path.clone(), version })
    }

    /// Stages and publishes at once. Returns the version pushed.
    pub fn push(&mut self, policy_json: &str) -> Result<String> {
        self.stage(policy_json)?.publish()
    }
}

/// A written, not yet visible, version of an [`EcdsFile`].
#[must_use = "a staged push does nothing until it is published"]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    version: String,
}

impl Staged {
    /// Renames the file into the watched directory (atomic: Envoy never reads a half-written file).
    pub fn publish(self) -> Result<String> {
        std::fs::rename(&self.tmp, &self.path).context("renaming the ECDS file into place")?;
        Ok(self.version)
    }
}

/// One admin counter's value (e.g. `extension_config_discovery.http_filter.canary-frontend.config_reload`), 0 if absent.
pub fn admin_stat(admin: SocketAddr, name: &str) -> Result<u64> {
    let body = http_get(admin, &format!("/stats?filter=^{}$", name.replace('.', "\\.")), &[])?.1;
    Ok(stat_value(&body, name).unwrap_or(0))
}

/// Waits until the admin counter `stat` reaches at least `value`; on timeout the error carries `log_tail()`.
pub fn wait_admin_stat(
    admin: SocketAddr,
    stat: &str,
    value: u64,
    timeout: Duration,
    log_tail: impl Fn() -> String,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = admin_stat(admin, stat)?;
        if now >= value {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{stat} is {now}, not {value}, after {timeout:?}; Envoy log:\n{}", log_tail());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `name`'s value in the admin `/stats` text format (`name: 12` lines).
pub fn stat_value(stats: &str, name: &str) -> Option<u64> {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .and_then(|v| v.trim().parse().ok())
}

/// A running Envoy with a pushable canary policy; dropping it stops Envoy.
pub struct ReloadableEnvoy {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    wasm: PathBuf,
    ecds_file: PathBuf,
    procs: Procs,
}

impl ReloadableEnvoy {
    /// Starts Envoy serving `policy_json` (the compiled policy, settings included) and waits until it is ready.
    pub fn start(policy_json: &str, opts: &ReloadOptions) -> Result<ReloadableEnvoy> {
        let (envoy, wasm) = (find_envoy()?, find_wasm()?);
        let procs = Procs::new("reload")?;
        let watched = procs.dir().join("ecds");
        std::fs::create_dir_all(&watched)?;
        let mut me = ReloadableEnvoy {
            listen: free_port()?,
            admin: free_port()?,
            wasm,
            ecds_file: watched.join("canary.json"),
            procs,
        };
        me.push(policy_json)?;
        let config = me.procs.dir().join("envoy.yaml");
        std::fs::write(&config, bootstrap(opts, me.listen, me.admin, &me.ecds_file))?;
        let mut cmd = Command::new(envoy);
        cmd.arg("-c").arg(&config).args(["--concurrency", "1", "--disable-hot-restart"]);
        cmd.args(["--log-level", "info", "--component-log-level", "main:warning"]);
        me.procs.spawn("envoy", cmd)?;
        wait_ready(&mut me.procs, "envoy", me.admin)?;
        Ok(me)
    }

    /// Replaces the filter configuration with canaryc's atomic writer (Envoy never reads a half-written file).
    pub fn push(&mut self, policy_json: &str) -> Result<()> {
        let file = ecds_file(policy_json, &self.wasm)?;
        write_atomic(&self.ecds_file, file.as_bytes()).context("writing the ECDS file")
    }

    /// One admin stat's value (e.g. `extension_config_discovery.http_filter.canary-frontend.config_reload`), 0
    /// if absent.
    pub fn stat(&self, name: &str) -> Result<u64> {
        admin_stat(self.admin, name)
    }

    /// Waits until `stat` reaches at least `value`.
    pub fn wait_stat(&self, stat: &str, value: u64, timeout: Duration) -> Result<()> {
        wait_admin_stat(self.admin, stat, value, timeout, || self.tail())
    }

    /// Envoy's whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.procs.dir().join("envoy.log")).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        self.procs.running("envoy")
    }

    /// The last lines of Envoy's log, for failure messages.
    pub fn tail(&self) -> String {
        self.procs.tail("envoy")
    }
}

/// One HTTP/1.1 request on a fresh connection with raw header bytes; returns (status, body). The request is
/// written whole before reading, so Envoy's early answers (431) are read too.
pub fn http_request(addr: SocketAddr, path: &[u8], headers: &[(&[u8], &[u8])]) -> Result<(u16, String)> {
    let mut req = Vec::with_capacity(256 + headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>());
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(path);
    req.extend_from_slice(b" HTTP/1.1\r\nhost: frontend\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.extend_from_slice(k);
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    http_exchange(addr, &req)
}

/// One whole HTTP/1.1 request written byte for byte on a fresh connection (headers a client library would
/// refuse or normalise: invalid UTF-8, repeated lines; `connection: close` included); returns (status, body).
pub fn http_exchange(addr: SocketAddr, req: &[u8]) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    // Envoy may answer (and close) before the whole of an oversize request is sent: a write error is fine then.
    let _ = stream.write_all(req);
    // Read until the body is complete (by content-length): Envoy delays closing its side for a second.
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while !response_complete(&answer) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    parse_response(&answer).with_context(|| format!("reading the answer from {addr}"))
}

fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok());
    length.is_some_and(|n: usize| raw.len() >= end + 4 + n)
}

/// A GET with text headers (convenience over [`http_request`]).
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
    let headers: Vec<(&[u8], &[u8])> = headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
    http_request(addr, path.as_bytes(), &headers)
}

fn parse_response(raw: &[u8]) -> Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP/1.1 response: {:?}", text.chars().take(200).collect::<String>()))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// What one wrk run reports.
#[derive(Debug, Clone, Default)]
pub struct WrkReport {
    pub requests: u64,
    pub non_2xx: u64,
    /// connect + read + write + timeout errors.
    pub socket_errors: u64,
    pub output: String,
}

/// `wrk` on PATH, or an error naming the setup command that installs it.
pub fn find_wrk() -> Result<PathBuf> {
    let which = |name: &str| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
    };
    // Never installed from here: tests run in parallel, and several `apt-get install`s at once fail on
    // dpkg's lock. The setup step installs it once, before any test starts.
    which("wrk").ok_or_else(|| {
        anyhow::anyhow!(
            "wrk is not installed (not on PATH); run `scripts/setup.sh` (or `make setup`) first, which installs it"
        )
    })
}

/// Starts `wrk -t1 -cCONNS -dSECSs` against `url` as a child process; [`finish_wrk`] parses its report.
pub fn spawn_wrk(url: &str, conns: u32, secs: u32) -> Result<std::process::Child> {
    Command::new(find_wrk()?)
        .args(["-t1", &format!("-c{conns}"), &format!("-d{secs}s"), "--latency", url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting wrk")
}

pub fn finish_wrk(child: std::process::Child) -> Result<WrkReport> {
    let out = child.wait_with_output().context("waiting for wrk")?;
    let output = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("wrk failed: {output}");
    }
    parse_wrk(&output)
}

/// Parses wrk's summary: `N requests in …`, `Non-2xx or 3xx responses: N`, `Socket errors: connect A, read B,
/// write C, timeout D`.
pub fn parse_wrk(output: &str) -> Result<WrkReport> {
    let mut report = WrkReport { output: output.to_string(), ..WrkReport::default() };
    let number = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().ok();
    let mut found = false;
    for line in output.lines().map(str::trim) {
        if let Some(n) = line.split_once(" requests in ").and_then(|(n, _)| number(n)) {
            report.requests = n;
            found = true;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            report.non_2xx = number(rest).unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            report.socket_errors =
                rest.split(',').filter_map(|part| part.split_whitespace().nth(1).and_then(number)).sum();
        }
    }
    if !found {
        bail!("no request count in wrk's output:\n{output}");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_parses() {
        let out = "Running 2s test @ http://127.0.0.1:1/\n  1 threads and 8 connections\n\
                   12345 requests in 2.00s, 1.2MB read\n  Socket errors: connect 1, read 2, write 3, timeout 4\n\
                   Non-2xx or 3xx responses: 7\nRequests/sec: 6172.50\n";
        let r = parse_wrk(out).unwrap();
        assert_eq!((r.requests, r.non_2xx, r.socket_errors), (12345, 7, 10));
        assert!(parse_wrk("garbage").is_err());
    }
}
