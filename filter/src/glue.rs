//! The proxy-wasm ABI 0.2.1 surface (wasm32 only): exports Envoy calls, imports it provides, and the
//! mapping of both onto [`Filter`] and [`Host`].
//!
//! Why not the proxy-wasm Rust SDK: its dispatcher keeps hash maps of boxed trait objects behind a
//! thread-local (~46 KB of module, a third of the size budget), must fix at root-context creation whether
//! children are HTTP or stream contexts (which a root cannot know: see [`crate::Served`]), and panics — a
//! trap that kills the VM — on any host status it does not expect. The subset of the ABI this filter
//! needs is small: thirteen imports and the callbacks below. Every host status is absorbed here, so nothing a
//! host returns can trap the module.

use std::cell::RefCell;
use std::ptr::null_mut;
use std::rc::Rc;

use crate::{Filter, Host, LogLevel};

/// ABI constants (proxy-wasm spec 0.2.1).
const STATUS_OK: u32 = 0;
const ACTION_CONTINUE: u32 = 0;
const MAP_HTTP_REQUEST_HEADERS: u32 = 0;
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
const METRIC_COUNTER: u32 = 0;
/// How often batched counters reach Envoy (well inside its default 5 s stats flush).
const COUNTER_FLUSH_MS: u32 = 1000;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message: *const u8, size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(kind: u32, start: usize, max: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(map: u32, key: *const u8, key_size: usize, value: *const u8, size: usize) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(path: *const u8, path_size: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_set_property(path: *const u8, path_size: usize, value: *const u8, value_size: usize) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_size: usize,
        args: *const u8,
        args_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
}

/// Calls a host function that returns a buffer it allocated through [`proxy_on_memory_allocate`], and takes
/// ownership of that buffer. `None` for any non-OK status.
fn returned_bytes(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0);
    if call(&mut data, &mut size) != STATUS_OK {
        return None;
    }
    if data.is_null() {
        return Some(Vec::new());
    }
    // SAFETY: the host filled `data` with a buffer of `size` bytes that it obtained from
    // `proxy_on_memory_allocate(size)`, i.e. from a `Vec<u8>` of exactly that capacity.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Guest memory for the host to return data in (ABI: `proxy_on_memory_allocate`; the C-style `malloc`
/// alias is not needed, proxy-wasm hosts look for either).
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(size);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Reactor entry point some hosts call before anything else; nothing to initialise.
#[no_mangle]
pub extern "C" fn _initialize() {}

/// The Envoy side of [`Host`]. Pointers passed to imports are valid for the call (borrowed slices).
struct Envoy;

impl Host for Envoy {
    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        // SAFETY: see `returned_bytes`; `name` outlives the call.
        returned_bytes(|data, size| unsafe {
            proxy_get_header_map_value(MAP_HTTP_REQUEST_HEADERS, name.as_ptr(), name.len(), data, size)
        })
    }

    fn request_headers(&self) -> Option<Vec<u8>> {
        // SAFETY: see `returned_bytes`.
        returned_bytes(|data, size| unsafe { proxy_get_header_map_pairs(MAP_HTTP_REQUEST_HEADERS, data, size) })
    }

    fn replace_request_header(&self, name: &str, value: &str) {
        // SAFETY: both slices outlive the call.
        unsafe {
            proxy_replace_header_map_value(
                MAP_HTTP_REQUEST_HEADERS,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            );
        }
    }

    fn remove_request_header(&self, name: &str) {
        // SAFETY: `name` outlives the call.
        unsafe {
            proxy_remove_header_map_value(MAP_HTTP_REQUEST_HEADERS, name.as_ptr(), name.len());
        }
    }

    fn node_label(&self, label: &str) -> Option<Vec<u8>> {
        // Path segments are NUL-separated. `node.…` is empty in Envoy; node metadata lives under `xds.node`.
        let mut path = b"xds\0node\0metadata\0LABELS\0".to_vec();
        path.extend_from_slice(label.as_bytes());
        // SAFETY: see `returned_bytes`; `path` outlives the call.
        returned_bytes(|data, size| unsafe { proxy_get_property(path.as_ptr(), path.len(), data, size) })
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        let mut id = 0;
        // SAFETY: `name` and `id` outlive the call.
        let status = unsafe { proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id) };
        (status == STATUS_OK).then_some(id)
    }

    fn increment_counter(&self, id: u32, by: u64) {
        // SAFETY: plain values.
        unsafe {
            proxy_increment_metric(id, by.min(i64::MAX as u64) as i64);
        }
    }

    fn call_foreign_function(&self, name: &str, args: &[u8]) -> bool {
        // SAFETY: see `returned_bytes`; the slices outlive the call. Any result buffer is dropped.
        returned_bytes(|data, size| unsafe {
            proxy_call_foreign_function(name.as_ptr(), name.len(), args.as_ptr(), args.len(), data, size)
        })
        .is_some()
    }

    fn set_property(&self, path: &str, value: &[u8]) -> bool {
        // SAFETY: both slices outlive the call.
        unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) == STATUS_OK }
    }

    fn log(&self, level: LogLevel, message: &str) {
        // ABI levels: trace 0, debug 1, info 2, warn 3, error 4, critical 5.
        let level = match level {
            LogLevel::Debug => 1,
            LogLevel::Info => 2,
            LogLevel::Warn => 3,
            LogLevel::Error => 4,
        };
        // SAFETY: `message` outlives the call.
        unsafe {
            proxy_log(level, message.as_ptr(), message.len());
        }
    }
}

