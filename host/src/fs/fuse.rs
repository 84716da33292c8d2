//! The `fuser::Filesystem` implementation: every callback becomes a task
//! on the mount's runtime that replies when done, so one slow request
//! never holds up the FUSE loop.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::core::{Core, Errno as Eno, SetAttr};
use super::inode::{Kind, Node};
use super::mtime::NewMtime;

pub(crate) struct Fs {
    pub core: Arc<Core>,
    pub rt: tokio::runtime::Handle,
}

fn errno(e: Eno) -> Errno {
    Errno::from_i32(e)
}

fn name_str(name: &OsStr) -> Option<String> {
    name.to_str().map(str::to_string)
}

impl Fs {
    fn ttl(&self) -> Duration {
        self.core.opts.metadata_ttl
    }

    fn attr(&self, n: &Node) -> FileAttr {
        attr(&self.core.opts, n)
    }

    /// Uploads what handle `fh` changed and answers with the outcome.
    fn upload(&self, fh: FileHandle, reply: ReplyEmpty) {
        let c = self.ctx();
        self.spawn(async move {
            match c.core.flush(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    /// Runs a request: polled once here on the FUSE thread, and moved to
    /// the runtime only if it has to wait. Most requests (a lookup the
    /// caches answer, create, a buffered write, release) finish in that
    /// first poll; replying from here saves handing each one to a runtime
    /// thread and back, two thread wake-ups per request.
    fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        // Timers, spawns and I/O registrations made during the poll need
        // the runtime's context.
        let _rt = self.rt.enter();
        let mut f = Box::pin(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if f.as_mut().poll(&mut cx).is_pending() {
            // Polled again at once on the runtime, which registers a real
            // waker wherever the noop one was left.
            self.rt.spawn(f);
        }
    }
}

fn attr(o: &super::MountOptions, n: &Node) -> FileAttr {
    {
        let (kind, perm, nlink) = match n.meta.kind {
            Kind::Dir => (FileType::Directory, o.dir_mode, 2),
            Kind::File => (FileType::RegularFile, o.file_mode, 1),
        };
        let t = n.meta.mtime;
        FileAttr {
            ino: INodeNo(n.ino),
            size: n.meta.size,
            blocks: n.meta.size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm,
            nlink,
            uid: o.uid,
            gid: o.gid,
            rdev: 0,
            // Tools size their buffers by this: large writes stream faster.
            blksize: 1024 * 1024,
            flags: 0,
        }
    }
}

/// A clone of the bits of `Fs` a task needs.
#[derive(Clone)]
struct Ctx {
    core: Arc<Core>,
    ttl: Duration,
    neg_ttl: Duration,
}

impl Ctx {
    fn attr(&self, n: &Node) -> FileAttr {
        attr(&self.core.opts, n)
    }
}

impl Fs {
    fn ctx(&self) -> Ctx {
        Ctx {
            core: self.core.clone(),
            ttl: self.ttl(),
            neg_ttl: self.core.opts.negative_ttl,
        }
    }
}

impl fuser::Filesystem for Fs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // 1 MiB requests (max_pages 256); fuser caps at what the kernel allows.
        let _ = config
            .set_max_write(1024 * 1024)
            .or_else(|max| config.set_max_write(max));
        let _ = config
            .set_max_readahead(1024 * 1024)
            .or_else(|max| config.set_max_readahead(max));
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ASYNC_READ,
            InitFlags::FUSE_BIG_WRITES,
        ] {
            if config.add_capabilities(flag).is_err() {
                tracing::debug!(?flag, "kernel lacks a FUSE capability");
            }
        }
        tracing::debug!(?config, "FUSE session initialised");
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(name) = name_str(name) else {
            return reply.error(Errno::ENOENT);
        };
        let c = self.ctx();
        self.spawn(async move {
            match c.core.lookup(parent.0, &name).await {
                Ok(n) => reply.entry(&c.ttl, &c.attr(&n), Generation(0)),
                Err(libc::ENOENT) if !c.neg_ttl.is_zero() => {
                    // A zero node id caches the absence for the negative TTL.
                    let mut attr = c.attr(&c.core.inodes.get(1).expect("root exists"));
                    attr.ino = INodeNo(0);
                    reply.entry(&c.neg_ttl, &attr, Generation(0));
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.core.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let c = self.ctx();
        self.spawn(async move {
            match c.core.getattr(ino.0).await {
                Ok(n) => reply.attr(&c.ttl, &c.attr(&n)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let c = self.ctx();
        self.spawn(async move {
            // atime is not kept (it reads as mtime, as on a `noatime` mount).
            let set = SetAttr {
                size,
                mode,
                uid,
                gid,
                mtime: mtime.map(|t| match t {
                    TimeOrNow::Now => NewMtime::Now,
                    TimeOrNow::SpecificTime(t) => NewMtime::At(t),
                }),
                fh: fh.map(|f| f.0),
            };
            match c.core.setattr(ino.0, set).await {
                Ok(n) => reply.attr(&c.ttl, &c.attr(&n)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        let Some(name) = name_str(name) else {
            return reply.error(Errno::EINVAL);
        };
        let c = self.ctx();
        self.spawn(async move {
            match c.core.mkdir(parent.0, &name).await {
                Ok(n) => reply.entry(&c.ttl, &c.attr(&n), Generation(0)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name_str(name) else {
            return reply.error(Errno::ENOENT);
        };
        let c = self.ctx();
        self.spawn(async move {
            match c.core.unlink(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name_str(name) else {
            return reply.error(Errno::ENOENT);
        };
        let c = self.ctx();
        self.spawn(async move {
            match c.core.rmdir(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (Some(name), Some(newname)) = (name_str(name), name_str(newname)) else {
            return reply.error(Errno::EINVAL);
        };
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let c = self.ctx();
        self.spawn(async move {
            match c.core.rename(parent.0, &name, newparent.0, &newname, noreplace).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != fuser::OpenAccMode::O_RDONLY;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        let pid = req.pid();
        let c = self.ctx();
        self.spawn(async move {
            match c.core.open(ino.0, write, truncate, pid).await {
                Ok((fh, keep_cache)) => {
                    let flags = if keep_cache {
                        FopenFlags::FOPEN_KEEP_CACHE
                    } else {
                        FopenFlags::empty()
                    };
                    reply.opened(FileHandle(fh), flags)
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let Some(name) = name_str(name) else {
            return reply.error(Errno::EINVAL);
        };
        let pid = req.pid();
        let c = self.ctx();
        self.spawn(async move {
            match c.core.create(parent.0, &name, pid).await {
                Ok((n, fh)) => reply.created(&c.ttl, &c.attr(&n), Generation(0), FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let c = self.ctx();
        self.spawn(async move {
            match c.core.read(fh.0, offset, size).await {
                Ok(b) => reply.data(&b),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let c = self.ctx();
        let data = data.to_vec();
        let pid = req.pid();
        self.spawn(async move {
            match c.core.write(fh.0, offset, &data, pid).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn flush(&self, req: &Request, _ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        if !self.core.flush_counts(fh.0, req.pid()) {
            // An inherited copy closed by a process that never wrote: the
            // writer's own close (or the last release) uploads.
            return reply.ok();
        }
        self.upload(fh, reply);
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // An explicit request: uploads whoever asks.
        self.upload(fh, reply);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let c = self.ctx();
        self.spawn(async move {
            match c.core.release(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let c = self.ctx();
        self.spawn(async move {
            match c.core.opendir(ino.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let entries = match self.core.dir_entries(fh.0) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(e)),
        };
        let parent = self.core.inodes.get(ino.0).map_or(1, |n| n.parent);
        let dots = [(ino.0, "."), (parent, "..")];
        let mut i = offset as usize;
        while i < 2 + entries.len() {
            let full = if i < 2 {
                reply.add(INodeNo(dots[i].0), (i + 1) as u64, FileType::Directory, dots[i].1)
            } else {
                let e = &entries[i - 2];
                let kind = if e.node.meta.kind == Kind::Dir {
                    FileType::Directory
                } else {
                    FileType::RegularFile
                };
                reply.add(INodeNo(e.node.ino), (i + 1) as u64, kind, &e.name)
            };
            if full {
                break;
            }
            i += 1;
        }
        reply.ok();
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let entries = match self.core.dir_entries(fh.0) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(e)),
        };
        let ttl = self.ttl();
        let me = self.core.inodes.get(ino.0);
        let parent = me.as_ref().and_then(|n| self.core.inodes.get(n.parent));
        let mut i = offset as usize;
        while i < 2 + entries.len() {
            let full = if i < 2 {
                // "." and ".." carry no lookup; a zero TTL keeps the kernel from caching them.
                let n = if i == 0 {
                    me.clone()
                } else {
                    parent.clone().or_else(|| me.clone())
                };
                let Some(n) = n else { break };
                let name = if i == 0 { "." } else { ".." };
                reply.add(
                    INodeNo(n.ino),
                    (i + 1) as u64,
                    name,
                    &Duration::ZERO,
                    &self.attr(&n),
                    Generation(0),
                )
            } else {
                let e = &entries[i - 2];
                let n = self.core.inodes.get(e.node.ino).unwrap_or_else(|| e.node.clone());
                let full = reply.add(
                    INodeNo(n.ino),
                    (i + 1) as u64,
                    &e.name,
                    &ttl,
                    &self.attr(&n),
                    Generation(0),
                );
                if !full {
                    self.core.hold_entry(&n);
                }
                full
            };
            if full {
                break;
            }
            i += 1;
        }
        reply.ok();
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.core.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // A bucket has no fixed size: report plenty of room.
        const BLOCKS: u64 = 1 << 40;
        reply.statfs(BLOCKS, BLOCKS, BLOCKS, 1 << 30, 1 << 30, 4096, 255, 4096);
    }

    // Extended attributes are not kept. ENOSYS (not ENODATA) makes the
    // kernel stop asking, e.g. for security.capability on every write.
    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        if self.core.opts.read_only && mask.contains(fuser::AccessFlags::W_OK) {
            return reply.error(Errno::EROFS);
        }
        reply.ok();
    }
}
