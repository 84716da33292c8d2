//! Shared set-up of the filesystem tests: a Garage server, a client for
//! checking the bucket directly, and mounts that are always unmounted.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use byos3::fs::{MountHandle, MountOptions};
use byos3::s3::{Addressing, S3Client};
use byos3_tests::Garage;

pub const MIB: usize = 1024 * 1024;

pub struct Env {
    pub garage: Garage,
    pub rt: tokio::runtime::Runtime,
    /// For checking the bucket behind the mount's back.
    pub s3: S3Client,
}

impl Env {
    pub fn start() -> Env {
        let garage = Garage::start().expect("Garage starts (run scripts/setup)");
        let rt = byos3_tests::runtime();
        let s3 = garage.client(Addressing::Path);
        Env { garage, rt, s3 }
    }

    /// A client with its own connection pool and counters, for a mount.
    pub fn mount_client(&self) -> S3Client {
        S3Client::new(self.garage.client_config(Addressing::Path)).unwrap()
    }

    pub fn mount(&self, prefix: &str, opts: MountOptions) -> Mount {
        self.mount_with(self.mount_client(), prefix, opts)
    }

    pub fn mount_with(&self, client: S3Client, prefix: &str, opts: MountOptions) -> Mount {
        let dir = tempfile::Builder::new().prefix("byos3-mnt-").tempdir().unwrap();
        let handle = byos3::fs::mount(client, prefix, dir.path(), opts).expect("mount");
        Mount {
            handle: Some(handle),
            dir,
        }
    }

    pub fn put(&self, key: &str, data: &[u8]) {
        self.rt
            .block_on(self.s3.put_object(
                key,
                byos3::s3::Payload::Bytes(data.to_vec().into()),
                &Default::default(),
            ))
            .expect("put");
    }

    /// Puts `count` objects `{prefix}f{i:04}`, 32 at a time, object `i`
    /// holding `body(i)`.
    pub fn put_numbered(&self, prefix: &str, count: usize, body: fn(usize) -> Vec<u8>) {
        self.rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..count {
                let s3 = self.s3.clone();
                let key = format!("{prefix}f{i:04}");
                tasks.spawn(async move {
                    s3.put_object(&key, byos3::s3::Payload::Bytes(body(i).into()), &Default::default())
                        .await
                        .expect("put");
                });
                while tasks.len() >= 32 {
                    tasks.join_next().await.expect("a task").expect("put task");
                }
            }
            while let Some(r) = tasks.join_next().await {
                r.expect("put task");
            }
        });
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.rt.block_on(self.s3.get_object_bytes(key, None, 512 * MIB)) {
            Ok(b) => Some(b.to_vec()),
            Err(e) if e.is_not_found() => None,
            Err(e) => panic!("get {key}: {e}"),
        }
    }

    /// The object's metadata as HeadObject gives it.
    pub fn head(&self, key: &str) -> byos3::s3::ObjectMeta {
        self.rt
            .block_on(self.s3.head_object(key))
            .unwrap_or_else(|e| panic!("head {key}: {e}"))
    }

    pub fn keys(&self, prefix: &str) -> Vec<String> {
        use futures_util::TryStreamExt;
        self.rt.block_on(async {
            let pages: Vec<_> = self
                .s3
                .list_pages(prefix.to_string(), None, Some(1000))
                .try_collect()
                .await
                .unwrap();
            pages
                .into_iter()
                .flat_map(|p| p.objects.into_iter().map(|o| o.key))
                .collect()
        })
    }
}

/// A mount that is unmounted when dropped, also when a test panics.
pub struct Mount {
    pub handle: Option<MountHandle>,
    pub dir: tempfile::TempDir,
}

impl Mount {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn handle(&self) -> &MountHandle {
        self.handle.as_ref().unwrap()
    }

    /// Bytes the mount has received once its GETs in flight (a prefetch
    /// window running ahead) have finished: the count no longer moves
    /// over 50 ms, or 5 s have passed.
    pub fn settled_bytes_received(&self) -> u64 {
        let mut last = self.handle().stats().bytes_received;
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let now = self.handle().stats().bytes_received;
            if now == last {
                break;
            }
            last = now;
        }
        last
    }

    pub fn unmount(mut self) {
        if let Some(h) = self.handle.take() {
            h.unmount().map_err(|e| e.error).expect("unmount");
        }
    }
}

/// Lets a test take the handle out of a [`Mount`] (the guard then only
/// removes the directory).
pub trait TakeHandle {
    fn take_handle_for_test(&mut self) -> MountHandle;
}

impl TakeHandle for Option<MountHandle> {
    fn take_handle_for_test(&mut self) -> MountHandle {
        self.take().expect("mounted")
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // MountHandle's own Drop flushes and detaches; dropping it here,
        // before the directory, keeps the temp dir removable.
        self.handle.take();
    }
}

/// Options for tests: defaults with a small part size so multipart paths
/// run on small files, and a private staging directory.
pub fn opts() -> MountOptions {
    MountOptions {
        part_size: 5 * MIB as u64,
        ..MountOptions::default()
    }
}
