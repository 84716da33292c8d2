//! The attach/detach lifecycle through the library's `MountManager`, with
//! real FUSE mounts of a real S3 server: files land in the bucket under the
//! sub path, detach leaves the bucket untouched, paths are validated.

use std::sync::Arc;

use byos3::fs::MountOptions;
use byos3::mount::{
    AttachError, AttachRequest, DirectoryResolver, MountManager, MountPath, MountStatus, PathError, SubPath,
};
use byos3::s3::Addressing;
use byos3_tests::Garage;

struct Fixture {
    garage: Garage,
    manager: Arc<MountManager>,
    rt: tokio::runtime::Runtime,
    _state: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let garage = Garage::start().unwrap();
        let state = tempfile::tempdir().unwrap();
        let resolver = Arc::new(DirectoryResolver::new(state.path().join("sandboxes")));
        let opts = MountOptions {
            staging_dir: state.path().join("staging"),
            ..MountOptions::default()
        };
        let manager = Arc::new(MountManager::new(resolver, opts));
        let rt = byos3_tests::runtime();
        Self {
            garage,
            manager,
            rt,
            _state: state,
        }
    }

    fn request(&self, sandbox: &str, mount_path: &str, sub_path: &str, read_only: bool) -> AttachRequest {
        AttachRequest {
            sandbox_id: sandbox.into(),
            disk_id: "disk_1".into(),
            mount_path: MountPath::parse(mount_path).unwrap(),
            sub_path: SubPath::parse(sub_path).unwrap(),
            read_only,
        }
    }

    fn attach(&self, req: AttachRequest) -> Result<(), AttachError> {
        self.rt
            .block_on(self.manager.attach(req, self.garage.client(Addressing::Path)))
    }

    fn root(&self, sandbox: &str) -> std::path::PathBuf {
        self.manager.resolver().create(sandbox).unwrap().root
    }
}

impl Drop for Fixture {
    /// Never leave a mount behind, also when a test fails.
    fn drop(&mut self) {
        let failures = self.rt.block_on(self.manager.shutdown());
        for (req, e) in failures {
            eprintln!("cleanup: detach {} failed: {e}", req.mount_path);
        }
    }
}

#[test]
fn attach_write_detach_leaves_the_bucket_untouched() {
    let f = Fixture::new();
    let root = f.root("sb1");
    f.attach(f.request("sb1", "/mnt/data", "team-a/", false))
        .expect("attach");
    let states = f.manager.list(Some("sb1"));
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].status, MountStatus::Mounted);

    let dir = root.join("mnt/data");
    std::fs::write(dir.join("hello.txt"), b"hello").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/x.bin"), vec![7u8; 100_000]).unwrap();

    let client = f.garage.client(Addressing::Path);
    let keys = |prefix: &str| -> Vec<String> {
        f.rt.block_on(client.list_objects(prefix, None, None, None, None))
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect()
    };
    let before = keys("");
    assert!(before.contains(&"team-a/hello.txt".to_string()), "{before:?}");
    assert!(before.contains(&"team-a/sub/x.bin".to_string()), "{before:?}");
    assert!(
        before.iter().all(|k| k.starts_with("team-a/")),
        "nothing outside the sub path: {before:?}"
    );

    // Idempotent re-attach; then a conflicting path is refused.
    f.attach(f.request("sb1", "/mnt/data", "team-a/", false))
        .expect("same attach again is a no-op");
    let err = f.attach(f.request("sb1", "/mnt/data/inner", "", false)).unwrap_err();
    assert!(matches!(err, AttachError::Path(PathError::Overlap { .. })), "{err}");

    f.rt.block_on(
        f.manager
            .detach("sb1", "disk_1", &MountPath::parse("/mnt/data").unwrap()),
    )
    .expect("detach");
    assert!(f.manager.list(Some("sb1")).is_empty());
    assert!(!dir.join("hello.txt").exists(), "the mount is gone after detach");
    assert_eq!(keys(""), before, "detach never touches the bucket");
}

#[test]
fn two_sandboxes_share_a_disk_with_different_sub_paths() {
    let f = Fixture::new();
    let (ra, rb) = (f.root("sa"), f.root("sb"));
    f.attach(f.request("sa", "/data", "a", false)).unwrap();
    f.attach(f.request("sb", "/data", "b", false)).unwrap();
    std::fs::write(ra.join("data/only-a.txt"), b"a").unwrap();
    std::fs::write(rb.join("data/only-b.txt"), b"b").unwrap();
    let names = |root: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&ra), ["only-a.txt"]);
    assert_eq!(names(&rb), ["only-b.txt"]);
}

#[test]
fn read_only_attach_refuses_writes() {
    let f = Fixture::new();
    let root = f.root("ro");
    f.attach(f.request("ro", "/mnt/ro", "", true)).unwrap();
    let err = std::fs::write(root.join("mnt/ro/x"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
}

#[test]
fn escapes_and_missing_sandboxes_are_refused() {
    let f = Fixture::new();
    let root = f.root("esc");
    std::os::unix::fs::symlink("/tmp", root.join("link")).unwrap();
    let err = f.attach(f.request("esc", "/link/data", "", false)).unwrap_err();
    assert!(
        matches!(err, AttachError::Path(PathError::SymlinkEscape { .. })),
        "{err}"
    );
    let err = f.attach(f.request("nope", "/mnt/data", "", false)).unwrap_err();
    assert!(matches!(err, AttachError::Sandbox(_)), "{err}");
    assert!(f.manager.list(None).is_empty(), "failed attaches leave nothing behind");
}

#[test]
fn detach_with_an_open_writer_flushes_and_refuses_until_closed() {
    use std::io::Write;
    let f = Fixture::new();
    let root = f.root("busy");
    f.attach(f.request("busy", "/mnt/w", "w/", false)).unwrap();
    let mut file = std::fs::File::create(root.join("mnt/w/open.txt")).unwrap();
    file.write_all(b"written while attached").unwrap();
    let mount_path = MountPath::parse("/mnt/w").unwrap();

    // The writer still holds the file: detach flushes its data, then refuses
    // to pull the mount from under it.
    let err =
        f.rt.block_on(f.manager.detach("busy", "disk_1", &mount_path))
            .unwrap_err();
    assert!(err.to_string().contains("busy"), "{err}");
    assert_eq!(
        f.manager.list(Some("busy"))[0].status,
        MountStatus::Mounted,
        "the mount stays usable"
    );
    let client = f.garage.client(Addressing::Path);
    let flushed =
        f.rt.block_on(client.get_object_bytes("w/open.txt", None, 1024))
            .expect("flushed before refusing");
    assert_eq!(&flushed[..], b"written while attached");

    // Once closed, detach succeeds and nothing was lost.
    file.write_all(b", and after").unwrap();
    drop(file);
    f.rt.block_on(f.manager.detach("busy", "disk_1", &mount_path))
        .expect("detach after close");
    let data =
        f.rt.block_on(client.get_object_bytes("w/open.txt", None, 1024))
            .unwrap();
    assert_eq!(&data[..], b"written while attached, and after");
}
