//! Sandboxes (roots the runtime provides) and the disks attached to them:
//! attach records and mounts, detach flushes and unmounts and forgets,
//! restart re-mounts what was recorded. The bucket is never touched.

use std::sync::Arc;

use http::StatusCode;

use super::disks;
use super::error::GatewayError;
use super::state::State;
use crate::fs::FsError;
use crate::mount::{AttachError, AttachRequest, DetachError, MountPath, MountStatus, PathError, SandboxError, SubPath};
use crate::store::{AttachmentRecord, DiskRecord, Page, SandboxRecord, Store, StoreError};

/// A store call on a blocking thread; a store failure is a 500.
async fn blocking<T: Send + 'static>(
    state: &Arc<State>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, GatewayError> {
    disks::blocking(state, f).await.map_err(disks::store_failed)
}

fn sandbox_not_found(id: &str) -> GatewayError {
    let shown: String = id.chars().take(80).collect();
    GatewayError::not_found(format!("sandbox {shown:?} not found"))
}

/// A page of the tenant's sandboxes and their total count.
pub(crate) async fn list_sandboxes(
    state: &Arc<State>,
    tenant: &str,
    p: Page,
) -> Result<(Vec<SandboxRecord>, u64), GatewayError> {
    let t = tenant.to_string();
    blocking(state, move |s| s.list_sandboxes(&t, p)).await
}

pub(crate) async fn find_sandbox(state: &Arc<State>, tenant: &str, id: &str) -> Result<SandboxRecord, GatewayError> {
    if id.is_empty() || id.len() > 64 {
        return Err(sandbox_not_found(id));
    }
    let (t, i) = (tenant.to_string(), id.to_string());
    blocking(state, move |s| s.find_sandbox(&t, &i))
        .await?
        .ok_or_else(|| sandbox_not_found(id))
}

/// One `{disk_id, mount_path, sub_path?, read_only?}` object.
#[derive(Debug, Clone)]
pub struct AttachSpec {
    /// The disk's id or name.
    pub disk: String,
    /// Where inside the sandbox.
    pub mount_path: MountPath,
    /// The key prefix of the bucket to mount (empty: the whole bucket).
    pub sub_path: SubPath,
    /// Mount read-only (writes fail with EROFS).
    pub read_only: bool,
}

/// One attachment requested at sandbox creation and how it went.
pub(crate) struct AttachOutcome {
    pub spec: AttachSpec,
    pub result: Result<(), GatewayError>,
}

/// An attachment as `GET /v1/sandboxes/{id}/disks` reports it.
pub(crate) struct AttachmentView {
    pub record: AttachmentRecord,
    pub disk: DiskRecord,
    pub status: MountStatus,
    pub error: Option<String>,
    pub notice: Option<String>,
}

fn attach_failed(e: AttachError, mount_path: &MountPath) -> GatewayError {
    match e {
        AttachError::Path(PathError::Overlap { other, .. }) => GatewayError::conflict(
            "mount_path_in_use",
            format!("mount_path {mount_path} overlaps {other}, already mounted in this sandbox; detach it or pick another path"),
        ),
        AttachError::Path(p) => GatewayError::for_field("invalid_mount_path", "mount_path", p.to_string()),
        AttachError::NotRunning(_) | AttachError::Sandbox(SandboxError::NotFound(_)) => {
            GatewayError::conflict("sandbox_not_running", "the sandbox is not running; start it before attaching disks")
        }
        e => {
            tracing::error!(error = %e, %mount_path, "mount failed");
            GatewayError::server(StatusCode::INTERNAL_SERVER_ERROR, format!("mount_failed: {e}"))
        }
    }
}

