//! The host side of the proxy-wasm ABI 0.2.1, modelled on Envoy 1.40's behaviour where the filter can
//! observe it (statuses, header-map semantics, `xds.node` properties, `set_envoy_filter_state`).
//!
//! Only imports with a real implementation are defined: a module importing anything else fails to
//! instantiate, so a filter that starts depending on an unimplemented host call is noticed at once.

use std::collections::BTreeMap;

use wasmtime::{format_err, Caller, Linker, Memory, Result, TypedFunc};

/// proxy-wasm status codes.
pub mod status {
    pub const OK: u32 = 0;
    pub const NOT_FOUND: u32 = 1;
    pub const BAD_ARGUMENT: u32 = 2;
    pub const SERIALIZATION_FAILURE: u32 = 3;
    pub const INVALID_MEMORY_ACCESS: u32 = 6;
}

/// Header map types the host keeps (`proxy_*_header_map_*` first argument).
pub const MAP_REQUEST_HEADERS: usize = 0;
pub const MAP_REQUEST_TRAILERS: usize = 1;
pub const MAP_RESPONSE_HEADERS: usize = 2;
pub const MAP_RESPONSE_TRAILERS: usize = 3;
const MAP_NAMES: [&str; 4] = ["request_headers", "request_trailers", "response_headers", "response_trailers"];

/// Buffer types (`proxy_get_buffer_bytes`).
const BUFFER_VM_CONFIGURATION: u32 = 6;
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;

/// Filter-state keys Envoy has object factories for (a subset): others get `NotFound`, as in Envoy.
const KNOWN_FILTER_STATE_KEYS: &[&str] = &[
    "envoy.tcp_proxy.cluster",
    "envoy.network.upstream_server_name",
    "envoy.network.application_protocols",
    "envoy.network.transport_socket.original_dst_address",
    "envoy.upstream.dynamic_host",
    "envoy.upstream.dynamic_port",
];

/// One `proxy_log` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub level: LogLevel,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl LogLevel {
    fn from_abi(level: u32) -> Option<LogLevel> {
        [LogLevel::Trace, LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error, LogLevel::Critical]
            .get(level as usize)
            .copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A decoded `set_envoy_filter_state` call, with the exact argument bytes the module sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterState {
    pub raw: Vec<u8>,
    pub path: String,
    pub value: String,
    /// `LifeSpan`: FilterChain 0, DownstreamRequest 1, DownstreamConnection 2.
    pub span: u64,
}

/// Everything the host knows; one per [`super::Proxy`].
#[derive(Default)]
pub struct HostState {
    pub plugin_config: Vec<u8>,
    pub vm_config: Vec<u8>,
    /// Property path (segments joined by NUL, as the ABI sends them) → value.
    pub properties: Vec<(Vec<u8>, Vec<u8>)>,
    pub time_nanos: u64,
    pub logs: Vec<Log>,
    /// Header maps by type; names are lowercase, as Envoy's codecs store them. Repeated names allowed.
    pub maps: [Vec<(String, Vec<u8>)>; 4],
    /// Metric id → name and kind (ids start at 1; several ids may name one stat, as in Envoy).
    pub metric_ids: Vec<(String, MetricKind)>,
    pub metric_values: BTreeMap<String, u64>,
    /// `set_envoy_filter_state` calls of the current stream.
    pub filter_state: Vec<FilterState>,
    /// Every host call of the current callback sequence, readable (`get_header_map_value request_headers cookie`).
    pub calls: Vec<String>,
    pub record_calls: bool,
    /// Misuse the real host would report with an error status: bad pointers, unknown enum values. A test
    /// must not pass while the module does this, so the driver turns these into errors.
    pub violations: Vec<String>,
    /// The context callbacks currently run for; `proxy_set_effective_context` changes it.
    pub effective_context: u32,
    pub root_context: u32,
    /// Contexts that called `proxy_done`.
    pub done: Vec<u32>,
    pub tick_period_ms: Option<u32>,
    /// Guest exports the imports need; set right after instantiation.
    pub memory: Option<Memory>,
    pub allocate: Option<TypedFunc<u32, u32>>,
}

impl HostState {
    /// Whether the effective context has stream info (request/connection), i.e. is not the root.
    fn in_stream(&self) -> bool {
        self.effective_context != self.root_context
    }
}

type Ctx<'a> = Caller<'a, HostState>;

/// Notes a host call for [`HostState::calls`] (skipped when benchmarking: formatting costs more than the call).
fn record(c: &mut Ctx<'_>, call: impl FnOnce() -> String) {
    if c.data().record_calls {
        let call = call();
        c.data_mut().calls.push(call);
    }
}

/// Guest memory access; a bad range is a violation plus `INVALID_MEMORY_ACCESS`, as Envoy reports it.
fn read(caller: &mut Ctx<'_>, ptr: u32, len: u32) -> Result<Vec<u8>, u32> {
    let memory = caller.data().memory.expect("memory export resolved at instantiation");
    let range = ptr as usize..ptr as usize + len as usize;
    match memory.data(&*caller).get(range) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => {
            caller.data_mut().violations.push(format!("read of {len} bytes at {ptr:#x} is out of bounds"));
            Err(status::INVALID_MEMORY_ACCESS)
        }
    }
}

