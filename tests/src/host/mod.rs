//! A proxy-wasm host on wasmtime that runs the real `canary_filter.wasm` the way Envoy does: the same
//! ABI 0.2.1 imports (see [`abi`]), the same lifecycle (root context, `vm_start`, `configure`; then per
//! request a context, `on_request_headers`, `done`, `delete` (the last two if exported); per TCP connection
//! `on_new_connection`; a root's `done` and `delete` at [`Proxy::shut_down`]).
//!
//! ```no_run
//! # use canary_tests::host::{decision_counter, Proxy};
//! # fn main() -> anyhow::Result<()> {
//! let policy = r#"{"version":1,"services":[{"name":"frontend","default":"v1"}]}"#;
//! let mut proxy = Proxy::http(policy).node_label("version", "v2").start()?;
//! let out = proxy.request(&[(":authority", "frontend"), ("cookie", "user=tester")])?;
//! assert_eq!(out.header("x-canary-subset"), Some("v1"));
//! assert_eq!(proxy.counter(&decision_counter("frontend", "default", "v1"))?, 1);
//! # Ok(()) }
//! ```
//!
//! The module is compiled once per test binary (wasmtime compilation is the slow part) from
//! `$CANARY_WASM`, else `<workspace>/build/canary_filter.wasm` (`scripts/build-filter.sh` builds it).
//! A trap, or host misuse Envoy would answer with an error status, fails the call with an error.

pub mod abi;

/// The name the filter gives the counter of one outcome (`canary_eval::telemetry`: `rule` is a line, `default`
/// or `none`; `subset` is empty when nothing was decided; `service` is `*` for undeclared hosts). Spelled out
/// here rather than taken from there, so a change of encoding fails the tests that count.
pub fn decision_counter(service: &str, rule: &str, subset: &str) -> String {
    format!("canary.service=.={service};.;rule=.={rule};.;subset=.={subset};.;decisions_total")
}

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context as _, Result};
use wasmtime::{Engine, Instance, Module, Store, TypedFunc};

pub use abi::{FilterState, Log, LogLevel};
use abi::{HostState, MAP_REQUEST_HEADERS};
pub use canary_eval::config::Settings;

/// The compiled filter module, shared by every proxy in this test binary.
fn module() -> Result<&'static (Engine, Module)> {
    static MODULE: OnceLock<Result<(Engine, Module), String>> = OnceLock::new();
    MODULE.get_or_init(|| load(&wasm_path()).map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow!("{e}"))
}

/// `$CANARY_WASM`, else the workspace's `build/canary_filter.wasm`.
pub fn wasm_path() -> PathBuf {
    match std::env::var_os("CANARY_WASM") {
        Some(path) => PathBuf::from(path),
        None => workspace().join("build/canary_filter.wasm"),
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace").to_path_buf()
}

fn load(path: &Path) -> Result<(Engine, Module)> {
    let bytes = std::fs::read(path).with_context(|| {
        format!("cannot read the filter module {}: run scripts/build-filter.sh (or set CANARY_WASM)", path.display())
    })?;
    warn_if_stale(path);
    // Fuel counts the wasm instructions the module executes: a cost that, unlike time, repeats exactly
    // (see `Proxy::wasm_instructions`). Every store starts with an unlimited tank.
    let engine = Engine::new(wasmtime::Config::new().consume_fuel(true)).map_err(|e| anyhow!("{e:?}"))?;
    let module = Module::new(&engine, bytes).map_err(|e| anyhow!("compiling {}: {e:?}", path.display()))?;
    Ok((engine, module))
}

/// Tests of an old module pass or fail for the wrong reasons; say so loudly (but don't fail: CI builds
/// the module first, and a developer may be running only unrelated tests).
fn warn_if_stale(wasm: &Path) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(wasm) else { return };
    let newest = ["filter/src", "eval/src"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(workspace().join(dir)).into_iter().flatten().flatten())
        .filter_map(|entry| modified(&entry.path()))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if newest > built {
        // Straight to stderr: the test harness captures `eprintln!`, and this must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "WARNING: {} is older than the filter/eval sources; run scripts/build-filter.sh to test the current code",
            wasm.display()
        );
    }
}

