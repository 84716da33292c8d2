//! Route table and dispatch: authentication first (everything but
//! `/healthz`), then path and method.

use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::envelope::{success, ApiError, Body};
use super::json::unknown_field;
use super::server::RequestLog;
use super::{disks, sandboxes, AppState};
use crate::store::Page;

/// Every route the server answers: (method, path as in the OpenAPI
/// description). A test checks this table, the dispatcher and
/// `openapi.json` agree.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/disks"),
    ("POST", "/v1/disks"),
    ("GET", "/v1/disks/{id}"),
    ("PATCH", "/v1/disks/{id}"),
    ("DELETE", "/v1/disks/{id}"),
    ("GET", "/v1/sandboxes"),
    ("POST", "/v1/sandboxes"),
    ("GET", "/v1/sandboxes/{id}"),
    ("DELETE", "/v1/sandboxes/{id}"),
    ("GET", "/v1/sandboxes/{id}/disks"),
    ("POST", "/v1/sandboxes/{id}/disks"),
    ("DELETE", "/v1/sandboxes/{id}/disks/{disk_id}"),
];

/// The [`ROUTES`] template a request path falls under (`other` for none),
/// so metrics labels stay few whatever paths clients send.
pub(crate) fn template(path: &str) -> &'static str {
    // Runs on every request: segments are compared in place, not collected.
    let fits = |template: &str| {
        let (mut t, mut p) = (template.split('/'), path.split('/'));
        loop {
            match (t.next(), p.next()) {
                (None, None) => return true,
                (Some(t), Some(s)) if t == s || (t.starts_with('{') && !s.is_empty()) => {}
                _ => return false,
            }
        }
    };
    ROUTES.iter().map(|(_, t)| *t).find(|t| fits(t)).unwrap_or("other")
}

/// A method as a metrics label (unknown methods collapse into `other`).
pub(crate) fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

fn method_not_allowed(allow: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route answers {allow}"),
    )
    .with_header(header::ALLOW, allow)
}

/// The tenant of the request's `X-Api-Key`.
fn authenticate(state: &AppState, req: &Request<Incoming>) -> Result<String, ApiError> {
    let mut values = req.headers().get_all("x-api-key").iter();
    let key = match (values.next(), values.next()) {
        (Some(key), None) => key,
        (None, _) => {
            return Err(ApiError::unauthorized(
                "missing X-Api-Key header; send your API key in it",
            ))
        }
        (Some(_), Some(_)) => return Err(ApiError::unauthorized("send one X-Api-Key header, not several")),
    };
    state
        .keys
        .authenticate(key.as_bytes())
        .map(str::to_string)
        .ok_or_else(|| ApiError::unauthorized("unknown API key"))
}

