;; elements fills a function table from two element segments and calls
;; through it: the first only "ref.func" entries (local functions and an
;; imported one), which wazero patch 0010 applies without evaluating each
;; initializer, the second with a null entry, which takes the general path.
;; It exits with 7 + 5 + 7 = 19, through proc_exit in the table.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (type $get (func (result i32)))
  (type $void (func (param i32)))
  (table 5 funcref)
  (elem (i32.const 0) func $seven $five $exit)
  (elem (i32.const 3) funcref (ref.null func) (ref.func $seven))
  (memory (export "memory") 1)
  (func $seven (result i32) (i32.const 7))
  (func $five (result i32) (i32.const 5))
  (func (export "_start")
    (call_indirect (type $void)
      (i32.add
        (i32.add
          (call_indirect (type $get) (i32.const 0))
          (call_indirect (type $get) (i32.const 1)))
        (call_indirect (type $get) (i32.const 4)))
      (i32.const 2))))
