//! A client of the byos3 HTTP API, for Rust programs and the `byos3`
//! command line: drive a byos3 server the way the CreateOS SDKs drive
//! theirs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), byos3::client::ClientError> {
//! use byos3::client::{AttachSpec, Client, NewDisk, SandboxSpec};
//! let api = Client::new("http://127.0.0.1:8787", "my-api-key")?;
//! let disk = api
//!     .create_disk(&NewDisk::new("eu-data", "my-bucket", "http://127.0.0.1:9000"), "access-key", "secret-key")
//!     .await?;
//! let sandbox = api.create_sandbox(&SandboxSpec::new().id("sb-one")).await?;
//! api.attach(&sandbox.id, &AttachSpec::new(&disk.id, "/mnt/data").sub_path("team-a/")).await?;
//! api.detach(&sandbox.id, &disk.id, "/mnt/data").await?;
//! # Ok(()) }
//! ```

use std::fmt;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client could not be built: a server URL that is not `http(s)://HOST[:PORT]`, `BYOS3_API_KEY`
    /// unset ([`Client::from_env`]), or no usable TLS setup.
    #[error("invalid server URL {url:?}: {reason}")]
    Url {
        /// The server URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The request did not get a complete HTTP answer (connect, TLS, reset, body read).
    #[error("cannot reach the byos3 server at {url}: {reason}")]
    Transport {
        /// The server's base URL.
        url: String,
        /// The underlying error.
        reason: String,
    },
    /// A JSend `fail` (4xx): `code` and `message` say what to fix.
    #[error("{status} {code}: {message}")]
    Fail {
        /// HTTP status code.
        status: u16,
        /// `data.code` (`invalid_field`, `not_found`, ...); `unknown` if the server gave none.
        code: String,
        /// `data.message`.
        message: String,
        /// The whole `data` object, with extra keys such as `field` or `hint`.
        data: Value,
    },
    /// A JSend `error` (5xx).
    #[error("{status}: {message}")]
    Server {
        /// HTTP status code.
        status: u16,
        /// The server's message (details are in its log).
        message: String,
    },
    /// The answer is not JSON, not a JSend envelope, or not the shape the call expects.
    #[error("unexpected answer from the server ({status}): {reason}")]
    InvalidResponse {
        /// HTTP status code.
        status: u16,
        /// What is wrong with the answer.
        reason: String,
    },
}

impl ClientError {
    /// The JSend `fail` code, if the server answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Fail { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A registered disk (`DiskView`). Never carries credentials.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Disk {
    /// Server-assigned id (`disk_<ULID>`).
    pub id: String,
    /// Name, unique per tenant; the API accepts it in place of the id.
    pub name: String,
    /// Disk kind; always `s3`.
    pub kind: String,
    /// The configuration, with the region and addressing the provider plugin resolved.
    pub config: DiskConfig,
    /// Registration time, RFC 3339 (UTC, seconds).
    pub created_at: String,
    /// The provider plugin that serves the disk; `None` from a server that does not say.
    #[serde(default)]
    pub provider: Option<String>,
}

/// A disk's configuration as the server reports it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct DiskConfig {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL as registered.
    pub endpoint: String,
    /// The signing region the provider resolved; `None` if the server omits it.
    #[serde(default)]
    pub region: Option<String>,
    /// Whether path-style addressing is used; `None` if the server omits it.
    #[serde(default)]
    pub use_path_style: Option<bool>,
}

/// A sandbox (`SandboxView`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Sandbox {
    /// The sandbox id: the runtime's own, or a generated `sb_<ULID>`.
    pub id: String,
    /// Name, unique per tenant; the API accepts it in place of the id.
    #[serde(default)]
    pub name: Option<String>,
    /// `creating`, `running`, `stopped`, `failed` or `destroyed`.
    pub status: String,
    /// Creation time, RFC 3339 (UTC, seconds).
    pub created_at: String,
    /// The sandbox's root directory on the server's host.
    #[serde(default)]
    pub root: Option<String>,
    /// Only on create: how each attachment asked for went.
    #[serde(default)]
    pub disks: Vec<AttachOutcome>,
}

/// The outcome of one attachment asked for at sandbox creation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct AttachOutcome {
    /// The disk asked for.
    pub disk_id: String,
    /// The normalised mount path inside the sandbox.
    pub mount_path: String,
    /// `mounted`, or `error` when the attach failed.
    pub mount_status: String,
    /// Why the attach failed; `None` when mounted.
    #[serde(default)]
    pub mount_error: Option<String>,
}