pub(crate) async fn route(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    log: &mut RequestLog,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == "/healthz" {
        if method != Method::GET {
            return Err(method_not_allowed("GET"));
        }
        return Ok(success(StatusCode::OK, json!({"ok": true})));
    }
    if path == "/metrics" {
        if method != Method::GET {
            return Err(method_not_allowed("GET"));
        }
        if !state.metrics_open {
            log.tenant = Some(authenticate(state, &req)?);
        }
        let mut resp = Response::new(Body::from(super::metrics::render(&state.api_metrics, &state.gw.mounts)));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return Ok(resp);
    }
    let tenant = authenticate(state, &req)?;
    log.tenant = Some(tenant.clone());

    let segments: Vec<String> = match path.strip_prefix("/v1/") {
        Some(rest) => rest
            .split('/')
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect(),
        None => Vec::new(),
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["openapi.json"] => {
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            no_query(&req)?;
            let mut resp = Response::new(Body::from(super::OPENAPI_JSON));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
        ["disks"] => match method {
            Method::GET => {
                let page = pagination(&req)?;
                disks::list(state, &tenant, page).await
            }
            Method::POST => {
                no_query(&req)?;
                disks::create(state, &tenant, req).await
            }
            _ => Err(method_not_allowed("GET, POST")),
        },
        ["disks", id] => {
            let id = id.to_string();
            match method {
                Method::GET => {
                    no_query(&req)?;
                    disks::show(state, &tenant, &id).await
                }
                Method::PATCH => {
                    no_query(&req)?;
                    disks::rotate(state, &tenant, &id, req).await
                }
                Method::DELETE => {
                    no_query(&req)?;
                    disks::delete(state, &tenant, &id).await
                }
                _ => Err(method_not_allowed("GET, PATCH, DELETE")),
            }
        }
        ["sandboxes"] => match method {
            Method::GET => {
                let page = pagination(&req)?;
                sandboxes::list(state, &tenant, page).await
            }
            Method::POST => {
                no_query(&req)?;
                sandboxes::create(state, &tenant, req).await
            }
            _ => Err(method_not_allowed("GET, POST")),
        },
        ["sandboxes", id] => {
            let id = id.to_string();
            no_query(&req)?;
            match method {
                Method::GET => sandboxes::show(state, &tenant, &id).await,
                Method::DELETE => sandboxes::delete(state, &tenant, &id).await,
                _ => Err(method_not_allowed("GET, DELETE")),
            }
        }
        ["sandboxes", id, "disks"] => {
            let id = id.to_string();
            match method {
                Method::GET => {
                    let page = pagination(&req)?;
                    sandboxes::list_disks(state, &tenant, &id, page).await
                }
                Method::POST => {
                    no_query(&req)?;
                    sandboxes::attach(state, &tenant, &id, req).await
                }
                _ => Err(method_not_allowed("GET, POST")),
            }
        }
        ["sandboxes", id, "disks", disk] => {
            let (id, disk) = (id.to_string(), disk.to_string());
            if method != Method::DELETE {
                return Err(method_not_allowed("DELETE"));
            }
            let mut mount_path = None;
            for (k, v) in query_pairs(&req) {
                match (k.as_str(), &mount_path) {
                    ("mount_path", None) => mount_path = Some(v),
                    ("mount_path", Some(_)) => {
                        return Err(ApiError::field(
                            "invalid_query",
                            "mount_path",
                            "query parameter \"mount_path\" is given twice",
                        ))
                    }
                    (other, _) => {
                        let mut e = unknown_field("", other, &["mount_path"]);
                        e.code = "unknown_query_parameter";
                        e.message = e.message.replacen("unknown field", "unknown query parameter", 1);
                        return Err(e);
                    }
                }
            }
            sandboxes::detach(state, &tenant, &id, &disk, mount_path).await
        }
        _ => Err(ApiError::not_found(format!(
            "no route {method} {path}; see GET /v1/openapi.json"
        ))),
    }
}

fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn no_query(req: &Request<Incoming>) -> Result<(), ApiError> {
    match query_pairs(req).into_iter().next() {
        Some((k, _)) => Err(ApiError::field(
            "unknown_query_parameter",
            &k,
            format!("unknown query parameter {k:?}; this route takes none"),
        )),
        None => Ok(()),
    }
}

/// `limit` (1..=500, default 50) and `offset` (default 0).
pub(crate) fn pagination(req: &Request<Incoming>) -> Result<Page, ApiError> {
    let mut page = Page {
        limit: DEFAULT_LIMIT,
        offset: 0,
    };
    let mut seen = Vec::new();
    for (k, v) in query_pairs(req) {
        if seen.contains(&k) {
            return Err(ApiError::field(
                "invalid_query",
                &k,
                format!("query parameter {k:?} is given twice"),
            ));
        }
        match k.as_str() {
            "limit" => {
                page.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        ApiError::field(
                            "invalid_query",
                            "limit",
                            format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                        )
                    })?
            }
            "offset" => {
                page.offset = v.parse::<u64>().ok().filter(|o| *o <= i64::MAX as u64).ok_or_else(|| {
                    ApiError::field("invalid_query", "offset", "offset must be a non-negative integer")
                })?
            }
            other => {
                let mut e = unknown_field("", other, &["limit", "offset"]);
                e.code = "unknown_query_parameter";
                e.message = e.message.replacen("unknown field", "unknown query parameter", 1);
                return Err(e);
            }
        }
        seen.push(k);
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn request_paths_fall_under_their_route_template() {
        for (path, want) in [
            ("/healthz", "/healthz"),
            ("/v1/disks", "/v1/disks"),
            ("/v1/disks/disk_1", "/v1/disks/{id}"),
            ("/v1/sandboxes/sb/disks", "/v1/sandboxes/{id}/disks"),
            ("/v1/sandboxes/sb/disks/d", "/v1/sandboxes/{id}/disks/{disk_id}"),
            ("/v1/disks/", "other"),
            ("/v1/disks/a/b", "other"),
            ("/nope", "other"),
            ("", "other"),
        ] {
            assert_eq!(template(path), want, "{path}");
        }
    }
}
