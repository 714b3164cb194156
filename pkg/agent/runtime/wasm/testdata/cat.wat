;; cat copies in.txt from the first preopened directory (fd 3) to stdout.
;; It exits 10 if the file cannot be opened and 11 if it cannot be read.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "in.txt")
  (func (export "_start")
    ;; path_open(fd 3, no dirflags, "in.txt", no oflags, all rights, fd -> [0])
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 6)
          (i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 0))
      (then (call $proc_exit (i32.const 10))))
    ;; one iovec at 16: {buf: 1024, len: 1024}; bytes read -> [24]
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.const 1024))
    (if (call $fd_read (i32.load (i32.const 0)) (i32.const 16) (i32.const 1) (i32.const 24))
      (then (call $proc_exit (i32.const 11))))
    (i32.store (i32.const 20) (i32.load (i32.const 24)))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 28)))))
