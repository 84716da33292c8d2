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
use tokio::sync::{Notify, Semaphore};

use super::budget::Budget;
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

/// What reading needs from the mount.
#[derive(Clone)]
pub(crate) struct ReadCtx {
    pub client: S3Client,
    pub budget: Budget,
    pub requests: Arc<Semaphore>,
    pub max_window: u64,
}

struct SegState {
    chunks: Vec<Bytes>,
    received: u64,
    done: bool,
    error: Option<i32>,
    /// The memory this segment's data holds; given back with the segment.
    _memory: Option<super::budget::Reservation>,
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
    fn start(ctx: &ReadCtx, key: &str, etag: Option<&str>, range: Range<u64>) -> Arc<Segment> {
        let seg = Arc::new(Segment {
            range: range.clone(),
            state: Mutex::new(SegState {
                chunks: Vec::new(),
                received: 0,
                done: false,
                error: None,
                _memory: None,
            }),
            notify: Notify::new(),
            task: Mutex::new(None),
        });
        let weak = Arc::downgrade(&seg);
        let ctx = ctx.clone();
        let key = key.to_string();
        let etag = etag.map(str::to_string);
        let task = tokio::spawn(async move {
            let memory = ctx.budget.reserve(range.end - range.start).await;
            match weak.upgrade() {
                Some(seg) => seg.state.lock().unwrap_or_else(|p| p.into_inner())._memory = Some(memory),
                None => return,
            }
            let _slot = ctx.requests.acquire().await;
            let result = async {
                let out = ctx
                    .client
                    .get_object(&key, Some(range.clone()), etag.as_deref())
                    .await?;
                let mut body = out.body;
                while let Some(chunk) = body.try_next().await? {
                    let Some(seg) = weak.upgrade() else { return Ok(()) };
                    {
                        let mut st = seg.state.lock().unwrap_or_else(|p| p.into_inner());
                        st.received += chunk.len() as u64;
                        st.chunks.push(chunk);
                    }
                    seg.notify.notify_waiters();
                }
                Ok::<(), crate::s3::S3Error>(())
            }
            .await;
            if let Some(seg) = weak.upgrade() {
                {
                    let mut st = seg.state.lock().unwrap_or_else(|p| p.into_inner());
                    st.done = true;
                    if let Err(e) = &result {
                        tracing::warn!(key = %key, error = %e, "read failed");
                        // ESTALE stays inside this module: the reader decides
                        // whether it may follow the new version.
                        st.error = Some(if e.is_precondition_failed() {
                            libc::ESTALE
                        } else {
                            e.errno()
                        });
                    } else if st.received < range.end - range.start {
                        st.error = Some(libc::EIO);
                    }
                }
                seg.notify.notify_waiters();
            }
        });
        *seg.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        seg
    }

