;; spin says so on stdout, then computes in nested loops forever without a
;; host call: only the runtime's termination check can end it.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "spinning\n")
  (func (export "_start") (local $i i32) (local $j i32) (local $acc i64)
    ;; iovec at 16: {buf: 64, len: 9}; bytes written -> [24]
    (i32.store (i32.const 16) (i32.const 64))
    (i32.store (i32.const 20) (i32.const 9))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (loop $outer
      (local.set $j (i32.const 0))
      (loop $inner
        (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (i32.mul (local.get $i) (local.get $j)))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $inner (i32.lt_u (local.get $j) (i32.const 1000))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $outer))))