/// Mounts `disk` into the sandbox as `spec` says, with the disk's
/// credentials; returns once the mount is usable.
async fn mount(
    state: &Arc<State>,
    tenant: &str,
    sandbox_id: &str,
    disk: &DiskRecord,
    spec: &AttachSpec,
) -> Result<(), GatewayError> {
    let client = disks::client_for(state, tenant, disk).await?;
    let request = AttachRequest {
        sandbox_id: sandbox_id.to_string(),
        disk_id: disk.id.clone(),
        mount_path: spec.mount_path.clone(),
        sub_path: spec.sub_path.clone(),
        read_only: spec.read_only,
    };
    state
        .mounts
        .attach(request, client)
        .await
        .map_err(|e| attach_failed(e, &spec.mount_path))
}

/// Records, mounts and reports one attachment; on failure nothing is left
/// recorded or mounted.
pub(crate) async fn attach_one(
    state: &Arc<State>,
    tenant: &str,
    sandbox: &SandboxRecord,
    spec: &AttachSpec,
) -> Result<(), GatewayError> {
    if sandbox.status != "running" {
        return Err(GatewayError::conflict(
            "sandbox_not_running",
            format!("sandbox {} is {}, not running", sandbox.id, sandbox.status),
        ));
    }
    let disk = disks::find(state, tenant, &spec.disk).await?;
    let record = AttachmentRecord {
        tenant: tenant.to_string(),
        sandbox_id: sandbox.id.clone(),
        disk_id: disk.id.clone(),
        mount_path: spec.mount_path.to_string(),
        sub_path: spec.sub_path.as_prefix().to_string(),
        read_only: spec.read_only,
        mount_status: "pending".into(),
        mount_error: None,
        created_at_ms: disks::now_ms(),
    };
    let rec = record.clone();
    match blocking(state, move |s| match s.create_attachment(&rec) {
        Err(StoreError::Conflict(_)) => Ok(false),
        other => other.map(|()| true),
    })
    .await?
    {
        true => {}
        false => {
            // Same disk, path and settings again: idempotent; anything else is a conflict.
            let (t, sb) = (tenant.to_string(), sandbox.id.clone());
            let (rows, _) = blocking(state, move |s| {
                s.list_attachments(&t, &sb, Page { limit: 500, offset: 0 })
            })
            .await?;
            let same = rows.iter().any(|r| {
                r.mount_path == record.mount_path
                    && r.disk_id == record.disk_id
                    && r.sub_path == record.sub_path
                    && r.read_only == record.read_only
            });
            return if same {
                Ok(())
            } else {
                Err(GatewayError::conflict(
                    "mount_path_in_use",
                    format!("mount_path {} is in use in this sandbox", spec.mount_path),
                ))
            };
        }
    }
    let outcome = mount(state, tenant, &sandbox.id, &disk, spec).await;
    let (t, sb, d, mp) = (
        tenant.to_string(),
        sandbox.id.clone(),
        disk.id.clone(),
        record.mount_path.clone(),
    );
    match outcome {
        Ok(()) => {
            blocking(state, move |s| s.set_attachment_status(&t, &sb, &mp, "mounted", None)).await?;
            Ok(())
        }
        Err(e) => {
            blocking(state, move |s| s.delete_attachment(&t, &sb, &d, &mp)).await?;
            Err(e)
        }
    }
}

