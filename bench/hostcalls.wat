;; The floor for S3/S4 in proxy-wasm: the exports of bench/noop.wat plus exactly the host calls our filter makes
;; for those policies (read user-agent, replace the subset header), with no logic at all. What our filter
;; costs above this is the cost of its own code. Assembled by binaryen's wasm-as, like noop.wat.
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 256) "user-agent")
  (data (i32.const 512) "x-canary-subset")
  (data (i32.const 768) "v2")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  ;; Every value the host returns lands in one fixed scratch area (the headers it reads are far smaller).
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; map 0 = request headers; the value's pointer and size are written at 1024 and 1028.
    (drop (call $get (i32.const 0) (i32.const 256) (i32.const 10) (i32.const 1024) (i32.const 1028)))
    (drop (call $replace (i32.const 0) (i32.const 512) (i32.const 15) (i32.const 768) (i32.const 2)))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
)