fn write(caller: &mut Ctx<'_>, ptr: u32, bytes: &[u8]) -> Result<(), u32> {
    let memory = caller.data().memory.expect("memory export resolved at instantiation");
    match memory.data_mut(&mut *caller).get_mut(ptr as usize..ptr as usize + bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            Ok(())
        }
        None => {
            caller.data_mut().violations.push(format!("write of {} bytes at {ptr:#x} is out of bounds", bytes.len()));
            Err(status::INVALID_MEMORY_ACCESS)
        }
    }
}

fn read_str(caller: &mut Ctx<'_>, ptr: u32, len: u32) -> Result<String, u32> {
    let bytes = read(caller, ptr, len)?;
    String::from_utf8(bytes).map_err(|_| {
        caller.data_mut().violations.push(format!("string at {ptr:#x} is not UTF-8"));
        status::BAD_ARGUMENT
    })
}

/// Hands `bytes` to the guest like Envoy's `copyToPointerSize`: memory from the guest's allocator (none
/// for empty data: pointer 0), pointer and size written to the two out-parameters.
fn return_bytes(caller: &mut Ctx<'_>, bytes: &[u8], ptr_ptr: u32, size_ptr: u32) -> Result<u32> {
    let mut ptr = 0;
    if !bytes.is_empty() {
        let allocate = caller.data().allocate.clone().expect("allocator export resolved at instantiation");
        ptr = allocate.call(&mut *caller, bytes.len() as u32)?;
        if ptr == 0 {
            return Err(format_err!("the module's allocator returned null for {} bytes", bytes.len()));
        }
        if let Err(s) = write(caller, ptr, bytes) {
            return Ok(s);
        }
    }
    Ok(write(caller, ptr_ptr, &ptr.to_le_bytes())
        .and_then(|()| write(caller, size_ptr, &(bytes.len() as u32).to_le_bytes()))
        .map_or_else(|s| s, |()| status::OK))
}

/// Runs an import body whose early exits are statuses.
fn status_of(r: Result<u32, u32>) -> u32 {
    r.unwrap_or_else(|s| s)
}

fn map_index(caller: &mut Ctx<'_>, map: u32) -> Result<usize, u32> {
    if (map as usize) < MAP_NAMES.len() {
        Ok(map as usize)
    } else {
        caller.data_mut().violations.push(format!("header map type {map} is not available here"));
        Err(status::BAD_ARGUMENT)
    }
}

/// Serializes header pairs as Envoy does (`canary_filter::header_map::encode`, the format the filter decodes).
pub fn serialize_pairs(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    canary_filter::header_map::encode(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())))
}

fn deserialize_pairs(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let word = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize);
    let count = word(0)?;
    let mut sizes = Vec::new();
    for i in 0..count {
        sizes.push((word(4 + i * 8)?, word(8 + i * 8)?));
    }
    let mut at = 4 + count * 8;
    let mut pairs = Vec::new();
    for (k, v) in sizes {
        let key = String::from_utf8(bytes.get(at..at + k)?.to_vec()).ok()?;
        at += k + 1;
        let value = bytes.get(at..at + v)?.to_vec();
        at += v + 1;
        pairs.push((key.to_ascii_lowercase(), value));
    }
    Some(pairs)
}

