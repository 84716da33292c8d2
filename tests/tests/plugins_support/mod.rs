//! Shared by the plugin tests: where the built plugins are, and a runtime.

#![allow(dead_code)]

use std::path::PathBuf;

use byos3::plugin::{default_plugin_dir, Limits, PluginHost};

/// The bundled plugins (`plugins/dist`), which must have been built.
pub fn dist() -> PathBuf {
    let dir = default_plugin_dir();
    assert!(
        dir.join("s3.wasm").is_file(),
        "the bundled plugins are not built: {} has no s3.wasm; run scripts/build-plugins",
        dir.display()
    );
    dir
}

/// A test fixture plugin (`plugins/dist/fixtures/NAME.wasm`).
pub fn fixture(name: &str) -> PathBuf {
    let f = dist().join("fixtures").join(format!("{name}.wasm"));
    assert!(
        f.is_file(),
        "fixture {} is missing; run scripts/build-plugins",
        f.display()
    );
    f
}

/// The bundled plugins' files plus the named fixtures.
pub fn files_with(fixtures: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dist())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    files.extend(fixtures.iter().map(|f| fixture(f)));
    files
}

pub use byos3_tests::runtime;

/// A compiled-plugin cache shared by the tests (and kept between runs).
pub fn cache() -> PathBuf {
    byos3_tests::cache_dir().join("test-plugin-cache")
}

/// Loads the bundled plugins.
pub async fn bundled() -> PluginHost {
    PluginHost::load_dir(&dist(), Some(&cache()), Limits::default())
        .await
        .unwrap()
}
