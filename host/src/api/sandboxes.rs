//! `/v1/sandboxes` and their disks over HTTP: JSON in, SandboxView and
//! SandboxDiskView out; the work is [`crate::gateway::sandboxes`]'s.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::disks::disk_view;
use super::envelope::{page, rfc3339, success, ApiError, Body};
use super::json::{parse_object, Obj};
use super::server::read_body;
use super::AppState;
use crate::gateway::sandboxes::{self as core, AttachSpec};
use crate::mount::{MountPath, SubPath};
use crate::store::{Page, SandboxRecord};

const CREATE_FIELDS: &[&str] = &["id", "name", "disks"];

const ATTACH_FIELDS: &[&str] = &["disk_id", "mount_path", "sub_path", "read_only"];

/// The CreateOS SandboxView's required keys, plus `name` and `root`.
fn sandbox_view(r: &SandboxRecord) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "status": r.status,
        "created_at": rfc3339(r.created_at_ms),
        "vcpu": 0,
        "mem_mib": 0,
        "disk_mib": 0,
        "ingress_enabled": false,
        "root": r.root,
    })
}

fn parse_attach(o: &mut Obj) -> Result<AttachSpec, ApiError> {
    o.deny_unknown(ATTACH_FIELDS)?;
    let disk = o.req_str("disk_id")?;
    let raw_mount = o.req_str("mount_path")?;
    let mount_path = MountPath::parse(&raw_mount)
        .map_err(|e| ApiError::field("invalid_mount_path", &o.field_path("mount_path"), e.to_string()))?;
    let raw_sub = o.opt_str("sub_path")?.unwrap_or_default();
    let sub_path = SubPath::parse(&raw_sub)
        .map_err(|e| ApiError::field("invalid_sub_path", &o.field_path("sub_path"), e.to_string()))?;
    let read_only = o.opt_bool("read_only")?.unwrap_or(false);
    Ok(AttachSpec {
        disk,
        mount_path,
        sub_path,
        read_only,
    })
}

pub(crate) async fn create(
    state: &Arc<AppState>,
    tenant: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let body = read_body(req, state.body_limit).await?;
    let mut o = if body.is_empty() {
        parse_object(b"{}")?
    } else {
        parse_object(&body)?
    };
    o.deny_unknown(CREATE_FIELDS)?;
    let id = o.opt_str("id")?;
    let name = o.opt_str("name")?;
    let mut specs = Vec::new();
    for mut d in o.opt_obj_list("disks")?.unwrap_or_default() {
        specs.push(parse_attach(&mut d)?);
    }
    let (record, outcomes) = core::create_sandbox(&state.gw, tenant, id, name, specs).await?;
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let (status, error) = match &o.result {
                Ok(()) => ("mounted", None),
                Err(e) => ("error", Some(e.message.clone())),
            };
            json!({
                "disk_id": o.spec.disk,
                "mount_path": o.spec.mount_path.as_str(),
                "sub_path": o.spec.sub_path.as_prefix(),
                "mount_status": status,
                "mount_error": error,
            })
        })
        .collect();
    let mut view = sandbox_view(&record);
    view["disks"] = Value::Array(results);
    Ok(success(StatusCode::CREATED, view))
}

pub(crate) async fn list(state: &Arc<AppState>, tenant: &str, p: Page) -> Result<Response<Body>, ApiError> {
    let (rows, total) = core::list_sandboxes(&state.gw, tenant, p).await?;
    Ok(page(rows.iter().map(sandbox_view).collect(), total, p.limit, p.offset))
}

pub(crate) async fn show(state: &Arc<AppState>, tenant: &str, id: &str) -> Result<Response<Body>, ApiError> {
    let sb = core::find_sandbox(&state.gw, tenant, id).await?;
    Ok(success(StatusCode::OK, sandbox_view(&sb)))
}

pub(crate) async fn delete(state: &Arc<AppState>, tenant: &str, id: &str) -> Result<Response<Body>, ApiError> {
    let sb = core::find_sandbox(&state.gw, tenant, id).await?;
    core::delete_sandbox(&state.gw, tenant, &sb).await?;
    Ok(success(StatusCode::OK, json!({"deleted": true})))
}

pub(crate) async fn attach(
    state: &Arc<AppState>,
    tenant: &str,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let sb = core::find_sandbox(&state.gw, tenant, id).await?;
    let body = read_body(req, state.body_limit).await?;
    let mut o = parse_object(&body)?;
    let spec = parse_attach(&mut o)?;
    core::attach_one(&state.gw, tenant, &sb, &spec).await?;
    Ok(success(StatusCode::CREATED, json!({"ok": true})))
}

pub(crate) async fn list_disks(
    state: &Arc<AppState>,
    tenant: &str,
    id: &str,
    p: Page,
) -> Result<Response<Body>, ApiError> {
    let sb = core::find_sandbox(&state.gw, tenant, id).await?;
    let (views, total) = core::attachment_views(&state.gw, tenant, &sb, p).await?;
    let items = views
        .into_iter()
        .map(|v| {
            let disk = serde_json::to_value(disk_view(&v.disk)).unwrap_or(Value::Null);
            json!({
                "disk_id": v.disk.id,
                "name": v.disk.name,
                "kind": v.disk.kind,
                "config": disk["config"],
                "mount_path": v.record.mount_path,
                "sub_path": v.record.sub_path,
                "read_only": v.record.read_only,
                "mount_status": v.status,
                "mount_error": v.error,
                "notice": v.notice,
            })
        })
        .collect();
    Ok(page(items, total, p.limit, p.offset))
}

pub(crate) async fn detach(
    state: &Arc<AppState>,
    tenant: &str,
    id: &str,
    disk: &str,
    mount_path: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let raw = mount_path.ok_or_else(|| {
        ApiError::field(
            "missing_query_parameter",
            "mount_path",
            "mount_path is required: ?mount_path=/mnt/data (the attachment key is sandbox, disk, mount_path)",
        )
    })?;
    let mount_path =
        MountPath::parse(&raw).map_err(|e| ApiError::field("invalid_mount_path", "mount_path", e.to_string()))?;
    let sb = core::find_sandbox(&state.gw, tenant, id).await?;
    core::detach_one(&state.gw, tenant, &sb, disk, &mount_path).await?;
    Ok(success(StatusCode::OK, json!({"detached": true})))
}
