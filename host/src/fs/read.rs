//! The read path: ranged GETs with a prefetch window that grows while a
//! reader moves forward and collapses when it jumps.
//!
//! The window is cut into segments, each fetched by one ranged GET task
//! that streams into a buffer readers can take from as soon as the bytes
//! arrive. Up to `window / segment` GETs run at once. Every segment
//! reserves its size from the mount's memory budget before it is fetched,
//! so the total buffered stays bounded however many files are read.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use tokio::sync::{oneshot, Notify, Semaphore};

use super::budget::{Budget, PoolBuf};
use super::streams::StreamSlot;
use crate::s3::S3Client;

/// First window of a reader that starts at the beginning or continues
/// sequentially after a jump.
const INITIAL_WINDOW: u64 = 1024 * 1024;
/// Largest single GET of the window.
const MAX_SEGMENT: u64 = 8 * 1024 * 1024;
/// Smallest GET for a read that is not sequential.
const RANDOM_GRANULE: u64 = 64 * 1024;
/// Consumed data kept behind the reader, for requests the kernel sends
/// slightly out of order.
const BACK_SLACK: u64 = 2 * 1024 * 1024;
/// How far behind the window a read may land and still count as a
/// straggler of the sequential stream (the kernel runs several readahead
/// requests at once, and FUSE threads may answer them in any order)
/// rather than a jump: fetched on its own, it leaves the window alone.
const STRAGGLER_REACH: u64 = 16 * 1024 * 1024;

/// What reading needs from the mount.
#[derive(Clone)]
pub(crate) struct ReadCtx {
    pub client: S3Client,
    pub budget: Budget,
    pub requests: Arc<Semaphore>,
    pub max_window: u64,
}

/// A segment's bytes live in one buffer of exactly its size, reserved
/// from the budget (and recycled through its pool): what the network
/// delivers is copied in, so the budget counts what the segment holds
/// whatever the size and sharing of the transport's own buffers.
enum SegData {
    /// Being received: readers copy out what has arrived.
    Filling(PoolBuf),
    /// Complete: readers get slices without a copy.
    Done(Bytes),
}

struct SegState {
    data: Option<SegData>,
    received: u64,
    done: bool,
    error: Option<i32>,
}

impl SegState {
    /// Appends received bytes; more than the buffer holds is the server's error.
    fn push(&mut self, chunk: &[u8]) -> Result<(), i32> {
        let Some(SegData::Filling(buf)) = &mut self.data else {
            return Err(libc::EIO);
        };
        if buf.fill(chunk) != chunk.len() {
            return Err(libc::EIO);
        }
        self.received += chunk.len() as u64;
        Ok(())
    }

    /// The buffer is full: later reads need no copy.
    fn complete(&mut self) {
        if let Some(SegData::Filling(buf)) = self.data.take() {
            self.data = Some(SegData::Done(buf.freeze()));
        }
    }

    /// Bytes `rel` (relative to the segment), all received.
    fn bytes(&self, rel: Range<u64>) -> Bytes {
        let r = rel.start as usize..rel.end as usize;
        match &self.data {
            Some(SegData::Done(b)) => b.slice(r),
            Some(SegData::Filling(buf)) => Bytes::copy_from_slice(&buf.as_ref()[r]),
            None => Bytes::new(),
        }
    }
}

struct Segment {
    range: Range<u64>,
    state: Mutex<SegState>,
    notify: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
    }
}

