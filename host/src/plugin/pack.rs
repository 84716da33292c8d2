//! Core module → component. `wit-bindgen` embeds the component type in the
//! core module it builds; `wit-component` wraps the module into a
//! component. No WASI adapter: plugins import only the host's interfaces.

/// Packing a core module failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot turn the core module into a component: {0}")]
pub struct PackError(String);

/// Whether `bytes` is a component (as opposed to a core module).
pub fn is_component(bytes: &[u8]) -> bool {
    wasmparser::Parser::is_component(bytes)
}

/// Wraps a core module built by `wit-bindgen` into a validated component.
/// A component is returned unchanged.
pub fn componentize(bytes: &[u8]) -> Result<Vec<u8>, PackError> {
    if is_component(bytes) {
        return Ok(bytes.to_vec());
    }
    if !wasmparser::Parser::is_core_wasm(bytes) {
        return Err(PackError("not a WebAssembly module or component".into()));
    }
    wit_component::ComponentEncoder::default()
        .module(bytes)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| PackError(format!("{e:#}")))
}
