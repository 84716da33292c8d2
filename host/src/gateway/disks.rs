//! Disks: validate, resolve through the provider plugin, check the
//! endpoint policy, probe the bucket, seal the credentials and commit;
//! find, list, rotate credentials, delete. The bucket itself is never
//! changed by any of these.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use super::error::GatewayError;
use super::policy::RecordingPolicy;
use super::state::{probe_deadline, State};
use crate::plugin::{DiskConfig, PluginError, PluginHost, ProbeReport, ResolveError, ResolvedEndpoint};
use crate::s3::{Addressing, ClientConfig, Endpoint, RetryPolicy, S3Client};
use crate::store::{DiskRecord, DiskSpec, Page, Store, StoreError};
use crate::vault::{SealContext, SecretCredentials, Vault};

/// Runs a store call on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Arc<State>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .unwrap_or_else(|e| Err(StoreError::Database(format!("store task failed: {e}"))))
}

pub(crate) fn store_failed(e: StoreError) -> GatewayError {
    GatewayError::internal("accessing the registry", e)
}

fn not_configured(reason: &str) -> GatewayError {
    GatewayError::server(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("disks_not_configured: the disks API is not available: {reason}"),
    )
}

fn need_vault(state: &State) -> Result<&Arc<Vault>, GatewayError> {
    state.vault.as_ref().map_err(|e| not_configured(e))
}

fn need_providers(state: &State) -> Result<&PluginHost, GatewayError> {
    state.providers.as_ref().map_err(|e| not_configured(e))
}

/// Registering and rotating need both the vault and the plugins; `Err`
/// says which is missing and why (the API answers 503).
pub(crate) fn ready(state: &State) -> Result<(), GatewayError> {
    need_vault(state)?;
    need_providers(state).map(drop)
}

fn disk_not_found(id: &str) -> GatewayError {
    let shown: String = id.chars().take(80).collect();
    GatewayError::not_found(format!("disk {shown:?} not found"))
}

// ---- validation ----

/// `^[a-z0-9][a-z0-9-]{0,62}$`
pub(crate) fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// S3 bucket naming rules (3-63 characters of `a-z 0-9 . -`, starting and
/// ending with a letter or digit, no `..`, not an IPv4 address).
fn bucket_problem(b: &str) -> Option<&'static str> {
    if b.len() < 3 || b.len() > 63 {
        return Some("must be 3 to 63 characters long");
    }
    if !b
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        return Some("may hold only lowercase letters, digits, dots and hyphens");
    }
    let (first, last) = (b.as_bytes()[0], b.as_bytes()[b.len() - 1]);
    if !(first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()) {
        return Some("must start and end with a letter or digit");
    }
    if b.contains("..") {
        return Some("must not contain two dots in a row");
    }
    if b.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("must not be formatted as an IP address");
    }
    None
}

fn invalid(field: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::for_field("invalid_field", field, message)
}

/// The same checks for a secret given as JSON or through the library.
pub(crate) fn check_secret(path: &str, v: &str) -> Result<(), GatewayError> {
    if v.is_empty() {
        return Err(invalid(path, format!("{path} must not be empty")));
    }
    if v.len() > 1024 {
        return Err(invalid(path, format!("{path} is longer than 1024 bytes")));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(path, format!("{path} contains control characters")));
    }
    if v.trim() != v {
        return Err(invalid(
            path,
            format!("{path} starts or ends with whitespace (a copy-and-paste slip?)"),
        ));
    }
    Ok(())
}

/// Checks credentials that did not come through JSON (the library).
pub(crate) fn check_credentials(c: &SecretCredentials) -> Result<(), GatewayError> {
    check_secret("credentials.access_key", c.access_key())?;
    check_secret("credentials.secret_key", c.secret_key())
}

/// A validated disk registration.
pub(crate) struct CreateRequest {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) spec: DiskSpec,
    /// The endpoint as parsed (normalised URL, host, port).
    pub(crate) endpoint: Endpoint,
    pub(crate) credentials: SecretCredentials,
}

/// A registration from the library: the same checks as a JSON body.
pub(crate) fn validate_create(
    name: String,
    kind: String,
    spec: DiskSpec,
    credentials: SecretCredentials,
) -> Result<CreateRequest, GatewayError> {
    check_identity(&name, &kind)?;
    let (spec, endpoint) = check_config(spec)?;
    check_credentials(&credentials)?;
    Ok(CreateRequest {
        name,
        kind,
        spec,
        endpoint,
        credentials,
    })
}