/// `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`: safe as a directory name and in a URL path.
fn valid_sandbox_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// Creates a sandbox (its root from the resolver) and attaches `specs`,
/// reporting each attachment's outcome; a failed attachment does not
/// fail the creation.
pub(crate) async fn create_sandbox(
    state: &Arc<State>,
    tenant: &str,
    id: Option<String>,
    name: Option<String>,
    specs: Vec<AttachSpec>,
) -> Result<(SandboxRecord, Vec<AttachOutcome>), GatewayError> {
    if let Some(id) = &id {
        if !valid_sandbox_id(id) {
            return Err(GatewayError::for_field(
                "invalid_field",
                "id",
                "id must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ (or be omitted for a generated one)",
            ));
        }
    }
    let id = id.unwrap_or_else(|| format!("sb_{}", ulid::Ulid::new()));
    let name = name.unwrap_or_else(|| id.to_ascii_lowercase().replace('_', "-"));
    if !disks::valid_name(&name) {
        return Err(GatewayError::for_field(
            "invalid_field",
            "name",
            "name must match ^[a-z0-9][a-z0-9-]{0,62}$",
        ));
    }
    // Ids are global (they name host directories), so another tenant's
    // sandbox with this id is a conflict too, reported without naming it.
    // Checking and creating the root are one step, or two creates with one
    // id could share (and later destroy) one root.
    static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let creating = CREATING.lock().await;
    let i = id.clone();
    if blocking(state, move |s| s.sandbox_id_taken(&i)).await? {
        return Err(GatewayError::conflict(
            "sandbox_exists",
            format!("a sandbox with id {id:?} exists already; choose another id or omit it"),
        ));
    }
    let root = state
        .mounts
        .resolver()
        .create(&id)
        .map_err(|e| GatewayError::internal("creating the sandbox root", e))?
        .root;
    let record = SandboxRecord {
        id: id.clone(),
        tenant: tenant.to_string(),
        name,
        status: "running".into(),
        root: root.display().to_string(),
        created_at_ms: disks::now_ms(),
    };
    let rec = record.clone();
    let created = blocking(state, move |s| match s.create_sandbox(&rec) {
        Err(StoreError::Conflict(_)) => Ok(false),
        other => other.map(|()| true),
    })
    .await?;
    drop(creating);
    if !created {
        let _ = state.mounts.resolver().destroy(&id);
        return Err(GatewayError::conflict(
            "name_taken",
            format!(
                "a sandbox named {:?} or with id {:?} exists already",
                record.name, record.id
            ),
        ));
    }
    let mut outcomes = Vec::with_capacity(specs.len());
    for spec in specs {
        let result = attach_one(state, tenant, &record, &spec).await;
        outcomes.push(AttachOutcome { spec, result });
    }
    Ok((record, outcomes))
}

/// Detaches everything (flushing writes), then forgets the sandbox.
pub(crate) async fn delete_sandbox(state: &Arc<State>, tenant: &str, sb: &SandboxRecord) -> Result<(), GatewayError> {
    let failures = state.mounts.detach_sandbox(&sb.id).await;
    if let Some((req, e)) = failures.first() {
        return Err(detach_failed(e, &req.mount_path));
    }
    let (t, i) = (tenant.to_string(), sb.id.clone());
    blocking(state, move |s| s.delete_sandbox(&t, &i)).await?;
    if let Err(e) = state.mounts.resolver().destroy(&sb.id) {
        tracing::warn!(sandbox = %sb.id, error = %e, "could not remove the sandbox root");
    }
    Ok(())
}

/// The sandbox's recorded attachments with their live state.
pub(crate) async fn attachment_views(
    state: &Arc<State>,
    tenant: &str,
    sb: &SandboxRecord,
    p: Page,
) -> Result<(Vec<AttachmentView>, u64), GatewayError> {
    let (t, i) = (tenant.to_string(), sb.id.clone());
    let (rows, total) = blocking(state, move |s| s.list_attachments(&t, &i, p)).await?;
    state.mounts.check_health();
    let live = state.mounts.list(Some(&sb.id));
    let mut views = Vec::with_capacity(rows.len());
    for r in rows {
        let disk = disks::find(state, tenant, &r.disk_id).await?;
        let state_now = live
            .iter()
            .find(|l| l.request.mount_path.as_str() == r.mount_path && l.request.disk_id == r.disk_id);
        let (status, error, notice) = match state_now {
            Some(l) => (l.status, l.error.clone(), l.notice.clone()),
            None if r.mount_status == "pending" => (MountStatus::Error, Some("not mounted".to_string()), None),
            None => (
                MountStatus::Error,
                r.mount_error.clone().or_else(|| Some("not mounted".into())),
                None,
            ),
        };
        views.push(AttachmentView {
            record: r,
            disk,
            status,
            error,
            notice,
        });
    }
    Ok((views, total))
}

