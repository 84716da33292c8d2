//! The multipart uploads an attachment has in flight, kept in a small file
//! so that the start after a crash can abort exactly what the crash left
//! behind: no partial object ever becomes visible, and no upload of another
//! host writing to the same bucket is touched.
//!
//! The file is rewritten (write to a temporary name, then rename) whenever
//! an upload starts or ends. That survives the daemon being killed; it is
//! not synced to disk, so a power loss may lose the last change, which at
//! worst leaves an upload for the bucket's lifecycle rules to expire.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::s3::UploadObserver;

/// One attachment's journal of uploads in flight (`upload id -> key`).
#[derive(Debug)]
pub(crate) struct UploadJournal {
    path: PathBuf,
    open: Mutex<BTreeMap<String, String>>,
}

impl UploadJournal {
    /// The journal of the attachment named by `parts` under `dir`, and the
    /// uploads a previous run left in it (`(key, upload id)`). They stay
    /// recorded until each is reported [`ended`](UploadObserver::ended).
    pub fn open(dir: &Path, parts: &[&str]) -> io::Result<(UploadJournal, Vec<(String, String)>)> {
        std::fs::create_dir_all(dir)?;
        let mut h = Sha256::new();
        for p in parts {
            h.update(p.as_bytes());
            h.update([0]);
        }
        let name = hex::encode(&h.finalize()[..16]);
        let path = dir.join(format!("{name}.json"));
        let leftover: BTreeMap<String, String> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "unreadable upload journal ignored");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let list = leftover.iter().map(|(id, key)| (key.clone(), id.clone())).collect();
        let journal = UploadJournal {
            path,
            open: Mutex::new(leftover),
        };
        Ok((journal, list))
    }

    /// Uploads in flight now.
    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Removes the file when nothing is in flight (after a clean detach).
    pub fn remove_if_empty(&self) {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn persist(&self, open: &BTreeMap<String, String>) {
        let tmp = self.path.with_extension("tmp");
        let result = serde_json::to_vec(open)
            .map_err(io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot update the upload journal");
        }
    }

    fn change(&self, f: impl FnOnce(&mut BTreeMap<String, String>)) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut open);
        self.persist(&open);
    }
}

impl UploadObserver for UploadJournal {
    fn started(&self, key: &str, upload_id: &str) {
        self.change(|m| {
            m.insert(upload_id.to_string(), key.to_string());
        });
    }

    fn ended(&self, upload_id: &str) {
        self.change(|m| {
            m.remove(upload_id);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_survive_a_reopen_and_ended_uploads_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let parts = ["sb", "disk", "/mnt/data"];
        let (j, left) = UploadJournal::open(dir.path(), &parts).unwrap();
        assert!(left.is_empty());
        j.started("a/big.bin", "u1");
        j.started("a/\nodd key", "u2");
        j.ended("u1");
        drop(j);
        let (j, left) = UploadJournal::open(dir.path(), &parts).unwrap();
        assert_eq!(left, vec![("a/\nodd key".to_string(), "u2".to_string())]);
        // Another attachment has its own journal.
        let (_, other) = UploadJournal::open(dir.path(), &["sb", "disk", "/mnt/other"]).unwrap();
        assert!(other.is_empty());
        // Still recorded until it is reported ended.
        j.remove_if_empty();
        drop(j);
        let (j, left) = UploadJournal::open(dir.path(), &parts).unwrap();
        assert_eq!(left.len(), 1);
        j.ended("u2");
        j.remove_if_empty();
        assert!(UploadJournal::open(dir.path(), &parts).unwrap().1.is_empty());
    }
}
