//! On-disk cache of compiled components, keyed by the component's sha256
//! and the engine's compatibility hash (wasmtime version + configuration),
//! so a restart with unchanged plugins does not compile again.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

pub(crate) struct Cache {
    dir: PathBuf,
    engine_key: String,
}

impl Cache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            dir: dir.to_path_buf(),
            engine_key: format!("wasmtime38-{:016x}", h.finish()),
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of the component with this hash, if present
    /// and intact. A damaged or stale entry is ignored (and recompiled).
    pub(crate) fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        let bytes = std::fs::read(&path).ok()?;
        let (body, digest) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if Sha256::digest(body).as_slice() != digest {
            tracing::warn!(path = %path.display(), "ignoring a damaged compiled-plugin cache entry");
            return None;
        }
        // SAFETY: the bytes were produced by `Component::serialize` of an
        // engine with the same compatibility hash (it is in the file name),
        // written by this host into its own cache directory, and their
        // checksum matches, so they are not truncated or altered by accident.
        match unsafe { Component::deserialize(engine, body) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unusable compiled-plugin cache entry");
                None
            }
        }
    }

    /// Stores a compiled component. Failures only cost a recompilation
    /// later, so they are logged, not returned.
    pub(crate) fn store(&self, sha256: &str, component: &Component) {
        let result = (|| -> anyhow::Result<()> {
            let mut bytes = component.serialize()?;
            let digest = Sha256::digest(&bytes);
            bytes.extend_from_slice(&digest);
            std::fs::create_dir_all(&self.dir)?;
            let path = self.path(sha256);
            // Unique per writer: loads in several threads may race here.
            let tmp = path.with_extension(format!("tmp{}-{:016x}", std::process::id(), rand::random::<u64>()));
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the compiled-plugin cache");
        }
    }
}
