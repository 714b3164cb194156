;; data.wat prints two strings from its data segments, one in each of two
;; OS pages, then overwrites their first bytes: a later instance of the
;; same module must print them unchanged.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "original\n")
  (data (i32.const 40000) "second\n")
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))))
  (func (export "_start")
    (call $print (i32.const 100) (i32.const 9))
    (call $print (i32.const 40000) (i32.const 7))
    (i32.store8 (i32.const 100) (i32.const 88))
    (i32.store8 (i32.const 40000) (i32.const 88))))
