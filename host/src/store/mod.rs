//! The durable registry of tenants, disks, sealed credentials, sandboxes
//! and attachments.
//!
//! Callers see the [`Store`] trait; [`SqliteStore`] implements it on one
//! machine (SQLite in WAL mode, foreign keys on, numbered migrations run at
//! open). A PostgreSQL backend for a shared control plane implements the
//! same trait. Every multi-step change is one transaction, so a crash never
//! leaves a disk half-registered.
//!
//! The methods block (SQLite does I/O); async callers run them on a
//! blocking thread (`tokio::task::spawn_blocking`).

mod sqlite;

use std::fmt;

pub use sqlite::SqliteStore;

use crate::vault::{SealedCredentials, VaultError};

/// A disk's configuration as the user gave it (normalised). This is what
/// an idempotent re-registration is compared against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// Bucket name (`config.bucket`).
    pub bucket: String,
    /// Endpoint URL (`config.endpoint`), an absolute `http(s)://` URL.
    pub endpoint: String,
    /// Region the user gave (`config.region`); `None` means the provider's default.
    pub region: Option<String>,
    /// Path-style addressing forced on or off (`config.use_path_style`); `None` leaves it to the plugin.
    pub use_path_style: Option<bool>,
    /// The plugin asked for explicitly (`config.provider`).
    pub provider: Option<String>,
    /// Extra provider options (`config.options`), sorted by key.
    pub options: Vec<(String, String)>,
}

/// A registered disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskRecord {
    /// `disk_<ULID>`
    pub id: String,
    /// Tenant that owns the disk; every lookup is scoped to it.
    pub tenant: String,
    /// User-chosen name, unique per tenant; lookups accept it in place of the id.
    pub name: String,
    /// `s3`
    pub kind: String,
    /// The configuration as the user gave it.
    pub spec: DiskSpec,
    /// The plugin that serves the disk.
    pub provider: String,
    /// The signing region the plugin resolved.
    pub resolved_region: String,
    /// Whether the plugin resolved path-style addressing.
    pub resolved_path_style: bool,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When the disk last changed (its credentials were replaced), in milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
}

/// A sandbox: a filesystem root the runtime provides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxRecord {
    /// `sb_<ULID>`
    pub id: String,
    /// Tenant that owns the sandbox; every lookup is scoped to it.
    pub tenant: String,
    /// User-chosen name, unique per tenant; lookups accept it in place of the id.
    pub name: String,
    /// `creating`, `running`, `stopped`, `failed` or `destroyed`.
    pub status: String,
    /// The sandbox's root directory on the host.
    pub root: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// A disk attached to a sandbox at a mount path. The key is
/// (sandbox, disk, mount path); a mount path holds one disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentRecord {
    /// Tenant that owns both the sandbox and the disk.
    pub tenant: String,
    /// Id of the sandbox the disk is mounted into.
    pub sandbox_id: String,
    /// Id of the disk that is mounted.
    pub disk_id: String,
    /// Normalised absolute path inside the sandbox (see [`crate::mount::MountPath`]).
    pub mount_path: String,
    /// Normalised key prefix shown at the mount path, empty for the whole bucket
    /// (see [`crate::mount::SubPath`]).
    pub sub_path: String,
    /// Whether the disk is mounted read-only.
    pub read_only: bool,
    /// `pending`, `mounted`, `error` or `unmounting`.
    pub mount_status: String,
    /// Why the mount failed or stopped working, when `mount_status` is `error`.
    pub mount_error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// The master key versions the data was sealed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultState {
    /// The version every new seal must use (set by the last rotation).
    pub current_version: u32,
    /// Key check values by version (see [`crate::vault::key_check`]).
    pub checks: Vec<(u32, Vec<u8>)>,
}

/// A page of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Most rows to return.
    pub limit: u32,
    /// Rows to skip first.
    pub offset: u64,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name or mount path is taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row does not exist for this tenant.
    #[error("not found")]
    NotFound,
    /// The disk has attachments and cannot be deleted.
    #[error("the disk is attached to {0} sandbox mount(s)")]
    Attached(u64),
    /// The credentials were sealed under a key version older than the
    /// current one (a rotation committed meanwhile): reload keys, re-seal.
    #[error("sealed under master key version {sealed}, but version {current} is current")]
    StaleKeyVersion {
        /// The key version the record was sealed with.
        sealed: u32,
        /// The version that is current in the store.
        current: u32,
    },
    /// A rotation could not re-seal a record.
    #[error("disk {disk_id}: {source}")]
    Reseal {
        /// The disk whose credentials could not be re-sealed.
        disk_id: String,
        /// Why re-sealing failed.
        #[source]
        source: VaultError,
    },
    /// The database was written by a newer byos3; it is not touched.
    #[error("the database schema is version {found}, newer than this byos3 knows ({known}); upgrade byos3")]
    SchemaTooNew {
        /// The schema version in the database.
        found: u32,
        /// The newest schema version this build knows.
        known: u32,
    },
    /// Any other database failure (I/O, SQL, a failed migration), as text.
    #[error("database: {0}")]
    Database(String),
}