pub(crate) fn check_identity(name: &str, kind: &str) -> Result<(), GatewayError> {
    if !valid_name(name) {
        return Err(invalid(
            "name",
            "name must match ^[a-z0-9][a-z0-9-]{0,62}$ (lowercase letters, digits and hyphens, starting with a letter or digit, at most 63 characters)",
        ));
    }
    if kind != "s3" {
        return Err(invalid("kind", "kind must be \"s3\""));
    }
    Ok(())
}

/// Checks the `config` object field by field, naming the JSON path of the
/// first problem; returns it normalised with the parsed endpoint.
pub(crate) fn check_config(mut spec: DiskSpec) -> Result<(DiskSpec, Endpoint), GatewayError> {
    if let Some(p) = bucket_problem(&spec.bucket) {
        return Err(invalid("config.bucket", format!("config.bucket {p}")));
    }
    if spec.endpoint.len() > 2048 {
        return Err(invalid(
            "config.endpoint",
            "config.endpoint is longer than 2048 characters",
        ));
    }
    let endpoint = Endpoint::new(&spec.endpoint, "us-east-1", Addressing::Path).map_err(|e| {
        invalid(
            "config.endpoint",
            format!("config.endpoint must be an absolute http:// or https:// URL ({e})"),
        )
    })?;
    if let Some(r) = &spec.region {
        if r.is_empty() || r.len() > 64 || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(invalid(
                "config.region",
                "config.region must be 1 to 64 letters, digits, hyphens or underscores (omit it for the provider's default)",
            ));
        }
    }
    if let Some(p) = &spec.provider {
        if !valid_name(p) {
            return Err(invalid(
                "config.provider",
                "config.provider must be a plugin id (lowercase letters, digits, hyphens)",
            ));
        }
    }
    if spec.options.len() > 32 {
        return Err(invalid("config.options", "config.options holds more than 32 entries"));
    }
    for (k, v) in &spec.options {
        if k.is_empty()
            || k.len() > 64
            || !k
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                "config.options",
                "config.options keys must be 1 to 64 of a-z, 0-9, _ and -",
            ));
        }
        if v.len() > 1024 {
            return Err(invalid(
                &format!("config.options.{k}"),
                format!("config.options.{k} is longer than 1024 characters"),
            ));
        }
    }
    // Registrations compare equal whatever order the options came in.
    spec.options.sort();
    spec.options.dedup_by(|a, b| a.0 == b.0);
    Ok((spec, endpoint))
}

fn plugin_config(spec: &DiskSpec) -> DiskConfig {
    DiskConfig {
        bucket: spec.bucket.clone(),
        endpoint: Some(spec.endpoint.clone()),
        region: spec.region.clone(),
        use_path_style: spec.use_path_style,
        provider: spec.provider.clone(),
        options: spec.options.clone(),
    }
}

// ---- endpoint policy, resolve, probe ----

fn not_allowed(reason: &str) -> GatewayError {
    GatewayError::for_field("endpoint_not_allowed", "config.endpoint", format!("config.endpoint is not allowed: {reason}"))
        .with("hint", "endpoints on link-local or cloud metadata addresses are refused; the operator's endpoint policy can change this")
}

/// Checks the host a request for `bucket` goes to (and, by DNS, where it points).
async fn check_endpoint(state: &State, ep: &Endpoint, bucket: &str) -> Result<(), GatewayError> {
    let port = ep.port().unwrap_or(if ep.is_https() { 443 } else { 80 });
    let host = ep.request_host(bucket);
    state
        .policy
        .check_endpoint_host(ep.host(), port)
        .await
        .map_err(|r| not_allowed(&r))?;
    if host != ep.host() {
        state
            .policy
            .check_endpoint_host(&host, port)
            .await
            .map_err(|r| not_allowed(&r))?;
    }
    Ok(())
}

fn plugin_failed(e: &PluginError) -> GatewayError {
    tracing::error!(error = %e, "provider plugin failed");
    GatewayError::server(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the provider plugin failed: {e}"),
    )
}

async fn resolve(host: &PluginHost, cfg: &DiskConfig) -> Result<ResolvedEndpoint, GatewayError> {
    host.resolve(cfg).await.map_err(|e| match e {
        ResolveError::Config { field, message, .. } => {
            let path = format!("config.{field}");
            GatewayError::for_field("invalid_config", &path, format!("{path}: {message}"))
        }
        ResolveError::Plugin(e) => plugin_failed(&e),
    })
}

