//! The FUSE filesystem over a bucket prefix (issue 5).
//!
//! [`mount`] shows the objects under a key prefix as files and the
//! `/`-separated prefixes as directories, at a local path. Module map:
//! - `inode`: stable inode numbers and cached attributes;
//! - `listing`: delimited listings and their TTL cache (`ls -l` needs no HEAD);
//! - `read`: ranged GETs behind a growing prefetch window, bounded by `budget`
//!   (`alloc` keeps the process's memory close to what the budget counts);
//! - `write`, `staging`: streamed multipart uploads for new files, staged
//!   in-place changes uploaded on close/fsync;
//! - `core`: the operations; `fuse`: the fuser binding; `mountpoint`:
//!   stale-mount cleanup and unmounting.
//!
//! SEMANTICS.md at the repository root says what each POSIX call does.

mod alloc;
mod budget;
mod core;
mod fuse;
mod inode;
mod listing;
mod mountpoint;
mod mtime;
mod options;
mod read;
mod staging;
mod streams;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use options::MountOptions;

use crate::s3::{S3Client, StatsSnapshot};

/// Why mounting or unmounting failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The key prefix has an empty, `.` or `..` segment.
    #[error("invalid key prefix {prefix:?}: {reason}")]
    InvalidPrefix {
        /// The prefix as given.
        prefix: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A live mount is already at the path; a stale one would have been cleaned up instead.
    #[error("{path} is already a mount point; unmount it first")]
    AlreadyMounted {
        /// The mount point.
        path: PathBuf,
    },
    /// The mount point exists but is not a directory (or is not a valid path).
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The mount point.
        path: PathBuf,
    },
    /// A stale FUSE mount (its daemon gone) is at the path and detaching it did not work.
    #[error("{path} is a stale mount that could not be cleaned up; try `fusermount3 -uz {path}`")]
    Stale {
        /// The mount point.
        path: PathBuf,
    },
    /// The mount point cannot be inspected (missing, no permission, ...).
    #[error("cannot use {path} as a mount point: {source}")]
    Mountpoint {
        /// The mount point.
        path: PathBuf,
        /// The error from `stat`.
        source: std::io::Error,
    },
    /// [`MountOptions::staging_dir`] could not be created.
    #[error("cannot create the staging directory {path}: {source}")]
    Staging {
        /// The staging directory.
        path: PathBuf,
        /// The error from creating it.
        source: std::io::Error,
    },
    /// The mount's tokio runtime could not be started.
    #[error("cannot start the filesystem's runtime: {0}")]
    Runtime(std::io::Error),
    /// The kernel mount (or starting the FUSE session thread) failed.
    #[error("mounting at {path} failed: {source} (is fuse3 installed and /dev/fuse available?)")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The error from fuser or the thread spawn.
        source: std::io::Error,
    },
    /// A non-lazy unmount found the mount in use (`EBUSY`); it is still mounted.
    #[error("{path} is busy (a process has a file or directory open there); close it, or unmount lazily")]
    Busy {
        /// The mount point.
        path: PathBuf,
    },
    /// Unmounting failed for another reason; the mount may still be in place.
    #[error("unmounting {path} failed: {source}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// The error from `umount2` or `fusermount3`.
        source: std::io::Error,
    },
    /// Pending changes could not be uploaded, so the mount was not unmounted.
    #[error("pending uploads could not be flushed ({}); the mount was left in place so no data is lost", std::io::Error::from_raw_os_error(*errno))]
    Flush {
        /// The errno the failed upload reported (`EIO` if the flush task vanished).
        errno: i32,
    },
}

/// An unmount that did not happen; the mount is still there and usable.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct UnmountError {
    /// Why the unmount failed.
    pub error: FsError,
    /// The mount, still live: retry, or drop it to detach lazily.
    pub handle: MountHandle,
}