/// The registry. Tenancy is part of every key: a lookup with another
/// tenant finds nothing.
pub trait Store: Send + Sync + fmt::Debug {
    // ---- disks ----

    /// Inserts the disk and its sealed credentials in one transaction
    /// (creating the tenant row on first use). `Conflict` if the name is
    /// taken; `StaleKeyVersion` if a rotation made another key current.
    fn create_disk(&self, disk: &DiskRecord, creds: &SealedCredentials) -> Result<(), StoreError>;
    /// A disk by id (`disk_...`) or name.
    fn find_disk(&self, tenant: &str, id_or_name: &str) -> Result<Option<DiskRecord>, StoreError>;
    /// A page of the tenant's disks, oldest first, and the total count.
    fn list_disks(&self, tenant: &str, page: Page) -> Result<(Vec<DiskRecord>, u64), StoreError>;
    /// The disk's sealed credentials; `None` if the tenant has no such disk.
    fn sealed_credentials(&self, tenant: &str, disk_id: &str) -> Result<Option<SealedCredentials>, StoreError>;
    /// Replaces the sealed credentials (`NotFound`, `StaleKeyVersion`).
    fn replace_credentials(
        &self,
        tenant: &str,
        disk_id: &str,
        creds: &SealedCredentials,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Deletes the disk and its credentials (`NotFound`, `Attached`).
    fn delete_disk(&self, tenant: &str, disk_id: &str) -> Result<(), StoreError>;

    // ---- vault ----

    /// The key versions in use; `None` before the vault was first initialised.
    fn vault_state(&self) -> Result<Option<VaultState>, StoreError>;
    /// Records `version` and its key check as current if no state exists
    /// yet; returns the state either way.
    fn init_vault(&self, version: u32, check: &[u8]) -> Result<VaultState, StoreError>;
    /// In one transaction: re-seals every credential record with `reseal`
    /// (tenant, disk id, old sealed record), records `check` for
    /// `new_version`, makes it current and drops older checks. Any failure
    /// rolls everything back. Returns the number of records re-sealed.
    #[allow(clippy::type_complexity)]
    fn rotate_key(
        &self,
        new_version: u32,
        check: &[u8],
        reseal: &mut dyn FnMut(&str, &str, &SealedCredentials) -> Result<SealedCredentials, VaultError>,
    ) -> Result<usize, StoreError>;

    // ---- sandboxes and attachments ----

    /// Inserts the sandbox (creating the tenant row on first use); `Conflict` if its name or id is taken.
    fn create_sandbox(&self, sandbox: &SandboxRecord) -> Result<(), StoreError>;
    /// A sandbox by id or name.
    fn find_sandbox(&self, tenant: &str, id_or_name: &str) -> Result<Option<SandboxRecord>, StoreError>;
    /// Whether any tenant has a sandbox with this id (ids name host directories).
    fn sandbox_id_taken(&self, id: &str) -> Result<bool, StoreError>;
    /// A page of the tenant's sandboxes, oldest first, and the total count.
    fn list_sandboxes(&self, tenant: &str, page: Page) -> Result<(Vec<SandboxRecord>, u64), StoreError>;
    /// Sets a sandbox's status (see [`SandboxRecord::status`]); `NotFound` if it is not the tenant's.
    fn set_sandbox_status(&self, tenant: &str, sandbox_id: &str, status: &str) -> Result<(), StoreError>;
    /// Deletes the sandbox and (cascading) its attachment rows.
    fn delete_sandbox(&self, tenant: &str, sandbox_id: &str) -> Result<(), StoreError>;
    /// `Conflict` if the mount path of that sandbox is in use; `NotFound`
    /// if the sandbox or disk is not the tenant's.
    fn create_attachment(&self, attachment: &AttachmentRecord) -> Result<(), StoreError>;
    /// A page of one sandbox's attachments, oldest first, and the total count.
    fn list_attachments(
        &self,
        tenant: &str,
        sandbox_id: &str,
        page: Page,
    ) -> Result<(Vec<AttachmentRecord>, u64), StoreError>;
    /// Records the mount status (and error) of the attachment at `mount_path`; `NotFound` if there is none.
    fn set_attachment_status(
        &self,
        tenant: &str,
        sandbox_id: &str,
        mount_path: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Deletes one attachment row; `NotFound` if there is none.
    fn delete_attachment(
        &self,
        tenant: &str,
        sandbox_id: &str,
        disk_id: &str,
        mount_path: &str,
    ) -> Result<(), StoreError>;
    /// Every attachment of every tenant (re-attach after a restart).
    fn all_attachments(&self) -> Result<Vec<AttachmentRecord>, StoreError>;
}