/// Decodes `SetEnvoyFilterStateArguments { string path = 1; string value = 2; LifeSpan span = 3; }`.
pub fn decode_filter_state(raw: &[u8]) -> Option<FilterState> {
    fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*at)?;
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }
    let (mut path, mut value, mut span) = (String::new(), String::new(), 0);
    let mut at = 0;
    while at < raw.len() {
        let key = varint(raw, &mut at)?;
        match (key >> 3, key & 7) {
            (1 | 2, 2) => {
                let len = varint(raw, &mut at)? as usize;
                let s = String::from_utf8(raw.get(at..at + len)?.to_vec()).ok()?;
                at += len;
                if key >> 3 == 1 {
                    path = s;
                } else {
                    value = s;
                }
            }
            (3, 0) => span = varint(raw, &mut at)?,
            _ => return None,
        }
    }
    Some(FilterState { raw: raw.to_vec(), path, value, span })
}

/// Every import the host implements.
pub fn linker(engine: &wasmtime::Engine) -> Result<Linker<HostState>> {
    let mut l = Linker::new(engine);

    l.func_wrap("env", "proxy_log", |mut c: Ctx<'_>, level: u32, ptr: u32, len: u32| -> u32 {
        status_of((|| {
            let message = read_str(&mut c, ptr, len)?;
            let Some(level) = LogLevel::from_abi(level) else {
                c.data_mut().violations.push(format!("log level {level} does not exist"));
                return Err(status::BAD_ARGUMENT);
            };
            c.data_mut().logs.push(Log { level, message });
            Ok(status::OK)
        })())
    })?;

    l.func_wrap("env", "proxy_get_log_level", |mut c: Ctx<'_>, ret: u32| -> u32 {
        record(&mut c, || "get_log_level".into());
        status_of(write(&mut c, ret, &0u32.to_le_bytes()).map(|()| status::OK))
    })?;

    l.func_wrap("env", "proxy_get_current_time_nanoseconds", |mut c: Ctx<'_>, ret: u32| -> u32 {
        record(&mut c, || "get_current_time_nanoseconds".into());
        let now = c.data().time_nanos;
        status_of(write(&mut c, ret, &now.to_le_bytes()).map(|()| status::OK))
    })?;

    l.func_wrap("env", "proxy_set_tick_period_milliseconds", |mut c: Ctx<'_>, period: u32| -> u32 {
        c.data_mut().tick_period_ms = Some(period);
        status::OK
    })?;

    l.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Ctx<'_>, kind: u32, start: u32, max: u32, ptr_ptr: u32, size_ptr: u32| -> Result<u32> {
            record(&mut c, || format!("get_buffer_bytes {kind}"));
            let buffer = match kind {
                BUFFER_PLUGIN_CONFIGURATION => c.data().plugin_config.clone(),
                BUFFER_VM_CONFIGURATION => c.data().vm_config.clone(),
                _ => return Ok(status::NOT_FOUND),
            };
            let start = (start as usize).min(buffer.len());
            let end = start.saturating_add(max as usize).min(buffer.len());
            return_bytes(&mut c, &buffer[start..end], ptr_ptr, size_ptr)
        },
    )?;

    l.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Ctx<'_>, map: u32, key: u32, key_len: u32, ptr_ptr: u32, size_ptr: u32| -> Result<u32> {
            let (map, key) = match (map_index(&mut c, map), read_str(&mut c, key, key_len)) {
                (Ok(m), Ok(k)) => (m, k.to_ascii_lowercase()),
                (Err(s), _) | (_, Err(s)) => return Ok(s),
            };
            record(&mut c, || format!("get_header_map_value {} {key}", MAP_NAMES[map]));
            // Envoy returns the first value of a repeated header.
            let value = c.data().maps[map].iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
            match value {
                Some(v) => return_bytes(&mut c, &v, ptr_ptr, size_ptr),
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;

    l.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Ctx<'_>, map: u32, key: u32, key_len: u32, value: u32, value_len: u32| -> u32 {
            status_of((|| {
                let map = map_index(&mut c, map)?;
                let key = read_str(&mut c, key, key_len)?.to_ascii_lowercase();
                let value = read(&mut c, value, value_len)?;
                record(&mut c, || format!("replace_header_map_value {} {key}", MAP_NAMES[map]));
                // Envoy ≥ 1.2x `setCopy`: every existing value is removed, then one is added.
                let headers = &mut c.data_mut().maps[map];
                headers.retain(|(k, _)| *k != key);
                headers.push((key, value));
                Ok(status::OK)
            })())
        },
    )?;

    l.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Ctx<'_>, map: u32, key: u32, key_len: u32, value: u32, value_len: u32| -> u32 {
            status_of((|| {
                let map = map_index(&mut c, map)?;
                let key = read_str(&mut c, key, key_len)?.to_ascii_lowercase();
                let value = read(&mut c, value, value_len)?;
                record(&mut c, || format!("add_header_map_value {} {key}", MAP_NAMES[map]));
                c.data_mut().maps[map].push((key, value));
                Ok(status::OK)
            })())
        },
    )?;

    l.func_wrap("env", "proxy_remove_header_map_value", |mut c: Ctx<'_>, map: u32, key: u32, key_len: u32| -> u32 {
        status_of((|| {
            let map = map_index(&mut c, map)?;
            let key = read_str(&mut c, key, key_len)?.to_ascii_lowercase();
            record(&mut c, || format!("remove_header_map_value {} {key}", MAP_NAMES[map]));
            c.data_mut().maps[map].retain(|(k, _)| *k != key);
            Ok(status::OK)
        })())
    })?;

    l.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Ctx<'_>, map: u32, ptr_ptr: u32, size_ptr: u32| -> Result<u32> {
            let map = match map_index(&mut c, map) {
                Ok(m) => m,
                Err(s) => return Ok(s),
            };
            record(&mut c, || format!("get_header_map_pairs {}", MAP_NAMES[map]));
            let bytes = serialize_pairs(&c.data().maps[map]);
            return_bytes(&mut c, &bytes, ptr_ptr, size_ptr)
        },
    )?;

    l.func_wrap("env", "proxy_set_header_map_pairs", |mut c: Ctx<'_>, map: u32, ptr: u32, len: u32| -> u32 {
        status_of((|| {
            let map = map_index(&mut c, map)?;
            let bytes = read(&mut c, ptr, len)?;
            let Some(pairs) = deserialize_pairs(&bytes) else {
                c.data_mut().violations.push("malformed header pairs".into());
                return Err(status::BAD_ARGUMENT);
            };
            record(&mut c, || format!("set_header_map_pairs {}", MAP_NAMES[map]));
            c.data_mut().maps[map] = pairs;
            Ok(status::OK)
        })())
    })?;

    l.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Ctx<'_>, path: u32, path_len: u32, ptr_ptr: u32, size_ptr: u32| -> Result<u32> {
            let path = match read(&mut c, path, path_len) {
                Ok(p) => p,
                Err(s) => return Ok(s),
            };
            record(&mut c, || format!("get_property {}", String::from_utf8_lossy(&path).replace('\0', ".")));
            let value = c.data().properties.iter().find(|(p, _)| *p == path).map(|(_, v)| v.clone());
            match value {
                Some(v) => return_bytes(&mut c, &v, ptr_ptr, size_ptr),
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;

    l.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: Ctx<'_>, path: u32, path_len: u32, value: u32, value_len: u32| -> u32 {
            status_of((|| {
                let path = read(&mut c, path, path_len)?;
                let value = read(&mut c, value, value_len)?;
                let properties = &mut c.data_mut().properties;
                properties.retain(|(p, _)| *p != path);
                properties.push((path, value));
                Ok(status::OK)
            })())
        },
    )?;

    l.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Ctx<'_>, kind: u32, name: u32, name_len: u32, ret: u32| -> u32 {
            status_of((|| {
                let name = read_str(&mut c, name, name_len)?;
                let kind = match kind {
                    0 => MetricKind::Counter,
                    1 => MetricKind::Gauge,
                    2 => MetricKind::Histogram,
                    _ => return Err(status::BAD_ARGUMENT),
                };
                record(&mut c, || format!("define_metric {name}"));
                let state = c.data_mut();
                state.metric_values.entry(name.clone()).or_insert(0);
                state.metric_ids.push((name, kind));
                let id = state.metric_ids.len() as u32;
                write(&mut c, ret, &id.to_le_bytes())?;
                Ok(status::OK)
            })())
        },
    )?;

    l.func_wrap("env", "proxy_increment_metric", |mut c: Ctx<'_>, id: u32, offset: i64| -> u32 {
        record(&mut c, || format!("increment_metric {id}"));
        let state = c.data_mut();
        match state.metric_ids.get((id as usize).wrapping_sub(1)) {
            Some((name, MetricKind::Counter | MetricKind::Gauge)) => {
                let v = state.metric_values.get_mut(name).expect("defined with the id");
                *v = v.saturating_add_signed(offset);
                status::OK
            }
            Some((_, MetricKind::Histogram)) => status::BAD_ARGUMENT,
            None => {
                state.violations.push(format!("increment of undefined metric id {id}"));
                status::NOT_FOUND
            }
        }
    })?;

    l.func_wrap("env", "proxy_record_metric", |mut c: Ctx<'_>, id: u32, value: u64| -> u32 {
        let state = c.data_mut();
        match state.metric_ids.get((id as usize).wrapping_sub(1)) {
            Some((name, _)) => {
                let name = name.clone();
                state.metric_values.insert(name, value);
                status::OK
            }
            None => status::NOT_FOUND,
        }
    })?;

    l.func_wrap("env", "proxy_get_metric", |mut c: Ctx<'_>, id: u32, ret: u32| -> u32 {
        status_of((|| {
            let state = c.data();
            let (name, _) = state.metric_ids.get((id as usize).wrapping_sub(1)).ok_or(status::NOT_FOUND)?;
            let value = state.metric_values[name];
            write(&mut c, ret, &value.to_le_bytes())?;
            Ok(status::OK)
        })())
    })?;

    l.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |mut c: Ctx<'_>, name: u32, name_len: u32, args: u32, args_len: u32, _ptr_ptr: u32, _size_ptr: u32| -> u32 {
            status_of((|| {
                let name = read_str(&mut c, name, name_len)?;
                let args = read(&mut c, args, args_len)?;
                record(&mut c, || format!("call_foreign_function {name}"));
                match name.as_str() {
                    "set_envoy_filter_state" => {
                        let Some(state) = decode_filter_state(&args) else {
                            return Err(status::BAD_ARGUMENT);
                        };
                        if !KNOWN_FILTER_STATE_KEYS.contains(&state.path.as_str()) || !c.data().in_stream() {
                            return Err(status::NOT_FOUND);
                        }
                        c.data_mut().filter_state.push(state);
                        Ok(status::OK)
                    }
                    "clear_route_cache" => Ok(status::OK),
                    _ => Err(status::NOT_FOUND),
                }
            })())
        },
    )?;

    l.func_wrap("env", "proxy_set_effective_context", |mut c: Ctx<'_>, context: u32| -> u32 {
        c.data_mut().effective_context = context;
        status::OK
    })?;

    l.func_wrap("env", "proxy_done", |mut c: Ctx<'_>| -> u32 {
        let state = c.data_mut();
        let context = state.effective_context;
        state.done.push(context);
        status::OK
    })?;

    l.func_wrap("env", "proxy_continue_stream", |mut c: Ctx<'_>, stream: u32| -> u32 {
        record(&mut c, || format!("continue_stream {stream}"));
        status::OK
    })?;

    l.func_wrap("env", "proxy_close_stream", |mut c: Ctx<'_>, stream: u32| -> u32 {
        record(&mut c, || format!("close_stream {stream}"));
        status::OK
    })?;

    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_pairs_round_trip() {
        let pairs = vec![(":path".to_string(), b"/".to_vec()), ("x".to_string(), vec![0xff, 0])];
        assert_eq!(deserialize_pairs(&serialize_pairs(&pairs)), Some(pairs));
        assert_eq!(deserialize_pairs(&[1, 0, 0]), None);
    }

    #[test]
    fn filter_state_arguments() {
        let raw = [&[0x0a, 1][..], b"p", &[0x12, 2], b"vv", &[0x18, 2]].concat();
        let state = decode_filter_state(&raw).unwrap();
        assert_eq!((state.path.as_str(), state.value.as_str(), state.span), ("p", "vv", 2));
        assert_eq!(decode_filter_state(&[0x0a, 5, b'x']), None);
        assert_eq!(decode_filter_state(&[0x20, 1]), None);
    }
}
