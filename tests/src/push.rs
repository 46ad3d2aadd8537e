//! One plain Envoy whose policy is pushed exactly as the README's push does it: the bootstrap is
//! `canaryc manifest --kind envoy --ecds-path PATH` (or `--rds-path PATH`) and every push is
//! `canaryc manifest POLICY --kind ecds -o PATH` (or `--kind rds`), run through the CLI's own entry point
//! (`canaryc::run_with`), so these tests prove the emitted forms and the atomic `-o` in Envoy.
//! The upstreams are the mesh's stand-ins (`backends::upstreams`): HTTP subsets answer `recommendation=vN`,
//! TCP ones echo `one …` (v1) / `two …` (v2).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::mesh::backends::upstreams;
use crate::mesh::envoy::{find_envoy, find_wasm, free_port, wait_ready};
use crate::mesh::procs::Procs;
use crate::reload::{admin_stat, http_get, wait_admin_stat};

/// What the watched file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The filter's configuration (`--kind ecds`), HTTP or TCP as the policy declares the service.
    Ecds,
    /// Native routes (`--kind rds`), HTTP only.
    Rds,
}

impl Form {
    fn kind(self) -> &'static str {
        match self {
            Form::Ecds => "ecds",
            Form::Rds => "rds",
        }
    }
}

/// A running Envoy fed from a watched file; dropping it stops Envoy.
pub struct PushedEnvoy {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub form: Form,
    pub service: String,
    /// The watched file (`--ecds-path`/`--rds-path`).
    pub watched: PathBuf,
    wasm: PathBuf,
    pushes: u32,
    procs: Procs,
}

/// `canaryc ARGS…` in-process; the exit code.
pub fn canaryc(args: &[&str]) -> i32 {
    canaryc::run_with(std::iter::once("canaryc").chain(args.iter().copied()))
}

impl PushedEnvoy {
    /// Pushes `policy` (policy text) for `service`, then starts Envoy from the `--kind envoy` bootstrap that
    /// watches it, and waits until it is ready. `tcp` picks the TCP stand-ins.
    pub fn start(form: Form, service: &str, policy: &str, tcp: bool) -> Result<PushedEnvoy> {
        let (envoy, wasm) = (find_envoy()?, find_wasm()?);
        let procs = Procs::new("push")?;
        let watched_dir = procs.dir().join("watched");
        std::fs::create_dir_all(&watched_dir)?;
        let mut me = PushedEnvoy {
            listen: free_port()?,
            admin: free_port()?,
            form,
            service: service.to_string(),
            watched: watched_dir.join(format!("{service}.yaml")),
            wasm,
            pushes: 0,
            procs,
        };
        let code = me.push(policy)?;
        if code != 0 {
            bail!("the first push failed (exit {code})");
        }
        let upstreams = if tcp { &upstreams().tcp } else { &upstreams().http };
        let bootstrap = me.procs.dir().join("envoy.yaml");
        let (listen, admin) = (me.listen.to_string(), me.admin.to_string());
        let clusters: Vec<String> = upstreams.iter().map(|(v, a)| format!("{v}={a}")).collect();
        let (policy_file, watched, wasm) =
            (me.policy_file(1), me.watched.display().to_string(), me.wasm.display().to_string());
        let mut args = vec!["manifest", &policy_file, "--kind", "envoy", "--service", service];
        args.extend(["--listen", &listen, "--admin", &admin, "--wasm", &wasm]);
        for c in &clusters {
            args.extend(["--cluster", c.as_str()]);
        }
        let path_flag = if form == Form::Ecds { "--ecds-path" } else { "--rds-path" };
        let out = bootstrap.display().to_string();
        args.extend([path_flag, &watched, "-o", &out]);
        if canaryc(&args) != 0 {
            bail!("canaryc {args:?} failed");
        }
        let mut cmd = Command::new(envoy);
        cmd.arg("-c").arg(&bootstrap).args(["--concurrency", "1", "--disable-hot-restart"]);
        cmd.args(["--log-level", "info", "--component-log-level", "main:warning"]);
        me.procs.spawn("envoy", cmd)?;
        wait_ready(&mut me.procs, "envoy", me.admin)?;
        Ok(me)
    }

