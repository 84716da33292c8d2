//! The inode table: stable inode numbers for the paths the kernel knows,
//! with their cached attributes.
//!
//! An inode number is never reused while the mount lives, so the FUSE
//! generation is always 0. A path keeps its inode as long as the kernel
//! holds a lookup on it (or a handle is open); a path whose kind changed
//! behind our back (file deleted, directory of that name created) gets a
//! fresh inode and the old one lingers until the kernel forgets it.
//!
//! A node nobody holds any more leaves the table, so the table follows
//! the kernel's own inode cache: it shrinks when the kernel reclaims
//! memory instead of growing with every name the mount has ever seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use super::mtime::NewMtime;
use super::streams::Streams;

pub(crate) const ROOT: u64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
}

/// Where a file's `mtime` comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MtimeFrom {
    /// The object's `Last-Modified` as a listing gives it. Listings carry
    /// no user metadata: the object may keep a time of its own.
    Listing,
    /// The object's `Last-Modified`, and it keeps no time of its own (a
    /// HeadObject found none, or this mount wrote it without one); also
    /// directories, which keep none.
    LastModified,
    /// The time the object keeps in its metadata (see [`super::mtime`]).
    Stored,
}

/// What a listing or HeadObject said about a name.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    pub kind: Kind,
    pub size: u64,
    pub mtime: SystemTime,
    pub mtime_from: MtimeFrom,
    pub etag: Option<String>,
}

impl Meta {
    /// A directory (S3 keeps no time for one), or a file just created
    /// here: no bytes, no version, `mtime` as given.
    pub fn empty(kind: Kind, mtime: SystemTime) -> Meta {
        Meta {
            kind,
            size: 0,
            mtime,
            mtime_from: MtimeFrom::LastModified,
            etag: None,
        }
    }

    /// A file's attributes from what the server keeps of it: the time it
    /// stores if any, else `last_modified`.
    pub fn file(size: u64, etag: Option<String>, stored: Option<SystemTime>, last_modified: SystemTime) -> Meta {
        Meta {
            kind: Kind::File,
            size,
            mtime: stored.unwrap_or(last_modified),
            mtime_from: if stored.is_some() {
                MtimeFrom::Stored
            } else {
                MtimeFrom::LastModified
            },
            etag,
        }
    }

    /// `self` (newly heard) merged over `known`: a listing of the same
    /// version cannot see a stored time, so the one known is kept.
    fn over(mut self, known: &Meta) -> Meta {
        if self.mtime_from == MtimeFrom::Listing
            && known.mtime_from == MtimeFrom::Stored
            && self.etag.is_some()
            && self.etag == known.etag
        {
            self.mtime = known.mtime;
            self.mtime_from = MtimeFrom::Stored;
        }
        self
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub ino: u64,
    pub parent: u64,
    pub name: String,
    /// Path relative to the mount's prefix, `/`-separated, "" for the root.
    pub path: String,
    pub meta: Meta,
    /// Until when `meta` is trusted without asking the server.
    pub valid_until: Instant,
    /// Lookups the kernel holds (FUSE `nlookup`).
    pub lookups: u64,
    /// Open file handles.
    pub open: u32,
    /// Handles that may still change the content: size comes from them.
    pub writers: u32,
    /// Created here and not uploaded yet: visible only through this mount.
    pub local: bool,
    /// Removed from the namespace (unlinked or replaced) while still known.
    pub detached: bool,
    /// The version whose bytes the kernel may hold in its page cache for
    /// this inode: the ETag the last read-only open served. `None` once
    /// the inode was opened for writing (the cache then holds written
    /// bytes no version is known by).
    pub cached_etag: Option<String>,
    /// A time set while the file is being written here: the upload at
    /// `close`/`fsync` stores it (a later write clears it, as a write
    /// moves a file's mtime).
    pub pending_mtime: Option<NewMtime>,
    /// The sequential streams of the file's readers.
    pub streams: Arc<Streams>,
}

struct Tables {
    nodes: HashMap<u64, Node>,
    /// Ordered so a directory's children are one range.
    children: BTreeMap<(u64, String), u64>,
    next: u64,
    stored_times: StoredTimes,
}

/// Stored times (see [`MtimeFrom::Stored`]) of files that left the table,
/// by path and version. Listings cannot carry them, so without this a
/// file's time would fall back to its Last-Modified each time the kernel
/// forgot it. Bounded: the oldest records go first.
struct StoredTimes {
    by_path: HashMap<String, (String, SystemTime)>,
    order: std::collections::VecDeque<String>,
}

/// Records [`StoredTimes`] keeps at most (about 100 bytes each).
const STORED_TIMES: usize = 65_536;

impl StoredTimes {
    fn new() -> Self {
        Self {
            by_path: HashMap::new(),
            order: std::collections::VecDeque::new(),
        }
    }