/// Compiles a policy written in the canary language to the plugin configuration the filter loads (what
/// `canaryc compile` prints), with optional deployment `settings`. Panics with the rendered diagnostics:
/// a test policy that does not compile is a bug in the test.
pub fn compile(source: &str, settings: Settings) -> String {
    match canary_compiler::compile(source, "test.canary") {
        Ok(compiled) => {
            let mut config = compiled.config;
            config.settings = settings;
            canary_compiler::config_json(&config)
        }
        Err(diagnostics) => panic!("{}", canary_compiler::render(&diagnostics, source, "test.canary", false)),
    }
}

/// Instantiates any module against this host's imports, without running it: `Err` names an import the
/// host does not implement.
pub fn instantiate(wasm: &[u8]) -> Result<()> {
    let engine = &module()?.0;
    let module = Module::new(engine, wasm).map_err(|e| anyhow!("compiling: {e:?}"))?;
    let mut store = Store::new(engine, HostState::default());
    store.set_fuel(u64::MAX).map_err(|e| anyhow!("{e:?}"))?;
    abi::linker(engine)
        .and_then(|linker| linker.instantiate(&mut store, &module))
        .map(drop)
        .map_err(|e| anyhow!("{e:?}"))
}

/// HTTP filter or network (TCP) filter: which callbacks the proxy drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Tcp,
}

/// How to start a [`Proxy`]; from [`Proxy::http`] or [`Proxy::tcp`].
#[derive(Debug, Clone)]
pub struct ProxyBuilder {
    kind: Kind,
    plugin_config: Vec<u8>,
    vm_config: Vec<u8>,
    properties: Vec<(Vec<u8>, Vec<u8>)>,
    time_nanos: u64,
    record_calls: bool,
}

impl ProxyBuilder {
    /// A label of the workload running this proxy, as Envoy exposes node metadata `LABELS`
    /// (property path `xds.node.metadata.LABELS.<name>`; `node.…` paths are empty, as in Envoy).
    pub fn node_label(self, name: &str, value: &str) -> Self {
        self.property(&["xds", "node", "metadata", "LABELS", name], value.as_bytes())
    }

    /// Any property the module may read by path.
    pub fn property(mut self, path: &[&str], value: &[u8]) -> Self {
        self.properties.push((path.join("\0").into_bytes(), value.to_vec()));
        self
    }

    /// The host clock (nanoseconds since the epoch) the module sees; the filter seeds its RNG from it.
    pub fn time_nanos(mut self, nanos: u64) -> Self {
        self.time_nanos = nanos;
        self
    }

    /// Whether [`Outcome::calls`] / [`Connection::calls`] are recorded (default on; benchmarks turn it off,
    /// since formatting the record costs more than the host call).
    pub fn record_calls(mut self, record: bool) -> Self {
        self.record_calls = record;
        self
    }

    pub fn vm_config(mut self, config: impl AsRef<[u8]>) -> Self {
        self.vm_config = config.as_ref().to_vec();
        self
    }