/// A disk attached to a sandbox (`SandboxDiskView`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Attachment {
    /// The attached disk's id.
    pub disk_id: String,
    /// The disk's name.
    pub name: String,
    /// The disk's kind (`s3`).
    pub kind: String,
    /// The disk's configuration.
    pub config: DiskConfig,
    /// Normalised absolute path inside the sandbox.
    pub mount_path: String,
    /// Key prefix shown at the mount path (`a/b/`), empty for the whole bucket.
    pub sub_path: String,
    /// `pending`, `mounted`, `error` or `unmounting`.
    pub mount_status: String,
    /// Why the mount failed or stopped working, when `mount_status` is `error`.
    #[serde(default)]
    pub mount_error: Option<String>,
    /// What attaching cleaned up from a previous run (uploads a crash left).
    #[serde(default)]
    pub notice: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page, oldest first.
    pub data: Vec<T>,
    /// Where the page sits in the whole list.
    pub pagination: Pagination,
}

/// The position of a [`Page`] in its list.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Pagination {
    /// Items in the whole list.
    pub total: u64,
    /// The page size asked for.
    pub limit: u32,
    /// Items skipped before this page.
    pub offset: u64,
    /// Items on this page (at most `limit`).
    pub count: u64,
}

/// What to register.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NewDisk {
    /// Name, unique per tenant: `[a-z0-9][a-z0-9-]*`, at most 63 characters.
    pub name: String,
    /// Bucket the disk lives in.
    pub bucket: String,
    /// Endpoint URL, `http(s)://host[:port]`.
    pub endpoint: String,
    /// Region; `None` uses the provider's default.
    pub region: Option<String>,
    /// Force path-style addressing on or off; `None` leaves it to the provider plugin.
    pub use_path_style: Option<bool>,
    /// The provider plugin to use (default: detected from the endpoint).
    pub provider: Option<String>,
    /// Provider-specific options as (name, value) pairs (`byos3 plugin list` shows each plugin's).
    pub options: Vec<(String, String)>,
}

impl NewDisk {
    /// A disk with no region, addressing, provider or options given: the plugin decides them.
    pub fn new(name: &str, bucket: &str, endpoint: &str) -> Self {
        Self {
            name: name.into(),
            bucket: bucket.into(),
            endpoint: endpoint.into(),
            region: None,
            use_path_style: None,
            provider: None,
            options: Vec::new(),
        }
    }

    fn config(&self) -> Value {
        let mut c = json!({"bucket": self.bucket, "endpoint": self.endpoint});
        if let Some(r) = &self.region {
            c["region"] = json!(r);
        }
        if let Some(p) = self.use_path_style {
            c["use_path_style"] = json!(p);
        }
        if let Some(p) = &self.provider {
            c["provider"] = json!(p);
        }
        if !self.options.is_empty() {
            c["options"] = Value::Object(self.options.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
        }
        c
    }
}

/// Where to attach a disk.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AttachSpec {
    /// The disk to attach, by id or name.
    pub disk_id: String,
    /// Absolute path inside the sandbox (`/mnt/data`).
    pub mount_path: String,
    /// Key prefix of the bucket to show; `None` shows the whole bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
    /// Mount read-only.
    pub read_only: bool,
}

impl AttachSpec {
    /// The whole bucket of `disk_id`, read-write, at `mount_path`.
    pub fn new(disk_id: &str, mount_path: &str) -> Self {
        Self {
            disk_id: disk_id.into(),
            mount_path: mount_path.into(),
            sub_path: None,
            read_only: false,
        }
    }

    /// Shows only the objects under key prefix `p` (`team-a/`).
    pub fn sub_path(mut self, p: &str) -> Self {
        self.sub_path = Some(p.into());
        self
    }

    /// Mounts read-only when `ro`.
    pub fn read_only(mut self, ro: bool) -> Self {
        self.read_only = ro;
        self
    }
}

/// A sandbox to create: an optional id of your own, an optional name, and
/// disks to attach right away.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Your runtime's id for it (`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`);
    /// the server generates `sb_<ULID>` when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Unique per tenant; derived from the id when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Attached at creation; each outcome is in [`Sandbox::disks`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<AttachSpec>,
}

