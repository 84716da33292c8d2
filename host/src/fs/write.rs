//! The write path of one open file.
//!
//! A file created (or opened with `O_TRUNC`) and written front to back is
//! *streamed*: parts are uploaded while the writer goes on, with bounded
//! concurrency, and `close`/`fsync` complete the upload (a file smaller
//! than one part is a single PutObject). Anything else — writing into an
//! existing file, seeking, truncating, appending after a sync — is
//! *staged*: written ranges go to a local temporary file and the upload on
//! `close`/`fsync` takes unchanged ranges from the old object, server-side
//! with UploadPartCopy where the provider supports it.
//!
//! Errors are kept and returned by the next `write`, `fsync` or `close`;
//! an upload that fails or is abandoned is aborted, and one whose abort
//! fails is listed for cleanup.

use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::budget::{Budget, PoolBuf};
use super::staging::{RangeSet, Staging, StagingFile};
use crate::s3::{CompletedPart, Payload, PutOptions, S3Client, S3Error};

/// The largest object S3 stores; a file may not grow past it.
const MAX_OBJECT: u64 = 5 * 1024 * 1024 * 1024 * 1024;

/// Multipart uploads this mount started and could not abort.
pub(crate) type Orphans = Arc<Mutex<Vec<(String, String)>>>;

#[derive(Clone)]
pub(crate) struct WriteCtx {
    pub client: S3Client,
    pub budget: Budget,
    pub requests: Arc<Semaphore>,
    pub staging: Arc<Staging>,
    pub part_size: u64,
    pub concurrency: usize,
    pub orphans: Orphans,
}

impl WriteCtx {
    fn quirks(&self) -> &crate::s3::Quirks {
        self.client.endpoint().quirks()
    }

    /// Size of part `n` (1-based) of a streamed upload: constant for
    /// providers that need uniform parts, else doubling every 1,000 parts
    /// so 10,000 parts reach far past a terabyte.
    fn stream_part_len(&self, n: u32) -> u64 {
        // At least 1 byte, so a part always makes progress.
        let base = self.part_size.max(self.quirks().min_part_size).max(1);
        if self.quirks().uniform_part_size {
            base
        } else {
            base << ((n.saturating_sub(1)) / 1000).min(10)
        }
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        if let Err(e) = self.client.abort_multipart_upload(key, upload_id).await {
            tracing::warn!(key, error = %e, "could not abort a failed upload; listed for cleanup");
            self.orphans
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((key.to_string(), upload_id.to_string()));
        }
    }
}

fn eio(e: &S3Error) -> i32 {
    match e.errno() {
        libc::ENOENT | libc::EINVAL => libc::EIO,
        n => n,
    }
}

/// What an upload produced.
#[derive(Clone, Debug)]
pub(crate) struct Uploaded {
    pub etag: Option<String>,
    pub size: u64,
    /// Whether the object was written with the options `flush` was given
    /// (a streamed upload started before they were known was not).
    pub with_options: bool,
}

struct Mpu {
    key: String,
    id: String,
    next_part: u32,
    tasks: JoinSet<Result<CompletedPart, S3Error>>,
    done: Vec<CompletedPart>,
}

/// A streamed file's bytes stay in a small unaccounted buffer while they
/// are fewer than this (small files need no budget); past it, they move
/// to a part-sized buffer from the budget, which goes with the part to
/// its upload and back to the pool when the upload ends.
const SMALL_BUFFER: usize = 1024 * 1024;

/// The errno of a local I/O failure (staging file).
fn io_errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

struct Streamer {
    size: u64,
    /// Bytes not yet sent while the file is small.
    small: BytesMut,
    /// Bytes not yet sent once it is not; never full (a full part is sent).
    part: Option<PoolBuf>,
    mpu: Option<Mpu>,
}

/// The old object a staged file starts from.
#[derive(Clone)]
struct Base {
    key: String,
    etag: Option<String>,
    /// Bytes of the object that are still part of the file (truncation
    /// cuts them; what lies beyond and was not written reads as zeros).
    valid: u64,
}

struct Staged {
    /// Created by the first local write: a file opened for writing and
    /// closed unchanged, or rewritten whole and closed, never touches the disk.
    file: Option<StagingFile>,
    local: RangeSet,
    size: u64,
    base: Option<Base>,
}

enum State {
    Streaming(Streamer),
    Staged(Staged),
}

pub(crate) struct WriteHandle {
    ctx: WriteCtx,
    state: State,
    dirty: bool,
    /// A failure that lost data: every later call reports it.
    failed: Option<i32>,
}