/// Contexts of this VM. proxy-wasm VMs are single-threaded (one per Envoy worker), so a thread-local
/// is simply the VM's global state.
#[derive(Default)]
struct Contexts {
    /// Root contexts (one per plugin configuration) and their configured filter, once `on_configure` accepted one.
    roots: Vec<(u32, Option<Rc<Filter>>)>,
    /// Request/connection contexts between creation and their first callback. A context is forgotten once
    /// that callback ran (the filter does nothing later in a stream), so this list stays a handful long.
    pending: Vec<(u32, Rc<Filter>)>,
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
}

fn with<T>(f: impl FnOnce(&mut Contexts) -> T) -> T {
    CONTEXTS.with(|c| f(&mut c.borrow_mut()))
}

/// Takes a pending context's filter (its first callback is the only one the filter acts on).
fn take_pending(context_id: u32) -> Option<Rc<Filter>> {
    with(|c| {
        let i = c.pending.iter().rposition(|(id, _)| *id == context_id)?;
        Some(c.pending.swap_remove(i).1)
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_id: u32) {
    with(|c| {
        if parent_id == 0 {
            c.roots.push((context_id, None));
        } else if let Some(filter) = c.roots.iter().find(|(id, _)| *id == parent_id).and_then(|(_, f)| f.clone()) {
            c.pending.push((context_id, filter));
        }
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

/// Parses and validates the plugin configuration; `0` makes Envoy refuse it (the reason is logged).
#[no_mangle]
pub extern "C" fn proxy_on_configure(root_id: u32, size: usize) -> u32 {
    // SAFETY: see `returned_bytes`.
    let config =
        returned_bytes(|data, out| unsafe { proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, size, data, out) })
            .unwrap_or_default();
    let mut nanos = 0;
    // SAFETY: `nanos` outlives the call.
    unsafe {
        proxy_get_current_time_nanoseconds(&mut nanos);
    }
    // Per-root seed: the time differs between workers and reconfigurations, the id between roots
    // configured in the same nanosecond.
    let seed = nanos ^ u64::from(root_id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let Some(filter) = Filter::configure(&Envoy, &config, seed) else {
        return 0;
    };
    let replaced = with(|c| match c.roots.iter_mut().find(|(id, _)| *id == root_id) {
        Some(root) => root.1.replace(Rc::new(filter)),
        None => {
            c.roots.push((root_id, Some(Rc::new(filter))));
            None
        }
    });
    if let Some(old) = replaced {
        old.flush_counters(&Envoy);
    }
    // Counters are batched in the module and handed to Envoy on each tick (see `Filter::flush_counters`).
    // SAFETY: plain value.
    unsafe {
        proxy_set_tick_period_milliseconds(COUNTER_FLUSH_MS);
    }
    1
}

/// Hands the decisions counted since the last tick to Envoy's counters.
#[no_mangle]
pub extern "C" fn proxy_on_tick(root_id: u32) {
    if let Some(filter) = with(|c| c.roots.iter().find(|(id, _)| *id == root_id).and_then(|(_, f)| f.clone())) {
        filter.flush_counters(&Envoy);
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, _headers: usize, _end_of_stream: u32) -> u32 {
    if let Some(filter) = take_pending(context_id) {
        filter.on_request_headers(&Envoy);
    }
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_new_connection(context_id: u32) -> u32 {
    if let Some(filter) = take_pending(context_id) {
        filter.on_new_connection(&Envoy);
    }
    ACTION_CONTINUE
}

/// Called when a context ends. A request/connection context normally left `pending` at its first callback,
/// so for those this finds nothing; a root context (plugin removed or reconfigured, VM shutting down) hands
/// over what it counted since its last tick and is forgotten. `proxy_on_delete` is deliberately not
/// exported: Envoy calls every exported callback for every request, and each crossing of the wasm boundary
/// costs ~1.4k instructions in Envoy (BENCHMARKS.md).
#[no_mangle]
pub extern "C" fn proxy_on_done(context_id: u32) -> u32 {
    let root = with(|c| {
        if let Some(i) = c.pending.iter().position(|(id, _)| *id == context_id) {
            c.pending.swap_remove(i);
        }
        let i = c.roots.iter().position(|(id, _)| *id == context_id)?;
        c.roots.swap_remove(i).1
    });
    if let Some(filter) = root {
        filter.flush_counters(&Envoy);
    }
    1
}
