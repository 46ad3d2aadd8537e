//! Finding Envoy and the filter module, and running one Envoy from a generated bootstrap.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use canary_weather::http::Client;

use super::procs::Procs;

/// How long an Envoy may take to compile the module and open its listener; generous for a loaded 2-core CI.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace checkout (the mesh crate's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("mesh/ has a parent").to_path_buf()
}

/// `ENVOY_BIN`, else the binary that `scripts/setup-envoy.sh` installs into `.venv` (never whatever is on PATH:
/// the scenarios are promised for Envoy 1.40).
pub fn find_envoy() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN") {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        bail!("ENVOY_BIN={} does not exist", bin.display());
    }
    let lib = workspace_root().join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().into_iter().flatten().filter_map(|e| e.ok()).find_map(|e| {
        let bin = e.path().join("site-packages/envoy/_bin/envoy");
        bin.is_file().then_some(bin)
    });
    found.with_context(|| {
        format!("Envoy not found under {}: run scripts/setup-envoy.sh (or set ENVOY_BIN)", lib.display())
    })
}

/// `CANARY_FILTER_WASM`, else `build/canary_filter.wasm` as `scripts/build-filter.sh` writes it.
pub fn find_wasm() -> Result<PathBuf> {
    let wasm = match std::env::var_os("CANARY_FILTER_WASM") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("build/canary_filter.wasm"),
    };
    if !wasm.is_file() {
        bail!("filter module {} not found: run scripts/build-filter.sh (or set CANARY_FILTER_WASM)", wasm.display());
    }
    Ok(wasm)
}

/// A loopback port nobody listens on right now, from below the kernel's ephemeral range (32768+): ports handed
/// out by `bind(0)` are the ones the thousands of client connections of a concurrently running test also draw
/// from, so one could occupy our port before Envoy binds it. Each process starts at its own offset and checks
/// by binding; another process may still take the port before our server binds it, which is rare.
pub fn free_port() -> Result<SocketAddr> {
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(u32::MAX, std::process::id().wrapping_mul(7_919) % SPAN, SeqCst, SeqCst);
    for _ in 0..SPAN {
        let port = FIRST + NEXT.fetch_add(1, SeqCst) % SPAN;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port as u16)) {
            return Ok(listener.local_addr()?);
        }
    }
    bail!("no free loopback port in {FIRST}..{}", FIRST + SPAN)
}

/// Writes `<dir>/<name>.yaml` and starts Envoy on it: one worker (two cores are shared by the whole mesh), no
/// hot restart (several Envoys run side by side, and a policy change is a plain restart). Returns the config path.
pub fn spawn(procs: &mut Procs, envoy: &Path, name: &str, yaml: &str) -> Result<PathBuf> {
    let config = procs.dir().join(format!("{name}.yaml"));
    std::fs::write(&config, yaml).with_context(|| format!("writing {}", config.display()))?;
    let mut cmd = Command::new(envoy);
    cmd.arg("-c").arg(&config).args(["--concurrency", "1", "--disable-hot-restart"]);
    // Info keeps the filter's own log lines; `main` at info lists every extension, which buries them.
    cmd.args(["--log-level", "info", "--component-log-level", "main:warning"]);
    procs.spawn(name, cmd)?;
    Ok(config)
}

/// Waits until Envoy's admin `/ready` answers 200 (listeners and the wasm VM are up). Fails at once, with the
/// log tail, if Envoy exits: a refused configuration ends the process.
pub fn wait_ready(procs: &mut Procs, name: &str, admin: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if !procs.running(name) {
            bail!("Envoy `{name}` exited during startup; its log ends with:\n{}", procs.tail(name));
        }
        if Client::new(admin).get("/ready", &[]).is_ok_and(|r| r.status == 200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("Envoy `{name}` not ready after {READY_TIMEOUT:?}; its log ends with:\n{}", procs.tail(name));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `envoy --mode validate -c FILE`: Envoy's own check of a bootstrap, without binding ports.
pub fn validate(envoy: &Path, config: &Path) -> Result<std::process::Output> {
    Command::new(envoy)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(config)
        .args(["--disable-hot-restart", "--log-level", "info"])
        .output()
        .with_context(|| format!("running {} --mode validate", envoy.display()))
}

/// Waits until something accepts connections on `addr` (the stand-in services have no readiness endpoint).
pub fn wait_listening(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after {READY_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