impl SandboxSpec {
    /// A sandbox with a generated id and name and no disks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `id` instead of a generated one.
    pub fn id(mut self, id: &str) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Names the sandbox.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Attaches a disk at creation.
    pub fn disk(mut self, disk: AttachSpec) -> Self {
        self.disks.push(disk);
        self
    }
}

/// Request bodies that borrow the secret: the only copy made is the
/// serialised body, which is zeroized after sending.
#[derive(Serialize)]
struct CredentialsBody<'a> {
    access_key: &'a str,
    secret_key: &'a str,
}

#[derive(Serialize)]
struct CreateDiskBody<'a> {
    name: &'a str,
    kind: &'a str,
    config: Value,
    credentials: CredentialsBody<'a>,
}

#[derive(Serialize)]
struct RotateBody<'a> {
    credentials: CredentialsBody<'a>,
}

/// A byos3 API client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    base: String,
    key: std::sync::Arc<Zeroizing<String>>,
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl Client {
    /// A client of the server at `base_url` (`http://host:port`, or
    /// `https://` verified against the platform's CA roots) using `api_key`.
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        let bad = |reason: &str| ClientError::Url {
            url: base_url.to_string(),
            reason: reason.to_string(),
        };
        let uri: http::Uri = base.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(bad("expected http://HOST:PORT or https://HOST:PORT"));
        }
        let tls = crate::s3::transport::tls_config(None).map_err(|e| bad(&e.to_string()))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
        Ok(Self {
            base,
            key: std::sync::Arc::new(Zeroizing::new(api_key.to_string())),
            http,
        })
    }

    /// A client from `BYOS3_URL` (default `http://127.0.0.1:8787`) and `BYOS3_API_KEY`.
    pub fn from_env() -> Result<Self, ClientError> {
        let url = std::env::var("BYOS3_URL").unwrap_or_else(|_| "http://127.0.0.1:8787".into());
        let key = std::env::var("BYOS3_API_KEY").map_err(|_| ClientError::Url {
            url: url.clone(),
            reason: "BYOS3_API_KEY is not set".into(),
        })?;
        Self::new(&url, &key)
    }

    /// Sends a request and returns the status and the JSON body as sent
    /// (`Null` for an empty body), whatever the status.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let url = format!("{}{path}", self.base);
        let transport = |reason: String| ClientError::Transport {
            url: self.base.clone(),
            reason,
        };
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header("x-api-key", self.key.as_str());
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let bytes = body.map(|b| Bytes::copy_from_slice(&b)).unwrap_or_default();
        let req = req.body(Full::new(bytes)).map_err(|e| transport(e.to_string()))?;
        let resp = self.http.request(req).await.map_err(|e| transport(e.to_string()))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(e.to_string()))?
            .to_bytes();
        if body.is_empty() {
            return Ok((status, Value::Null));
        }
        let v = serde_json::from_slice(&body).map_err(|e| ClientError::InvalidResponse {
            status: status.as_u16(),
            reason: format!("not JSON: {e}"),
        })?;
        Ok((status, v))
    }

    /// Sends a request and returns the JSend `data` of a success.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Value, ClientError> {
        let (status, v) = self.request(method, path, body).await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        match v["status"].as_str() {
            Some("success") => Ok(v["data"].clone()),
            Some("fail") => Err(ClientError::Fail {
                status: status.as_u16(),
                code: v["data"]["code"].as_str().unwrap_or("unknown").to_string(),
                message: v["data"]["message"].as_str().unwrap_or("").to_string(),
                data: v["data"].clone(),
            }),
            Some("error") => Err(ClientError::Server {
                status: status.as_u16(),
                message: v["message"].as_str().unwrap_or("").to_string(),
            }),
            _ => Err(ClientError::InvalidResponse {
                status: status.as_u16(),
                reason: "not a JSend envelope".into(),
            }),
        }
    }

    async fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<T, ClientError> {
        let data = self.call(method, path, body).await?;
        serde_json::from_value(data).map_err(|e| ClientError::InvalidResponse {
            status: 200,
            reason: e.to_string(),
        })
    }

    fn json_body<T: Serialize + ?Sized>(v: &T) -> Option<Zeroizing<Vec<u8>>> {
        Some(Zeroizing::new(serde_json::to_vec(v).unwrap_or_default()))
    }

    // ---- disks ----

    /// Registers a disk (the server probes the bucket first).
    pub async fn create_disk(&self, disk: &NewDisk, access_key: &str, secret_key: &str) -> Result<Disk, ClientError> {
        let body = CreateDiskBody {
            name: &disk.name,
            kind: "s3",
            config: disk.config(),
            credentials: CredentialsBody { access_key, secret_key },
        };
        self.typed(Method::POST, "/v1/disks", Self::json_body(&body)).await
    }

    /// A page of the tenant's disks, oldest first (`limit` 1 to 500).
    pub async fn list_disks(&self, limit: u32, offset: u64) -> Result<Page<Disk>, ClientError> {
        self.typed(Method::GET, &format!("/v1/disks?limit={limit}&offset={offset}"), None)
            .await
    }

    /// One disk by id or name; a `not_found` [`ClientError::Fail`] if the tenant has none such.
    pub async fn get_disk(&self, id_or_name: &str) -> Result<Disk, ClientError> {
        self.typed(Method::GET, &format!("/v1/disks/{}", seg(id_or_name)), None)
            .await
    }

    /// Replaces a disk's credentials (probed first); live mounts use them next.
    pub async fn rotate_credentials(
        &self,
        id_or_name: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Result<Disk, ClientError> {
        let body = RotateBody {
            credentials: CredentialsBody { access_key, secret_key },
        };
        self.typed(
            Method::PATCH,
            &format!("/v1/disks/{}", seg(id_or_name)),
            Self::json_body(&body),
        )
        .await
    }

    /// Unregisters a disk and deletes its credentials; refused while it is attached. The bucket is not
    /// touched.
    pub async fn delete_disk(&self, id_or_name: &str) -> Result<(), ClientError> {
        self.call(Method::DELETE, &format!("/v1/disks/{}", seg(id_or_name)), None)
            .await
            .map(drop)
    }

    // ---- sandboxes ----

    /// Creates a sandbox, attaching `disks` at create time.
    pub async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox, ClientError> {
        let body = serde_json::to_value(spec).unwrap_or_default();
        self.typed(Method::POST, "/v1/sandboxes", Self::json_body(&body)).await
    }

    /// A page of the tenant's sandboxes, oldest first (`limit` 1 to 500).
    pub async fn list_sandboxes(&self, limit: u32, offset: u64) -> Result<Page<Sandbox>, ClientError> {
        self.typed(
            Method::GET,
            &format!("/v1/sandboxes?limit={limit}&offset={offset}"),
            None,
        )
        .await
    }

    /// One sandbox by id or name; a `not_found` [`ClientError::Fail`] if the tenant has none such.
    pub async fn get_sandbox(&self, id_or_name: &str) -> Result<Sandbox, ClientError> {
        self.typed(Method::GET, &format!("/v1/sandboxes/{}", seg(id_or_name)), None)
            .await
    }

    /// Detaches every disk (flushing writes), then deletes the sandbox.
    pub async fn delete_sandbox(&self, id_or_name: &str) -> Result<(), ClientError> {
        self.call(Method::DELETE, &format!("/v1/sandboxes/{}", seg(id_or_name)), None)
            .await
            .map(drop)
    }

    // ---- attachments ----

    /// Attaches a disk; returns once the mount is usable.
    pub async fn attach(&self, sandbox: &str, spec: &AttachSpec) -> Result<(), ClientError> {
        let body = serde_json::to_value(spec).unwrap_or_default();
        self.call(
            Method::POST,
            &format!("/v1/sandboxes/{}/disks", seg(sandbox)),
            Self::json_body(&body),
        )
        .await
        .map(drop)
    }

    /// A page of the sandbox's attachments with their live mount state, oldest first.
    pub async fn attachments(&self, sandbox: &str, limit: u32, offset: u64) -> Result<Page<Attachment>, ClientError> {
        self.typed(
            Method::GET,
            &format!("/v1/sandboxes/{}/disks?limit={limit}&offset={offset}", seg(sandbox)),
            None,
        )
        .await
    }

    /// Flushes pending uploads and unmounts; the bucket is not touched.
    pub async fn detach(&self, sandbox: &str, disk: &str, mount_path: &str) -> Result<(), ClientError> {
        let path = format!(
            "/v1/sandboxes/{}/disks/{}?mount_path={}",
            seg(sandbox),
            seg(disk),
            seg(mount_path)
        );
        self.call(Method::DELETE, &path, None).await.map(drop)
    }
}