impl Segment {
    /// Starts fetching `range` once the segment before it of the same
    /// reader (`after`) has its memory. A reader's segments get memory in
    /// order, so its first unread segment never waits for memory held by
    /// the reader's own later ones: with every reader's next segment able
    /// to proceed, readers sharing a budget smaller than their windows
    /// cannot all wait on each other.
    fn start(
        ctx: &ReadCtx,
        key: &str,
        etag: Option<&str>,
        range: Range<u64>,
        after: Option<oneshot::Receiver<()>>,
    ) -> (Arc<Segment>, oneshot::Receiver<()>) {
        let (has_memory, next) = oneshot::channel();
        let seg = Arc::new(Segment {
            range: range.clone(),
            state: Mutex::new(SegState {
                data: None,
                received: 0,
                done: false,
                error: None,
            }),
            notify: Notify::new(),
            task: Mutex::new(None),
        });
        let weak = Arc::downgrade(&seg);
        let ctx = ctx.clone();
        let key = key.to_string();
        let etag = etag.map(str::to_string);
        let task = tokio::spawn(async move {
            if let Some(prev) = after {
                // An error only means the previous segment is gone.
                let _ = prev.await;
            }
            let len = range.end - range.start;
            let buf = ctx.budget.buffer(len as usize).await;
            let _ = has_memory.send(());
            match weak.upgrade() {
                Some(seg) => seg.state.lock().unwrap_or_else(|p| p.into_inner()).data = Some(SegData::Filling(buf)),
                None => return,
            }
            let _slot = ctx.requests.acquire().await;
            let result = async {
                let out = ctx
                    .client
                    .get_object(&key, Some(range.clone()), etag.as_deref())
                    .await
                    .map_err(ReadFailure::S3)?;
                let mut body = out.body;
                while let Some(chunk) = body.try_next().await.map_err(ReadFailure::S3)? {
                    let Some(seg) = weak.upgrade() else { return Ok(()) };
                    seg.state
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(&chunk)
                        .map_err(ReadFailure::Errno)?;
                    seg.notify.notify_waiters();
                }
                Ok::<(), ReadFailure>(())
            }
            .await;
            if let Some(seg) = weak.upgrade() {
                {
                    let mut st = seg.state.lock().unwrap_or_else(|p| p.into_inner());
                    st.done = true;
                    if let Err(ReadFailure::S3(e)) = &result {
                        st.error = Some(fetch_errno(&key, e));
                    } else if let Err(ReadFailure::Errno(e)) = result {
                        tracing::warn!(key = %key, "the server sent more bytes than asked for");
                        st.error = Some(e);
                    } else if st.received < len {
                        st.error = Some(libc::EIO);
                    } else {
                        st.complete();
                    }
                }
                seg.notify.notify_waiters();
            }
        });
        *seg.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        (seg, next)
    }

    /// Waits until `want` (absolute) is buffered; returns those bytes.
    async fn read(&self, want: Range<u64>) -> Result<Bytes, i32> {
        let rel = (want.start - self.range.start)..(want.end - self.range.start);
        loop {
            let notified = self.notify.notified();
            {
                let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if st.received >= rel.end {
                    return Ok(st.bytes(rel));
                }
                if let Some(e) = st.error {
                    return Err(e);
                }
                if st.done {
                    return Err(libc::EIO);
                }
            }
            notified.await;
        }
    }
}

/// Why a segment's fetch stopped.
enum ReadFailure {
    S3(crate::s3::S3Error),
    Errno(i32),
}

/// The errno of a failed GET of `key`. A version change is `ESTALE`,
/// which stays inside this module: the reader decides whether it may
/// follow the new version.
fn fetch_errno(key: &str, e: &crate::s3::S3Error) -> i32 {
    tracing::warn!(key = %key, error = %e, "read failed");
    if e.is_precondition_failed() {
        libc::ESTALE
    } else {
        e.errno()
    }
}

/// A version change the reader may not follow is an I/O error to the caller.
fn stale_is_eio(e: i32) -> i32 {
    if e == libc::ESTALE {
        libc::EIO
    } else {
        e
    }
}

struct State {
    segments: VecDeque<Arc<Segment>>,
    /// End of the last scheduled segment.
    next_fetch: u64,
    /// Current window; 0 after a random read.
    window: u64,
    /// Signals that the last scheduled segment has its memory.
    last_memory: Option<oneshot::Receiver<()>>,
}

/// The object version a reader serves: every GET is conditional on its
/// ETag, so bytes of two versions are never mixed in one file.
#[derive(Clone)]
struct Pin {
    etag: Option<String>,
    size: u64,
}

/// Where a read's bytes come from.
enum Plan {
    /// Segments of the window (or of a random read) that cover it.
    Segments(Vec<Arc<Segment>>),
    /// A read that landed just behind the window: fetched on its own,
    /// conditional on this ETag.
    Straggler(Option<String>),
}