    /// Instantiates and configures the module. `Ok(Err(refused))` when the module refused the
    /// configuration (`proxy_on_configure` returned false) — with the logs that say why; `Err` for a
    /// trap or anything else that must fail a test.
    pub fn configure(self) -> Result<std::result::Result<Proxy, Refused>> {
        let (engine, module) = module()?;
        let state = HostState {
            plugin_config: self.plugin_config,
            vm_config: self.vm_config,
            properties: self.properties,
            time_nanos: self.time_nanos,
            record_calls: self.record_calls,
            root_context: ROOT,
            effective_context: ROOT,
            ..HostState::default()
        };
        let mut store = Store::new(engine, state);
        store.set_fuel(u64::MAX).map_err(|e| anyhow!("{e:?}"))?;
        // Unknown imports fail here: the host defines no stubs.
        let instance = abi::linker(engine)
            .and_then(|linker| linker.instantiate(&mut store, module))
            .map_err(|e| anyhow!("instantiating the filter: {e:?}"))?;
        let memory = instance.get_memory(&mut store, "memory").ok_or_else(|| anyhow!("module exports no memory"))?;
        let allocate = instance
            .get_typed_func::<u32, u32>(&mut store, "malloc")
            .or_else(|_| instance.get_typed_func::<u32, u32>(&mut store, "proxy_on_memory_allocate"))
            .map_err(|_| anyhow!("module exports neither malloc nor proxy_on_memory_allocate"))?;
        if instance.get_func(&mut store, "proxy_abi_version_0_2_1").is_none() {
            bail!("module does not declare proxy-wasm ABI 0.2.1 (export proxy_abi_version_0_2_1)");
        }
        store.data_mut().memory = Some(memory);
        store.data_mut().allocate = Some(allocate);
        let calls = Exports::resolve(&instance, &mut store)?;
        let mut proxy = Proxy { kind: self.kind, store, calls, next_context: ROOT + 1, trapped: None };

        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut proxy.store, "_initialize") {
            proxy.guard("_initialize", |store| init.call(store, ()))?;
        }
        let create = proxy.calls.context_create.clone();
        proxy.guard("proxy_on_context_create", |store| create.call(store, (ROOT, 0)))?;
        let vm_size = proxy.store.data().vm_config.len() as u32;
        if let Some(vm_start) = proxy.calls.vm_start.clone() {
            if proxy.guard("proxy_on_vm_start", |store| vm_start.call(store, (ROOT, vm_size)))? == 0 {
                return Ok(Err(Refused { logs: proxy.store.into_data().logs }));
            }
        }
        let size = proxy.store.data().plugin_config.len() as u32;
        let configure = proxy.calls.configure.clone();
        if proxy.guard("proxy_on_configure", |store| configure.call(store, (ROOT, size)))? == 0 {
            return Ok(Err(Refused { logs: proxy.store.into_data().logs }));
        }
        Ok(Ok(proxy))
    }

    /// [`ProxyBuilder::configure`], treating a refused configuration as an error too.
    pub fn start(self) -> Result<Proxy> {
        self.configure()?.map_err(|refused| anyhow!("the filter refused its configuration: {refused}"))
    }
}

/// A configuration the module refused, with every line it logged.
#[derive(Debug, Clone)]
pub struct Refused {
    pub logs: Vec<Log>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.logs.iter().map(|l| format!("[{:?}] {}", l.level, l.message)).collect();
        write!(f, "{}", lines.join("; "))
    }
}

const ROOT: u32 = 1;

/// The module's callbacks the host drives (optional ones may be absent, as Envoy allows).
struct Exports {
    context_create: TypedFunc<(u32, u32), ()>,
    vm_start: Option<TypedFunc<(u32, u32), u32>>,
    configure: TypedFunc<(u32, u32), u32>,
    request_headers: Option<TypedFunc<(u32, u32, u32), u32>>,
    new_connection: Option<TypedFunc<u32, u32>>,
    done: Option<TypedFunc<u32, u32>>,
    delete: Option<TypedFunc<u32, ()>>,
    tick: Option<TypedFunc<u32, ()>>,
}

impl Exports {
    fn resolve(instance: &Instance, store: &mut Store<HostState>) -> Result<Exports> {
        Ok(Exports {
            context_create: instance
                .get_typed_func(&mut *store, "proxy_on_context_create")
                .map_err(|e| anyhow!("proxy_on_context_create: {e:?}"))?,
            vm_start: instance.get_typed_func(&mut *store, "proxy_on_vm_start").ok(),
            configure: instance
                .get_typed_func(&mut *store, "proxy_on_configure")
                .map_err(|e| anyhow!("proxy_on_configure: {e:?}"))?,
            request_headers: instance.get_typed_func(&mut *store, "proxy_on_request_headers").ok(),
            new_connection: instance.get_typed_func(&mut *store, "proxy_on_new_connection").ok(),
            done: instance.get_typed_func(&mut *store, "proxy_on_done").ok(),
            delete: instance.get_typed_func(&mut *store, "proxy_on_delete").ok(),
            tick: instance.get_typed_func(&mut *store, "proxy_on_tick").ok(),
        })
    }
}

/// A running filter instance: one Envoy worker's VM with one plugin configured.
pub struct Proxy {
    kind: Kind,
    store: Store<HostState>,
    calls: Exports,
    next_context: u32,
    /// Set once the module trapped: its state is undefined after that, so every later call fails.
    trapped: Option<String>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy").field("kind", &self.kind).field("counters", &self.store.data().metric_values).finish()
    }
}

