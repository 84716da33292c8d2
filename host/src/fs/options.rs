//! Mount options: what an operator or the lifecycle layer can tune.

use std::path::PathBuf;
use std::time::Duration;

/// Options of one mount. `Default` gives the settings `byos3 mount` uses.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Refuse every change with `EROFS`.
    pub read_only: bool,
    /// Owner reported for every file and directory.
    pub uid: u32,
    /// Group reported for every file and directory.
    pub gid: u32,
    /// Permission bits of files (S3 keeps none of its own).
    pub file_mode: u16,
    /// Permission bits of directories.
    pub dir_mode: u16,
    /// How long the kernel and the inode table trust an attribute.
    pub metadata_ttl: Duration,
    /// How long "no such file" is trusted.
    pub negative_ttl: Duration,
    /// How long a directory listing answers lookups and readdir.
    pub listing_ttl: Duration,
    /// Most data requests (ranged GETs, part uploads) in flight at once.
    pub max_concurrent_requests: usize,
    /// Size of multipart parts for streamed writes and staged uploads
    /// (grows past 1,000 parts unless the provider needs uniform parts).
    pub part_size: u64,
    /// Concurrent part uploads of one file.
    pub upload_concurrency: usize,
    /// Where overwrites, random writes, truncates and appends are staged.
    pub staging_dir: PathBuf,
    /// Most bytes staged at once over all open files; past it, `ENOSPC`.
    pub staging_cap: u64,
    /// Memory the mount process may use. Prefetch segments and upload
    /// parts (in flight and being filled) share five eighths of it; the
    /// rest (at most 96 MiB) is left for what is not counted buffer by buffer.
    pub memory_budget: u64,
    /// Largest prefetch window of one sequential reader.
    pub max_prefetch: u64,
    /// Let users other than the mounting one use the mount.
    pub allow_other: bool,
    /// When the mount is busy at unmount time, detach it lazily instead of failing.
    pub lazy_unmount: bool,
    /// Kernel readahead of the mount, KiB. The kernel offers FUSE only
    /// 128 KiB at start; as root the daemon raises it after mounting so
    /// sequential reads arrive as 1 MiB requests, many in flight.
    pub kernel_readahead_kb: u32,
    /// FUSE worker threads reading kernel requests.
    pub fuse_threads: usize,
    /// Threads of the mount's own async runtime.
    pub runtime_threads: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Self {
            read_only: false,
            uid,
            gid,
            file_mode: 0o644,
            dir_mode: 0o755,
            metadata_ttl: Duration::from_secs(1),
            negative_ttl: Duration::from_secs(1),
            listing_ttl: Duration::from_secs(1),
            max_concurrent_requests: 64,
            part_size: 8 * 1024 * 1024,
            upload_concurrency: 8,
            staging_dir: std::env::temp_dir(),
            staging_cap: 10 * 1024 * 1024 * 1024,
            memory_budget: 256 * 1024 * 1024,
            max_prefetch: 64 * 1024 * 1024,
            allow_other: false,
            lazy_unmount: false,
            kernel_readahead_kb: 4096,
            fuse_threads: 4,
            runtime_threads: 4,
        }
    }
}
