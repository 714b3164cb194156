;; loop computes forever without a host call, before writing anything.
(module
  (memory (export "memory") 1)
  (func (export "_start") (local $i i64)
    (loop $more
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $more))))