/// Normalises a key prefix: no leading `/`, one trailing `/`, no empty,
/// `.` or `..` segment.
fn normalize_prefix(prefix: &str) -> Result<String, FsError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for seg in trimmed.split('/') {
        let reason = match seg {
            "" => "empty path segment",
            "." | ".." => "`.` and `..` are not allowed",
            _ => continue,
        };
        return Err(FsError::InvalidPrefix {
            prefix: prefix.to_string(),
            reason,
        });
    }
    Ok(format!("{trimmed}/"))
}

/// Mounts the objects of `client`'s bucket under `prefix` at `mountpoint`.
/// Blocks only for the mount itself (milliseconds); the filesystem then
/// runs on its own threads until the handle is unmounted or dropped.
pub fn mount(client: S3Client, prefix: &str, mountpoint: &Path, opts: MountOptions) -> Result<MountHandle, FsError> {
    let prefix = normalize_prefix(prefix)?;
    alloc::tune();
    mountpoint::prepare(mountpoint)?;
    std::fs::create_dir_all(&opts.staging_dir).map_err(|e| FsError::Staging {
        path: opts.staging_dir.clone(),
        source: e,
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.runtime_threads.max(1))
        .thread_name("byos3-fs")
        .enable_all()
        .build()
        .map_err(FsError::Runtime)?;
    let fsname = format!("byos3:{}/{}", client.bucket(), prefix);
    let core = Arc::new(core::Core::new(client, prefix, opts.clone()));
    let fs = fuse::Fs {
        core: core.clone(),
        rt: rt.handle().clone(),
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(fsname),
        fuser::MountOption::Subtype("byos3".into()),
        fuser::MountOption::NoAtime,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::DefaultPermissions,
    ];
    if opts.read_only {
        config.mount_options.push(fuser::MountOption::RO);
    }
    config.acl = if opts.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    config.n_threads = Some(opts.fuse_threads.max(1));
    config.clone_fd = true;
    let mount_err = |e| FsError::Mount {
        path: mountpoint.to_path_buf(),
        source: e,
    };
    let mut session = fuser::Session::new(fs, mountpoint, &config).map_err(mount_err)?;
    let _ = core.notifier.set(session.notifier());
    // Unmounting is ours (busy detection, lazy option); fuser's handle is
    // only consumed afterwards so it does not try again on drop.
    let unmounter = session.unmount_callable();
    let thread = std::thread::Builder::new()
        .name("byos3-fuse".into())
        .spawn(move || session.run())
        .map_err(mount_err)?;
    let session = Session { thread, unmounter };
    if opts.kernel_readahead_kb > 0 {
        mountpoint::set_readahead(mountpoint, opts.kernel_readahead_kb);
    }
    let mountpoint = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    tracing::info!(mountpoint = %mountpoint.display(), "mounted");
    Ok(MountHandle {
        mountpoint,
        core,
        session: Some(session),
        rt: Some(rt),
        lazy: opts.lazy_unmount,
    })
}

struct Session {
    thread: std::thread::JoinHandle<std::io::Result<()>>,
    unmounter: fuser::SessionUnmounter,
}

/// A live mount. Unmount it with [`MountHandle::unmount`]; dropping it
/// flushes what it can and detaches the mount lazily.
pub struct MountHandle {
    mountpoint: PathBuf,
    core: Arc<core::Core>,
    session: Option<Session>,
    rt: Option<tokio::runtime::Runtime>,
    lazy: bool,
}

impl std::fmt::Debug for MountHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountHandle")
            .field("mountpoint", &self.mountpoint)
            .field("prefix", &self.core.prefix)
            .finish()
    }
}

impl MountHandle {
    /// Where the bucket prefix is mounted (canonicalised when possible).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether the FUSE session still serves: `false` once the kernel side
    /// went away (unmounted from outside, connection aborted).
    pub fn is_alive(&self) -> bool {
        self.session.as_ref().is_some_and(|s| !s.thread.is_finished())
    }

