//! The filesystem's operations as async functions over the S3 client,
//! independent of FUSE: inode numbers in, nodes and bytes out, errno on
//! failure. `fuse.rs` only translates.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::sync::Semaphore;

use super::budget::Budget;
use super::inode::{join, InodeTable, Kind, Meta, MtimeFrom, Node};
use super::listing::{list_dir, list_dir_within, valid_name, ListingCache, Relist};
use super::mtime::{self, NewMtime};
use super::read::{Prefetcher, ReadCtx};
use super::staging::Staging;
use super::write::{Orphans, Uploaded, WriteCtx, WriteHandle};
use super::MountOptions;
use crate::s3::{ObjectMeta, PutOptions, S3Client, S3Error};

pub(crate) type Errno = i32;

/// What a `setattr` asks to change.
#[derive(Default)]
pub(crate) struct SetAttr {
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<NewMtime>,
    /// The handle it came through (`ftruncate`).
    pub fh: Option<u64>,
}

/// One entry of an open directory.
#[derive(Clone)]
pub(crate) struct DirEntry {
    pub name: String,
    pub node: Node,
}

#[derive(Clone)]
pub(crate) enum Handle {
    Read {
        ino: u64,
        pf: Arc<Prefetcher>,
    },
    Write {
        ino: u64,
        w: Arc<tokio::sync::Mutex<WriteHandle>>,
        writers: Arc<WriterPids>,
    },
    Dir {
        entries: Arc<Vec<DirEntry>>,
    },
}

/// The processes that opened or wrote through one write handle. The kernel
/// sends a flush for every `close` of every copy of the descriptor, also
/// when a process that never wrote drops an inherited copy (a fork's child
/// closing its copy at `exec`). Only a flush from one of these processes
/// uploads; the others would publish a half-written file.
pub(crate) struct WriterPids(Mutex<Vec<u32>>);

impl WriterPids {
    /// Past this many distinct writers every flush counts: the list stays small.
    const MAX: usize = 64;

    fn new(opener: u32) -> Self {
        Self(Mutex::new(vec![opener]))
    }

    fn note(&self, pid: u32) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !v.contains(&pid) && v.len() <= Self::MAX {
            v.push(pid);
        }
    }

    fn contains(&self, pid: u32) -> bool {
        let v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        v.len() > Self::MAX || v.contains(&pid)
    }
}

pub(crate) struct Core {
    pub client: S3Client,
    /// Key prefix of the mount: "" or ending in `/`.
    pub prefix: String,
    pub opts: MountOptions,
    pub inodes: InodeTable,
    listings: ListingCache,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    read_ctx: ReadCtx,
    write_ctx: WriteCtx,
    pub orphans: Orphans,
    pub staging: Arc<Staging>,
    pub budget: Budget,
    /// Set once the session runs: tells the kernel to drop dentries that
    /// vanish without a FUSE request (a never-uploaded file whose upload failed).
    pub notifier: std::sync::OnceLock<fuser::Notifier>,
    /// Bytes returned by `read` and accepted by `write`, for metrics.
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
}

fn s3_errno(e: &S3Error) -> Errno {
    e.errno()
}

impl Core {
    pub fn new(client: S3Client, prefix: String, opts: MountOptions) -> Self {
        let budget = Budget::new(super::budget::buffer_share(opts.memory_budget));
        let requests = Arc::new(Semaphore::new(opts.max_concurrent_requests.max(1)));
        let staging = Staging::new(opts.staging_dir.clone(), opts.staging_cap);
        let orphans: Orphans = Arc::default();
        let read_ctx = ReadCtx {
            client: client.clone(),
            budget: budget.clone(),
            requests: requests.clone(),
            max_window: opts.max_prefetch,
        };
        let write_ctx = WriteCtx {
            client: client.clone(),
            budget: budget.clone(),
            requests,
            staging: staging.clone(),
            part_size: opts.part_size,
            concurrency: opts.upload_concurrency,
            orphans: orphans.clone(),
        };
        Self {
            client,
            prefix,
            listings: ListingCache::new(opts.listing_ttl),
            opts,
            inodes: InodeTable::new(SystemTime::now()),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            read_ctx,
            write_ctx,
            orphans,
            staging,
            budget,
            notifier: std::sync::OnceLock::new(),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
        }
    }

    /// Removes a name that exists only here, and makes the kernel forget it.
    fn vanish(&self, parent: u64, name: &str) {
        self.inodes.remove_child(parent, name);
        self.listings.set(parent, name, None);
        if let Some(n) = self.notifier.get() {
            let (n, name) = (n.clone(), name.to_string());
            // The kernel may take the directory's lock: never on a runtime worker.
            tokio::task::spawn_blocking(move || {
                let _ = n.inval_entry(fuser::INodeNo(parent), std::ffi::OsStr::new(&name));
            });
        }
    }