/// One open file's reader.
pub(crate) struct Prefetcher {
    ctx: ReadCtx,
    key: String,
    pin: Mutex<Pin>,
    /// Set once any byte has been returned; from then on the version is fixed.
    served: std::sync::atomic::AtomicBool,
    /// Set when the reader followed a new version, until the owner asks.
    repinned: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
    /// This reader among the file's readers: its window stops where
    /// another's sequential stream starts.
    stream: StreamSlot,
}

impl Prefetcher {
    pub fn new(ctx: ReadCtx, key: String, etag: Option<String>, size: u64, stream: StreamSlot) -> Self {
        Self {
            ctx,
            key,
            pin: Mutex::new(Pin { etag, size }),
            served: std::sync::atomic::AtomicBool::new(false),
            repinned: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(State {
                segments: VecDeque::new(),
                next_fetch: 0,
                window: 0,
                last_memory: None,
            }),
            stream,
        }
    }

    pub async fn read(&self, offset: u64, len: u32) -> Result<Bytes, i32> {
        use std::sync::atomic::Ordering;
        match self.read_pinned(offset, len).await {
            // The object was replaced between open and the first read (the
            // open's metadata came from a cache that was about to expire).
            // Nothing of the old version was handed out, so follow the new
            // one once; after the first byte a change is an error.
            Err(libc::ESTALE) if !self.served.load(Ordering::Acquire) => {
                self.repin().await?;
                let out = self.read_pinned(offset, len).await.map_err(stale_is_eio)?;
                self.served.store(true, Ordering::Release);
                Ok(out)
            }
            Err(e) => Err(stale_is_eio(e)),
            Ok(out) => {
                self.served.store(true, Ordering::Release);
                Ok(out)
            }
        }
    }

