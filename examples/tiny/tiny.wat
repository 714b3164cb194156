;; tiny is the smallest useful WASI preview 1 command: it writes "tiny\n" to
;; stdout with fd_write and exits 0 by returning from _start.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; the bytes to print, at offset 16
  (data (i32.const 16) "tiny\n")
  (func (export "_start")
    ;; one iovec at offset 0: {buf: 16, len: 5}
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 5))
    ;; fd_write(stdout, iovs=0, iovs_len=1, nwritten=8)
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
