//! Directory listings: one delimited ListObjectsV2 walk per directory,
//! cached for the listing TTL so lookups and `ls -l` need no HeadObject.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use futures_util::TryStreamExt;

use super::inode::{Kind, Meta, MtimeFrom};
use crate::s3::{parse_rfc3339, S3Client, S3Error};

/// Whether an S3 key segment can be a file name here.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && name.len() <= 255 && !name.contains('\0') && !name.contains('/')
}

/// A directory's entries by name, directories winning over files of the
/// same name.
pub(crate) type Entries = BTreeMap<String, Meta>;

/// Lists the direct children of the directory whose key prefix is
/// `dir_prefix` ("" or ending in `/`), every page.
pub(crate) async fn list_dir(client: &S3Client, dir_prefix: &str, now: SystemTime) -> Result<Entries, S3Error> {
    let mut out = Entries::new();
    let mut pages = std::pin::pin!(client.list_pages(dir_prefix.to_string(), Some("/".to_string()), Some(1000)));
    while let Some(page) = pages.try_next().await? {
        for p in page.prefixes {
            let Some(name) = p.strip_prefix(dir_prefix).and_then(|n| n.strip_suffix('/')) else {
                continue;
            };
            if !valid_name(name) {
                tracing::warn!(key = %p, "skipping a key prefix that cannot be a directory name");
                continue;
            }
            out.insert(
                name.to_string(),
                Meta {
                    kind: Kind::Dir,
                    size: 0,
                    mtime: now,
                    mtime_from: MtimeFrom::LastModified,
                    etag: None,
                },
            );
        }
        for o in page.objects {
            let Some(name) = o.key.strip_prefix(dir_prefix) else {
                continue;
            };
            if name.is_empty() {
                continue; // the directory's own marker
            }
            if !valid_name(name) {
                tracing::warn!(key = %o.key, "skipping a key that cannot be a file name");
                continue;
            }
            if out.get(name).is_some_and(|m| m.kind == Kind::Dir) {
                tracing::debug!(key = %o.key, "file shadowed by a directory of the same name");
                continue;
            }
            let mtime = parse_rfc3339(&o.last_modified).unwrap_or(now);
            out.insert(
                name.to_string(),
                Meta {
                    kind: Kind::File,
                    size: o.size,
                    mtime,
                    mtime_from: MtimeFrom::Listing,
                    etag: o.etag,
                },
            );
        }
    }
    Ok(out)
}

struct Cached {
    entries: Entries,
    fetched: Instant,
    /// Lookups the expired listing could not answer.
    misses: usize,
}

/// Listings by directory inode, trusted for a TTL and kept in step with
/// the changes made through this mount.
pub(crate) struct ListingCache {
    ttl: Duration,
    map: Mutex<HashMap<u64, Cached>>,
}

impl ListingCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Cached>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fresh listing of `dir`, if any.
    pub fn get(&self, dir: u64) -> Option<Entries> {
        let m = self.lock();
        let c = m.get(&dir)?;
        (c.fetched.elapsed() < self.ttl).then(|| c.entries.clone())
    }

    /// What a fresh listing says of one name: `Some(None)` is a trusted "absent".
    pub fn lookup(&self, dir: u64, name: &str) -> Option<Option<Meta>> {
        let m = self.lock();
        let c = m.get(&dir)?;
        (c.fetched.elapsed() < self.ttl).then(|| c.entries.get(name).cloned())
    }

    /// Counts a lookup in `dir` that its expired listing could not answer;
    /// returns the listing's entries and the lookups counted so far, if
    /// an expired listing is still held.
    pub fn stale_miss(&self, dir: u64) -> Option<(usize, usize)> {
        let mut m = self.lock();
        let c = m.get_mut(&dir)?;
        c.misses += 1;
        Some((c.entries.len(), c.misses))
    }

    pub fn put(&self, dir: u64, entries: Entries) {
        if self.ttl.is_zero() {
            return;
        }
        self.lock().insert(
            dir,
            Cached {
                entries,
                fetched: Instant::now(),
                misses: 0,
            },
        );
    }

    /// Records a change made through the mount.
    pub fn set(&self, dir: u64, name: &str, meta: Option<Meta>) {
        let mut m = self.lock();
        if let Some(c) = m.get_mut(&dir) {
            match meta {
                Some(meta) => {
                    c.entries.insert(name.to_string(), meta);
                }
                None => {
                    c.entries.remove(name);
                }
            }
        }
    }

    /// A directory whose contents are known to be exactly `entries` (mkdir).
    pub fn put_empty(&self, dir: u64) {
        self.put(dir, Entries::new());
    }

    pub fn invalidate(&self, dir: u64) {
        self.lock().remove(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_names_that_cannot_be_files() {
        for bad in ["", ".", "..", "a/b", &"x".repeat(256)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_name("a b+c%.txt"));
    }
}