    fn keep(&mut self, node: &Node) {
        let (MtimeFrom::Stored, Some(etag)) = (node.meta.mtime_from, &node.meta.etag) else {
            return;
        };
        if self
            .by_path
            .insert(node.path.clone(), (etag.clone(), node.meta.mtime))
            .is_none()
        {
            self.order.push_back(node.path.clone());
        }
        while self.by_path.len() > STORED_TIMES {
            let Some(oldest) = self.order.pop_front() else { break };
            self.by_path.remove(&oldest);
        }
    }

    /// `meta` heard for `path`, with the time kept for that version.
    fn recall(&self, path: &str, meta: Meta) -> Meta {
        let Some((etag, mtime)) = self.by_path.get(path) else {
            return meta;
        };
        let known = Meta {
            mtime: *mtime,
            mtime_from: MtimeFrom::Stored,
            etag: Some(etag.clone()),
            ..meta.clone()
        };
        meta.over(&known)
    }
}

pub(crate) struct InodeTable {
    t: Mutex<Tables>,
}

impl InodeTable {
    pub fn new(root_mtime: SystemTime) -> Self {
        let root = Node {
            ino: ROOT,
            parent: ROOT,
            name: String::new(),
            path: String::new(),
            meta: Meta::empty(Kind::Dir, root_mtime),
            valid_until: far_future(),
            lookups: 1,
            open: 0,
            writers: 0,
            local: false,
            detached: false,
            cached_etag: None,
            pending_mtime: None,
            streams: Arc::default(),
        };
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, root);
        Self {
            t: Mutex::new(Tables {
                nodes,
                children: BTreeMap::new(),
                next: ROOT + 1,
                stored_times: StoredTimes::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.t.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, ino: u64) -> Option<Node> {
        self.lock().nodes.get(&ino).cloned()
    }

    pub fn child(&self, parent: u64, name: &str) -> Option<Node> {
        let t = self.lock();
        let ino = t.children.get(&(parent, name.to_string()))?;
        t.nodes.get(ino).cloned()
    }

    /// Records `name` under `parent` with `meta`, keeping its inode when the
    /// kind is unchanged. `lookup` adds one kernel lookup. Returns the node.
    pub fn upsert(&self, parent: u64, name: &str, meta: Meta, valid_until: Instant, lookup: bool) -> Option<Node> {
        let mut t = self.lock();
        let parent_path = t.nodes.get(&parent)?.path.clone();
        let key = (parent, name.to_string());
        if let Some(&ino) = t.children.get(&key) {
            let node = t.nodes.get_mut(&ino)?;
            if node.meta.kind == meta.kind {
                // A file with writers is the truth here, not the server.
                if node.writers == 0 && !node.local {
                    node.meta = meta.over(&node.meta);
                    node.valid_until = valid_until;
                } else if node.meta.kind == Kind::Dir {
                    node.valid_until = valid_until;
                }
                if lookup {
                    node.lookups += 1;
                }
                return Some(node.clone());
            }
            if node.writers > 0 || node.local {
                // Our own pending file shadows what the server says.
                if lookup {
                    node.lookups += 1;
                }
                return Some(node.clone());
            }
            node.detached = true;
            t.children.remove(&key);
            Self::gc(&mut t, ino);
        }
        let ino = t.next;
        t.next += 1;
        let path = join(&parent_path, name);
        let meta = t.stored_times.recall(&path, meta);
        let node = Node {
            ino,
            parent,
            name: name.to_string(),
            path,
            meta,
            valid_until,
            lookups: u64::from(lookup),
            open: 0,
            writers: 0,
            local: false,
            detached: false,
            cached_etag: None,
            pending_mtime: None,
            streams: Arc::default(),
        };
        t.nodes.insert(ino, node.clone());
        t.children.insert(key, ino);
        Some(node)
    }

    /// Applies `f` to the node; returns its result.
    pub fn update<R>(&self, ino: u64, f: impl FnOnce(&mut Node) -> R) -> Option<R> {
        let mut t = self.lock();
        t.nodes.get_mut(&ino).map(f)
    }

    /// Removes `name` from `parent` (unlink, rmdir, or found gone).
    pub fn remove_child(&self, parent: u64, name: &str) {
        let mut t = self.lock();
        if let Some(ino) = t.children.remove(&(parent, name.to_string())) {
            if let Some(n) = t.nodes.get_mut(&ino) {
                n.detached = true;
            }
            Self::gc(&mut t, ino);
        }
    }

    /// Moves a node (and, for a directory, the paths of everything known
    /// below it) to a new parent and name. A node already at the target is
    /// detached.
    pub fn rename(&self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        let mut t = self.lock();
        let Some(ino) = t.children.remove(&(parent, name.to_string())) else {
            return;
        };
        if let Some(old) = t.children.remove(&(new_parent, new_name.to_string())) {
            if let Some(n) = t.nodes.get_mut(&old) {
                n.detached = true;
            }
            Self::gc(&mut t, old);
        }
        let Some(new_parent_path) = t.nodes.get(&new_parent).map(|n| n.path.clone()) else {
            return;
        };
        let new_path = join(&new_parent_path, new_name);
        let Some(node) = t.nodes.get_mut(&ino) else { return };
        let old_path = std::mem::replace(&mut node.path, new_path.clone());
        node.parent = new_parent;
        node.name = new_name.to_string();
        let is_dir = node.meta.kind == Kind::Dir;
        t.children.insert((new_parent, new_name.to_string()), ino);
        if is_dir {
            let old_prefix = format!("{old_path}/");
            for n in t.nodes.values_mut() {
                if let Some(rest) = n.path.strip_prefix(&old_prefix) {
                    n.path = format!("{new_path}/{rest}");
                }
            }
        }
    }

    /// The kernel now holds one more lookup on `node`: a lookup or a
    /// readdirplus entry is being replied with it. A node that left the
    /// table since it was resolved (nobody held it) is put back under the
    /// number the kernel is about to learn.
    pub fn hold(&self, node: &Node) -> Node {
        let mut t = self.lock();
        if let Some(n) = t.nodes.get_mut(&node.ino) {
            n.lookups += 1;
            return n.clone();
        }
        let mut n = node.clone();
        // It left unreferenced: whatever handles the copy counted are gone.
        (n.lookups, n.open, n.writers, n.local) = (1, 0, 0, false);
        if !n.detached && t.nodes.contains_key(&n.parent) {
            t.children.entry((n.parent, n.name.clone())).or_insert(n.ino);
        }
        t.nodes.insert(n.ino, n.clone());
        n
    }

    /// The kernel dropped `n` lookups. Returns whether the node left the
    /// table with them.
    pub fn forget(&self, ino: u64, n: u64) -> bool {
        if ino == ROOT {
            return false;
        }
        let mut t = self.lock();
        if let Some(node) = t.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(n);
        }
        Self::gc(&mut t, ino)
    }

    /// Drops a node nobody holds any more: no kernel lookup, no handle.
    /// Returns whether it did.
    fn gc(t: &mut Tables, ino: u64) -> bool {
        let Some(node) = t.nodes.get(&ino) else { return false };
        if ino == ROOT || node.lookups > 0 || node.open > 0 || node.writers > 0 {
            return false;
        }
        let key = (node.parent, node.name.clone());
        let Some(node) = t.nodes.remove(&ino) else { return false };
        if t.children.get(&key) == Some(&ino) {
            t.children.remove(&key);
            t.stored_times.keep(&node);
        }
        true
    }

    /// Re-checks a node after a handle closed, or after an operation
    /// resolved it without the kernel taking a lookup on it.
    pub fn release(&self, ino: u64) {
        let mut t = self.lock();
        Self::gc(&mut t, ino);
    }

    /// Nodes in the table, the root included.
    pub fn len(&self) -> usize {
        self.lock().nodes.len()
    }

    /// Children known locally (created here and not uploaded yet) of `dir`.
    pub fn local_children(&self, dir: u64) -> Vec<Node> {
        let t = self.lock();
        Self::children_of(&t, dir)
            .filter(|n| n.local || n.writers > 0)
            .cloned()
            .collect()
    }

    /// Whether any node below the directory `dir` is still only local.
    pub fn has_local_below(&self, dir: u64) -> bool {
        let t = self.lock();
        let mut dirs = vec![dir];
        while let Some(d) = dirs.pop() {
            for n in Self::children_of(&t, d) {
                if n.local {
                    return true;
                }
                if n.meta.kind == Kind::Dir {
                    dirs.push(n.ino);
                }
            }
        }
        false
    }

    /// The nodes in the namespace under `dir` (a range of `children`, so
    /// the cost is theirs, not the table's).
    fn children_of(t: &Tables, dir: u64) -> impl Iterator<Item = &Node> {
        t.children
            .range((dir, String::new())..(dir + 1, String::new()))
            .filter_map(|(_, ino)| t.nodes.get(ino))
            .filter(|n| n.ino != ROOT)
    }
}

pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

pub(crate) fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(100 * 365 * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn file() -> Meta {
        Meta::file(1, None, None, UNIX_EPOCH)
    }

    fn dir() -> Meta {
        Meta {
            kind: Kind::Dir,
            ..file()
        }
    }

    const STORED: Duration = Duration::from_secs(1_000);
    const MODIFIED: Duration = Duration::from_secs(2_000);

    /// A file version as a listing tells it: Last-Modified, no stored time.
    fn listed(etag: &str) -> Meta {
        Meta {
            mtime: UNIX_EPOCH + MODIFIED,
            mtime_from: MtimeFrom::Listing,
            etag: Some(etag.into()),
            ..file()
        }
    }

    #[test]
    fn a_node_leaves_the_table_when_nothing_holds_it_and_keeps_its_number_until_then() {
        let table = InodeTable::new(UNIX_EPOCH);
        let until = far_future();
        let d = table.upsert(ROOT, "d", dir(), until, true).unwrap();
        let f = table.upsert(d.ino, "f", file(), until, true).unwrap();
        assert_eq!(table.len(), 3);
        // Held: the same number for the same name.
        assert_eq!(table.upsert(d.ino, "f", file(), until, true).unwrap().ino, f.ino);
        assert!(!table.forget(f.ino, 1), "one lookup is still held");
        table.update(f.ino, |n| n.open += 1);
        assert!(!table.forget(f.ino, 1), "an open handle holds it");
        table.update(f.ino, |n| n.open -= 1);
        table.release(f.ino);
        assert!(table.get(f.ino).is_none(), "released by its last handle");
        assert!(table.child(d.ino, "f").is_none());
        assert!(table.forget(d.ino, 1));
        assert_eq!(table.len(), 1, "only the root is left");
        assert!(!table.forget(ROOT, 1), "the root stays");
        // A name met again gets a new number: the old one is never reused.
        let again = table.upsert(ROOT, "d", dir(), until, true).unwrap();
        assert!(again.ino > f.ino);
    }

    #[test]
    fn holding_a_node_that_left_the_table_puts_it_back_under_its_number() {
        let table = InodeTable::new(UNIX_EPOCH);
        let until = far_future();
        // Resolved (no lookup yet), then dropped before the reply counts it.
        let n = table.upsert(ROOT, "f", file(), until, false).unwrap();
        table.release(n.ino);
        assert!(table.get(n.ino).is_none());
        let held = table.hold(&n);
        assert_eq!((held.ino, held.lookups), (n.ino, 1));
        assert_eq!(table.child(ROOT, "f").map(|c| c.ino), Some(n.ino));
        assert_eq!(table.hold(&n).lookups, 2);
        assert!(!table.forget(n.ino, 1));
        assert!(table.forget(n.ino, 1));
    }

    #[test]
    fn files_not_uploaded_yet_are_found_under_their_directory_only() {
        let table = InodeTable::new(UNIX_EPOCH);
        let until = far_future();
        let mkdir = |parent, name| table.upsert(parent, name, dir(), until, true).unwrap();
        let (a, b, other) = (mkdir(ROOT, "a"), mkdir(ROOT, "b"), mkdir(ROOT, "ab"));
        let deep = mkdir(a.ino, "deep");
        table.upsert(a.ino, "uploaded", file(), until, true);
        table.upsert(other.ino, "x", file(), until, true);
        let pending = table.upsert(deep.ino, "new", file(), until, true).unwrap();
        table.update(pending.ino, |n| (n.local, n.writers, n.open) = (true, 1, 1));
        assert!(table.has_local_below(a.ino));
        assert!(table.has_local_below(deep.ino));
        assert!(table.has_local_below(ROOT));
        assert!(!table.has_local_below(b.ino) && !table.has_local_below(other.ino));
        let names: Vec<String> = table.local_children(deep.ino).into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["new"]);
        assert!(table.local_children(a.ino).is_empty(), "only direct children");
        table.update(pending.ino, |n| (n.local, n.writers, n.open) = (false, 0, 0));
        assert!(!table.has_local_below(a.ino));
    }