impl WriteHandle {
    /// A file that starts empty (created, or opened with `O_TRUNC`): it
    /// will be uploaded on close even if nothing is written.
    pub fn empty(ctx: WriteCtx) -> Self {
        Self {
            ctx,
            state: State::Streaming(Streamer::new()),
            dirty: true,
            failed: None,
        }
    }

    /// An existing object opened for writing.
    pub fn existing(ctx: WriteCtx, key: &str, etag: Option<String>, size: u64) -> Result<Self, i32> {
        if size == 0 {
            let mut h = Self::empty(ctx);
            h.dirty = false;
            return Ok(h);
        }
        let base = Base {
            key: key.to_string(),
            etag,
            valid: size,
        };
        Ok(Self {
            ctx,
            state: State::Staged(Staged {
                file: None,
                local: RangeSet::default(),
                size,
                base: Some(base),
            }),
            dirty: false,
            failed: None,
        })
    }

    pub fn size(&self) -> u64 {
        match &self.state {
            State::Streaming(s) => s.size,
            State::Staged(s) => s.size,
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The object this handle builds on was renamed from `from` to `to`
    /// (a key, or a directory prefix ending in `/`).
    pub fn rebase(&mut self, from: &str, to: &str) {
        if let State::Staged(Staged { base: Some(b), .. }) = &mut self.state {
            if b.key == from {
                b.key = to.to_string();
            } else if from.ends_with('/') {
                if let Some(rest) = b.key.strip_prefix(from) {
                    b.key = format!("{to}{rest}");
                }
            }
        }
    }

    /// Data was lost: the handle can only report the error.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    pub fn failure(&self) -> Option<i32> {
        self.failed
    }

    fn check(&self) -> Result<(), i32> {
        self.failed.map_or(Ok(()), Err)
    }

    pub async fn write(&mut self, key: &str, offset: u64, data: &[u8]) -> Result<(), i32> {
        self.check()?;
        if offset.saturating_add(data.len() as u64) > MAX_OBJECT {
            return Err(libc::EFBIG);
        }
        if let State::Streaming(s) = &self.state {
            if offset != s.size {
                self.switch_to_staged(key).await?;
            }
        }
        self.dirty = true;
        let r = match &mut self.state {
            State::Streaming(s) => s.append(&self.ctx, key, data).await,
            State::Staged(s) => s.write(&self.ctx.staging, offset, data),
        };
        if let Err(e) = r {
            if matches!(self.state, State::Streaming(_)) {
                self.fail(e).await;
            }
            return Err(e);
        }
        Ok(())
    }

    pub async fn read(&mut self, key: &str, offset: u64, len: u32) -> Result<Bytes, i32> {
        self.check()?;
        if matches!(self.state, State::Streaming(_)) {
            self.switch_to_staged(key).await?;
        }
        let State::Staged(s) = &self.state else {
            return Err(libc::EIO);
        };
        let end = (offset + u64::from(len)).min(s.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        s.source(&self.ctx.client).materialize(offset..end).await
    }

    pub async fn truncate(&mut self, key: &str, size: u64) -> Result<(), i32> {
        self.check()?;
        if size > MAX_OBJECT {
            return Err(libc::EFBIG);
        }
        if size == self.size() {
            return Ok(());
        }
        if let State::Streaming(s) = &mut self.state {
            if size == 0 {
                if let Some(mpu) = s.mpu.take() {
                    abort_mpu(&self.ctx, mpu).await;
                }
                *s = Streamer::new();
                self.dirty = true;
                return Ok(());
            }
            self.switch_to_staged(key).await?;
        }
        let State::Staged(s) = &mut self.state else {
            return Err(libc::EIO);
        };
        s.truncate(size)?;
        self.dirty = true;
        Ok(())
    }

    /// Uploads the file if it changed since the last upload, with `opts`
    /// where the upload has not started yet.
    pub async fn flush(&mut self, key: &str, opts: &PutOptions) -> Result<Option<Uploaded>, i32> {
        self.check()?;
        if !self.dirty {
            return Ok(None);
        }
        match &mut self.state {
            State::Streaming(s) => {
                let streamer = std::mem::replace(s, Streamer::new());
                match streamer.finish(&self.ctx, key, opts).await {
                    Ok(up) => {
                        self.dirty = false;
                        // Later writes (after fsync, or through a dup'ed fd)
                        // build on the object just written.
                        if up.size == 0 {
                            // Nothing to keep locally.
                        } else {
                            let base = Base {
                                key: key.to_string(),
                                etag: up.etag.clone(),
                                valid: up.size,
                            };
                            self.state = State::Staged(Staged {
                                file: None,
                                local: RangeSet::default(),
                                size: up.size,
                                base: Some(base),
                            });
                        }
                        Ok(Some(up))
                    }
                    Err(e) => {
                        self.failed = Some(e);
                        Err(e)
                    }
                }
            }
            State::Staged(s) => {
                // A failed staged upload keeps its data: a later fsync or
                // close tries again.
                let up = s.upload(&self.ctx, key, opts).await?;
                self.dirty = false;
                Ok(Some(up))
            }
        }
    }

    /// Gives up: aborts a multipart upload in progress.
    pub async fn abandon(&mut self) {
        if let State::Streaming(s) = &mut self.state {
            if let Some(mpu) = s.mpu.take() {
                abort_mpu(&self.ctx, mpu).await;
            }
        }
        self.dirty = false;
    }

    async fn fail(&mut self, e: i32) {
        self.failed = Some(e);
        self.abandon().await;
    }

    /// Leaves streaming mode, keeping every byte written.
    async fn switch_to_staged(&mut self, key: &str) -> Result<(), i32> {
        let State::Streaming(s) = &mut self.state else {
            return Ok(());
        };
        if s.mpu.is_none() {
            let mut file = self.ctx.staging.create().map_err(io_errno)?;
            let size = s.size;
            if !file.account(size) {
                return Err(libc::ENOSPC);
            }
            file.write_at(s.pending(), 0).map_err(io_errno)?;
            let mut local = RangeSet::default();
            local.insert(0..size);
            self.state = State::Staged(Staged {
                file: Some(file),
                local,
                size,
                base: None,
            });
            return Ok(());
        }
        // Parts are already on the server: complete them into the object
        // and continue from it.
        let was_dirty = self.dirty;
        self.dirty = true;
        match self.flush(key, &PutOptions::default()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.dirty = was_dirty;
                Err(e)
            }
        }
    }
}

async fn abort_mpu(ctx: &WriteCtx, mut mpu: Mpu) {
    mpu.tasks.abort_all();
    while mpu.tasks.join_next().await.is_some() {}
    ctx.abort(&mpu.key, &mpu.id).await;
}

impl Streamer {
    fn new() -> Self {
        Self {
            size: 0,
            small: BytesMut::new(),
            part: None,
            mpu: None,
        }
    }