fn detach_failed(e: &DetachError, mount_path: &MountPath) -> GatewayError {
    match e {
        DetachError::Fs(FsError::Busy { .. }) => GatewayError::conflict(
            "mount_busy",
            format!("{mount_path} is busy: a process has a file or directory open there; close it and detach again"),
        ),
        DetachError::InProgress(_) => GatewayError::conflict("detach_in_progress", format!("{mount_path} is being attached or detached right now")),
        DetachError::Fs(FsError::Flush { .. }) => GatewayError::server(
            StatusCode::BAD_GATEWAY,
            format!("flush_failed: pending writes under {mount_path} could not be uploaded, so the mount stays in place: {e}"),
        ),
        e => GatewayError::server(StatusCode::INTERNAL_SERVER_ERROR, format!("unmount_failed: {e}")),
    }
}

/// Flushes and unmounts one attachment and forgets it; the bucket is not touched.
pub(crate) async fn detach_one(
    state: &Arc<State>,
    tenant: &str,
    sb: &SandboxRecord,
    disk: &str,
    mount_path: &MountPath,
) -> Result<(), GatewayError> {
    let disk = disks::find(state, tenant, disk).await?;
    match state.mounts.detach(&sb.id, &disk.id, mount_path).await {
        Ok(()) | Err(DetachError::NotAttached { .. }) => {}
        Err(e) => return Err(detach_failed(&e, mount_path)),
    }
    let (t, s_id, d, mp) = (
        tenant.to_string(),
        sb.id.clone(),
        disk.id.clone(),
        mount_path.to_string(),
    );
    let deleted = blocking(state, move |s| match s.delete_attachment(&t, &s_id, &d, &mp) {
        Err(StoreError::NotFound) => Ok(false),
        other => other.map(|()| true),
    })
    .await?;
    if !deleted {
        return Err(GatewayError::not_found(format!(
            "disk {:?} is not attached to sandbox {} at {mount_path}",
            disk.name, sb.id
        )));
    }
    Ok(())
}

/// Re-mounts every recorded attachment after a start, recording each
/// outcome (a crashed run's stale FUSE mounts are cleaned by the mount).
pub(crate) async fn reattach_all(state: &Arc<State>) {
    let rows = match blocking(state, |s| s.all_attachments()).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e.message, "cannot read the attachments to re-mount");
            return;
        }
    };
    for r in rows {
        let outcome = async {
            let sb = find_sandbox(state, &r.tenant, &r.sandbox_id).await?;
            let disk = disks::find(state, &r.tenant, &r.disk_id).await?;
            let mount_path = MountPath::parse(&r.mount_path)
                .map_err(|e| GatewayError::bad_request("invalid_mount_path", e.to_string()))?;
            let sub_path = SubPath::parse(&r.sub_path)
                .map_err(|e| GatewayError::bad_request("invalid_sub_path", e.to_string()))?;
            let spec = AttachSpec {
                disk: disk.id.clone(),
                mount_path,
                sub_path,
                read_only: r.read_only,
            };
            mount(state, &r.tenant, &sb.id, &disk, &spec).await
        }
        .await;
        let (status, error) = match &outcome {
            Ok(()) => ("mounted", None),
            Err(e) => ("error", Some(e.message.clone())),
        };
        tracing::info!(sandbox = %r.sandbox_id, disk = %r.disk_id, mount_path = %r.mount_path, status, error = ?error, "re-attach after start");
        let (t, sb, mp) = (r.tenant.clone(), r.sandbox_id.clone(), r.mount_path.clone());
        let _ = blocking(state, move |s| {
            s.set_attachment_status(&t, &sb, &mp, status, error.as_deref())
        })
        .await;
    }
}