/// Removes the credentials from a text that came back from the provider.
fn scrub(text: &str, creds: &SecretCredentials) -> String {
    let mut s = text.to_string();
    for secret in [creds.secret_key(), creds.access_key()] {
        if !secret.is_empty() {
            s = s.replace(secret, "<redacted>");
        }
    }
    s
}

fn unreachable_error(message: &str) -> GatewayError {
    GatewayError::server(StatusCode::BAD_GATEWAY, format!("endpoint_unreachable: {message}"))
}

/// Probes the bucket with `creds`; `Ok` only when the plugin says ok.
async fn probe(
    state: &State,
    host: &PluginHost,
    cfg: &DiskConfig,
    resolved: &ResolvedEndpoint,
    creds: &SecretCredentials,
) -> Result<(), GatewayError> {
    let limits = host.limits();
    let recorder = Arc::new(RecordingPolicy::new(state.policy.clone()));
    let mut cc = ClientConfig::new(resolved.endpoint.clone(), cfg.bucket.clone(), creds.to_s3());
    cc.transport.policy = recorder.clone();
    cc.transport.connect_timeout = limits.request_timeout.min(Duration::from_secs(3));
    cc.transport.pool_max_idle_per_host = 1;
    cc.retry = RetryPolicy {
        max_attempts: 2,
        max_elapsed: limits.request_timeout,
        ..RetryPolicy::default()
    };
    cc.request_timeout = limits.request_timeout;
    cc.read_timeout = limits.request_timeout;
    let client =
        S3Client::new(cc).map_err(|e| invalid("config.endpoint", format!("config.endpoint cannot be used: {e}")))?;
    let deadline = probe_deadline(limits);
    let outcome = tokio::time::timeout(deadline, host.probe(cfg, resolved, &client)).await;
    if let Some(reason) = recorder.refused() {
        return Err(not_allowed(&reason));
    }
    let report: ProbeReport = match outcome {
        Err(_) => {
            return Err(unreachable_error(&format!(
                "{} did not answer within {deadline:?}",
                resolved.endpoint.url()
            )))
        }
        Ok(Err(PluginError::ProbeTimeout { limit, .. })) => {
            return Err(unreachable_error(&format!(
                "{} did not answer within {limit:?}",
                resolved.endpoint.url()
            )))
        }
        Ok(Err(e)) => return Err(plugin_failed(&e)),
        Ok(Ok(r)) => r,
    };
    if report.ok {
        return Ok(());
    }
    let message = scrub(&report.message, creds);
    let hint = report.hint.as_deref().map(|h| scrub(h, creds));
    tracing::info!(provider = %resolved.provider, code = %report.code, "bucket probe failed");
    if report.code == "endpoint_unreachable" {
        let mut m = message;
        if let Some(h) = &hint {
            m.push_str(&format!(" ({h})"));
        }
        return Err(unreachable_error(&m));
    }
    let code = ProbeReport::CODES
        .iter()
        .copied()
        .find(|c| *c == report.code && *c != "ok")
        .unwrap_or("other");
    let mut err = GatewayError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
    if let Some(h) = hint {
        err = err.with("hint", h);
    }
    if code == "wrong_region" {
        if let Some(r) = &report.region {
            err = err.with("expected_region", r.clone());
        }
    }
    Err(err.with("provider", resolved.provider.clone()))
}

/// An S3 client for a registered disk, with its unsealed credentials and
/// the endpoint policy checked on every connection (attach).
pub(crate) async fn client_for(state: &Arc<State>, tenant: &str, disk: &DiskRecord) -> Result<S3Client, GatewayError> {
    let vault = need_vault(state)?.clone();
    let host = need_providers(state)?;
    let cfg = plugin_config(&disk.spec);
    let resolved = resolve(host, &cfg).await?;
    check_endpoint(state, &resolved.endpoint, &disk.spec.bucket).await?;
    let (t, d) = (tenant.to_string(), disk.id.clone());
    let store = state.store.clone();
    let creds = tokio::task::spawn_blocking(move || crate::vault::open_credentials(store.as_ref(), &vault, &t, &d))
        .await
        .map_err(|e| GatewayError::internal("opening the credentials", e))?
        .map_err(|e| GatewayError::internal("opening the credentials", e))?
        .ok_or_else(|| disk_not_found(&disk.id))?;
    let mut cc = ClientConfig::new(resolved.endpoint, disk.spec.bucket.clone(), creds.to_s3());
    cc.transport.policy = state.policy.clone();
    S3Client::new(cc).map_err(|e| invalid("config.endpoint", format!("config.endpoint cannot be used: {e}")))
}

