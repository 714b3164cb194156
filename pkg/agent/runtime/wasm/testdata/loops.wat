;; loops computes, in nested loops with several live values, the sum over
;; i, j < 1000 of (i*j + i) mod 251, and exits with that sum mod 256.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $i i32) (local $j i32) (local $sum i32)
    (loop $outer
      (local.set $j (i32.const 0))
      (loop $inner
        (local.set $sum (i32.add (local.get $sum)
          (i32.rem_u (i32.add (i32.mul (local.get $i) (local.get $j)) (local.get $i)) (i32.const 251))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $inner (i32.lt_u (local.get $j) (i32.const 1000))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $i) (i32.const 1000))))
    (call $proc_exit (i32.and (local.get $sum) (i32.const 255)))))