    fn policy_file(&self, n: u32) -> String {
        self.procs.dir().join(format!("policy-{n}.canary")).display().to_string()
    }

    /// `canaryc manifest POLICY --kind ecds|rds --service S [EXTRA…] -o WATCHED` for `policy` (text); the exit
    /// code (1: canaryc refused it and the watched file is untouched).
    pub fn push_with(&mut self, policy: &str, extra: &[&str]) -> Result<i32> {
        self.pushes += 1;
        let file = self.policy_file(self.pushes);
        std::fs::write(&file, policy)?;
        let (watched, wasm) = (self.watched.display().to_string(), self.wasm.display().to_string());
        let mut args = vec!["manifest", &file, "--kind", self.form.kind(), "--service", &self.service];
        if self.form == Form::Ecds {
            args.extend(["--wasm", &wasm]);
        }
        args.extend_from_slice(extra);
        args.extend(["-o", &watched]);
        Ok(canaryc(&args))
    }

    pub fn push(&mut self, policy: &str) -> Result<i32> {
        self.push_with(policy, &[])
    }

    /// Replaces the watched file with `contents` by rename, as any atomic writer would (for hand-edited or
    /// broken resources canaryc never writes).
    pub fn push_raw(&self, contents: &str) -> Result<()> {
        canary_durable::write_atomic(&self.watched, contents.as_bytes()).context("writing the file")
    }

    /// The stat prefix of this proxy's subscription: ECDS `extension_config_discovery.{http,network}_filter.
    /// canary-S.` or RDS `http.S.rds.S.`.
    pub fn stat_prefix(&self, tcp: bool) -> String {
        match (self.form, tcp) {
            (Form::Ecds, false) => format!("extension_config_discovery.http_filter.canary-{}.", self.service),
            (Form::Ecds, true) => format!("extension_config_discovery.network_filter.canary-{}.", self.service),
            (Form::Rds, _) => format!("http.{0}.rds.{0}.", self.service),
        }
    }

    /// One admin stat's value, 0 if absent.
    pub fn stat(&self, name: &str) -> Result<u64> {
        admin_stat(self.admin, name)
    }

    /// Waits until `stat` reaches at least `value`.
    pub fn wait_stat(&self, stat: &str, value: u64, timeout: Duration) -> Result<()> {
        wait_admin_stat(self.admin, stat, value, timeout, || self.tail())
    }

    /// The subset that answered one HTTP request (`recommendation=vN` → `vN`).
    pub fn http_subset(&self, headers: &[(&str, &str)]) -> Result<String> {
        let (status, body) = http_get(self.listen, "/", headers)?;
        if status != 200 {
            bail!("status {status}: {body}");
        }
        Ok(body.trim().rsplit('=').next().unwrap_or_default().to_string())
    }

    /// The subset that answered one TCP connection (`one` → v1, `two` → v2).
    pub fn tcp_subset(&self) -> Result<String> {
        let mut stream = TcpStream::connect(self.listen)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"hello\n")?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(match line.split_whitespace().next() {
            Some("one") => "v1".into(),
            Some("two") => "v2".into(),
            other => bail!("unexpected echo {other:?} (connection closed?)"),
        })
    }

    /// Polls `probe` until it answers `want`; how long that took.
    pub fn wait_for(&self, want: &str, timeout: Duration, probe: impl Fn(&Self) -> Result<String>) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let got = probe(self)?;
            if got == want {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!("still `{got}`, not `{want}`, {timeout:?} after the push; Envoy log:\n{}", self.tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The watched file's current contents.
    pub fn watched_contents(&self) -> String {
        std::fs::read_to_string(&self.watched).unwrap_or_default()
    }

    /// Files in the watched directory (no temporary file may be left behind).
    pub fn watched_dir_entries(&self) -> Vec<String> {
        let dir = self.watched.parent().unwrap_or(Path::new("/"));
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.procs.dir().join("envoy.log")).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        self.procs.running("envoy")
    }

    pub fn tail(&self) -> String {
        self.procs.tail("envoy")
    }
}