// ---- seal and commit ----

/// Seals with the store's current key version, retrying if a rotation
/// made a newer version current meanwhile.
async fn seal_and_commit(
    state: &Arc<State>,
    vault: &Arc<Vault>,
    tenant: &str,
    disk_id: &str,
    creds: &SecretCredentials,
    commit: impl Fn(&dyn Store, &crate::vault::SealedCredentials) -> Result<(), StoreError> + Send + Sync + Clone + 'static,
) -> Result<(), StoreError> {
    for _ in 0..3 {
        let version = state.key_version();
        let sealed = vault
            .seal(version, SealContext { tenant, disk_id }, creds)
            .map_err(|e| StoreError::Database(format!("sealing the credentials: {e}")))?;
        let commit = commit.clone();
        match blocking(state, move |s| commit(s, &sealed)).await {
            Err(StoreError::StaleKeyVersion { current, .. }) => {
                tracing::info!(
                    current,
                    "master key rotated meanwhile; sealing again under the new version"
                );
                state.key_version.store(current, Ordering::Release);
            }
            other => return other,
        }
    }
    Err(StoreError::Database(
        "the master key kept changing while sealing".into(),
    ))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `Some(field)` naming the first difference between a registered disk
/// and a new request for the same name.
fn differs(
    existing: &DiskRecord,
    spec: &DiskSpec,
    endpoint: &Endpoint,
    resolved: &ResolvedEndpoint,
) -> Option<&'static str> {
    let existing_url = Endpoint::new(&existing.spec.endpoint, "us-east-1", Addressing::Path)
        .map(|e| e.url())
        .unwrap_or_default();
    if existing.spec.bucket != spec.bucket {
        Some("config.bucket")
    } else if existing_url != endpoint.url() {
        Some("config.endpoint")
    } else if existing.resolved_region != resolved.endpoint.signing_region() {
        Some("config.region")
    } else if existing.resolved_path_style != (resolved.endpoint.addressing() == Addressing::Path) {
        Some("config.use_path_style")
    } else if existing.provider != resolved.provider {
        Some("config.provider")
    } else if existing.spec.options != spec.options {
        Some("config.options")
    } else {
        None
    }
}

fn idempotent(
    existing: DiskRecord,
    req: &CreateRequest,
    resolved: &ResolvedEndpoint,
) -> Result<(bool, DiskRecord), GatewayError> {
    match differs(&existing, &req.spec, &req.endpoint, resolved) {
        None => Ok((false, existing)),
        Some(field) => Err(GatewayError::conflict(
            "name_conflict",
            format!(
                "a disk named {:?} already exists with a different configuration ({field} differs); delete it first or choose another name",
                existing.name
            ),
        )
        .with("field", field)),
    }
}

/// Registers a disk: resolve, policy, probe, seal, commit. `Ok((false, _))`
/// is an identical registration made before (idempotent).
pub(crate) async fn register(
    state: &Arc<State>,
    tenant: &str,
    req: CreateRequest,
) -> Result<(bool, DiskRecord), GatewayError> {
    let vault = need_vault(state)?.clone();
    let host = need_providers(state)?;
    let cfg = plugin_config(&req.spec);
    let resolved = resolve(host, &cfg).await?;
    // Where the requests will go: the resolved endpoint (a plugin may rewrite
    // the URL), with the bucket's host name for virtual-hosted addressing.
    check_endpoint(state, &resolved.endpoint, &req.spec.bucket).await?;

    let (t, n) = (tenant.to_string(), req.name.clone());
    if let Some(existing) = blocking(state, move |s| s.find_disk(&t, &n))
        .await
        .map_err(store_failed)?
    {
        return idempotent(existing, &req, &resolved);
    }

    probe(state, host, &cfg, &resolved, &req.credentials).await?;

    let now = now_ms();
    let record = DiskRecord {
        id: format!("disk_{}", ulid::Ulid::new()),
        tenant: tenant.to_string(),
        name: req.name.clone(),
        kind: req.kind.clone(),
        spec: req.spec.clone(),
        provider: resolved.provider.clone(),
        resolved_region: resolved.endpoint.signing_region().to_string(),
        resolved_path_style: resolved.endpoint.addressing() == Addressing::Path,
        created_at_ms: now,
        updated_at_ms: now,
    };
    let rec = Arc::new(record.clone());
    let committed = seal_and_commit(state, &vault, tenant, &record.id, &req.credentials, move |s, sealed| {
        s.create_disk(&rec, sealed)
    })
    .await;
    match committed {
        Ok(()) => {
            tracing::info!(disk = %record.id, name = %record.name, provider = %record.provider, "disk registered");
            Ok((true, record))
        }
        // Registered concurrently under the same name.
        Err(StoreError::Conflict(_)) => {
            let (t, n) = (tenant.to_string(), req.name.clone());
            match blocking(state, move |s| s.find_disk(&t, &n))
                .await
                .map_err(store_failed)?
            {
                Some(existing) => idempotent(existing, &req, &resolved),
                None => Err(GatewayError::conflict(
                    "name_conflict",
                    "the disk name was taken and released meanwhile; try again",
                )),
            }
        }
        Err(e) => Err(store_failed(e)),
    }
}