    /// Whether the reader has followed a new version since the last call:
    /// what it serves is then not the version it was opened with.
    pub fn take_repinned(&self) -> bool {
        self.repinned.swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    async fn repin(&self) -> Result<(), i32> {
        let m = self.ctx.client.head_object(&self.key).await.map_err(|e| e.errno())?;
        tracing::debug!(key = %self.key, "object replaced before the first read; following the new version");
        *self.pin.lock().unwrap_or_else(|p| p.into_inner()) = Pin {
            etag: m.etag,
            size: m.size,
        };
        self.repinned.store(true, std::sync::atomic::Ordering::Release);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.segments.clear();
        st.next_fetch = 0;
        st.window = 0;
        st.last_memory = None;
        Ok(())
    }

    async fn read_pinned(&self, offset: u64, len: u32) -> Result<Bytes, i32> {
        let size = self.pin.lock().unwrap_or_else(|p| p.into_inner()).size;
        if offset >= size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + u64::from(len)).min(size);
        let needed = match self.plan(offset, end) {
            Plan::Straggler(etag) => return self.fetch_straggler(offset..end, etag.as_deref()).await,
            Plan::Segments(s) => s,
        };
        if needed.len() == 1 {
            let s = &needed[0];
            return s.read(offset.max(s.range.start)..end.min(s.range.end)).await;
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for s in needed {
            out.extend_from_slice(&s.read(offset.max(s.range.start)..end.min(s.range.end)).await?);
        }
        Ok(out.freeze())
    }

    /// One GET of exactly `range`, outside the window. Its buffer is the
    /// size of one FUSE read and lives only until the reply, like the
    /// request buffers the budget's headroom is for.
    async fn fetch_straggler(&self, range: Range<u64>, etag: Option<&str>) -> Result<Bytes, i32> {
        let _slot = self.ctx.requests.acquire().await;
        let limit = (range.end - range.start) as usize;
        let fetch = async {
            self.ctx
                .client
                .get_object(&self.key, Some(range.clone()), etag)
                .await?
                .body
                .collect(limit, "GetObject")
                .await
        };
        match fetch.await {
            Ok(b) if b.len() == limit => Ok(b),
            Ok(_) => Err(libc::EIO),
            Err(e) => Err(fetch_errno(&self.key, &e)),
        }
    }

    /// Decides what to fetch for a read of `offset..end`: the segments
    /// that hold it, or a fetch of its own for a straggler.
    fn plan(&self, offset: u64, end: u64) -> Plan {
        let Pin { etag, size } = self.pin.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let front = st.segments.front().map_or(st.next_fetch, |s| s.range.start);
        let fresh = st.segments.is_empty() && st.next_fetch == 0;
        if !fresh && st.window > 0 && offset < front && front - offset <= STRAGGLER_REACH {
            return Plan::Straggler(etag);
        }
        // The window stopped at another reader's stream; a read past that
        // point (the kernel's readahead running on) is fetched on its own
        // and leaves the window as it is.
        if !fresh && st.window > 0 && offset >= st.next_fetch && self.stream.limit_after(front) == Some(st.next_fetch) {
            return Plan::Straggler(etag);
        }
        let sequential = if fresh {
            offset < INITIAL_WINDOW
        } else {
            offset >= front && offset <= st.next_fetch + INITIAL_WINDOW
        };
        if !sequential {
            // A jump: drop the window and fetch only what this read needs.
            self.stream.set(None);
            st.segments.clear();
            let fetch_end = end.max(offset + RANDOM_GRANULE).min(size);
            let (seg, memory) = Segment::start(&self.ctx, &self.key, etag.as_deref(), offset..fetch_end, None);
            st.last_memory = Some(memory);
            st.segments.push_back(seg.clone());
            st.next_fetch = fetch_end;
            st.window = 0;
            return Plan::Segments(vec![seg]);
        }
        if st.window == 0 {
            // A stream starts (at the beginning, or sequential after a
            // random read): the window starts growing.
            st.window = INITIAL_WINDOW;
            self.stream.set(Some(if fresh { offset } else { front }));
        }
        // Forget what the reader has left behind; each finished segment
        // widens the window.
        while let Some(s) = st.segments.front() {
            if s.range.end + BACK_SLACK <= offset {
                st.segments.pop_front();
                st.window = (st.window * 2).min(self.ctx.max_window.max(INITIAL_WINDOW));
            } else {
                break;
            }
        }
        // A reader that skipped a little ahead gets the gap fetched too:
        // coverage stays one contiguous run, so every read inside it is served.
        // Up to another reader's stream, whose bytes are its to fetch.
        let limit = self.stream.limit_after(offset).unwrap_or(u64::MAX);
        let target = end.max((offset + st.window).min(limit)).min(size);
        while st.next_fetch < target {
            let seg_len = st.window.clamp(INITIAL_WINDOW, MAX_SEGMENT);
            let a = st.next_fetch;
            // Window-sized segments may end past the target, but not past
            // another reader's start.
            let mut b = (a + seg_len).min(size);
            if a < limit {
                b = b.min(limit.max(end));
            }
            let after = st.last_memory.take();
            let (seg, memory) = Segment::start(&self.ctx, &self.key, etag.as_deref(), a..b, after);
            st.last_memory = Some(memory);
            st.segments.push_back(seg);
            st.next_fetch = b;
        }
        Plan::Segments(
            st.segments
                .iter()
                .filter(|s| s.range.start < end && s.range.end > offset)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_segment_is_copied_out_while_filling_and_sliced_once_complete() {
        let budget = Budget::new(16 * 1024 * 1024);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut st = SegState {
            data: Some(SegData::Filling(budget.buffer(data.len()).await)),
            received: 0,
            done: false,
            error: None,
        };
        for piece in data.chunks(70_001) {
            st.push(piece).unwrap();
            let end = st.received;
            assert_eq!(&st.bytes(end / 2..end)[..], &data[(end / 2) as usize..end as usize]);
        }
        assert_eq!(st.push(b"x"), Err(libc::EIO), "more than asked for");
        st.complete();
        let whole = st.bytes(0..data.len() as u64);
        let part = st.bytes(1000..2000);
        assert_eq!(&part[..], &data[1000..2000]);
        assert_eq!(part.as_ptr(), whole[1000..].as_ptr(), "a slice, not a copy");
    }
}
