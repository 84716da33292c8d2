//! The embedding API: a runtime drives byos3 through `byos3::Gateway`
//! with its own `SandboxResolver`, no HTTP server involved, against a real
//! Garage and real FUSE mounts.

mod api_support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use api_support::*;
use byos3::gateway::{Attachment, Gateway, GatewayOptions, NewDisk, NewSandbox};
use byos3::mount::{MountPath, MountStatus, SandboxError, SandboxResolver, SandboxRoot, SubPath};
use byos3::store::{DiskSpec, Page};
use byos3::vault::SecretCredentials;
use byos3_tests::Garage;
use zeroize::Zeroizing;

/// A runtime that owns its sandboxes: `<base>/<id>`, running or stopped.
#[derive(Debug)]
struct Runtime {
    base: PathBuf,
    running: Mutex<HashMap<String, bool>>,
}

impl Runtime {
    fn set(&self, id: &str, running: bool) {
        std::fs::create_dir_all(self.base.join(id)).unwrap();
        self.running.lock().unwrap().insert(id.into(), running);
    }
}

impl SandboxResolver for Runtime {
    fn resolve(&self, id: &str) -> Result<SandboxRoot, SandboxError> {
        let running = self.running.lock().unwrap().get(id).copied();
        running
            .map(|running| SandboxRoot {
                root: self.base.join(id),
                running,
            })
            .ok_or_else(|| SandboxError::NotFound(id.into()))
    }
    fn create(&self, id: &str) -> Result<SandboxRoot, SandboxError> {
        self.resolve(id)
    }
    fn destroy(&self, _id: &str) -> Result<(), SandboxError> {
        Ok(())
    }
}

const T: &str = "acme";

fn spec(g: &Garage) -> DiskSpec {
    DiskSpec {
        bucket: g.bucket.clone(),
        endpoint: g.endpoint_url(),
        region: Some(g.region.clone()),
        use_path_style: Some(true),
        provider: None,
        options: Vec::new(),
    }
}

fn creds(access: &str, secret: &str) -> SecretCredentials {
    SecretCredentials::new(Zeroizing::new(access.into()), Zeroizing::new(secret.into()))
}

fn attachment(disk: &str, mount_path: &str, sub_path: &str, read_only: bool) -> Attachment {
    Attachment {
        disk: disk.into(),
        mount_path: MountPath::parse(mount_path).unwrap(),
        sub_path: SubPath::parse(sub_path).unwrap(),
        read_only,
    }
}