/// A page of the tenant's disks and the total count.
pub(crate) async fn list_records(
    state: &Arc<State>,
    tenant: &str,
    p: Page,
) -> Result<(Vec<DiskRecord>, u64), GatewayError> {
    need_vault(state)?;
    let t = tenant.to_string();
    blocking(state, move |s| s.list_disks(&t, p))
        .await
        .map_err(store_failed)
}

pub(crate) async fn find(state: &Arc<State>, tenant: &str, id: &str) -> Result<DiskRecord, GatewayError> {
    need_vault(state)?;
    if !(valid_name(id) || (id.starts_with("disk_") && id.len() <= 64)) {
        return Err(disk_not_found(id));
    }
    let (t, i) = (tenant.to_string(), id.to_string());
    blocking(state, move |s| s.find_disk(&t, &i))
        .await
        .map_err(store_failed)?
        .ok_or_else(|| disk_not_found(id))
}

/// Probes `creds`, then seals them in place of the disk's credentials and
/// hands them to the disk's live mounts.
pub(crate) async fn rotate_credentials(
    state: &Arc<State>,
    tenant: &str,
    disk: DiskRecord,
    creds: &SecretCredentials,
) -> Result<DiskRecord, GatewayError> {
    let vault = need_vault(state)?.clone();
    let host = need_providers(state)?;
    let cfg = plugin_config(&disk.spec);
    let resolved = resolve(host, &cfg).await?;
    check_endpoint(state, &resolved.endpoint, &disk.spec.bucket).await?;
    // The new credentials must work before they replace the old ones.
    probe(state, host, &cfg, &resolved, creds).await?;
    let now = now_ms();
    let (t, d) = (tenant.to_string(), disk.id.clone());
    seal_and_commit(state, &vault, tenant, &disk.id, creds, move |s, sealed| {
        s.replace_credentials(&t, &d, sealed, now)
    })
    .await
    .map_err(|e| match e {
        StoreError::NotFound => disk_not_found(&disk.id),
        e => store_failed(e),
    })?;
    // Mounts already attached sign their next request with the new keys.
    state.mounts.rotate_credentials(&disk.id, &creds.to_s3());
    tracing::info!(disk = %disk.id, "disk credentials rotated");
    Ok(DiskRecord {
        updated_at_ms: now,
        ..disk
    })
}

/// Forgets a disk and its credentials; refused while it is attached.
pub(crate) async fn remove(state: &Arc<State>, tenant: &str, disk: &DiskRecord) -> Result<(), GatewayError> {
    let (t, d) = (tenant.to_string(), disk.id.clone());
    match blocking(state, move |s| s.delete_disk(&t, &d)).await {
        Ok(()) => {
            tracing::info!(disk = %disk.id, "disk deleted (the bucket is untouched)");
            Ok(())
        }
        Err(StoreError::NotFound) => Err(disk_not_found(&disk.id)),
        Err(StoreError::Attached(n)) => Err(GatewayError::conflict(
            "disk_attached",
            format!("disk {:?} is attached to {n} sandbox mount(s); detach it first (DELETE /v1/sandboxes/{{id}}/disks/{{disk_id}}?mount_path=...)", disk.name),
        )),
        Err(e) => Err(store_failed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_buckets() {
        for ok in ["a", "eu-data", "0", &"a".repeat(63)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", &"a".repeat(64), "disk_01"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(bucket_problem("my-eu-bucket"), None);
        assert_eq!(bucket_problem("a.b-c"), None);
        assert!(bucket_problem("ab").is_some());
        assert!(bucket_problem("My_Bucket").is_some());
        assert!(bucket_problem("a..b").is_some());
        assert!(bucket_problem("-ab").is_some());
        assert!(bucket_problem("192.168.1.1").is_some());
    }
}
