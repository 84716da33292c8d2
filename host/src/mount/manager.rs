//! The mount table: which disk is mounted where in which sandbox, and the
//! attach/detach transitions between those states.

use std::sync::{Arc, Mutex};

use crate::fs::{self, FsError, MountHandle, MountOptions};
use crate::s3::{Credentials, S3Client};

use super::journal::UploadJournal;
use super::paths::{MountPath, PathError, SubPath};
use super::sandbox::{SandboxError, SandboxResolver};

/// What to mount where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    /// Sandbox to mount into, as its [`SandboxResolver`] knows it.
    pub sandbox_id: String,
    /// Registered disk whose bucket is mounted; with `sandbox_id` and `mount_path` it names the attachment.
    pub disk_id: String,
    /// Where inside the sandbox the disk appears.
    pub mount_path: MountPath,
    /// Which key prefix of the bucket the mount shows (empty: the whole bucket).
    pub sub_path: SubPath,
    /// Mount read-only: every change fails with `EROFS`.
    pub read_only: bool,
}

/// The state of one attachment, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountStatus {
    /// Being mounted: the attach has not returned yet.
    Pending,
    /// Mounted and, at the last health check, working.
    Mounted,
    /// Mounted but not working (session gone, credentials refused); see [`AttachmentState::error`].
    /// Turns back to `Mounted` when requests succeed again.
    Error,
    /// A detach is flushing and unmounting it.
    Unmounting,
}

/// One row of [`MountManager::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentState {
    /// What was asked to be mounted where.
    pub request: AttachRequest,
    /// Its state now.
    pub status: MountStatus,
    /// Why the mount failed or stopped working (it may recover, e.g. once
    /// rotated credentials are accepted).
    pub error: Option<String>,
    /// What the attach found and cleaned up from a previous run (uploads a
    /// crash left in flight, aborted so no partial object appears).
    pub notice: Option<String>,
}

/// One attachment's figures (see [`MountManager::metrics`]).
#[derive(Debug, Clone)]
pub struct MountMetrics {
    /// Which attachment.
    pub request: AttachRequest,
    /// Its state now.
    pub status: MountStatus,
    /// Its S3 client's counters (requests, outcomes, retries, bytes).
    pub s3: crate::s3::StatsSnapshot,
    /// Bytes read through the mount by the sandbox's processes.
    pub bytes_read: u64,
    /// Bytes written through the mount by the sandbox's processes.
    pub bytes_written: u64,
    /// Bytes of read-ahead buffers held now.
    pub prefetch_memory_in_use: u64,
    /// Bytes of changed files staged on local disk now.
    pub staged_bytes: u64,
    /// Inodes the mount keeps now (see [`MountHandle::inodes`]).
    pub inodes: u64,
    /// Multipart uploads started and not yet completed or aborted.
    pub uploads_in_flight: u64,
}

/// Why an attach failed. Nothing is mounted after an error.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The sandbox could not be resolved (unknown or invalid id, I/O).
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The sandbox exists but is not running; holds its id.
    #[error("sandbox {0:?} is not running; start it before attaching disks")]
    NotRunning(String),
    /// The mount path leaves the sandbox through a symlink or overlaps another mount of the sandbox.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The missing mount point could not be created.
    #[error("cannot create the mount point {path}: {source}")]
    MountPoint {
        /// The mount path inside the sandbox.
        path: String,
        /// The error from creating the directory.
        source: std::io::Error,
    },
    /// The filesystem could not be mounted.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The blocking mount task panicked or was cancelled, or the attachment was removed (shutdown) while
    /// mounting.
    #[error("the mount task failed: {0}")]
    Task(String),
}

/// Why a detach failed. The mount is still in place after an error.
#[derive(Debug, thiserror::Error)]
pub enum DetachError {
    /// No attachment matches the sandbox, disk and mount path.
    #[error("disk {disk_id:?} is not attached to sandbox {sandbox_id:?} at {mount_path}")]
    NotAttached {
        /// The sandbox asked for.
        sandbox_id: String,
        /// The disk asked for.
        disk_id: String,
        /// The mount path asked for.
        mount_path: String,
    },
    /// The attachment is still being mounted or already being detached; holds its mount path.
    #[error("{0:?} is already being detached")]
    InProgress(String),
    /// Flushing or unmounting failed (e.g. [`FsError::Busy`]); the mount stays attached.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The blocking unmount task panicked or was cancelled.
    #[error("the unmount task failed: {0}")]
    Task(String),
}

