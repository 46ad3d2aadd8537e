;; The floor of the proxy-wasm boundary: a module with the same exports Envoy calls on our filter per
;; request (context create, on_request_headers, done), each doing nothing and calling no host function.
;; Assembled by binaryen's wasm-as (build/node, installed by scripts/build-filter.sh).
(module
  (memory (export "memory") 2)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  ;; Never called (the module asks the host for nothing); a fixed scratch area keeps it valid.
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
)
