;; tiny is the smallest CGI function: it writes a header, an empty line and
;; "hello from wat\n" to stdout with one fd_write and returns from _start.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; the response, 41 bytes at offset 16
  (data (i32.const 16) "Content-Type: text/plain\n\nhello from wat\n")
  (func (export "_start")
    ;; one iovec at offset 0: {buf: 16, len: 41}
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 41))
    ;; fd_write(stdout, iovs=0, iovs_len=1, nwritten=8)
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
