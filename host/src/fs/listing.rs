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

/// Keys per LIST page.
const PAGE: usize = 1000;
/// A directory listed before whose listing expired is listed again at
/// its first lookup the old listing cannot answer when it had fewer
/// entries than this (one page).
const SMALL_DIR: usize = PAGE;
/// Otherwise once it has had one such lookup per this many entries: by
/// then the HeadObjects spent would have paid for listing it (a page of
/// 1,000 costs about eight HEADs).
const ENTRIES_PER_MISS: usize = 125;

/// Lists the direct children of the directory whose key prefix is
/// `dir_prefix` ("" or ending in `/`), every page.
pub(crate) async fn list_dir(client: &S3Client, dir_prefix: &str, now: SystemTime) -> Result<Entries, S3Error> {
    let l = list_dir_within(client, dir_prefix, now, usize::MAX).await?;
    Ok(l.unwrap_or_default())
}

/// [`list_dir`] if the directory fits in `max_pages` pages, else `None`.
pub(crate) async fn list_dir_within(
    client: &S3Client,
    dir_prefix: &str,
    now: SystemTime,
    max_pages: usize,
) -> Result<Option<Entries>, S3Error> {
    let mut out = Entries::new();
    let mut pages = std::pin::pin!(client.list_pages(dir_prefix.to_string(), Some("/".to_string()), Some(PAGE as u32)));
    let mut fetched = 0;
    while let Some(page) = pages.try_next().await? {
        fetched += 1;
        if fetched == max_pages && page.next_token.is_some() {
            // More than allowed: stop before fetching the rest.
            return Ok(None);
        }
        for p in page.prefixes {
            let Some(name) = p.strip_prefix(dir_prefix).and_then(|n| n.strip_suffix('/')) else {
                continue;
            };
            if !valid_name(name) {
                tracing::warn!(key = %p, "skipping a key prefix that cannot be a directory name");
                continue;
            }
            out.insert(name.to_string(), Meta::empty(Kind::Dir, now));
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
    Ok(Some(out))
}

/// Whether a lookup a directory's cached listing could not answer should
/// list the directory instead of asking for the one name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Relist {
    No,
    /// List it, if it fits in this many pages.
    Within(usize),
}

struct Cached {
    /// Emptied once the listing expired and was swept: only its size is
    /// still needed then (see [`ListingCache::miss`]).
    entries: Entries,
    /// Entries the listing had when it was swept.
    len: usize,
    fetched: Instant,
    /// Lookups the expired listing could not answer.
    misses: usize,
}

impl Cached {
    fn len(&self) -> usize {
        self.entries.len().max(self.len)
    }
}

struct Listings {
    map: HashMap<u64, Cached>,
    last_sweep: Instant,
}

/// Lookups in a directory never listed, whose size is unknown.
#[derive(Default)]
struct Unlisted {
    misses: usize,
    /// Listings tried that found more pages than they were allowed.
    tries: u32,
}

/// Listings by directory inode, trusted for a TTL and kept in step with
/// the changes made through this mount.
///
/// Memory: a listing holds its entries for the TTL; after that only its
/// size and miss count stay (swept at most once per TTL), until the kernel
/// forgets the directory ([`ListingCache::forget_dir`]).
pub(crate) struct ListingCache {
    ttl: Duration,
    listings: Mutex<Listings>,
    unlisted: Mutex<HashMap<u64, Unlisted>>,
}

impl ListingCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            listings: Mutex::new(Listings {
                map: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            unlisted: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Listings> {
        self.listings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fresh listing of `dir`, if any.
    pub fn get(&self, dir: u64) -> Option<Entries> {
        let l = self.lock();
        let c = l.map.get(&dir)?;
        (c.fetched.elapsed() < self.ttl).then(|| c.entries.clone())
    }

    /// What a fresh listing says of one name: `Some(None)` is a trusted "absent".
    pub fn lookup(&self, dir: u64, name: &str) -> Option<Option<Meta>> {
        let l = self.lock();
        let c = l.map.get(&dir)?;
        (c.fetched.elapsed() < self.ttl).then(|| c.entries.get(name).cloned())
    }

    /// Counts a lookup in `dir` that no fresh listing answered, and says
    /// whether listing the directory now costs less than asking for names
    /// one by one. A directory listed before is listed again at once when
    /// it had one page or less, else once it has had one lookup per
    /// [`ENTRIES_PER_MISS`] entries. A directory never listed is tried at
    /// 8 lookups with one page, then at 16 with two, 32 with four...: a
    /// try that finds more is dropped, so however large the directory,
    /// the pages spent stay within twice the lookups' worth.
    pub fn miss(&self, dir: u64) -> Relist {
        if self.ttl.is_zero() {
            return Relist::No;
        }
        if let Some(c) = self.lock().map.get_mut(&dir) {
            c.misses += 1;
            let (len, misses) = (c.len(), c.misses);
            return if len < SMALL_DIR || misses * ENTRIES_PER_MISS >= len {
                Relist::Within(usize::MAX)
            } else {
                Relist::No
            };
        }
        let mut u = self.unlisted.lock().unwrap_or_else(|p| p.into_inner());
        let e = u.entry(dir).or_default();
        e.misses += 1;
        let pages = 1usize << e.tries.min(20);
        if e.misses * ENTRIES_PER_MISS >= pages * PAGE {
            e.tries += 1;
            Relist::Within(pages)
        } else {
            Relist::No
        }
    }

    pub fn put(&self, dir: u64, entries: Entries) {
        if self.ttl.is_zero() {
            return;
        }
        self.unlisted.lock().unwrap_or_else(|p| p.into_inner()).remove(&dir);
        let mut l = self.lock();
        l.map.insert(
            dir,
            Cached {
                entries,
                len: 0,
                fetched: Instant::now(),
                misses: 0,
            },
        );
        if l.last_sweep.elapsed() >= self.ttl {
            l.last_sweep = Instant::now();
            for c in l.map.values_mut() {
                if c.fetched.elapsed() >= self.ttl && !c.entries.is_empty() {
                    c.len = c.entries.len();
                    c.entries = Entries::new();
                }
            }
        }
    }

    /// Records a change made through the mount.
    pub fn set(&self, dir: u64, name: &str, meta: Option<Meta>) {
        let mut l = self.lock();
        if let Some(c) = l.map.get_mut(&dir) {
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
        self.lock().map.remove(&dir);
    }

    /// Drops all that is known of `dir`: its inode is gone.
    pub fn forget_dir(&self, dir: u64) {
        self.invalidate(dir);
        self.unlisted.lock().unwrap_or_else(|p| p.into_inner()).remove(&dir);
    }

    /// Directories with a listing or counters kept, and entries held in
    /// listings: `(directories, entries)`.
    #[cfg(test)]
    pub fn held(&self) -> (usize, usize) {
        let l = self.lock();
        let unlisted = self.unlisted.lock().unwrap_or_else(|p| p.into_inner()).len();
        (l.map.len() + unlisted, l.map.values().map(|c| c.entries.len()).sum())
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

    #[test]
    fn a_directory_never_listed_is_tried_with_pages_doubling_as_lookups_grow() {
        let c = ListingCache::new(Duration::from_secs(60));
        let tries: Vec<(usize, Relist)> = (1..=70)
            .map(|i| (i, c.miss(7)))
            .filter(|(_, r)| *r != Relist::No)
            .collect();
        assert_eq!(
            tries,
            [
                (8, Relist::Within(1)),
                (16, Relist::Within(2)),
                (32, Relist::Within(4)),
                (64, Relist::Within(8))
            ]
        );
        // Once listed it follows the rule of listed directories.
        c.put(7, Entries::new());
        c.invalidate(7);
        let again: Vec<Relist> = (0..8).map(|_| c.miss(7)).collect();
        assert_eq!(
            again[..7],
            [
                Relist::No,
                Relist::No,
                Relist::No,
                Relist::No,
                Relist::No,
                Relist::No,
                Relist::No
            ]
        );
        assert_eq!(again[7], Relist::Within(1), "the count starts again after a listing");
    }

    #[test]
    fn an_expired_listing_is_listed_again_when_small_or_walked() {
        let c = ListingCache::new(Duration::from_millis(1));
        let entry = Meta {
            kind: Kind::File,
            size: 1,
            mtime: SystemTime::UNIX_EPOCH,
            mtime_from: MtimeFrom::Listing,
            etag: None,
        };
        let small: Entries = (0..10).map(|i| (format!("f{i}"), entry.clone())).collect();
        c.put(1, small);
        let big: Entries = (0..2500).map(|i| (format!("f{i}"), entry.clone())).collect();
        c.put(2, big);
        std::thread::sleep(Duration::from_millis(5));
        // The next listing stored sweeps the expired ones down to their size.
        c.put(3, Entries::new());
        assert_eq!(c.held(), (3, 0), "expired entries are not kept");
        assert_eq!(c.miss(1), Relist::Within(usize::MAX));
        let first = (1..=25).find(|_| c.miss(2) != Relist::No);
        assert_eq!(first, Some(20), "2,500 entries / 125 per lookup");
        c.miss(4);
        assert_eq!(c.held().0, 4, "a directory never listed keeps its counter");
        for dir in 1..=4 {
            c.forget_dir(dir);
        }
        assert_eq!(c.held(), (0, 0), "nothing is kept of forgotten directories");
        assert_eq!(
            ListingCache::new(Duration::ZERO).miss(3),
            Relist::No,
            "no listing cache"
        );
    }
}
