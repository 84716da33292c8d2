//! Host-side bindings, one module per frozen contract snapshot.
//!
//! Each module is generated from `wit/snapshots/<version>/`, never from the
//! working copy `wit/`, so editing the contract can not silently change
//! what an already released plugin is called with. A later contract adds a
//! module here (e.g. `v0_2` from `wit/snapshots/0.2.0/`) and an adapter in
//! `convert.rs`; the loader picks the module by the version of the
//! `byos3:provider/plugin@X` interface a component exports.

/// Contract `byos3:provider@0.1.0`.
pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/snapshots/0.1.0",
        world: "byos3:provider/provider@0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq],
    });
}

/// The exported interface name carrying a contract version.
pub(crate) const PLUGIN_INTERFACE_PREFIX: &str = "byos3:provider/plugin@";
/// The imported interfaces the host provides, by contract version.
pub(crate) const HOST_IMPORT_PREFIXES: &[&str] = &["byos3:provider/bucket@", "byos3:provider/types@"];
