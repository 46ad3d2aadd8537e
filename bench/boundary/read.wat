;; Boundary microbenchmark (BENCHMARKS.md, "Where a request's cost goes"): callback.wat plus one header read (user-agent): proxy_get_header_map_value.
;; Assembled by binaryen's wasm-as like bench/noop.wat.
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 256) "user-agent")
  (data (i32.const 512) "x-canary-subset")
  (data (i32.const 768) "v2")
  (func (export "proxy_abi_version_0_2_1"))
  ;; Returned values land in one fixed scratch area.
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $get (i32.const 0) (i32.const 256) (i32.const 10) (i32.const 1024) (i32.const 1028)))
    (i32.const 0))
)