    /// Bytes written and not yet sent.
    fn pending(&self) -> &[u8] {
        match &self.part {
            Some(p) => p.as_ref(),
            None => &self.small,
        }
    }

    /// The unsent bytes as one body, leaving the streamer empty.
    fn take_pending(&mut self) -> Bytes {
        match self.part.take() {
            Some(p) => p.freeze(),
            None => std::mem::take(&mut self.small).freeze(),
        }
    }

    async fn append(&mut self, ctx: &WriteCtx, key: &str, mut data: &[u8]) -> Result<(), i32> {
        self.size += data.len() as u64;
        loop {
            if self.part.is_none() {
                let n = self.mpu.as_ref().map_or(1, |m| m.next_part);
                let len = ctx.stream_part_len(n) as usize;
                if self.mpu.is_none() && self.small.len() + data.len() < SMALL_BUFFER.min(len) {
                    self.small.extend_from_slice(data);
                    return Ok(());
                }
                let mut part = ctx.budget.buffer(len).await;
                part.fill(&std::mem::take(&mut self.small));
                self.part = Some(part);
            }
            let part = self.part.as_mut().expect("set above");
            let n = part.fill(data);
            data = &data[n..];
            if part.room() > 0 {
                return Ok(());
            }
            let body = self.take_pending();
            self.send_part(ctx, key, body).await?;
            if data.is_empty() {
                return Ok(());
            }
        }
    }

    async fn send_part(&mut self, ctx: &WriteCtx, key: &str, part: Bytes) -> Result<(), i32> {
        if self.mpu.is_none() {
            let id = ctx
                .client
                .create_multipart_upload(key, &PutOptions::default())
                .await
                .map_err(|e| {
                    tracing::warn!(key, error = %e, "could not start an upload");
                    eio(&e)
                })?;
            self.mpu = Some(Mpu {
                key: key.to_string(),
                id,
                next_part: 1,
                tasks: JoinSet::new(),
                done: Vec::new(),
            });
        }
        let mpu = self.mpu.as_mut().expect("created above");
        if mpu.next_part > ctx.quirks().max_parts {
            return Err(libc::EFBIG);
        }
        while mpu.tasks.len() >= ctx.concurrency.max(1) {
            collect_one(mpu).await?;
        }
        // Also reap parts that already finished, so errors surface early.
        while let Some(r) = mpu.tasks.try_join_next() {
            mpu.done.push(part_result(r)?);
        }
        let n = mpu.next_part;
        mpu.next_part += 1;
        let (client, requests, key, id) = (
            ctx.client.clone(),
            ctx.requests.clone(),
            mpu.key.clone(),
            mpu.id.clone(),
        );
        // The part's buffer (and the memory it holds) lives as long as
        // the upload, retries included.
        mpu.tasks.spawn(async move {
            let _slot = requests.acquire().await;
            client.upload_part(&key, &id, n, Payload::Bytes(part)).await
        });
        Ok(())
    }

