;; The proxy-wasm floor for a policy that reads nothing (S1, S2, S5 on forecast's sidecar: a split, a default,
;; or a `source` condition read once per configuration): the exports of bench/noop.wat plus the one host call
;; such a decision needs per request (replace the subset header), and no logic. Assembled by binaryen's wasm-as.
(module
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 512) "x-canary-subset")
  (data (i32.const 768) "v2")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; map 0 = request headers
    (drop (call $replace (i32.const 0) (i32.const 512) (i32.const 15) (i32.const 768) (i32.const 2)))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
)
