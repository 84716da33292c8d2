//! Where the sequential readers of one file began, so that one reader's
//! prefetch window stops where another reader's stream starts.
//!
//! Readers that split a file between them (a parallel download, a data
//! loader reading shards of one file) each stop at the start of the next
//! one's share; the window of a reader keeps fetching ahead of it until
//! it sees that stop, so without a limit every share costs up to a whole
//! window (64 MiB) of bytes nobody reads. The bytes past another reader's
//! start are that reader's to fetch, and once fetched the kernel's page
//! cache, which all readers of a file share, serves them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The streams of one file (one per inode).
#[derive(Debug, Default)]
pub(crate) struct Streams {
    /// (reader, offset its current sequential stream started at).
    starts: Mutex<Vec<(u64, u64)>>,
    next_reader: AtomicU64,
}

impl Streams {
    /// A place for one more reader.
    pub fn join(self: &Arc<Self>) -> StreamSlot {
        StreamSlot {
            streams: self.clone(),
            reader: self.next_reader.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, u64)>> {
        self.starts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One reader's entry; removed when dropped.
pub(crate) struct StreamSlot {
    streams: Arc<Streams>,
    reader: u64,
}

impl StreamSlot {
    /// Records where this reader's sequential stream starts (`None`: it is
    /// not reading sequentially).
    pub fn set(&self, start: Option<u64>) {
        let mut s = self.streams.lock();
        s.retain(|(r, _)| *r != self.reader);
        if let Some(start) = start {
            s.push((self.reader, start));
        }
    }

    /// The nearest start of another reader's stream after `offset`: where
    /// this reader's window should stop.
    pub fn limit_after(&self, offset: u64) -> Option<u64> {
        self.streams
            .lock()
            .iter()
            .filter(|(r, start)| *r != self.reader && *start > offset)
            .map(|(_, start)| *start)
            .min()
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.set(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_is_limited_by_the_next_start_of_another_and_not_by_its_own() {
        let file = Arc::new(Streams::default());
        let (a, b, c) = (file.join(), file.join(), file.join());
        a.set(Some(0));
        b.set(Some(100));
        c.set(Some(300));
        assert_eq!(a.limit_after(0), Some(100));
        assert_eq!(a.limit_after(150), Some(300));
        assert_eq!(b.limit_after(100), Some(300), "its own start is no limit");
        assert_eq!(c.limit_after(300), None, "nobody ahead");
        b.set(None);
        assert_eq!(a.limit_after(0), Some(300), "a reader that jumped away");
        drop(c);
        assert_eq!(a.limit_after(0), None, "a reader that closed");
    }
}