    fn key(&self, path: &str) -> String {
        format!("{}{}", self.prefix, path)
    }

    fn dir_prefix(&self, path: &str) -> String {
        if path.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}{}/", self.prefix, path)
        }
    }

    fn fresh_until(&self) -> Instant {
        Instant::now() + self.opts.metadata_ttl
    }

    fn ro(&self) -> Result<(), Errno> {
        if self.opts.read_only {
            Err(libc::EROFS)
        } else {
            Ok(())
        }
    }

    fn node(&self, ino: u64) -> Result<Node, Errno> {
        self.inodes.get(ino).ok_or(libc::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<Node, Errno> {
        let n = self.node(ino)?;
        if n.meta.kind != Kind::Dir {
            return Err(libc::ENOTDIR);
        }
        Ok(n)
    }

    fn handle(&self, fh: u64) -> Result<Handle, Errno> {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh)
            .cloned()
            .ok_or(libc::EBADF)
    }

    fn add_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).insert(fh, h);
        fh
    }

    fn take_handle(&self, fh: u64) -> Option<Handle> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).remove(&fh)
    }

    /// What the server says `path` is: HeadObject and a one-key listing
    /// of `path/` at once; a directory wins over a file of the same name.
    async fn fetch_meta(&self, path: &str) -> Result<Option<Meta>, Errno> {
        let key = self.key(path);
        let dir_prefix = format!("{key}/");
        let (head, list) = tokio::join!(
            self.client.head_object(&key),
            self.client.list_objects(&dir_prefix, Some("/"), Some(1), None, None)
        );
        let list = list.map_err(|e| s3_errno(&e))?;
        let now = SystemTime::now();
        if !list.objects.is_empty() || !list.prefixes.is_empty() {
            return Ok(Some(Meta::empty(Kind::Dir, now)));
        }
        match head {
            Ok(m) => Ok(Some(file_meta(&m, now))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(s3_errno(&e)),
        }
    }

    /// Resolves a child without counting a kernel lookup.
    async fn resolve(&self, parent: u64, name: &str) -> Result<Option<Node>, Errno> {
        let p = self.dir(parent)?;
        if let Some(n) = self.inodes.child(parent, name) {
            if n.local || n.writers > 0 || n.valid_until > Instant::now() {
                return Ok(Some(n));
            }
        }
        let meta = match self.listings.lookup(parent, name) {
            Some(m) => m,
            // The directory is small or being walked name by name: one
            // listing answers for every name in it (see `Relist`).
            None => {
                let listing = match self.listings.miss(parent) {
                    Relist::Within(pages) => {
                        list_dir_within(&self.client, &self.dir_prefix(&p.path), SystemTime::now(), pages)
                            .await
                            .map_err(|e| s3_errno(&e))?
                    }
                    Relist::No => None,
                };
                match listing {
                    Some(l) => {
                        let m = l.get(name).cloned();
                        self.listings.put(parent, l);
                        m
                    }
                    // Not worth listing, or larger than this try lists:
                    // the name on its own.
                    None => self.fetch_meta(&join(&p.path, name)).await?,
                }
            }
        };
        match meta {
            Some(meta) => Ok(self.inodes.upsert(parent, name, meta, self.fresh_until(), false)),
            None => {
                if let Some(n) = self.inodes.child(parent, name) {
                    if !n.local && n.writers == 0 {
                        self.inodes.remove_child(parent, name);
                    }
                }
                Ok(None)
            }
        }
    }

    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Node, Errno> {
        if name.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        if !valid_name(name) {
            return Err(libc::ENOENT);
        }
        let n = self.resolve(parent, name).await?.ok_or(libc::ENOENT)?;
        Ok(self.inodes.hold(&n))
    }

    pub fn forget(&self, ino: u64, n: u64) {
        if self.inodes.forget(ino, n) {
            // A directory the kernel forgot is never asked for by that
            // number again: its listing would only take memory.
            self.listings.forget_dir(ino);
        }
    }

    pub async fn getattr(&self, ino: u64) -> Result<Node, Errno> {
        let n = self.node(ino)?;
        if n.detached && n.open == 0 {
            return Err(libc::ENOENT);
        }
        if n.meta.kind == Kind::Dir || n.local || n.writers > 0 || n.valid_until > Instant::now() || n.detached {
            return Ok(n);
        }
        match self.fetch_meta(&n.path).await? {
            Some(meta) if meta.kind == Kind::File => {
                let until = self.fresh_until();
                self.inodes.update(ino, |x| {
                    if x.writers == 0 && !x.local {
                        x.meta = meta;
                        x.valid_until = until;
                    }
                });
                self.node(ino)
            }
            // Replaced by a directory, or gone: this inode is stale.
            _ => {
                self.inodes.remove_child(n.parent, &n.name);
                Err(libc::ENOENT)
            }
        }
    }

    // ---- directories ----

    pub async fn opendir(&self, ino: u64) -> Result<u64, Errno> {
        let d = self.dir(ino)?;
        let listing = match self.listings.get(ino) {
            Some(l) => l,
            None => {
                let l = list_dir(&self.client, &self.dir_prefix(&d.path), SystemTime::now())
                    .await
                    .map_err(|e| s3_errno(&e))?;
                self.listings.put(ino, l.clone());
                l
            }
        };
        let until = self.fresh_until();
        let mut entries: Vec<DirEntry> = Vec::with_capacity(listing.len());
        let mut seen = std::collections::HashSet::new();
        for (name, meta) in listing {
            if let Some(node) = self.inodes.upsert(ino, &name, meta, until, false) {
                seen.insert(name.clone());
                entries.push(DirEntry { name, node });
            }
        }
        // Files being written here are listed before they reach the bucket.
        for node in self.inodes.local_children(ino) {
            if seen.insert(node.name.clone()) {
                entries.push(DirEntry {
                    name: node.name.clone(),
                    node,
                });
            }
        }
        Ok(self.add_handle(Handle::Dir {
            entries: Arc::new(entries),
        }))
    }

    pub fn dir_entries(&self, fh: u64) -> Result<Arc<Vec<DirEntry>>, Errno> {
        match self.handle(fh)? {
            Handle::Dir { entries } => Ok(entries),
            _ => Err(libc::EBADF),
        }
    }

    /// The kernel now holds a lookup on an entry a readdirplus replied.
    pub fn hold_entry(&self, node: &Node) {
        self.inodes.hold(node);
    }

    pub fn releasedir(&self, fh: u64) {
        // Entries the kernel took no lookup on (a plain readdir, a listing
        // read only in part) leave the table with the handle.
        if let Some(Handle::Dir { entries }) = self.take_handle(fh) {
            for e in entries.iter() {
                self.inodes.release(e.node.ino);
            }
        }
    }

    pub async fn mkdir(&self, parent: u64, name: &str) -> Result<Node, Errno> {
        self.ro()?;
        if !valid_name(name) {
            return Err(libc::EINVAL);
        }
        let p = self.dir(parent)?;
        if let Some(n) = self.resolve(parent, name).await? {
            self.inodes.release(n.ino);
            return Err(libc::EEXIST);
        }
        let path = join(&p.path, name);
        self.client
            .put_object(&self.dir_prefix(&path), crate::s3::Payload::Empty, &Default::default())
            .await
            .map_err(|e| s3_errno(&e))?;
        let meta = Meta::empty(Kind::Dir, SystemTime::now());
        let node = self
            .inodes
            .upsert(parent, name, meta.clone(), self.fresh_until(), true)
            .ok_or(libc::ENOENT)?;
        self.listings.put_empty(node.ino);
        self.listings.set(parent, name, Some(meta));
        Ok(node)
    }

    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<(), Errno> {
        self.ro()?;
        let n = self.resolve(parent, name).await?.ok_or(libc::ENOENT)?;
        if n.meta.kind != Kind::Dir {
            return Err(libc::ENOTDIR);
        }
        if self.inodes.has_local_below(n.ino) {
            return Err(libc::ENOTEMPTY);
        }
        let prefix = self.dir_prefix(&n.path);
        let page = self
            .client
            .list_objects(&prefix, None, Some(2), None, None)
            .await
            .map_err(|e| s3_errno(&e))?;
        if page.objects.iter().any(|o| o.key != prefix) || !page.prefixes.is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        self.client.delete_object(&prefix).await.map_err(|e| s3_errno(&e))?;
        self.inodes.remove_child(parent, name);
        self.listings.set(parent, name, None);
        self.listings.invalidate(n.ino);
        Ok(())
    }

    // ---- files ----

    pub async fn create(&self, parent: u64, name: &str, pid: u32) -> Result<(Node, u64), Errno> {
        self.ro()?;
        if !valid_name(name) {
            return Err(if name.len() > 255 {
                libc::ENAMETOOLONG
            } else {
                libc::EINVAL
            });
        }
        self.dir(parent)?;
        if let Some(existing) = self.inodes.child(parent, name) {
            if existing.meta.kind == Kind::Dir {
                return Err(libc::EISDIR);
            }
        }
        let meta = Meta::empty(Kind::File, SystemTime::now());
        let node = self
            .inodes
            .upsert(parent, name, meta.clone(), self.fresh_until(), true)
            .ok_or(libc::ENOENT)?;
        self.inodes.update(node.ino, |n| {
            n.meta = meta.clone();
            n.local = true;
            n.writers += 1;
            n.open += 1;
        });
        self.listings.set(parent, name, Some(meta));
        let w = WriteHandle::empty(self.write_ctx.clone());
        let fh = self.add_handle(Handle::Write {
            ino: node.ino,
            w: Arc::new(tokio::sync::Mutex::new(w)),
            writers: Arc::new(WriterPids::new(pid)),
        });
        Ok((self.node(node.ino)?, fh))
    }

    /// Opens a file; returns the handle and whether the kernel may keep
    /// the pages it cached for this file.
    pub async fn open(&self, ino: u64, write: bool, truncate: bool, pid: u32) -> Result<(u64, bool), Errno> {
        let n = self.node(ino)?;
        if n.meta.kind == Kind::Dir {
            return Err(libc::EISDIR);
        }
        if !write {
            let key = self.key(&n.path);
            let mut keep_cache = false;
            let (etag, size) = if n.local {
                // Never uploaded yet: there is nothing to read.
                (None, 0)
            } else if n.writers > 0 {
                // Being rewritten here: readers get the object as uploaded.
                match self.client.head_object(&key).await {
                    Ok(m) => (m.etag, m.size),
                    Err(e) if e.is_not_found() => (None, 0),
                    Err(e) => return Err(s3_errno(&e)),
                }
            } else if let Some(cached) = n.cached_etag.clone() {
                // The kernel still holds pages of a version read before:
                // one HEAD (whatever the TTL) decides whether they are
                // still the object's bytes, instead of fetching them again.
                let n = self.refresh_from_server(ino).await?;
                keep_cache = n.meta.etag.as_deref() == Some(cached.as_str());
                (n.meta.etag, n.meta.size)
            } else {
                let n = self.refresh(ino).await?;
                (n.meta.etag, n.meta.size)
            };
            let served = etag.clone();
            let pf = Prefetcher::new(self.read_ctx.clone(), key, etag, size, n.streams.join());
            self.inodes.update(ino, |x| {
                x.open += 1;
                if x.writers == 0 && !x.local {
                    x.cached_etag = served;
                }
            });
            return Ok((self.add_handle(Handle::Read { ino, pf: Arc::new(pf) }), keep_cache));
        }
        self.ro()?;
        let w = if truncate || n.local {
            WriteHandle::empty(self.write_ctx.clone())
        } else {
            let n = if n.writers > 0 { n } else { self.refresh(ino).await? };
            WriteHandle::existing(
                self.write_ctx.clone(),
                &self.key(&n.path),
                n.meta.etag.clone(),
                n.meta.size,
            )?
        };
        let size = w.size();
        self.inodes.update(ino, |x| {
            x.open += 1;
            x.writers += 1;
            x.cached_etag = None;
            if truncate {
                x.meta.size = 0;
            }
            let _ = size;
        });
        let fh = self.add_handle(Handle::Write {
            ino,
            w: Arc::new(tokio::sync::Mutex::new(w)),
            writers: Arc::new(WriterPids::new(pid)),
        });
        Ok((fh, false))
    }

    /// Attributes of a file straight from the server (opening must see
    /// the current size and ETag).
    async fn refresh(&self, ino: u64) -> Result<Node, Errno> {
        let n = self.node(ino)?;
        if n.valid_until > Instant::now() && n.meta.etag.is_some() {
            return Ok(n);
        }
        self.refresh_from_server(ino).await
    }

    /// [`Self::refresh`] without trusting the metadata cache.
    async fn refresh_from_server(&self, ino: u64) -> Result<Node, Errno> {
        let m = self.head_file(&self.node(ino)?).await?;
        let until = self.fresh_until();
        let fresh = file_meta(&m, SystemTime::now());
        self.inodes.update(ino, |x| {
            x.meta.size = fresh.size;
            x.meta.etag = fresh.etag;
            if m.last_modified.is_some() || fresh.mtime_from == MtimeFrom::Stored {
                x.meta.mtime = fresh.mtime;
                x.meta.mtime_from = fresh.mtime_from;
            }
            x.valid_until = until;
        });
        self.node(ino)
    }

    /// HeadObject of a file the mount knows; one gone from the bucket
    /// leaves the namespace (`ENOENT`).
    async fn head_file(&self, n: &Node) -> Result<ObjectMeta, Errno> {
        match self.client.head_object(&self.key(&n.path)).await {
            Ok(m) => Ok(m),
            Err(e) if e.is_not_found() => {
                self.inodes.remove_child(n.parent, &n.name);
                Err(libc::ENOENT)
            }
            Err(e) => Err(s3_errno(&e)),
        }
    }

    pub async fn read(&self, fh: u64, offset: u64, len: u32) -> Result<Bytes, Errno> {
        let out = match self.handle(fh)? {
            Handle::Read { ino, pf } => {
                let out = pf.read(offset, len).await;
                if pf.take_repinned() {
                    // The kernel is about to cache bytes of a version other
                    // than the one this open recorded: forget the record
                    // before they reach it, so no later open keeps them.
                    self.inodes.update(ino, |x| x.cached_etag = None);
                }
                out
            }
            Handle::Write { ino, w, .. } => {
                let key = self.key(&self.node(ino)?.path);
                w.lock().await.read(&key, offset, len).await
            }
            Handle::Dir { .. } => Err(libc::EISDIR),
        }?;
        self.bytes_read.fetch_add(out.len() as u64, Ordering::Relaxed);
        Ok(out)
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8], pid: u32) -> Result<u32, Errno> {
        let Handle::Write { ino, w, writers } = self.handle(fh)? else {
            return Err(libc::EBADF);
        };
        writers.note(pid);
        let mut w = w.lock().await;
        let key = self.key(&self.node(ino)?.path);
        w.write(&key, offset, data).await?;
        let size = w.size();
        self.inodes.update(ino, |n| {
            n.meta.size = size;
            n.meta.mtime = SystemTime::now();
            n.meta.mtime_from = MtimeFrom::LastModified;
            n.pending_mtime = None;
        });
        self.bytes_written.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data.len() as u32)
    }

    /// Whether a flush sent on behalf of `pid` should upload: it comes from
    /// a process that opened or wrote through the handle (see [`WriterPids`]).
    pub fn flush_counts(&self, fh: u64, pid: u32) -> bool {
        match self.handle(fh) {
            Ok(Handle::Write { writers, .. }) => writers.contains(pid),
            _ => true,
        }
    }

    /// Uploads what a handle changed (`flush` on close, and `fsync`).
    pub async fn flush(&self, fh: u64) -> Result<(), Errno> {
        let Handle::Write { ino, w, .. } = self.handle(fh)? else {
            return Ok(());
        };
        let mut w = w.lock().await;
        self.flush_locked(ino, &mut w).await
    }

    async fn flush_locked(&self, ino: u64, w: &mut WriteHandle) -> Result<(), Errno> {
        if let Some(e) = w.failure() {
            return Err(e);
        }
        let n = self.node(ino)?;
        if n.detached {
            // Unlinked while open: its data goes nowhere.
            w.abandon().await;
            return Ok(());
        }
        let key = self.key(&n.path);
        let pending = n.pending_mtime;
        let at = pending.and_then(NewMtime::at);
        let opts = PutOptions {
            metadata: mtime::with_time(&[], at),
            ..PutOptions::default()
        };
        let flushed = match w.flush(&key, &opts).await {
            Ok(f) => f,
            Err(e) => {
                if w.is_failed() && n.local {
                    // Its data is lost and it never reached the bucket: it
                    // does not exist, now rather than at release.
                    self.inodes.update(ino, |x| x.local = false);
                    self.vanish(n.parent, &n.name);
                }
                return Err(e);
            }
        };
        // Whether the upload gave the object the time set while writing
        // ("now" is any upload's own time).
        let mut time_kept = false;
        if let Some(Uploaded {
            etag,
            size,
            with_options,
        }) = flushed
        {
            time_kept = with_options || at.is_none();
            let until = self.fresh_until();
            let meta = Meta::file(size, etag, at.filter(|_| time_kept), SystemTime::now());
            self.inodes.update(ino, |x| {
                x.local = false;
                x.meta = meta.clone();
                x.valid_until = until;
            });
            self.listings.set(n.parent, &n.name, Some(meta));
        }
        if let Some(t) = pending {
            if !time_kept && !self.node(ino)?.local {
                // Set after the upload had started (a large `cp -p`), or on
                // a handle with nothing to upload (`touch` of an existing
                // file): stored on its own.
                self.store_mtime(ino, at).await?;
            }
            self.inodes.update(ino, |x| {
                if x.pending_mtime == Some(t) {
                    x.pending_mtime = None;
                }
            });
        }
        Ok(())
    }

    pub async fn release(&self, fh: u64) -> Result<(), Errno> {
        let Some(h) = self.take_handle(fh) else { return Ok(()) };
        let ino = match h {
            Handle::Read { ino, .. } => Some(ino),
            Handle::Write { ino, w, .. } => {
                let mut w = w.lock().await;
                let mut result = Ok(());
                if w.is_dirty() {
                    result = self.flush_locked(ino, &mut w).await;
                    if let Err(e) = result {
                        tracing::error!(
                            ino,
                            errno = e,
                            "a closed file could not be uploaded; its changes are lost"
                        );
                    }
                }
                w.abandon().await;
                let was_local = self.inodes.update(ino, |n| {
                    n.writers = n.writers.saturating_sub(1);
                    if n.writers == 0 {
                        n.pending_mtime = None;
                    }
                    n.local && n.writers == 0
                });
                if was_local == Some(true) {
                    // Never uploaded: it does not exist.
                    if let Some(n) = self.inodes.get(ino) {
                        self.inodes.update(ino, |x| x.local = false);
                        if !n.detached {
                            self.vanish(n.parent, &n.name);
                        }
                    }
                }
                let _ = result;
                Some(ino)
            }
            Handle::Dir { .. } => None,
        };
        if let Some(ino) = ino {
            self.inodes.update(ino, |n| n.open = n.open.saturating_sub(1));
            self.inodes.release(ino);
        }
        Ok(())
    }

    /// Flushes every open handle with changes (before unmount or detach).
    pub async fn flush_all(&self) -> Result<(), Errno> {
        let writers: Vec<(u64, u64)> = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(fh, h)| match h {
                Handle::Write { ino, .. } => Some((*fh, *ino)),
                _ => None,
            })
            .collect();
        let mut first_err = Ok(());
        for (fh, _) in writers {
            if let Err(e) = self.flush(fh).await {
                if first_err.is_ok() {
                    first_err = Err(e);
                }
            }
        }
        // Retry aborting uploads that could not be aborted before.
        let orphans = std::mem::take(&mut *self.orphans.lock().unwrap_or_else(|p| p.into_inner()));
        for (key, id) in orphans {
            if self.client.abort_multipart_upload(&key, &id).await.is_err() {
                self.orphans.lock().unwrap_or_else(|p| p.into_inner()).push((key, id));
            }
        }
        first_err
    }

    pub async fn setattr(&self, ino: u64, a: SetAttr) -> Result<Node, Errno> {
        let n = self.node(ino)?;
        if let Some(mode) = a.mode {
            let want = if n.meta.kind == Kind::Dir {
                self.opts.dir_mode
            } else {
                self.opts.file_mode
            };
            if (mode & 0o7777) as u16 != want {
                return Err(libc::EPERM);
            }
        }
        if a.uid.is_some_and(|u| u != self.opts.uid) || a.gid.is_some_and(|g| g != self.opts.gid) {
            return Err(libc::EPERM);
        }
        if a.size.is_none() && a.mtime.is_none() {
            return Ok(n);
        }
        self.ro()?;
        if let Some(size) = a.size {
            self.truncate(&n, size, a.fh).await?;
        }
        match a.mtime {
            // A size change is an upload (or a pending one): its time is now.
            Some(NewMtime::Now) if a.size.is_some() => {}
            Some(t) => self.set_mtime(ino, t).await?,
            None => {}
        }
        self.node(ino)
    }

    async fn truncate(&self, n: &Node, size: u64, fh: Option<u64>) -> Result<(), Errno> {
        if n.meta.kind == Kind::Dir {
            return Err(libc::EISDIR);
        }
        let ino = n.ino;
        let key = self.key(&n.path);
        let via_handle = match fh.map(|fh| self.handle(fh)) {
            Some(Ok(Handle::Write { w, .. })) => Some(w),
            _ => None,
        };
        match via_handle {
            Some(w) => {
                let mut w = w.lock().await;
                w.truncate(&key, size).await?;
            }
            None => {
                // truncate(2) on a path: a short-lived handle does it.
                let fresh = if n.local || n.writers > 0 {
                    n.clone()
                } else {
                    self.refresh(ino).await?
                };
                let mut w = if size == 0 || fresh.local {
                    WriteHandle::empty(self.write_ctx.clone())
                } else {
                    WriteHandle::existing(self.write_ctx.clone(), &key, fresh.meta.etag.clone(), fresh.meta.size)?
                };
                w.truncate(&key, size).await?;
                if fresh.local || fresh.writers > 0 {
                    // Someone is writing it: their close uploads; size only.
                } else {
                    self.flush_locked(ino, &mut w).await?;
                    w.abandon().await;
                }
            }
        }
        self.inodes.update(ino, |x| {
            x.meta.size = size;
            x.meta.mtime = SystemTime::now();
            x.meta.mtime_from = MtimeFrom::LastModified;
            x.pending_mtime = None;
        });
        Ok(())
    }

    /// `utimensat` on a file: a file being written here takes the time
    /// with its upload; one in the bucket is copied onto itself with the
    /// time in its metadata (or, for "now", without one: its new
    /// `Last-Modified` is the time). Directories keep no time; theirs is
    /// accepted and not kept.
    async fn set_mtime(&self, ino: u64, t: NewMtime) -> Result<(), Errno> {
        let n = self.node(ino)?;
        if n.meta.kind == Kind::Dir {
            return Ok(());
        }
        if n.local || n.writers > 0 {
            self.inodes.update(ino, |x| {
                x.pending_mtime = Some(t);
                x.meta.mtime = t.at().unwrap_or_else(SystemTime::now);
            });
            return Ok(());
        }
        self.store_mtime(ino, t.at()).await
    }

    /// Copies the file's object onto itself with `t` as its stored time
    /// (none for `None`), keeping its bytes, content type and other
    /// metadata.
    async fn store_mtime(&self, ino: u64, t: Option<SystemTime>) -> Result<(), Errno> {
        if !self.client.endpoint().quirks().copy_object {
            // Nowhere to keep it: refused rather than dropped.
            return Err(libc::EPERM);
        }
        let n = self.node(ino)?;
        let key = self.key(&n.path);
        let m = self.head_file(&n).await?;
        let opts = PutOptions {
            content_type: m.content_type.clone(),
            metadata: mtime::with_time(&m.metadata, t),
            if_none_match: false,
        };
        let etag = copy_object(self.client.clone(), key.clone(), key, m.size, Some(opts))
            .await
            .map_err(|e| if e == libc::EXDEV { libc::EPERM } else { e })?;
        let meta = Meta::file(m.size, etag.or(m.etag), t, SystemTime::now());
        let until = self.fresh_until();
        self.inodes.update(ino, |x| {
            if x.writers == 0 && !x.local {
                x.meta = meta.clone();
                x.valid_until = until;
            }
        });
        self.listings.set(n.parent, &n.name, Some(meta));
        Ok(())
    }

    // ---- namespace ----

    pub async fn unlink(&self, parent: u64, name: &str) -> Result<(), Errno> {
        self.ro()?;
        let n = self.resolve(parent, name).await?.ok_or(libc::ENOENT)?;
        if n.meta.kind == Kind::Dir {
            return Err(libc::EISDIR);
        }
        if !n.local {
            self.client
                .delete_object(&self.key(&n.path))
                .await
                .map_err(|e| s3_errno(&e))?;
        }
        self.inodes.remove_child(parent, name);
        self.listings.set(parent, name, None);
        Ok(())
    }

    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        noreplace: bool,
    ) -> Result<(), Errno> {
        self.ro()?;
        if !valid_name(new_name) {
            return Err(if new_name.len() > 255 {
                libc::ENAMETOOLONG
            } else {
                libc::EINVAL
            });
        }
        let src = self.resolve(parent, name).await?.ok_or(libc::ENOENT)?;
        let np = self.dir(new_parent)?;
        let dst = self.resolve(new_parent, new_name).await?;
        if let Some(d) = &dst {
            if d.ino == src.ino {
                return Ok(());
            }
            if noreplace {
                return Err(libc::EEXIST);
            }
        }
        let new_path = join(&np.path, new_name);
        if !self.client.endpoint().quirks().copy_object {
            return Err(libc::EXDEV);
        }
        match src.meta.kind {
            Kind::File => {
                if dst.as_ref().is_some_and(|d| d.meta.kind == Kind::Dir) {
                    return Err(libc::EISDIR);
                }
                if !src.local {
                    let (from, to) = (self.key(&src.path), self.key(&new_path));
                    // The version this rename replaces, to check the copy won.
                    let replaced = dst
                        .as_ref()
                        .and_then(|d| d.meta.etag.clone())
                        .filter(|e| src.meta.etag.as_ref() != Some(e));
                    self.copy_over(&from, &to, src.meta.size, replaced.as_deref()).await?;
                    self.client.delete_object(&from).await.map_err(|e| s3_errno(&e))?;
                }
            }
            Kind::Dir => {
                if let Some(d) = &dst {
                    if d.meta.kind != Kind::Dir {
                        return Err(libc::ENOTDIR);
                    }
                    let p = self.dir_prefix(&d.path);
                    let page = self
                        .client
                        .list_objects(&p, None, Some(2), None, None)
                        .await
                        .map_err(|e| s3_errno(&e))?;
                    if page.objects.iter().any(|o| o.key != p) || self.inodes.has_local_below(d.ino) {
                        return Err(libc::ENOTEMPTY);
                    }
                }
                if new_path.starts_with(&format!("{}/", src.path)) {
                    return Err(libc::EINVAL);
                }
                if self.inodes.has_local_below(src.ino) {
                    return Err(libc::EBUSY);
                }
                self.rename_tree(&self.dir_prefix(&src.path), &self.dir_prefix(&new_path))
                    .await?;
            }
        }
        let (from, to) = match src.meta.kind {
            Kind::File => (self.key(&src.path), self.key(&new_path)),
            Kind::Dir => (self.dir_prefix(&src.path), self.dir_prefix(&new_path)),
        };
        self.rebase_writers(&from, &to).await;
        self.inodes.rename(parent, name, new_parent, new_name);
        self.listings.set(parent, name, None);
        let mut meta = src.meta.clone();
        if let Some(n) = self.inodes.get(src.ino) {
            meta = n.meta;
        }
        self.listings.set(new_parent, new_name, Some(meta));
        Ok(())
    }

    /// Open writers that build on a renamed object read it at its new key.
    async fn rebase_writers(&self, from: &str, to: &str) {
        let writers: Vec<_> = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|h| match h {
                Handle::Write { w, .. } => Some(w.clone()),
                _ => None,
            })
            .collect();
        for w in writers {
            w.lock().await.rebase(from, to);
        }
    }

    /// Copies `from` over `to`. When `to` held the version `replaced`, the
    /// copy is checked to be what the server now serves: a store that
    /// orders versions by a millisecond clock can let a write made in the
    /// same millisecond as the copy win over it (Garage did for one
    /// back-to-back PUT + copy in six), and deleting the source then
    /// would lose its bytes. Such a copy is made again, a few times at
    /// most, and the rename fails rather than delete the source.
    async fn copy_over(&self, from: &str, to: &str, size: u64, replaced: Option<&str>) -> Result<(), Errno> {
        const ATTEMPTS: u32 = 4;
        for attempt in 1..=ATTEMPTS {
            copy_object(self.client.clone(), from.to_string(), to.to_string(), size, None).await?;
            let Some(old) = replaced else { return Ok(()) };
            let now = self.client.head_object(to).await.map_err(|e| s3_errno(&e))?;
            if now.etag.as_deref() != Some(old) {
                return Ok(());
            }
            tracing::debug!(key = %to, attempt, "the replaced version still wins over the copy; copying again");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tracing::warn!(key = %to, "the server keeps serving the replaced version after {ATTEMPTS} copies");
        Err(libc::EIO)
    }

    /// Renames every key under a directory prefix: copies first, then
    /// deletes, so a failure midway leaves both copies rather than none.
    async fn rename_tree(&self, from: &str, to: &str) -> Result<(), Errno> {
        let mut keys = Vec::new();
        let mut pages = std::pin::pin!(self.client.list_pages(from.to_string(), None, Some(1000)));
        while let Some(page) = pages.try_next().await.map_err(|e| s3_errno(&e))? {
            keys.extend(page.objects.into_iter().map(|o| (o.key, o.size)));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (k, size) in &keys {
            while tasks.len() >= 16 {
                if let Some(r) = tasks.join_next().await {
                    r.map_err(|_| libc::EIO)??;
                }
            }
            let dst = format!("{to}{}", &k[from.len()..]);
            tasks.spawn(copy_object(self.client.clone(), k.clone(), dst, *size, None));
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(|_| libc::EIO)??;
        }
        if keys.is_empty() {
            // A directory known only here still exists at its new name.
            self.client
                .put_object(to, crate::s3::Payload::Empty, &Default::default())
                .await
                .map_err(|e| s3_errno(&e))?;
        }
        for chunk in keys.chunks(1000) {
            let names: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
            let failed = self.client.delete_objects(&names).await.map_err(|e| s3_errno(&e))?;
            if !failed.is_empty() {
                return Err(libc::EIO);
            }
        }
        Ok(())
    }
}

/// A file's attributes from its HeadObject.
fn file_meta(m: &ObjectMeta, now: SystemTime) -> Meta {
    Meta::file(
        m.size,
        m.etag.clone(),
        mtime::stored(&m.metadata),
        m.last_modified.unwrap_or(now),
    )
}

/// Server-side copy (above the store's single-copy limit, a multipart
/// copy), with the source's content type and metadata or with `opts`.
/// Returns the new ETag.
async fn copy_object(
    client: S3Client,
    from: String,
    to: String,
    size: u64,
    opts: Option<PutOptions>,
) -> Result<Option<String>, Errno> {
    let q = client.endpoint().quirks().clone();
    if size <= q.max_copy_object_size {
        return client
            .copy_object(&from, &to, opts.as_ref())
            .await
            .map_err(|e| s3_errno(&e));
    }
    if !q.upload_part_copy {
        return Err(libc::EXDEV);
    }
    // Parts of up to 512 MiB (never more than one CopyObject may copy),
    // enough of them to stay within the part count.
    let part = q
        .max_copy_object_size
        .min(512 * 1024 * 1024)
        .max(q.min_part_size)
        .max(size.div_ceil(u64::from(q.max_parts.max(1))));
    // A multipart upload starts with no metadata: the source's is carried over.
    let opts = match opts {
        Some(o) => o,
        None => {
            let m = client.head_object(&from).await.map_err(|e| s3_errno(&e))?;
            PutOptions {
                content_type: m.content_type,
                metadata: m.metadata,
                if_none_match: false,
            }
        }
    };
    let id = client
        .create_multipart_upload(&to, &opts)
        .await
        .map_err(|e| s3_errno(&e))?;
    let mut parts = Vec::new();
    let mut start = 0;
    let mut n = 0;
    while start < size {
        n += 1;
        let end = (start + part).min(size);
        match client.upload_part_copy(&to, &id, n, &from, start..end).await {
            Ok(p) => parts.push(p),
            Err(e) => {
                let _ = client.abort_multipart_upload(&to, &id).await;
                return Err(s3_errno(&e));
            }
        }
        start = end;
    }
    match client.complete_multipart_upload(&to, &id, &parts).await {
        Ok(etag) => Ok(etag),
        Err(e) => {
            let _ = client.abort_multipart_upload(&to, &id).await;
            Err(s3_errno(&e))
        }
    }
}
