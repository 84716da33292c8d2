//! The byos3 operations: register disks, create sandboxes, attach and
//! detach; the HTTP API ([`crate::api`]) is a skin over them, and runtimes
//! that embed the host call them directly through a [`Gateway`].
//!
//! A [`Gateway`] owns the registry, the vault, the provider plugins and the
//! live mounts of one state directory, exactly as `byos3 serve` does: the
//! same validation, the same probes, the same error codes (a
//! [`GatewayError`] carries the `code` the HTTP API would put in its JSend
//! `fail`). The runtime supplies its sandboxes through a
//! [`SandboxResolver`](crate::mount::SandboxResolver); `host/examples/sandbox_runtime.rs` shows the loop.
//!
//! Every method takes the tenant the call acts for; one process can serve
//! several tenants, each seeing only its own disks and sandboxes.

pub(crate) mod disks;
mod error;
pub mod policy;
pub(crate) mod sandboxes;
pub(crate) mod state;

use std::fmt;
use std::sync::Arc;

use crate::mount::{AttachRequest, DetachError, MountPath, MountStatus};
use crate::store::{AttachmentRecord, DiskRecord, DiskSpec, Page, SandboxRecord};
use crate::vault::SecretCredentials;
use sandboxes::AttachOutcome;
use state::{open_state, State};

pub use error::GatewayError;
pub use sandboxes::AttachSpec as Attachment;
pub use state::{open_vault, GatewayOptions, DB_FILE, MASTER_KEY_FILE};

/// The tenant of a single-tenant embedding (and of the daemon's generated key).
pub const DEFAULT_TENANT: &str = "default";

/// A disk to register.
pub struct NewDisk {
    /// `^[a-z0-9][a-z0-9-]{0,62}$`, unique per tenant.
    pub name: String,
    /// Bucket, endpoint, optional region, addressing, provider and options.
    pub config: DiskSpec,
    /// Sealed at rest, never returned.
    pub credentials: SecretCredentials,
}

impl fmt::Debug for NewDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDisk")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// A sandbox to create.
#[derive(Debug, Clone, Default)]
pub struct NewSandbox {
    /// The id (`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`); generated when `None`.
    pub id: Option<String>,
    /// A name unique per tenant; derived from the id when `None`.
    pub name: Option<String>,
    /// Disks to attach right away.
    pub disks: Vec<Attachment>,
}

/// One attachment requested with a new sandbox and how it went.
#[derive(Debug)]
pub struct AttachResult {
    /// What was asked.
    pub attachment: Attachment,
    /// `None` when the disk is mounted.
    pub error: Option<GatewayError>,
}

/// A disk attached to a sandbox, with its live mount state.
#[derive(Debug, Clone)]
pub struct AttachedDisk {
    /// The recorded attachment.
    pub attachment: AttachmentRecord,
    /// The disk (its credentials are not part of it).
    pub disk: DiskRecord,
    /// `mounted`, `pending`, `unmounting` or `error`.
    pub status: MountStatus,
    /// Why the mount failed or died.
    pub error: Option<String>,
    /// What attaching cleaned up from a previous run (uploads a crash left).
    pub notice: Option<String>,
}

/// The embedding API: register disks, create sandboxes, attach, detach.
pub struct Gateway {
    state: Arc<State>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

type Result<T> = std::result::Result<T, GatewayError>;

impl Gateway {
    /// Opens the state directory, loads the master key and the plugins, and
    /// re-attaches every recorded attachment (see [`Gateway::attachments`]
    /// for how each went). A missing master key or plugin directory does not
    /// fail the open: disk operations then fail with `error` and the reason.
    pub async fn open(options: GatewayOptions) -> anyhow::Result<Gateway> {
        let state = open_state(&options).await?;
        Ok(Gateway { state })
    }

    /// Checks the bucket (resolve through the provider plugin, endpoint
    /// policy, probe with the credentials), seals the credentials and
    /// records the disk. Registering the same name with the same
    /// configuration again returns the existing disk.
    pub async fn register_disk(&self, tenant: &str, disk: NewDisk) -> Result<DiskRecord> {
        let req = disks::validate_create(disk.name, "s3".into(), disk.config, disk.credentials)?;
        Ok(disks::register(&self.state, tenant, req).await?.1)
    }