#[test]
fn a_runtime_embeds_the_gateway_with_its_own_sandboxes() {
    let g = Garage::start().unwrap();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let runtime = Arc::new(Runtime {
        base: dir.path().join("vms"),
        running: Mutex::new(HashMap::new()),
    });
    let mut opts = GatewayOptions::new(dir.path().join("state"));
    opts.plugin_dir = plugin_dir();
    opts.plugin_cache_dir = Some(byos3::plugin::default_cache_dir());
    opts.master_key.env_value = None;
    opts.sandboxes = Some(runtime.clone());

    let gw = rt.block_on(async {
        let gw = Gateway::open(opts.clone()).await.unwrap();

        // Bad input: the API's codes and field paths, and nothing recorded.
        let e = gw
            .register_disk(
                T,
                NewDisk {
                    name: "Bad Name".into(),
                    config: spec(&g),
                    credentials: creds(&g.access_key, &g.secret_key),
                },
            )
            .await
            .unwrap_err();
        assert_eq!((e.code(), e.field()), ("invalid_field", Some("name")), "{e}");
        let e = gw
            .register_disk(
                T,
                NewDisk {
                    name: "data".into(),
                    config: spec(&g),
                    credentials: creds(&g.access_key, " padded"),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.field(), Some("credentials.secret_key"), "{e}");
        assert!(!format!("{e:?}{e}").contains("padded"));
        let e = gw
            .register_disk(
                T,
                NewDisk {
                    name: "data".into(),
                    config: spec(&g),
                    credentials: creds(&g.access_key, "wrong-secret-0000000000000000000000000000"),
                },
            )
            .await
            .unwrap_err();
        assert!(["signature_mismatch", "access_denied"].contains(&e.code()), "{e}");
        assert!(gw.disks(T, Page { limit: 10, offset: 0 }).await.unwrap().0.is_empty());

        let disk = gw
            .register_disk(
                T,
                NewDisk {
                    name: "data".into(),
                    config: spec(&g),
                    credentials: creds(&g.access_key, &g.secret_key),
                },
            )
            .await
            .unwrap();
        assert_eq!(gw.disk(T, "data").await.unwrap().id, disk.id);
        // Tenants are separate.
        assert_eq!(gw.disk("other", &disk.id).await.unwrap_err().code(), "not_found");

        // A stopped sandbox cannot take mounts; a running one can.
        runtime.set("vm-1", false);
        let (sb, results) = gw
            .create_sandbox(
                T,
                NewSandbox {
                    id: Some("vm-1".into()),
                    disks: vec![attachment("data", "/mnt/data", "vm-1/", false)],
                    ..NewSandbox::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(sb.id, "vm-1");
        assert_eq!(results[0].error.as_ref().map(|e| e.code()), Some("sandbox_not_running"));
        runtime.set("vm-1", true);
        gw.attach(T, "vm-1", attachment("data", "/mnt/data", "vm-1/", false))
            .await
            .unwrap();
        gw.attach(T, "vm-1", attachment("data", "/mnt/ro", "", true))
            .await
            .unwrap();
        let e = gw
            .attach(T, "vm-1", attachment("data", "/mnt/data/inner", "", false))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "mount_path_in_use");
        // The id is taken, for every tenant.
        let e = gw
            .create_sandbox(
                "other",
                NewSandbox {
                    id: Some("vm-1".into()),
                    ..NewSandbox::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "sandbox_exists");
        gw
    });

    let root = dir.path().join("vms/vm-1");
    std::fs::write(root.join("mnt/data/out.txt"), b"from the vm").unwrap();
    assert_eq!(std::fs::read(root.join("mnt/ro/vm-1/out.txt")).unwrap(), b"from the vm");
    let e = std::fs::write(root.join("mnt/ro/x"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    assert_eq!(keys_in(&g, &rt, ""), vec!["vm-1/out.txt".to_string()]);

    let gw = rt.block_on(async {
        let live = gw.attachments(T, "vm-1", Page { limit: 10, offset: 0 }).await.unwrap();
        assert_eq!(live.len(), 2);
        assert!(live
            .iter()
            .all(|a| a.status == MountStatus::Mounted && a.error.is_none()));
        assert_eq!(gw.delete_disk(T, "data").await.unwrap_err().code(), "disk_attached");
        // A runtime restart: mounts are flushed and dropped, then re-made.
        assert!(gw.shutdown().await.is_empty());
        assert!(!is_mounted(&root.join("mnt/data")));
        Gateway::open(opts.clone()).await.unwrap()
    });
    assert!(is_mounted(&root.join("mnt/data")));
    assert_eq!(std::fs::read(root.join("mnt/data/out.txt")).unwrap(), b"from the vm");

    rt.block_on(async {
        gw.detach(T, "vm-1", "data", &MountPath::parse("/mnt/data").unwrap())
            .await
            .unwrap();
        assert!(!is_mounted(&root.join("mnt/data")));
        gw.delete_sandbox(T, "vm-1").await.unwrap();
        assert!(!is_mounted(&root.join("mnt/ro")));
        gw.delete_disk(T, "data").await.unwrap();
        assert!(gw.shutdown().await.is_empty());
    });
    // Detaching and deleting never touch the bucket.
    assert_eq!(keys_in(&g, &rt, ""), vec!["vm-1/out.txt".to_string()]);
}

#[test]
fn the_example_sandbox_runtime_runs_against_a_real_bucket() {
    let g = Garage::start().unwrap();
    let rt = runtime();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = std::process::Command::new(cargo)
        .args([
            "run",
            "--quiet",
            "-p",
            "byos3",
            "--example",
            "sandbox_runtime",
            "--manifest-path",
        ])
        .arg(&manifest)
        .env("BYOS3_S3_ENDPOINT", g.endpoint_url())
        .env("BYOS3_S3_BUCKET", &g.bucket)
        .env("BYOS3_S3_REGION", &g.region)
        .env("AWS_ACCESS_KEY_ID", &g.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &g.secret_key)
        .env("BYOS3_PLUGIN_DIR", plugin_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sandbox job-1 runs with"), "{stdout}");
    assert!(!stdout.contains(&g.secret_key));
    assert_eq!(keys_in(&g, &rt, ""), vec!["example/result.txt".to_string()]);
}
