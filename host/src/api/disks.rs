//! `/v1/disks` over HTTP: JSON bodies in, DiskViews out; the work is
//! [`crate::gateway::disks`]'s.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::envelope::{page, rfc3339, success, ApiError, Body};
use super::json::{parse_object, Obj};
use super::server::read_body;
use super::AppState;
use crate::gateway::disks::{self as core, CreateRequest};
use crate::store::{DiskRecord, DiskSpec, Page};
use crate::vault::SecretCredentials;

const CREATE_FIELDS: &[&str] = &["name", "kind", "config", "credentials"];

const CONFIG_FIELDS: &[&str] = &["bucket", "endpoint", "region", "use_path_style", "provider", "options"];

const CREDENTIAL_FIELDS: &[&str] = &["access_key", "secret_key"];

const PATCH_FIELDS: &[&str] = &["credentials"];

/// The DiskView of the contract, plus `provider` and the resolved `region`.
#[derive(serde::Serialize)]
pub(crate) struct DiskView<'a> {
    id: &'a str,
    name: &'a str,
    kind: &'a str,
    config: DiskViewConfig<'a>,
    created_at: String,
    provider: &'a str,
    region: &'a str,
}

#[derive(serde::Serialize)]
struct DiskViewConfig<'a> {
    bucket: &'a str,
    endpoint: &'a str,
    region: &'a str,
    use_path_style: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<std::collections::BTreeMap<&'a str, &'a str>>,
}

pub(crate) fn disk_view(d: &DiskRecord) -> DiskView<'_> {
    DiskView {
        id: &d.id,
        name: &d.name,
        kind: &d.kind,
        config: DiskViewConfig {
            bucket: &d.spec.bucket,
            endpoint: &d.spec.endpoint,
            region: &d.resolved_region,
            use_path_style: d.resolved_path_style,
            provider: d.spec.provider.as_deref(),
            options: (!d.spec.options.is_empty())
                .then(|| d.spec.options.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
        },
        created_at: rfc3339(d.created_at_ms),
        provider: &d.provider,
        region: &d.resolved_region,
    }
}

fn secret_field(obj: &mut Obj, key: &str) -> Result<zeroize::Zeroizing<String>, ApiError> {
    let path = obj.field_path(key);
    let v = obj.req_secret(key)?;
    core::check_secret(&path, &v)?;
    Ok(v)
}

fn parse_credentials(obj: &mut Obj) -> Result<SecretCredentials, ApiError> {
    let mut c = obj.req_obj("credentials")?;
    c.deny_unknown(CREDENTIAL_FIELDS)?;
    let access_key = secret_field(&mut c, "access_key")?;
    let secret_key = secret_field(&mut c, "secret_key")?;
    Ok(SecretCredentials::new(access_key, secret_key))
}

fn parse_create(body: &[u8]) -> Result<CreateRequest, ApiError> {
    // Checked in document order, so the first problem reported is the
    // first one in the body.
    let mut o = parse_object(body)?;
    o.deny_unknown(CREATE_FIELDS)?;
    let name = o.req_str("name")?;
    let kind = o.opt_str("kind")?.unwrap_or_else(|| "s3".into());
    core::check_identity(&name, &kind)?;
    let mut c = o.req_obj("config")?;
    c.deny_unknown(CONFIG_FIELDS)?;
    let spec = DiskSpec {
        bucket: c.req_str("bucket")?,
        endpoint: c.req_str("endpoint")?,
        region: c.opt_str("region")?,
        use_path_style: c.opt_bool("use_path_style")?,
        provider: c.opt_str("provider")?,
        options: c.opt_string_map("options")?.unwrap_or_default(),
    };
    let (spec, endpoint) = core::check_config(spec)?;
    let credentials = parse_credentials(&mut o)?;
    Ok(CreateRequest {
        name,
        kind,
        spec,
        endpoint,
        credentials,
    })
}

// ---- routes ----

pub(crate) async fn create(
    state: &Arc<AppState>,
    tenant: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    core::ready(&state.gw)?;
    let body = read_body(req, state.body_limit).await?;
    let req = parse_create(&body)?;
    drop(body);
    let (created, disk) = core::register(&state.gw, tenant, req).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(success(status, disk_view(&disk)))
}

pub(crate) async fn list(state: &Arc<AppState>, tenant: &str, p: Page) -> Result<Response<Body>, ApiError> {
    let (rows, total) = core::list_records(&state.gw, tenant, p).await?;
    Ok(page(rows.iter().map(disk_view).collect(), total, p.limit, p.offset))
}

pub(crate) async fn show(state: &Arc<AppState>, tenant: &str, id: &str) -> Result<Response<Body>, ApiError> {
    let disk = core::find(&state.gw, tenant, id).await?;
    Ok(success(StatusCode::OK, disk_view(&disk)))
}

pub(crate) async fn rotate(
    state: &Arc<AppState>,
    tenant: &str,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    core::ready(&state.gw)?;
    let disk = core::find(&state.gw, tenant, id).await?;
    let body = read_body(req, state.body_limit).await?;
    let mut o = parse_object(&body)?;
    o.deny_unknown(PATCH_FIELDS)?;
    let creds = parse_credentials(&mut o)?;
    drop(body);
    let disk = core::rotate_credentials(&state.gw, tenant, disk, &creds).await?;
    Ok(success(StatusCode::OK, disk_view(&disk)))
}

pub(crate) async fn delete(state: &Arc<AppState>, tenant: &str, id: &str) -> Result<Response<Body>, ApiError> {
    let disk = core::find(&state.gw, tenant, id).await?;
    core::remove(&state.gw, tenant, &disk).await?;
    Ok(success(StatusCode::OK, json!({"deleted": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match parse_create(body.as_bytes()) {
            Ok(_) => "ok".into(),
            Err(e) => format!("{} {}", e.code, e.message),
        }
    }

    #[test]
    fn create_body_errors_are_precise() {
        let good = r#"{"name":"d","kind":"s3","config":{"bucket":"bkt","endpoint":"http://127.0.0.1:9000"},"credentials":{"access_key":"a","secret_key":"s"}}"#;
        assert_eq!(err(good), "ok");
        assert_eq!(
            err(r#"{"name":"d","config":{"endpoint":"http://x"},"credentials":{}}"#),
            "missing_field config.bucket is required"
        );
        assert_eq!(
            err(r#"{"name":"d","config":{"bucket":"bkt","endpoint":"http://x"},"credential":{}}"#),
            "unknown_field unknown field \"credential\" (did you mean \"credentials\"?)"
        );
        assert_eq!(
            err(
                r#"{"name":"d","config":{"bucket":"bkt","endpoint":"http://x"},"credentials":{"access_key":"a","secret_key":""}}"#
            ),
            "invalid_field credentials.secret_key must not be empty"
        );
        assert_eq!(err(r#"{"name":5}"#), "invalid_type name must be a string, not a number");
        assert_eq!(err(r#"{"name":"d","kind":"gcs"}"#), "invalid_field kind must be \"s3\"");
        assert!(err(r#"{"name":"d","config":{"bucket":"bkt","endpoint":"ftp://x"}}"#)
            .starts_with("invalid_field config.endpoint must be an absolute"));
        assert!(
            err(r#"{"name":"d","config":{"bucket":"bkt","endpoint":"s3.amazonaws.com"}}"#)
                .starts_with("invalid_field config.endpoint")
        );
    }
}