    /// Waits until `want` (absolute) is buffered; returns those bytes.
    async fn read(&self, want: Range<u64>) -> Result<Bytes, i32> {
        let rel = (want.start - self.range.start)..(want.end - self.range.start);
        loop {
            let notified = self.notify.notified();
            {
                let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if st.received >= rel.end {
                    return Ok(copy_out(&st.chunks, rel));
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

/// A version change the reader may not follow is an I/O error to the caller.
fn stale_is_eio(e: i32) -> i32 {
    if e == libc::ESTALE {
        libc::EIO
    } else {
        e
    }
}

/// Bytes `rel` of the concatenation of `chunks`, without copying when they
/// lie in one chunk.
fn copy_out(chunks: &[Bytes], rel: Range<u64>) -> Bytes {
    let mut pos = 0u64;
    let mut out: Option<BytesMut> = None;
    for c in chunks {
        let (cs, ce) = (pos, pos + c.len() as u64);
        pos = ce;
        if ce <= rel.start {
            continue;
        }
        if cs >= rel.end {
            break;
        }
        let a = (rel.start.max(cs) - cs) as usize;
        let b = (rel.end.min(ce) - cs) as usize;
        if out.is_none() && cs <= rel.start && ce >= rel.end {
            return c.slice(a..b);
        }
        out.get_or_insert_with(|| BytesMut::with_capacity((rel.end - rel.start) as usize))
            .extend_from_slice(&c[a..b]);
    }
    out.map(BytesMut::freeze).unwrap_or_default()
}

struct State {
    segments: VecDeque<Arc<Segment>>,
    /// End of the last scheduled segment.
    next_fetch: u64,
    /// Current window; 0 after a random read.
    window: u64,
}

/// The object version a reader serves: every GET is conditional on its
/// ETag, so bytes of two versions are never mixed in one file.
#[derive(Clone)]
struct Pin {
    etag: Option<String>,
    size: u64,
}

/// One open file's reader.
pub(crate) struct Prefetcher {
    ctx: ReadCtx,
    key: String,
    pin: Mutex<Pin>,
    /// Set once any byte has been returned; from then on the version is fixed.
    served: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
}

impl Prefetcher {
    pub fn new(ctx: ReadCtx, key: String, etag: Option<String>, size: u64) -> Self {
        Self {
            ctx,
            key,
            pin: Mutex::new(Pin { etag, size }),
            served: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(State {
                segments: VecDeque::new(),
                next_fetch: 0,
                window: 0,
            }),
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

    async fn repin(&self) -> Result<(), i32> {
        let m = self.ctx.client.head_object(&self.key).await.map_err(|e| e.errno())?;
        tracing::debug!(key = %self.key, "object replaced before the first read; following the new version");
        *self.pin.lock().unwrap_or_else(|p| p.into_inner()) = Pin {
            etag: m.etag,
            size: m.size,
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.segments.clear();
        st.next_fetch = 0;
        st.window = 0;
        Ok(())
    }

    async fn read_pinned(&self, offset: u64, len: u32) -> Result<Bytes, i32> {
        let size = self.pin.lock().unwrap_or_else(|p| p.into_inner()).size;
        if offset >= size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + u64::from(len)).min(size);
        let needed = self.plan(offset, end);
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

    /// Decides what to fetch for a read of `offset..end` and returns the
    /// segments that hold it.
    fn plan(&self, offset: u64, end: u64) -> Vec<Arc<Segment>> {
        let Pin { etag, size } = self.pin.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let front = st.segments.front().map_or(st.next_fetch, |s| s.range.start);
        let fresh = st.segments.is_empty() && st.next_fetch == 0;
        let sequential = if fresh {
            offset < INITIAL_WINDOW
        } else {
            offset >= front && offset <= st.next_fetch + INITIAL_WINDOW
        };
        if !sequential {
            // A jump: drop the window and fetch only what this read needs.
            st.segments.clear();
            let fetch_end = (offset + (end - offset).next_multiple_of(RANDOM_GRANULE)).min(size);
            let seg = Segment::start(&self.ctx, &self.key, etag.as_deref(), offset..fetch_end);
            st.segments.push_back(seg.clone());
            st.next_fetch = fetch_end;
            st.window = 0;
            return vec![seg];
        }
        if fresh {
            st.window = INITIAL_WINDOW;
        } else if st.window == 0 {
            // Sequential after a random read: start growing.
            st.window = INITIAL_WINDOW;
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
        let target = (end.max(offset + st.window)).min(size);
        while st.next_fetch < target {
            let seg_len = st.window.clamp(INITIAL_WINDOW, MAX_SEGMENT);
            let a = st.next_fetch;
            let b = (a + seg_len).min(size);
            let seg = Segment::start(&self.ctx, &self.key, etag.as_deref(), a..b);
            st.segments.push_back(seg);
            st.next_fetch = b;
        }
        st.segments
            .iter()
            .filter(|s| s.range.start < end && s.range.end > offset)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_out_spans_chunks_and_slices_within_one() {
        let chunks = [
            Bytes::from_static(b"abcd"),
            Bytes::from_static(b"efgh"),
            Bytes::from_static(b"ij"),
        ];
        assert_eq!(&copy_out(&chunks, 1..3)[..], b"bc");
        assert_eq!(&copy_out(&chunks, 2..9)[..], b"cdefghi");
        assert_eq!(&copy_out(&chunks, 8..10)[..], b"ij");
        assert!(copy_out(&chunks, 10..10).is_empty());
    }
}
