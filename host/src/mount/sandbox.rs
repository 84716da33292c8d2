//! Sandboxes as the embedding runtime sees them: an id that maps to a root
//! directory on the host. byos3 mounts disks under that root; what the root
//! is (a container's rootfs, a VM's shared directory, a plain directory) is
//! the runtime's business, told through [`SandboxResolver`].

use std::path::{Path, PathBuf};

/// Where a sandbox's filesystem lives on the host, and whether it is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRoot {
    /// Host directory that is `/` for the sandbox; mount paths are resolved under it.
    pub root: PathBuf,
    /// Mounts are only made into running sandboxes.
    pub running: bool,
}

/// Why a sandbox could not be resolved or prepared.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No sandbox has this id.
    #[error("sandbox {0:?} does not exist")]
    NotFound(String),
    /// The id is not 1 to 64 ASCII letters, digits, `-` or `_`.
    #[error("sandbox id {0:?} is not valid: use letters, digits, '-' and '_' (at most 64)")]
    InvalidId(String),
    /// A filesystem error on the sandbox's root (e.g. creating or removing it).
    #[error("sandbox {id:?}: {source}")]
    Io {
        /// The sandbox id.
        id: String,
        /// The filesystem error.
        source: std::io::Error,
    },
}

/// Maps sandbox ids to their roots. Implemented by the embedding runtime;
/// [`DirectoryResolver`] is the daemon's default.
pub trait SandboxResolver: Send + Sync + std::fmt::Debug + 'static {
    /// The root of `id`, or `NotFound`.
    fn resolve(&self, id: &str) -> Result<SandboxRoot, SandboxError>;

    /// Prepares a new sandbox's root (the daemon's own sandboxes). Runtimes
    /// that create sandboxes themselves may return `resolve(id)`.
    fn create(&self, id: &str) -> Result<SandboxRoot, SandboxError>;

    /// Removes what `create` made. Called after every disk is detached.
    fn destroy(&self, id: &str) -> Result<(), SandboxError>;
}

/// One directory per sandbox under a base directory (`<state>/sandboxes/<id>`).
#[derive(Debug, Clone)]
pub struct DirectoryResolver {
    base: PathBuf,
}

impl DirectoryResolver {
    /// A resolver keeping sandbox roots under `base`; nothing is created until [`SandboxResolver::create`].
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    /// The directory holding one subdirectory per sandbox.
    pub fn base(&self) -> &Path {
        &self.base
    }

    fn dir(&self, id: &str) -> Result<PathBuf, SandboxError> {
        let valid =
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(SandboxError::InvalidId(id.to_string()));
        }
        Ok(self.base.join(id))
    }
}

impl SandboxResolver for DirectoryResolver {
    fn resolve(&self, id: &str) -> Result<SandboxRoot, SandboxError> {
        let root = self.dir(id)?;
        if !root.is_dir() {
            return Err(SandboxError::NotFound(id.to_string()));
        }
        Ok(SandboxRoot { root, running: true })
    }

    fn create(&self, id: &str) -> Result<SandboxRoot, SandboxError> {
        let root = self.dir(id)?;
        std::fs::create_dir_all(&root).map_err(|source| SandboxError::Io {
            id: id.to_string(),
            source,
        })?;
        Ok(SandboxRoot { root, running: true })
    }

    fn destroy(&self, id: &str) -> Result<(), SandboxError> {
        let root = self.dir(id)?;
        // Only empty directories are removed: a mount point that is still
        // mounted, or files the runtime put there, are never deleted.
        remove_empty_tree(&root).map_err(|source| SandboxError::Io {
            id: id.to_string(),
            source,
        })
    }
}

/// Removes `dir` and the empty directories below it; leaves anything else.
fn remove_empty_tree(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_empty_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_resolver_creates_resolves_and_destroys() {
        let base = tempfile::tempdir().unwrap();
        let r = DirectoryResolver::new(base.path());
        assert!(matches!(r.resolve("sb1"), Err(SandboxError::NotFound(_))));
        let root = r.create("sb1").unwrap();
        assert!(root.running && root.root.is_dir());
        assert_eq!(r.resolve("sb1").unwrap(), root);
        std::fs::create_dir_all(root.root.join("mnt/data")).unwrap();
        r.destroy("sb1").unwrap();
        assert!(!root.root.exists());
    }

    #[test]
    fn destroy_keeps_files_it_did_not_make() {
        let base = tempfile::tempdir().unwrap();
        let r = DirectoryResolver::new(base.path());
        let root = r.create("sb2").unwrap();
        std::fs::write(root.root.join("keep.txt"), b"x").unwrap();
        r.destroy("sb2").unwrap();
        assert!(root.root.join("keep.txt").exists());
    }

    #[test]
    fn ids_cannot_escape_the_base() {
        let r = DirectoryResolver::new("/tmp/x");
        for bad in ["", "..", "a/b", "../etc", "a b"] {
            assert!(matches!(r.create(bad), Err(SandboxError::InvalidId(_))), "{bad:?}");
        }
    }
}
