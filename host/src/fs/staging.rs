//! Local staging of files changed in place (overwrite, random writes,
//! truncate, append): an unlinked temporary file per open handle holding
//! only the ranges written, under a cap shared by the whole mount.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The staging directory and its cap.
pub(crate) struct Staging {
    dir: PathBuf,
    cap: u64,
    used: AtomicU64,
    counter: AtomicU64,
}

impl Staging {
    pub fn new(dir: PathBuf, cap: u64) -> Arc<Self> {
        Arc::new(Self {
            dir,
            cap,
            used: AtomicU64::new(0),
            counter: AtomicU64::new(0),
        })
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// A new, already unlinked, temporary file: it disappears with the
    /// handle even if the process dies.
    pub fn create(self: &Arc<Self>) -> std::io::Result<StagingFile> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!(".byos3-staging-{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(StagingFile {
            file: Arc::new(file),
            staging: self.clone(),
            accounted: 0,
        })
    }

    fn try_grow(&self, by: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + by <= self.cap).then_some(u + by)
            })
            .is_ok()
    }

    fn shrink(&self, by: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(by)));
    }
}

/// One handle's staging file and the bytes it counts against the cap.
pub(crate) struct StagingFile {
    pub file: Arc<File>,
    staging: Arc<Staging>,
    accounted: u64,
}

impl StagingFile {
    /// Sets the bytes this file holds; `false` (and no change) when the
    /// cap would be exceeded.
    pub fn account(&mut self, bytes: u64) -> bool {
        if bytes > self.accounted {
            if !self.staging.try_grow(bytes - self.accounted) {
                return false;
            }
        } else {
            self.staging.shrink(self.accounted - bytes);
        }
        self.accounted = bytes;
        true
    }

    pub fn write_at(&self, data: &[u8], offset: u64) -> std::io::Result<()> {
        self.file.write_all_at(data, offset)
    }
}

impl Drop for StagingFile {
    fn drop(&mut self) {
        self.staging.shrink(self.accounted);
    }
}

/// Sorted, disjoint, merged byte ranges.
#[derive(Clone, Debug, Default)]
pub(crate) struct RangeSet {
    ranges: Vec<Range<u64>>,
}

impl RangeSet {
    pub fn insert(&mut self, r: Range<u64>) {
        if r.is_empty() {
            return;
        }
        let mut merged = r;
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        let mut placed = false;
        for x in self.ranges.drain(..) {
            if x.end < merged.start {
                out.push(x);
            } else if x.start > merged.end {
                if !placed {
                    out.push(merged.clone());
                    placed = true;
                }
                out.push(x);
            } else {
                merged = merged.start.min(x.start)..merged.end.max(x.end);
            }
        }
        if !placed {
            out.push(merged);
        }
        self.ranges = out;
    }

    pub fn truncate(&mut self, size: u64) {
        self.ranges.retain(|r| r.start < size);
        if let Some(last) = self.ranges.last_mut() {
            last.end = last.end.min(size);
        }
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// Bytes of `r` not yet covered.
    pub fn uncovered(&self, r: &Range<u64>) -> u64 {
        let covered: u64 = self
            .ranges
            .iter()
            .map(|x| x.end.min(r.end).saturating_sub(x.start.max(r.start)))
            .sum();
        (r.end - r.start) - covered
    }

    pub fn overlaps(&self, r: &Range<u64>) -> bool {
        self.ranges.iter().any(|x| x.start < r.end && x.end > r.start)
    }

    /// `r` cut into pieces: `(piece, covered)`.
    pub fn split(&self, r: Range<u64>) -> Vec<(Range<u64>, bool)> {
        let mut out = Vec::new();
        let mut pos = r.start;
        for x in &self.ranges {
            if x.end <= pos {
                continue;
            }
            if x.start >= r.end {
                break;
            }
            if x.start > pos {
                out.push((pos..x.start, false));
            }
            let e = x.end.min(r.end);
            out.push((pos.max(x.start)..e, true));
            pos = e;
        }
        if pos < r.end {
            out.push((pos..r.end, false));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set_merges_and_splits() {
        let mut s = RangeSet::default();
        s.insert(10..20);
        s.insert(30..40);
        s.insert(15..31);
        assert_eq!(s.total(), 30);
        s.insert(50..60);
        assert_eq!(s.uncovered(&(0..100)), 60);
        assert_eq!(
            s.split(5..55),
            vec![(5..10, false), (10..40, true), (40..50, false), (50..55, true)]
        );
        s.truncate(35);
        assert_eq!(s.total(), 25);
        assert!(!s.overlaps(&(35..100)));
    }
}
