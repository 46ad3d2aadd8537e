;; The floor of the proxy-wasm boundary for a TCP proxy (S6): a network-filter module exporting the
;; per-connection callbacks our filter exports (context create, new connection, done), each doing nothing and
;; calling no host function, so tcp_proxy takes its own cluster. Our filter additionally names the cluster
;; through one foreign-function call (set_envoy_filter_state); this floor leaves that out, so it is the
;; boundary's floor, not the job's. Assembled by binaryen's wasm-as, like noop.wat.
(module
  (memory (export "memory") 2)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_new_connection") (param i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
)