    #[test]
    fn a_stored_time_outlives_its_node_for_the_same_version() {
        let table = InodeTable::new(UNIX_EPOCH);
        let until = far_future();
        let (stored, modified) = (UNIX_EPOCH + STORED, UNIX_EPOCH + MODIFIED);
        let n = table
            .upsert(
                ROOT,
                "f",
                Meta::file(1, Some("v1".into()), Some(stored), modified),
                until,
                true,
            )
            .unwrap();
        assert!(table.forget(n.ino, 1));
        let again = table.upsert(ROOT, "f", listed("v1"), until, true).unwrap();
        assert_ne!(again.ino, n.ino);
        assert_eq!((again.meta.mtime, again.meta.mtime_from), (stored, MtimeFrom::Stored));
        assert!(table.forget(again.ino, 1));
        let other = table.upsert(ROOT, "f", listed("v2"), until, true).unwrap();
        assert_eq!(other.meta.mtime, modified, "another version keeps its own time");

        let mut times = StoredTimes::new();
        for i in 0..STORED_TIMES + 10 {
            let mut n = n.clone();
            n.path = format!("f{i}");
            times.keep(&n);
            times.keep(&n);
        }
        assert_eq!((times.by_path.len(), times.order.len()), (STORED_TIMES, STORED_TIMES));
        assert!(!times.by_path.contains_key("f0"), "the oldest went first");
    }

