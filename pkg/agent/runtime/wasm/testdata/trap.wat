;; trap hits unreachable as soon as it starts.
(module
  (memory (export "memory") 1)
  (func (export "_start") unreachable))
