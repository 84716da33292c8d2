//! A small sandbox runtime that embeds byos3 without its HTTP server.
//!
//! The runtime owns its sandboxes (here: a directory per sandbox holding a
//! `rootfs`, and a flag saying whether it runs) and tells byos3 about them
//! through its own [`SandboxResolver`]. It registers the user's bucket as a
//! disk, starts a sandbox with the disk attached at `/mnt/data`, lets a
//! "workload" write a file there, detaches, and shuts down.
//!
//! ```text
//! BYOS3_S3_ENDPOINT=http://127.0.0.1:3900 BYOS3_S3_BUCKET=my-bucket \
//! AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
//!     cargo run -p byos3 --example sandbox_runtime
//! ```
//!
//! Optional: `BYOS3_S3_REGION`, `BYOS3_PLUGIN_DIR` (default: the bundled
//! plugins), `BYOS3_STATE_DIR` (default: a fresh temporary directory).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _};
use byos3::gateway::{Attachment, Gateway, GatewayOptions, NewDisk, NewSandbox, DEFAULT_TENANT};
use byos3::mount::{MountPath, SandboxError, SandboxResolver, SandboxRoot, SubPath};
use byos3::store::{DiskSpec, Page};
use byos3::vault::SecretCredentials;
use zeroize::Zeroizing;

/// The runtime's sandboxes: `<base>/<id>/rootfs`, running or not.
#[derive(Debug)]
struct Runtime {
    base: PathBuf,
    running: Mutex<HashMap<String, bool>>,
}

impl Runtime {
    fn rootfs(&self, id: &str) -> PathBuf {
        self.base.join(id).join("rootfs")
    }

    /// What the runtime does when it boots a sandbox.
    fn start(&self, id: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(self.rootfs(id))?;
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.into(), true);
        Ok(())
    }
}

impl SandboxResolver for Runtime {
    fn resolve(&self, id: &str) -> Result<SandboxRoot, SandboxError> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(id).copied();
        match running {
            Some(running) => Ok(SandboxRoot {
                root: self.rootfs(id),
                running,
            }),
            None => Err(SandboxError::NotFound(id.into())),
        }
    }

    /// The runtime creates sandboxes itself; byos3 only records them.
    fn create(&self, id: &str) -> Result<SandboxRoot, SandboxError> {
        self.resolve(id)
    }

    /// The runtime removes its sandboxes itself.
    fn destroy(&self, _id: &str) -> Result<(), SandboxError> {
        Ok(())
    }
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (see the top of this file)"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = env("BYOS3_S3_ENDPOINT")?;
    let bucket = env("BYOS3_S3_BUCKET")?;
    let credentials = SecretCredentials::new(
        Zeroizing::new(env("AWS_ACCESS_KEY_ID")?),
        Zeroizing::new(env("AWS_SECRET_ACCESS_KEY")?),
    );
    let scratch = tempfile::tempdir()?;
    let state_dir = std::env::var_os("BYOS3_STATE_DIR").map_or_else(|| scratch.path().join("state"), PathBuf::from);

    let runtime = Arc::new(Runtime {
        base: scratch.path().join("sandboxes"),
        running: Mutex::new(HashMap::new()),
    });
    let mut options = GatewayOptions::new(&state_dir);
    options.sandboxes = Some(runtime.clone());
    if let Some(dir) = std::env::var_os("BYOS3_PLUGIN_DIR") {
        options.plugin_dir = dir.into();
    }
    // The master key is made in the state directory on first use.
    options.master_key.env_value = None;
    let gateway = Gateway::open(options).await?;

    let disk = gateway
        .register_disk(
            DEFAULT_TENANT,
            NewDisk {
                name: "example".into(),
                config: DiskSpec {
                    bucket: bucket.clone(),
                    endpoint,
                    region: std::env::var("BYOS3_S3_REGION").ok(),
                    use_path_style: Some(true),
                    provider: None,
                    options: Vec::new(),
                },
                credentials,
            },
        )
        .await?;
    println!(
        "registered disk {} (provider {}, region {})",
        disk.id, disk.provider, disk.resolved_region
    );

    runtime.start("job-1")?;
    let (sandbox, results) = gateway
        .create_sandbox(
            DEFAULT_TENANT,
            NewSandbox {
                id: Some("job-1".into()),
                name: None,
                disks: vec![Attachment {
                    disk: disk.id.clone(),
                    mount_path: MountPath::parse("/mnt/data")?,
                    sub_path: SubPath::parse("example/")?,
                    read_only: false,
                }],
            },
        )
        .await?;
    if let Some(e) = results.iter().find_map(|r| r.error.as_ref()) {
        bail!("attaching failed: {e}");
    }
    println!("sandbox {} runs with {bucket}/example/ at /mnt/data", sandbox.id);

    // The workload: a process inside the sandbox writes its results.
    let out = runtime.rootfs("job-1").join("mnt/data/result.txt");
    std::fs::write(&out, b"written from inside the sandbox\n")?;
    for a in gateway
        .attachments(DEFAULT_TENANT, "job-1", Page { limit: 10, offset: 0 })
        .await?
    {
        println!(
            "{} -> {}{} ({:?})",
            a.attachment.mount_path, a.disk.spec.bucket, a.attachment.sub_path, a.status
        );
    }

    gateway
        .detach(DEFAULT_TENANT, "job-1", &disk.id, &MountPath::parse("/mnt/data")?)
        .await?;
    println!("detached; {bucket}/example/result.txt stays in the bucket");
    gateway.delete_sandbox(DEFAULT_TENANT, "job-1").await?;
    let failures = gateway.shutdown().await;
    if !failures.is_empty() {
        bail!("{} mount(s) failed to unmount", failures.len());
    }
    Ok(())
}
