;; pause is the least a workload can be, like Kubernetes' pause container: a
;; WASI preview 1 command that writes "pause" to stdout once, so that its start
;; shows in its log, then sleeps an hour at a time until it is stopped. The
;; pod start benchmark runs it to measure edgefabric's cost of starting a pod
;; rather than a language runtime's, as Kubernetes' own pod startup SLO is
;; measured with pause pods.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; the bytes to print, at offset 200
  (data (i32.const 200) "pause\n")
  (func (export "_start")
    ;; one iovec at 144: {buf: 200, len: 6}; fd_write(stdout, 144, 1, nwritten=152)
    (i32.store (i32.const 144) (i32.const 200))
    (i32.store (i32.const 148) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 144) (i32.const 1) (i32.const 152)))
    (loop $forever
      ;; one subscription at 0 (48 bytes): userdata 0, tag 0 (clock),
      ;; clock id 1 (monotonic), timeout 1 h, precision 0, flags 0 (relative)
      (i64.store (i32.const 0) (i64.const 0))
      (i32.store8 (i32.const 8) (i32.const 0))
      (i32.store (i32.const 16) (i32.const 1))
      (i64.store (i32.const 24) (i64.const 3600000000000))
      (i64.store (i32.const 32) (i64.const 0))
      (i32.store16 (i32.const 40) (i32.const 0))
      ;; the event goes to 64, the number of events to 128
      (drop (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
      (br $forever))))