    #[test]
    fn a_listing_keeps_the_stored_time_of_the_version_it_lists_and_not_of_another() {
        let table = InodeTable::new(UNIX_EPOCH);
        let until = far_future();
        let (stored, modified) = (UNIX_EPOCH + STORED, UNIX_EPOCH + MODIFIED);
        table.upsert(
            ROOT,
            "f",
            Meta::file(3, Some("v1".into()), Some(stored), modified),
            until,
            true,
        );
        let n = table.upsert(ROOT, "f", listed("v1"), until, false).unwrap();
        assert_eq!((n.meta.mtime, n.meta.mtime_from), (stored, MtimeFrom::Stored));
        let n = table.upsert(ROOT, "f", listed("v2"), until, false).unwrap();
        assert_eq!((n.meta.mtime, n.meta.mtime_from), (modified, MtimeFrom::Listing));
        // What a HeadObject says replaces what was known, even for one version.
        table.upsert(
            ROOT,
            "f",
            Meta::file(3, Some("v1".into()), Some(stored), modified),
            until,
            false,
        );
        let n = table
            .upsert(
                ROOT,
                "f",
                Meta::file(3, Some("v1".into()), None, modified),
                until,
                false,
            )
            .unwrap();
        assert_eq!((n.meta.mtime, n.meta.mtime_from), (modified, MtimeFrom::LastModified));
    }
}
