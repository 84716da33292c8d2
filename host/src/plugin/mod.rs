//! Provider plugins: a sandboxed wasmtime component host (issue 3).