    /// A disk by id or name.
    pub async fn disk(&self, tenant: &str, id_or_name: &str) -> Result<DiskRecord> {
        disks::find(&self.state, tenant, id_or_name).await
    }

    /// A page of the tenant's disks and their total count.
    pub async fn disks(&self, tenant: &str, page: Page) -> Result<(Vec<DiskRecord>, u64)> {
        disks::list_records(&self.state, tenant, page).await
    }

    /// Probes and stores new credentials; live mounts of the disk use them
    /// from their next request, without a remount.
    pub async fn rotate_credentials(
        &self,
        tenant: &str,
        id_or_name: &str,
        credentials: SecretCredentials,
    ) -> Result<DiskRecord> {
        disks::check_credentials(&credentials)?;
        let disk = disks::find(&self.state, tenant, id_or_name).await?;
        disks::rotate_credentials(&self.state, tenant, disk, &credentials).await
    }

    /// Forgets a disk and its credentials (`disk_attached` while attached).
    /// The bucket is not touched.
    pub async fn delete_disk(&self, tenant: &str, id_or_name: &str) -> Result<()> {
        let disk = disks::find(&self.state, tenant, id_or_name).await?;
        disks::remove(&self.state, tenant, &disk).await
    }

    /// Creates a sandbox (its root from the resolver) and attaches its
    /// disks; a failed attachment is reported, not fatal.
    pub async fn create_sandbox(
        &self,
        tenant: &str,
        sandbox: NewSandbox,
    ) -> Result<(SandboxRecord, Vec<AttachResult>)> {
        let (record, outcomes) =
            sandboxes::create_sandbox(&self.state, tenant, sandbox.id, sandbox.name, sandbox.disks).await?;
        let results = outcomes
            .into_iter()
            .map(|AttachOutcome { spec, result }| AttachResult {
                attachment: spec,
                error: result.err(),
            })
            .collect();
        Ok((record, results))
    }

    /// A sandbox by id or name.
    pub async fn sandbox(&self, tenant: &str, id_or_name: &str) -> Result<SandboxRecord> {
        sandboxes::find_sandbox(&self.state, tenant, id_or_name).await
    }

    /// Detaches every disk of the sandbox (flushing writes), then forgets it.
    pub async fn delete_sandbox(&self, tenant: &str, id_or_name: &str) -> Result<()> {
        let sb = sandboxes::find_sandbox(&self.state, tenant, id_or_name).await?;
        sandboxes::delete_sandbox(&self.state, tenant, &sb).await
    }

    /// Mounts a disk into a sandbox; returns once the mount is usable.
    pub async fn attach(&self, tenant: &str, sandbox: &str, attachment: Attachment) -> Result<()> {
        let sb = sandboxes::find_sandbox(&self.state, tenant, sandbox).await?;
        sandboxes::attach_one(&self.state, tenant, &sb, &attachment).await
    }

    /// Flushes pending uploads and unmounts; the bucket is not touched.
    pub async fn detach(&self, tenant: &str, sandbox: &str, disk: &str, mount_path: &MountPath) -> Result<()> {
        let sb = sandboxes::find_sandbox(&self.state, tenant, sandbox).await?;
        sandboxes::detach_one(&self.state, tenant, &sb, disk, mount_path).await
    }

    /// The sandbox's attachments (the first `page`) with their live state.
    pub async fn attachments(&self, tenant: &str, sandbox: &str, page: Page) -> Result<Vec<AttachedDisk>> {
        let sb = sandboxes::find_sandbox(&self.state, tenant, sandbox).await?;
        let (views, _) = sandboxes::attachment_views(&self.state, tenant, &sb, page).await?;
        Ok(views
            .into_iter()
            .map(|v| AttachedDisk {
                attachment: v.record,
                disk: v.disk,
                status: v.status,
                error: v.error,
                notice: v.notice,
            })
            .collect())
    }

    /// Flushes and unmounts every mount (they stay recorded and are
    /// re-attached by the next [`Gateway::open`]); returns the failures.
    pub async fn shutdown(self) -> Vec<(AttachRequest, DetachError)> {
        self.state.mounts.shutdown().await
    }
}
