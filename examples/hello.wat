;; A WASI preview 1 "hello world": writes one line to stdout and exits 0.
;; examples/hello.wasm is this file compiled (a test keeps the two in step);
;; rebuild it with any WAT assembler, e.g. `wat2wasm hello.wat`.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from a WASM function\n")
  (func (export "_start")
    ;; one iovec at 0: pointer 16, length 27
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 27))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
