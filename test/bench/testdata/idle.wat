;; idle is the smallest workload that stays up: a WASI preview 1 command that
;; sleeps an hour at a time, forever, with poll_oneoff. BenchmarkAgentIdleRSS
;; runs it to tell the agent's own cost per workload from a Go module's.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
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