/// What the module did with one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The action `on_request_headers` returned (0 = Continue).
    pub action: u32,
    /// Request headers after the filter ran, in order (lowercase names).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Host calls made while handling the request, e.g. `get_header_map_pairs request_headers`.
    pub calls: Vec<String>,
    pub logs: Vec<Log>,
}

impl Outcome {
    /// First value of a header as text (`None` if absent or not UTF-8).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }

    /// Every value of a (repeated) header.
    pub fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_slice()).collect()
    }

    /// How often the module fetched request headers: whole maps (`get_header_map_pairs`, what the filter uses to
    /// see every value of a repeated header) and single headers (`get_header_map_value`) alike.
    pub fn header_reads(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| {
                c.starts_with("get_header_map_value request_headers ") || *c == "get_header_map_pairs request_headers"
            })
            .count()
    }
}

/// What the module did with one TCP connection.
#[derive(Debug, Clone)]
pub struct Connection {
    pub action: u32,
    pub filter_state: Vec<FilterState>,
    pub calls: Vec<String>,
    pub logs: Vec<Log>,
}

impl Connection {
    /// The upstream cluster the module chose (`envoy.tcp_proxy.cluster`), if it set one.
    pub fn cluster(&self) -> Option<&str> {
        self.filter_state.iter().rev().find(|s| s.path == "envoy.tcp_proxy.cluster").map(|s| s.value.as_str())
    }
}

impl Proxy {
    /// An HTTP filter (`envoy.filters.http.wasm`) with this plugin configuration (the JSON bytes).
    pub fn http(plugin_config: impl AsRef<[u8]>) -> ProxyBuilder {
        Proxy::builder(Kind::Http, plugin_config)
    }

    /// A network filter (`envoy.filters.network.wasm`) in front of tcp_proxy.
    pub fn tcp(plugin_config: impl AsRef<[u8]>) -> ProxyBuilder {
        Proxy::builder(Kind::Tcp, plugin_config)
    }

    fn builder(kind: Kind, plugin_config: impl AsRef<[u8]>) -> ProxyBuilder {
        ProxyBuilder {
            kind,
            plugin_config: plugin_config.as_ref().to_vec(),
            vm_config: Vec::new(),
            properties: Vec::new(),
            time_nanos: 1_700_000_000_000_000_000,
            record_calls: true,
        }
    }

    /// One HTTP request with these headers (names are lowercased, as Envoy's codecs do; repeats kept).
    pub fn request(&mut self, headers: &[(&str, &str)]) -> Result<Outcome> {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        self.request_bytes(&headers)
    }

