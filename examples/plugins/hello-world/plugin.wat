;; hello-world: a minimal proxy-wasm (ABI 0.2.1) filter that adds `x-hello: higress` to every
;; response. Small enough to read, real enough for Envoy to load: the example plugin of the
;; embedded store, built by `npm run build:examples` into examples/store/.
(module
  (import "env" "proxy_log" (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $proxy_add_header_map_value (param i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))

  (data (i32.const 16) "x-hello")
  (data (i32.const 32) "higress")
  (data (i32.const 48) "hello-world plugin started")

  (func (export "_initialize"))
  (func (export "proxy_abi_version_0_2_1"))

  ;; The host copies strings into guest memory through this bump allocator.
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.lt_s
              (memory.grow (i32.add (i32.shr_u (local.get $size) (i32.const 16)) (i32.const 1)))
              (i32.const 0))
          (then (unreachable)))))
    (local.get $ptr))

  (func (export "proxy_on_context_create") (param $context i32) (param $parent i32))

  (func (export "proxy_on_vm_start") (param $root i32) (param $config_size i32) (result i32)
    ;; log level 2 = info
    (drop (call $proxy_log (i32.const 2) (i32.const 48) (i32.const 26)))
    (i32.const 1))

  (func (export "proxy_on_configure") (param $root i32) (param $config_size i32) (result i32)
    (i32.const 1))

  (func (export "proxy_on_request_headers") (param $context i32) (param $headers i32) (param $end i32) (result i32)
    (i32.const 0)) ;; Action::Continue

  ;; map type 2 = response headers
  (func (export "proxy_on_response_headers") (param $context i32) (param $headers i32) (param $end i32) (result i32)
    (drop (call $proxy_add_header_map_value
      (i32.const 2) (i32.const 16) (i32.const 7) (i32.const 32) (i32.const 7)))
    (i32.const 0))

  (func (export "proxy_on_done") (param $context i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param $context i32))
)
