;; reactor has no _start: it is not a WASI command.
(module
  (memory (export "memory") 1)
  (func (export "_initialize")))
