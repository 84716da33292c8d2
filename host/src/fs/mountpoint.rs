//! Mount point chores: stale mounts left by a crashed daemon, and
//! unmounting (busy → a clear error, or a lazy detach by option).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::FsError;

/// Whether `path` is currently a mount point (per /proc/self/mountinfo).
pub(crate) fn is_mount_point(path: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(path).or_else(|_| Ok::<_, std::io::Error>(path.to_path_buf())) else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| s.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str())))
        .unwrap_or(false)
}

/// Prepares `path` for a new mount: a stale FUSE mount (its daemon gone,
/// every access failing with `ENOTCONN`) is detached; a live mount is
/// refused.
pub(crate) fn prepare(path: &Path) -> Result<(), FsError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            if !is_mount_point(path) {
                return Ok(());
            }
            // Attributes may be cached by the kernel; statfs always asks the
            // daemon, so a dead one shows up as ENOTCONN here.
            if statfs_errno(path) == Some(libc::ENOTCONN) {
                tracing::warn!(path = %path.display(), "cleaning up a stale mount (transport endpoint not connected)");
                unmount(path, true)?;
                return if is_mount_point(path) {
                    Err(FsError::Stale {
                        path: path.to_path_buf(),
                    })
                } else {
                    Ok(())
                };
            }
            Err(FsError::AlreadyMounted {
                path: path.to_path_buf(),
            })
        }
        Ok(_) => Err(FsError::NotADirectory {
            path: path.to_path_buf(),
        }),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            tracing::warn!(path = %path.display(), "cleaning up a stale mount (transport endpoint not connected)");
            unmount(path, true)?;
            match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => Ok(()),
                _ => Err(FsError::Stale {
                    path: path.to_path_buf(),
                }),
            }
        }
        Err(e) => Err(FsError::Mountpoint {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn statfs_errno(path: &Path) -> Option<i32> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a valid path and a zeroed out-struct of the right type.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc != 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
}

/// Unmounts `path`: `EBUSY` becomes [`FsError::Busy`] unless `lazy`, which
/// detaches it now and lets the kernel finish when the last user leaves.
pub(crate) fn unmount(path: &Path, lazy: bool) -> Result<(), FsError> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| FsError::NotADirectory {
        path: path.to_path_buf(),
    })?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::umount2(c.as_ptr(), flags) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EBUSY) => Err(FsError::Busy {
            path: path.to_path_buf(),
        }),
        Some(libc::EINVAL) if !is_mount_point(path) => Ok(()),
        Some(libc::EPERM) => {
            // Not root: the setuid helper may unmount our own FUSE mounts.
            let mut cmd = std::process::Command::new("fusermount3");
            cmd.arg("-u").arg("-q");
            if lazy {
                cmd.arg("-z");
            }
            let out = cmd.arg("--").arg(path).output().map_err(|e| FsError::Unmount {
                path: path.to_path_buf(),
                source: e,
            })?;
            if out.status.success() {
                Ok(())
            } else if String::from_utf8_lossy(&out.stderr).contains("busy") {
                Err(FsError::Busy {
                    path: path.to_path_buf(),
                })
            } else {
                Err(FsError::Unmount {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
                })
            }
        }
        _ => Err(FsError::Unmount {
            path: path.to_path_buf(),
            source: err,
        }),
    }
}

/// Sets the kernel readahead of the mount at `path` (its backing device
/// info in sysfs). Needs root; without it the kernel default stays.
pub(crate) fn set_readahead(path: &Path, kb: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else { return };
    let dev = meta.dev();
    let file = format!("/sys/class/bdi/{}:{}/read_ahead_kb", libc::major(dev), libc::minor(dev));
    if let Err(e) = std::fs::write(&file, kb.to_string()) {
        tracing::debug!(file, error = %e, "cannot raise the kernel readahead");
    }
}