struct Entry {
    request: AttachRequest,
    status: MountStatus,
    error: Option<String>,
    notice: Option<String>,
    client: S3Client,
    handle: Option<MountHandle>,
    journal: Option<Arc<UploadJournal>>,
}

/// Mounts disks into sandboxes and keeps track of them.
pub struct MountManager {
    resolver: Arc<dyn SandboxResolver>,
    options: MountOptions,
    journal_dir: Option<std::path::PathBuf>,
    table: Mutex<Vec<Entry>>,
}

impl MountManager {
    /// `options` is the template of every mount (staging dir, budgets,
    /// TTLs); `read_only` comes from each attach request.
    pub fn new(resolver: Arc<dyn SandboxResolver>, options: MountOptions) -> Self {
        Self {
            resolver,
            options,
            journal_dir: None,
            table: Mutex::new(Vec::new()),
        }
    }

    /// Keeps a journal of each attachment's multipart uploads in `dir`, so
    /// that attaching again after a crash aborts the uploads the crash
    /// left open (and reports them in [`AttachmentState::notice`]).
    pub fn with_upload_journal(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.journal_dir = Some(dir.into());
        self
    }

    /// The resolver that maps sandbox ids to host directories.
    pub fn resolver(&self) -> &Arc<dyn SandboxResolver> {
        &self.resolver
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Mounts `client`'s bucket under `request.sub_path` at
    /// `request.mount_path` inside the sandbox; returns once the mount is
    /// usable. Attaching the same disk at the same path again with the
    /// same settings is a no-op.
    pub async fn attach(&self, request: AttachRequest, client: S3Client) -> Result<(), AttachError> {
        let sandbox = self.resolver.resolve(&request.sandbox_id)?;
        if !sandbox.running {
            return Err(AttachError::NotRunning(request.sandbox_id.clone()));
        }
        let host_path = request.mount_path.host_path(&sandbox.root)?;
        {
            let mut table = self.table();
            let same_sandbox = table.iter().filter(|e| e.request.sandbox_id == request.sandbox_id);
            if let Some(existing) = same_sandbox
                .clone()
                .find(|e| e.request == request && e.status == MountStatus::Mounted)
            {
                tracing::debug!(mount_path = %existing.request.mount_path, "already attached");
                return Ok(());
            }
            request
                .mount_path
                .check_free(same_sandbox.map(|e| &e.request.mount_path))?;
            table.push(Entry {
                request: request.clone(),
                status: MountStatus::Pending,
                error: None,
                notice: None,
                client: client.clone(),
                handle: None,
                journal: None,
            });
        }
        let (journal, notice) = self.recover_uploads(&request, &client).await;
        let result = self.mount_now(&request, client, host_path).await;
        // Decide under the lock, act (possibly awaiting) after releasing it.
        let orphan = {
            let mut table = self.table();
            let idx = table
                .iter()
                .position(|e| e.request == request && e.status == MountStatus::Pending);
            match (result, idx) {
                (Ok(handle), Some(i)) => {
                    table[i].status = MountStatus::Mounted;
                    table[i].handle = Some(handle);
                    table[i].journal = journal;
                    table[i].notice = notice;
                    tracing::info!(sandbox = %request.sandbox_id, disk = %request.disk_id, mount_path = %request.mount_path, "attached");
                    return Ok(());
                }
                // The entry vanished (shutdown raced us): do not leak the mount.
                (Ok(handle), None) => handle,
                (Err(e), idx) => {
                    if let Some(i) = idx {
                        table.remove(i);
                    }
                    return Err(e);
                }
            }
        };
        let _ = tokio::task::spawn_blocking(move || orphan.unmount()).await;
        Err(AttachError::Task("the attachment was cancelled while mounting".into()))
    }

    /// Opens the attachment's upload journal, aborts the uploads a previous
    /// run left in it, and has `client` journal its uploads from now on.
    /// Returns the journal and what to tell the user about the cleanup.
    async fn recover_uploads(
        &self,
        request: &AttachRequest,
        client: &S3Client,
    ) -> (Option<Arc<UploadJournal>>, Option<String>) {
        let Some(dir) = &self.journal_dir else {
            return (None, None);
        };
        let parts = [
            request.sandbox_id.as_str(),
            request.disk_id.as_str(),
            request.mount_path.as_str(),
        ];
        let (journal, leftover) = match UploadJournal::open(dir, &parts) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "no upload journal for this attachment");
                return (None, None);
            }
        };
        let journal = Arc::new(journal);
        client.set_upload_observer(journal.clone());
        if leftover.is_empty() {
            return (Some(journal), None);
        }
        let (mut aborted, mut kept) = (Vec::new(), Vec::new());
        for (key, id) in leftover {
            // A successful (or already gone) abort ends the journal entry.
            match client.abort_multipart_upload(&key, &id).await {
                Ok(()) => aborted.push(key),
                Err(e) if e.is_not_found() => aborted.push(key),
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "cannot abort an upload left by a crash; retried at the next attach");
                    kept.push(key);
                }
            }
        }
        let mut notice = String::new();
        if !aborted.is_empty() {
            notice = format!(
                "byos3 stopped unexpectedly while writing; {} unfinished upload(s) were aborted and never became objects: {}",
                aborted.len(),
                aborted.join(", ")
            );
        }
        if !kept.is_empty() {
            if !notice.is_empty() {
                notice.push_str("; ");
            }
            notice.push_str(&format!(
                "{} unfinished upload(s) could not be aborted yet (retried at the next attach): {}",
                kept.len(),
                kept.join(", ")
            ));
        }
        tracing::warn!(sandbox = %request.sandbox_id, mount_path = %request.mount_path, "{notice}");
        (Some(journal), Some(notice))
    }

    async fn mount_now(
        &self,
        request: &AttachRequest,
        client: S3Client,
        host_path: std::path::PathBuf,
    ) -> Result<MountHandle, AttachError> {
        // Only a missing mount point is created: one that errs otherwise may
        // be a crashed run's stale mount (ENOTCONN), which mounting cleans.
        if std::fs::symlink_metadata(&host_path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            std::fs::create_dir_all(&host_path).map_err(|source| AttachError::MountPoint {
                path: request.mount_path.to_string(),
                source,
            })?;
        }
        let mut opts = self.options.clone();
        opts.read_only = request.read_only;
        let prefix = request.sub_path.as_prefix().to_string();
        tokio::task::spawn_blocking(move || fs::mount(client, &prefix, &host_path, opts))
            .await
            .map_err(|e| AttachError::Task(e.to_string()))?
            .map_err(AttachError::from)
    }

    /// Flushes pending uploads and unmounts. The bucket is not touched.
    pub async fn detach(&self, sandbox_id: &str, disk_id: &str, mount_path: &MountPath) -> Result<(), DetachError> {
        let handle = {
            let mut table = self.table();
            let entry = table
                .iter_mut()
                .find(|e| {
                    e.request.sandbox_id == sandbox_id
                        && e.request.disk_id == disk_id
                        && &e.request.mount_path == mount_path
                })
                .ok_or_else(|| DetachError::NotAttached {
                    sandbox_id: sandbox_id.into(),
                    disk_id: disk_id.into(),
                    mount_path: mount_path.to_string(),
                })?;
            match entry.status {
                MountStatus::Unmounting | MountStatus::Pending => {
                    return Err(DetachError::InProgress(mount_path.to_string()))
                }
                MountStatus::Mounted | MountStatus::Error => {}
            }
            entry.status = MountStatus::Unmounting;
            entry.handle.take()
        };
        let outcome = match handle {
            // The session is gone already: dropping the handle uploads what
            // it can and detaches whatever is left of the mount point.
            Some(h) if !h.is_alive() => {
                tokio::task::spawn_blocking(move || drop(h))
                    .await
                    .map_err(|e| DetachError::Task(e.to_string()))?;
                Ok(())
            }
            Some(h) => tokio::task::spawn_blocking(move || h.unmount())
                .await
                .map_err(|e| DetachError::Task(e.to_string()))?,
            None => Ok(()),
        };
        let mut table = self.table();
        let idx = table.iter().position(|e| {
            e.request.sandbox_id == sandbox_id && e.request.disk_id == disk_id && &e.request.mount_path == mount_path
        });
        match outcome {
            Ok(()) => {
                if let Some(i) = idx {
                    if let Some(j) = &table.remove(i).journal {
                        j.remove_if_empty();
                    }
                }
                tracing::info!(sandbox = sandbox_id, disk = disk_id, %mount_path, "detached");
                Ok(())
            }
            Err(failed) => {
                let fs::UnmountError { error, handle } = *failed;
                if let Some(i) = idx {
                    table[i].status = MountStatus::Mounted;
                    table[i].handle = Some(handle);
                }
                Err(DetachError::Fs(error))
            }
        }
    }

    /// Every attachment of `sandbox_id` (all sandboxes with `None`).
    pub fn list(&self, sandbox_id: Option<&str>) -> Vec<AttachmentState> {
        self.table()
            .iter()
            .filter(|e| sandbox_id.is_none_or(|s| e.request.sandbox_id == s))
            .map(|e| AttachmentState {
                request: e.request.clone(),
                status: e.status,
                error: e.error.clone(),
                notice: e.notice.clone(),
            })
            .collect()
    }

    /// Looks at every mount: a FUSE session that ended (unmounted from
    /// outside, connection aborted) or a bucket refusing the credentials
    /// turns the attachment to `error` with the reason; a mount whose
    /// requests succeed again turns back to `mounted`. Cheap: no I/O.
    pub fn check_health(&self) {
        for e in self.table().iter_mut() {
            if !matches!(e.status, MountStatus::Mounted | MountStatus::Error) {
                continue;
            }
            let Some(handle) = &e.handle else { continue };
            let problem = if !handle.is_alive() {
                Some("the mount is gone: its FUSE session ended (unmounted from outside or the connection was aborted); detach and attach again".to_string())
            } else {
                e.client.auth_failure()
            };
            if problem != e.error {
                match &problem {
                    Some(why) => {
                        tracing::warn!(sandbox = %e.request.sandbox_id, mount_path = %e.request.mount_path, error = %why, "mount unhealthy")
                    }
                    None => {
                        tracing::info!(sandbox = %e.request.sandbox_id, mount_path = %e.request.mount_path, "mount healthy again")
                    }
                }
            }
            e.status = if problem.is_some() {
                MountStatus::Error
            } else {
                MountStatus::Mounted
            };
            e.error = problem;
        }
    }

    /// Counters and gauges of every attachment, for metrics.
    pub fn metrics(&self) -> Vec<MountMetrics> {
        self.table()
            .iter()
            .map(|e| {
                let (bytes_read, bytes_written) = e.handle.as_ref().map_or((0, 0), MountHandle::io_bytes);
                MountMetrics {
                    request: e.request.clone(),
                    status: e.status,
                    s3: e.client.stats(),
                    bytes_read,
                    bytes_written,
                    prefetch_memory_in_use: e
                        .handle
                        .as_ref()
                        .map_or(0, |h| h.buffer_budget().saturating_sub(h.memory_available())),
                    staged_bytes: e.handle.as_ref().map_or(0, MountHandle::staged_bytes),
                    inodes: e.handle.as_ref().map_or(0, |h| h.inodes() as u64),
                    uploads_in_flight: e.journal.as_ref().map_or(0, |j| j.len() as u64),
                }
            })
            .collect()
    }

    /// Whether `disk_id` is attached anywhere.
    pub fn is_attached(&self, disk_id: &str) -> bool {
        self.table().iter().any(|e| e.request.disk_id == disk_id)
    }

    /// Uses `credentials` for every later request of every mount of `disk_id`.
    pub fn rotate_credentials(&self, disk_id: &str, credentials: &Credentials) {
        for e in self.table().iter().filter(|e| e.request.disk_id == disk_id) {
            e.client.set_credentials(credentials.clone());
        }
    }

    /// Detaches every disk of `sandbox_id`; returns the failures.
    pub async fn detach_sandbox(&self, sandbox_id: &str) -> Vec<(AttachRequest, DetachError)> {
        let requests: Vec<AttachRequest> = self.list(Some(sandbox_id)).into_iter().map(|s| s.request).collect();
        let mut failures = Vec::new();
        for r in requests {
            if let Err(e) = self.detach(&r.sandbox_id, &r.disk_id, &r.mount_path).await {
                failures.push((r, e));
            }
        }
        failures
    }

    /// Detaches everything (daemon shutdown); returns the failures.
    pub async fn shutdown(&self) -> Vec<(AttachRequest, DetachError)> {
        let mut sandboxes: Vec<String> = self.list(None).into_iter().map(|s| s.request.sandbox_id).collect();
        sandboxes.dedup();
        let mut failures = Vec::new();
        for s in sandboxes {
            failures.extend(self.detach_sandbox(&s).await);
        }
        failures
    }
}