    /// Bytes read from and written to the mount by its users (through FUSE,
    /// before any caching or prefetching): `(read, written)`.
    pub fn io_bytes(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.core.bytes_read.load(Relaxed),
            self.core.bytes_written.load(Relaxed),
        )
    }

    /// Request counters of the mount's S3 client.
    pub fn stats(&self) -> StatsSnapshot {
        self.core.client.stats()
    }

    /// Multipart uploads this mount started, failed, and could not abort
    /// (server unreachable): `(key, upload id)`. Retried on flush and unmount.
    pub fn pending_cleanup(&self) -> Vec<(String, String)> {
        self.core.orphans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Bytes of the buffer budget not in use right now.
    pub fn memory_available(&self) -> u64 {
        self.core.budget.available()
    }

    /// Bytes buffers may hold at once: the configured memory budget less
    /// the headroom left for memory not counted buffer by buffer.
    pub fn buffer_budget(&self) -> u64 {
        self.core.budget.capacity()
    }

    /// Inodes the mount keeps now: the names the kernel holds, open
    /// files, and the root. It follows the kernel's inode cache, which
    /// gives names back when it reclaims memory.
    pub fn inodes(&self) -> usize {
        self.core.inodes.len()
    }

    /// Bytes staged locally right now.
    pub fn staged_bytes(&self) -> u64 {
        self.core.staging.used()
    }

    /// Uploads every open file's pending changes. Blocks the calling
    /// thread (use `spawn_blocking` from async code).
    pub fn flush(&self) -> Result<(), FsError> {
        let Some(rt) = &self.rt else { return Ok(()) };
        let (tx, rx) = std::sync::mpsc::channel();
        let core = self.core.clone();
        rt.spawn(async move {
            let _ = tx.send(core.flush_all().await);
        });
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(errno)) => Err(FsError::Flush { errno }),
            Err(_) => Err(FsError::Flush { errno: libc::EIO }),
        }
    }

    /// Flushes, then unmounts. A busy mount fails with [`FsError::Busy`]
    /// and stays mounted, unless `lazy`: then it is detached now and the
    /// filesystem keeps serving the processes still inside until they leave.
    pub fn try_unmount(&mut self, lazy: bool) -> Result<(), FsError> {
        if self.session.is_none() {
            return Ok(());
        }
        self.flush()?;
        mountpoint::unmount(&self.mountpoint, lazy)?;
        self.finish(lazy);
        tracing::info!(mountpoint = %self.mountpoint.display(), lazy, "unmounted");
        Ok(())
    }

    /// Flushes and unmounts (lazily if the options said so). On failure
    /// the mount is still in place and the handle is given back.
    pub fn unmount(mut self) -> Result<(), Box<UnmountError>> {
        let lazy = self.lazy;
        match self.try_unmount(lazy) {
            Ok(()) => Ok(()),
            Err(error) => Err(Box::new(UnmountError { error, handle: self })),
        }
    }

    /// Waits for the FUSE threads (or, after a lazy detach, lets a thread
    /// wait for them) and stops the runtime once they are gone.
    fn finish(&mut self, lazy: bool) {
        let Some(mut session) = self.session.take() else { return };
        // Already unmounted by us: this only disarms fuser's own attempt.
        let _ = session.unmounter.unmount();
        let rt = self.rt.take();
        let join = move || {
            match session.thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "FUSE session ended with an error"),
                Err(_) => tracing::error!("FUSE session thread panicked"),
            }
            if let Some(rt) = rt {
                rt.shutdown_background();
            }
        };
        if lazy {
            std::thread::spawn(join);
        } else {
            join();
        }
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        if self.session.is_none() {
            return;
        }
        if let Err(e) = self.flush() {
            tracing::error!(mountpoint = %self.mountpoint.display(), error = %e, "dropping a mount with unflushed changes");
        }
        match mountpoint::unmount(&self.mountpoint, false) {
            Ok(()) => self.finish(false),
            Err(_) => {
                let _ = mountpoint::unmount(&self.mountpoint, true);
                self.finish(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_prefix;

    #[test]
    fn prefixes_are_normalised_and_checked() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("/a/b/").unwrap(), "a/b/");
        assert_eq!(normalize_prefix("a").unwrap(), "a/");
        assert!(normalize_prefix("a//b").is_err());
        assert!(normalize_prefix("a/../b").is_err());
    }
}