    /// [`Proxy::request`] with raw header values (not necessarily UTF-8).
    pub fn request_bytes(&mut self, headers: &[(&str, &[u8])]) -> Result<Outcome> {
        if self.kind != Kind::Http {
            bail!("request() on a TCP proxy");
        }
        let on_headers =
            self.calls.request_headers.clone().ok_or_else(|| anyhow!("module has no on_request_headers"))?;
        let map: Vec<(String, Vec<u8>)> = headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_vec())).collect();
        let count = map.len() as u32;
        let state = self.store.data_mut();
        state.maps = Default::default();
        state.maps[MAP_REQUEST_HEADERS] = map;
        let (action, calls, logs) = self.stream(|store, id| on_headers.call(store, (id, count, 1)))?;
        let headers = std::mem::take(&mut self.store.data_mut().maps[MAP_REQUEST_HEADERS]);
        Ok(Outcome { action, headers, calls, logs })
    }

    /// One TCP connection (the filter decides from node labels only).
    pub fn connection(&mut self) -> Result<Connection> {
        if self.kind != Kind::Tcp {
            bail!("connection() on an HTTP proxy");
        }
        let on_connection =
            self.calls.new_connection.clone().ok_or_else(|| anyhow!("module has no on_new_connection"))?;
        let (action, calls, logs) = self.stream(|store, id| on_connection.call(store, id))?;
        let filter_state = std::mem::take(&mut self.store.data_mut().filter_state);
        Ok(Connection { action, filter_state, calls, logs })
    }

    /// Runs one stream's lifecycle around `callback`: create context, callback, done, delete.
    fn stream(
        &mut self,
        callback: impl FnOnce(&mut Store<HostState>, u32) -> wasmtime::Result<u32>,
    ) -> Result<(u32, Vec<String>, Vec<Log>)> {
        let id = self.next_context;
        self.next_context += 1;
        let logs_before = self.store.data().logs.len();
        let state = self.store.data_mut();
        state.calls.clear();
        state.filter_state.clear();
        state.effective_context = id;
        let create = self.calls.context_create.clone();
        self.guard("proxy_on_context_create", |store| create.call(store, (id, ROOT)))?;
        let action = self.guard("stream callback", |store| callback(store, id))?;
        let calls = std::mem::take(&mut self.store.data_mut().calls);
        self.end_context(id)?;
        self.store.data_mut().effective_context = ROOT;
        let logs = self.store.data().logs[logs_before..].to_vec();
        Ok((action, calls, logs))
    }

    /// Calls into the module; a trap or a host-detected violation becomes an error (and poisons the proxy).
    fn guard<T>(&mut self, what: &str, call: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<T>) -> Result<T> {
        if let Some(trap) = &self.trapped {
            bail!("the module trapped earlier ({trap}); no further calls");
        }
        let result = call(&mut self.store);
        let violations = std::mem::take(&mut self.store.data_mut().violations);
        match result {
            Err(e) => {
                let message = format!("wasm trap in {what}: {e:?}");
                self.trapped = Some(message.clone());
                Err(anyhow!(message))
            }
            Ok(_) if !violations.is_empty() => bail!("host-call misuse in {what}: {}", violations.join("; ")),
            Ok(v) => Ok(v),
        }
    }

    /// Wasm instructions the module has executed so far (wasmtime fuel: one unit per instruction, calls
    /// and branches included), host functions excluded. Deterministic, so a change to the module's own
    /// per-request work shows as an exact difference.
    pub fn wasm_instructions(&self) -> u64 {
        u64::MAX - self.store.get_fuel().unwrap_or(u64::MAX)
    }

    /// A metric's value (0 when never defined), after a tick — the module may batch counts until then, as
    /// Envoy would see them once the tick period the module asked for has passed.
    pub fn counter(&mut self, name: &str) -> Result<u64> {
        self.tick()?;
        Ok(self.store.data().metric_values.get(name).copied().unwrap_or(0))
    }

    /// Every metric the module defined, with its value (after a tick, as [`Proxy::counter`]).
    pub fn counters(&mut self) -> Result<BTreeMap<String, u64>> {
        self.tick()?;
        Ok(self.store.data().metric_values.clone())
    }

    /// Calls `proxy_on_tick` on the root context, if the module asked for ticks and exports it; returns the
    /// host calls the module made during the tick.
    pub fn tick(&mut self) -> Result<Vec<String>> {
        self.store.data_mut().calls.clear();
        if let (Some(tick), Some(_)) = (self.calls.tick.clone(), self.store.data().tick_period_ms) {
            self.guard("proxy_on_tick", |store| tick.call(store, ROOT))?;
        }
        Ok(std::mem::take(&mut self.store.data_mut().calls))
    }

    /// Shuts the root context down as Envoy does when the plugin is removed or reconfigured (`proxy_on_done`,
    /// then `proxy_on_delete`, each if exported) — without a tick first — and returns the metrics as they
    /// stand then: whatever the module had not handed over yet is lost.
    pub fn shut_down(&mut self) -> Result<BTreeMap<String, u64>> {
        self.end_context(ROOT)?;
        Ok(self.store.data().metric_values.clone())
    }

    /// Ends a context as Envoy does: `proxy_on_done`, then `proxy_on_delete`, each if the module exports it.
    fn end_context(&mut self, id: u32) -> Result<()> {
        if let Some(done) = self.calls.done.clone() {
            self.guard("proxy_on_done", |store| done.call(store, id))?;
        }
        if let Some(delete) = self.calls.delete.clone() {
            self.guard("proxy_on_delete", |store| delete.call(store, id))?;
        }
        Ok(())
    }

    /// Everything the module logged so far.
    pub fn logs(&self) -> &[Log] {
        &self.store.data().logs
    }

    /// Size of the module's linear memory: it must stop growing once traffic repeats.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().memory.map_or(0, |m| m.data_size(&self.store))
    }

    /// Sets the host clock for later calls.
    pub fn set_time_nanos(&mut self, nanos: u64) {
        self.store.data_mut().time_nanos = nanos;
    }
}
