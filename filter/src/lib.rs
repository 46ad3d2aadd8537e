//! canary-filter: the proxy-wasm module Envoy loads (HTTP `envoy.filters.http.wasm` and TCP
//! `envoy.filters.network.wasm`), as thin glue around [`canary_eval::Policy`].
//!
//! Everything that decides anything lives in plain Rust behind the [`Host`] trait ([`Filter`]), so it is
//! unit-tested natively; `glue` (wasm32 only) implements the proxy-wasm ABI 0.2.1 surface it needs and maps
//! it onto [`Filter`]. The ABI glue is hand-written rather than the proxy-wasm SDK (`glue`, ~46 KB saved).
//! The configuration is decoded by serde_json through [`canary_eval::Policy::from_json`], the same `Config`
//! type and derives as the CLI (one decoder for all; it runs once per configure, so it costs no per-request
//! time), and memory comes from std's allocator (dlmalloc on wasm32). Module budget: 512 KiB after wasm-opt
//! (`scripts/build-filter.sh` warns above it; 256 KiB until the lazy DFA, ARCHITECTURE.md "The `~` engine").
//!
//! # Behaviour
//! * **Configuration** (plugin configuration = the JSON `canaryc compile` prints, optionally with
//!   `settings`): parsed and validated once per root context. A config that does not validate is refused:
//!   the filter logs `canary: refusing configuration: <reason>` at error level and returns `false` from
//!   `on_configure`, so Envoy rejects it. It never traps.
//! * **HTTP vs TCP**: proxy-wasm does not tell a root context whether an HTTP or a network filter loaded it,
//!   so each request/connection context learns it from its first callback (`on_request_headers` or
//!   `on_new_connection`), and the configuration says which service each kind serves ([`Served`]).
//! * **HTTP**: the service is `settings.service`, else the request's `:authority`
//!   ([`canary_eval::Policy::service_for_authority`]). The decision is written to the subset header
//!   (default `x-canary-subset`) with one *replace*, which in Envoy removes every existing value first, so a
//!   forged header — in any case, repeated — never survives. No decision removes the header, so Envoy's
//!   default route applies. With `settings.trust_incoming`, a request that already carries the header is
//!   left untouched (not evaluated, not counted).
//! * **TCP**: the service is `settings.service`, else the policy's only `tcp` service (with several and no
//!   setting, connections get no decision and a warning is logged once). On a new connection, the decided
//!   subset becomes the `envoy.tcp_proxy.cluster` filter state (cluster name from `settings.cluster`, default
//!   `{service}-{subset}`) via Envoy's foreign function `set_envoy_filter_state`. No decision: nothing is
//!   set and tcp_proxy's configured cluster applies.
//! * **Headers sent several times** count with every value, as in Envoy's own routes: a header condition
//!   holds when any value passes it, a sticky header hashes all values ([`canary_eval::Request`]).
//!   `proxy_get_header_map_value` returns a header's first entry only, so a policy that reads a header that
//!   may repeat reads the whole header map with one host call (`proxy_get_header_map_pairs`,
//!   [`header_map`]); one that reads only headers Envoy keeps as one entry (pseudo-headers, `user-agent`)
//!   reads those by value, which is cheaper ([`HeaderReads`]).
//! * **Host calls cost** (each is a few % of throughput), so request attributes are fetched lazily — only
//!   what the deciding path reads, each at most once per request (the map at most once) — and node-metadata
//!   labels (`source` conditions) once per root context. Envoy also calls every callback the module exports on every
//!   request, so it exports only those it needs: `proxy_on_context_create` (which root a request belongs
//!   to), `proxy_on_request_headers` / `proxy_on_new_connection`, and `proxy_on_done` (which also retires
//!   root contexts); not `proxy_on_delete`. BENCHMARKS.md has what each crossing costs.
//!
//! # Metrics
//! One counter per (service, deciding rule, subset), defined on the first decision it counts (so only
//! outcomes that happen create stats). Decisions are counted in the module and added to Envoy's counters on
//! a 1 s tick and when the root context goes away, saving a host call per request. The names encode their
//! labels ([`canary_eval::telemetry`]): `canary.service=.=frontend;.;rule=.=3;.;subset=.=v2;.;decisions_total`,
//! which Envoy's tag extraction (the `stats_tags` `canaryc manifest --kind envoy` writes, or Istio's
//! `extraStatTags`) shows in Prometheus as `canary_decisions_total{service="frontend",rule="3",subset="v2"}`.
//! `rule` is the policy line, `default` (the default applied) or `none` (nothing decided); `subset` is empty
//! when nothing was decided; `service` is `*` for HTTP requests whose `:authority` names no declared service
//! (only top-level rules apply; a per-host name would let clients create unbounded stats).
//!
//! # Access log
//! With `settings.access_log`, each decision is also written as the property `canary_decision`
//! (`proxy_set_property`), which Envoy keeps as filter state `wasm.canary_decision` for access logs
//! (`%FILTER_STATE(wasm.canary_decision:PLAIN)%` prints `service=frontend rule=3 subset=v2`). The value is built
//! once per outcome; the host call is per request, hence opt-in (BENCHMARKS.md, "Decisions in the access log").

mod engine;
pub mod filter_state;
pub mod header_map;
pub mod metrics;

#[cfg(target_arch = "wasm32")]
mod glue;

pub use engine::{Filter, HeaderReads, Host, LogLevel, Served};