    async fn finish(mut self, ctx: &WriteCtx, key: &str, opts: &PutOptions) -> Result<Uploaded, i32> {
        let size = self.size;
        if self.mpu.is_none() {
            let body = self.take_pending();
            let _slot = ctx.requests.acquire().await;
            let etag = ctx
                .client
                .put_object(key, Payload::Bytes(body), opts)
                .await
                .map_err(|e| {
                    tracing::warn!(key, error = %e, "upload failed");
                    eio(&e)
                })?;
            return Ok(Uploaded {
                etag,
                size,
                with_options: true,
            });
        }
        let result = async {
            if !self.pending().is_empty() {
                let last = self.take_pending();
                self.send_part(ctx, key, last).await?;
            }
            let mpu = self.mpu.as_mut().expect("checked above");
            while !mpu.tasks.is_empty() {
                collect_one(mpu).await?;
            }
            mpu.done.sort_by_key(|p| p.part_number);
            ctx.client
                .complete_multipart_upload(&mpu.key, &mpu.id, &mpu.done)
                .await
                .map_err(|e| {
                    tracing::warn!(key = %mpu.key, error = %e, "completing the upload failed");
                    eio(&e)
                })
        }
        .await;
        let mpu = self.mpu.take().expect("checked above");
        let etag = match result {
            Ok(etag) => etag,
            Err(e) => {
                abort_mpu(ctx, mpu).await;
                return Err(e);
            }
        };
        if mpu.key != key {
            // Renamed while being written.
            let etag = ctx.client.copy_object(&mpu.key, key, None).await.map_err(|e| eio(&e))?;
            ctx.client.delete_object(&mpu.key).await.map_err(|e| eio(&e))?;
            return Ok(Uploaded {
                etag,
                size,
                with_options: false,
            });
        }
        Ok(Uploaded {
            etag,
            size,
            with_options: false,
        })
    }
}

async fn collect_one(mpu: &mut Mpu) -> Result<(), i32> {
    if let Some(r) = mpu.tasks.join_next().await {
        mpu.done.push(part_result(r)?);
    }
    Ok(())
}

fn part_result(r: Result<Result<CompletedPart, S3Error>, tokio::task::JoinError>) -> Result<CompletedPart, i32> {
    match r {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "part upload failed");
            Err(eio(&e))
        }
        Err(_) => Err(libc::EIO),
    }
}

/// A snapshot of where each byte of a staged file comes from.
#[derive(Clone)]
struct Source {
    client: S3Client,
    /// Holds every local range; none without them.
    file: Option<Arc<std::fs::File>>,
    local: RangeSet,
    base: Option<Base>,
}

impl Source {
    async fn materialize(&self, r: Range<u64>) -> Result<Bytes, i32> {
        let mut out = BytesMut::zeroed((r.end - r.start) as usize);
        for (piece, local) in self.local.split(r.clone()) {
            let dst = &mut out[(piece.start - r.start) as usize..(piece.end - r.start) as usize];
            if local {
                let Some(file) = &self.file else { return Err(libc::EIO) };
                file.read_exact_at(dst, piece.start).map_err(io_errno)?;
                continue;
            }
            let Some(base) = &self.base else { continue };
            let from_base = piece.start..piece.end.min(base.valid);
            if from_base.is_empty() {
                continue;
            }
            let bytes = self
                .client
                .get_object(&base.key, Some(from_base.clone()), base.etag.as_deref())
                .await
                .map_err(|e| eio(&e))?
                .body
                .collect(dst.len(), "GetObject")
                .await
                .map_err(|e| eio(&e))?;
            if bytes.len() as u64 != from_base.end - from_base.start {
                return Err(libc::EIO);
            }
            dst[..bytes.len()].copy_from_slice(&bytes);
        }
        Ok(out.freeze())
    }
}

impl Staged {
    fn source(&self, client: &S3Client) -> Source {
        Source {
            client: client.clone(),
            file: self.file.as_ref().map(|f| f.file.clone()),
            local: self.local.clone(),
            base: self.base.clone(),
        }
    }

    fn write(&mut self, staging: &Arc<Staging>, offset: u64, data: &[u8]) -> Result<(), i32> {
        let r = offset..offset + data.len() as u64;
        let grown = self.local.total() + self.local.uncovered(&r);
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(staging.create().map_err(io_errno)?),
        };
        if !file.account(grown) {
            return Err(libc::ENOSPC);
        }
        file.write_at(data, offset).map_err(io_errno)?;
        self.local.insert(r.clone());
        self.size = self.size.max(r.end);
        Ok(())
    }

    fn truncate(&mut self, size: u64) -> Result<(), i32> {
        self.local.truncate(size);
        if let Some(b) = &mut self.base {
            b.valid = b.valid.min(size);
        }
        if let Some(f) = &mut self.file {
            f.file
                .set_len(size.min(f.file.metadata().map(|m| m.len()).unwrap_or(0)))
                .map_err(io_errno)?;
            f.account(self.local.total());
        }
        self.size = size;
        Ok(())
    }

    async fn upload(&mut self, ctx: &WriteCtx, key: &str, opts: &PutOptions) -> Result<Uploaded, i32> {
        let src = self.source(&ctx.client);
        let size = self.size;
        let etag = if size <= ctx.part_size.max(ctx.quirks().min_part_size) {
            let _memory = ctx.budget.reserve(size).await;
            let body = src.materialize(0..size).await?;
            let _slot = ctx.requests.acquire().await;
            ctx.client
                .put_object(key, Payload::Bytes(body), opts)
                .await
                .map_err(|e| {
                    tracing::warn!(key, error = %e, "upload failed");
                    eio(&e)
                })?
        } else {
            multipart_from(ctx, key, &src, size, opts).await?
        };
        self.base = Some(Base {
            key: key.to_string(),
            etag: etag.clone(),
            valid: size,
        });
        self.local.clear();
        if let Some(f) = &mut self.file {
            let _ = f.file.set_len(0);
            f.account(0);
        }
        Ok(Uploaded {
            etag,
            size,
            with_options: true,
        })
    }
}

/// Uploads a staged file as a multipart upload, copying unchanged parts
/// server-side when the provider can.
async fn multipart_from(
    ctx: &WriteCtx,
    key: &str,
    src: &Source,
    size: u64,
    opts: &PutOptions,
) -> Result<Option<String>, i32> {
    let q = ctx.quirks();
    let mib = 1024 * 1024;
    let mut part = ctx.part_size.max(q.min_part_size);
    if size.div_ceil(part) > u64::from(q.max_parts) {
        part = size.div_ceil(u64::from(q.max_parts)).next_multiple_of(mib);
    }
    let id = ctx
        .client
        .create_multipart_upload(key, opts)
        .await
        .map_err(|e| eio(&e))?;
    let result = async {
        let mut tasks: JoinSet<Result<CompletedPart, S3Error>> = JoinSet::new();
        let mut done = Vec::new();
        let mut n = 0u32;
        let mut start = 0u64;
        while start < size {
            let r = start..(start + part).min(size);
            start = r.end;
            n += 1;
            while tasks.len() >= ctx.concurrency.max(1) {
                if let Some(res) = tasks.join_next().await {
                    done.push(part_result(res)?);
                }
            }
            let copy =
                q.upload_part_copy && src.base.as_ref().is_some_and(|b| r.end <= b.valid) && !src.local.overlaps(&r);
            let (client, requests, key, id) = (ctx.client.clone(), ctx.requests.clone(), key.to_string(), id.clone());
            if copy {
                let base_key = src.base.as_ref().map(|b| b.key.clone()).unwrap_or_default();
                tasks.spawn(async move {
                    let _slot = requests.acquire().await;
                    client.upload_part_copy(&key, &id, n, &base_key, r).await
                });
            } else {
                let memory = ctx.budget.reserve(r.end - r.start).await;
                let body = src.materialize(r).await?;
                tasks.spawn(async move {
                    let _memory = memory;
                    let _slot = requests.acquire().await;
                    client.upload_part(&key, &id, n, Payload::Bytes(body)).await
                });
            }
        }
        while let Some(res) = tasks.join_next().await {
            done.push(part_result(res)?);
        }
        done.sort_by_key(|p| p.part_number);
        ctx.client
            .complete_multipart_upload(key, &id, &done)
            .await
            .map_err(|e| eio(&e))
    }
    .await;
    if result.is_err() {
        ctx.abort(key, &id).await;
    }
    result
}
