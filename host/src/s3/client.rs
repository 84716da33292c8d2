//! The S3 client: signed, pooled, retried requests and the operations the
//! probe, the filesystem and the benchmarks need.

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningInstructions,
    SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use md5::Digest as _;

use super::credentials::Credentials;
use super::endpoint::{Endpoint, EndpointError};
use super::error::{S3Error, ServiceError};
use super::retry::RetryPolicy;
use super::transport::{build_client, HttpClient, RequestBody, TransportConfig, TransportError};
use super::xml::{self, CompletedPart, DeleteFailure, ListPage, UploadsPage};

/// Everything needed to talk to one bucket.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Where requests go: base URL, signing region, addressing and quirks.
    pub endpoint: Endpoint,
    /// Bucket the client signs requests for; every request goes to it. Must be non-empty and valid for
    /// the endpoint's addressing.
    pub bucket: String,
    /// Keys requests are signed with; replaceable later with [`S3Client::set_credentials`].
    pub credentials: Credentials,
    /// Connection settings: timeouts, pool, TLS roots, DNS overrides and the address policy.
    pub transport: TransportConfig,
    /// When and how often failed requests are retried.
    pub retry: RetryPolicy,
    /// Time allowed from sending a request until its response headers
    /// arrive, plus one second per MiB of request body.
    pub request_timeout: Duration,
    /// Longest pause allowed between two chunks of a response body.
    pub read_timeout: Duration,
    /// Sign the SHA-256 of buffered bodies sent over plain HTTP, where
    /// nothing else protects them on the way. Over HTTPS, TLS does, and
    /// hashing every byte again would cost about as much CPU as the
    /// encryption, so bodies go as `UNSIGNED-PAYLOAD` (as AWS's SDKs send
    /// them); streams are always `UNSIGNED-PAYLOAD`.
    pub sign_payload: bool,
}

impl ClientConfig {
    /// A config with the defaults: default transport and retry policy, 30 s request and read timeouts,
    /// payload signing on.
    pub fn new(endpoint: Endpoint, bucket: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            endpoint,
            bucket: bucket.into(),
            credentials,
            transport: TransportConfig::default(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            sign_payload: true,
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The bucket name cannot be used with the endpoint (e.g. not DNS-safe for virtual-hosted addressing).
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The HTTP client could not be built (CA file, TLS setup).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// [`ClientConfig::bucket`] is empty.
    #[error("bucket name must not be empty")]
    EmptyBucket,
}

/// The S3 operations, for retry rules and request counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// HeadBucket: does the bucket exist and may we use it.
    HeadBucket,
    /// ListObjectsV2, or ListObjects (v1) where the store has only v1.
    ListObjects,
    /// HeadObject: an object's metadata.
    HeadObject,
    /// GetObject, whole or ranged.
    GetObject,
    /// PutObject: a whole object in one request.
    PutObject,
    /// CopyObject: a server-side copy.
    CopyObject,
    /// DeleteObject: one key.
    DeleteObject,
    /// DeleteObjects: a batch of keys in one request.
    DeleteObjects,
    /// CreateMultipartUpload: starts an upload (not idempotent, so retried only when safe).
    CreateMultipartUpload,
    /// UploadPart: one part of a multipart upload.
    UploadPart,
    /// UploadPartCopy: a part copied server-side from another object.
    UploadPartCopy,
    /// CompleteMultipartUpload: assembles the parts (not idempotent, so retried only when safe).
    CompleteMultipartUpload,
    /// AbortMultipartUpload: discards an upload and its parts.
    AbortMultipartUpload,
    /// ListMultipartUploads: uploads in progress.
    ListMultipartUploads,
    /// A read-only request a provider plugin sent through [`S3Client::send_raw`]; never retried.
    Raw,
}

impl Operation {
    /// Every operation, in the order [`StatsSnapshot::by_operation`] lists them.
    pub const ALL: [Operation; 15] = [
        Operation::HeadBucket,
        Operation::ListObjects,
        Operation::HeadObject,
        Operation::GetObject,
        Operation::PutObject,
        Operation::CopyObject,
        Operation::DeleteObject,
        Operation::DeleteObjects,
        Operation::CreateMultipartUpload,
        Operation::UploadPart,
        Operation::UploadPartCopy,
        Operation::CompleteMultipartUpload,
        Operation::AbortMultipartUpload,
        Operation::ListMultipartUploads,
        Operation::Raw,
    ];

    /// The S3 API name ("GetObject"; "Raw" for plugin requests), as used in errors, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Operation::HeadBucket => "HeadBucket",
            Operation::ListObjects => "ListObjects",
            Operation::HeadObject => "HeadObject",
            Operation::GetObject => "GetObject",
            Operation::PutObject => "PutObject",
            Operation::CopyObject => "CopyObject",
            Operation::DeleteObject => "DeleteObject",
            Operation::DeleteObjects => "DeleteObjects",
            Operation::CreateMultipartUpload => "CreateMultipartUpload",
            Operation::UploadPart => "UploadPart",
            Operation::UploadPartCopy => "UploadPartCopy",
            Operation::CompleteMultipartUpload => "CompleteMultipartUpload",
            Operation::AbortMultipartUpload => "AbortMultipartUpload",
            Operation::ListMultipartUploads => "ListMultipartUploads",
            Operation::Raw => "Raw",
        }
    }

    /// Whether sending the request twice has the same effect as once.
    /// Non-idempotent requests are retried only when they never left
    /// (connect failure) or the service explicitly refused them (503).
    fn idempotent(self) -> bool {
        !matches!(
            self,
            Operation::CreateMultipartUpload | Operation::CompleteMultipartUpload | Operation::Raw
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a request attempt ended, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// 2xx (and 304 of a conditional GET).
    Success,
    /// 4xx other than 404.
    ClientError,
    /// 404: often expected (lookups of names that do not exist).
    NotFound,
    /// 5xx.
    ServerError,
    /// No HTTP answer: connect failure, reset, timeout.
    Network,
}

impl Outcome {
    /// Every outcome, in [`StatsSnapshot::by_outcome`] order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Success,
        Outcome::ClientError,
        Outcome::NotFound,
        Outcome::ServerError,
        Outcome::Network,
    ];

    /// A label for metrics.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "2xx",
            Outcome::ClientError => "4xx",
            Outcome::NotFound => "404",
            Outcome::ServerError => "5xx",
            Outcome::Network => "network",
        }
    }

    fn of_status(status: StatusCode) -> Self {
        match status.as_u16() {
            404 => Outcome::NotFound,
            400..=499 => Outcome::ClientError,
            500..=599 => Outcome::ServerError,
            _ => Outcome::Success,
        }
    }
}

/// Request counters of one client, by operation.
#[derive(Default)]
pub struct ClientStats {
    requests: [AtomicU64; 15],
    errors: [AtomicU64; 15],
    outcomes: [[AtomicU64; 5]; 15],
    retries: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

impl ClientStats {
    fn count(&self, op: Operation, outcome: Outcome) {
        self.outcomes[op.index()][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Told about every multipart upload the client starts and ends, so an
/// owner can find the ones a crash left behind (a journal).
pub trait UploadObserver: Send + Sync + fmt::Debug {
    /// CreateMultipartUpload succeeded.
    fn started(&self, key: &str, upload_id: &str);
    /// The upload was completed or aborted (or is gone).
    fn ended(&self, upload_id: &str);
}

/// A copy of a client's request counters at one moment ([`S3Client::stats`]). Counters only grow over
/// the client's life and are shared by its clones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// `(operation, requests sent, requests failed)`; attempts count, so a
    /// retried request counts more than once.
    pub by_operation: Vec<(Operation, u64, u64)>,
    /// `(operation, outcome, attempts)` for the pairs that occurred.
    pub by_outcome: Vec<(Operation, Outcome, u64)>,
    /// Attempts that were retries of an earlier failed attempt.
    pub retries: u64,
    /// Request body bytes sent, counted per attempt (a retried body counts again).
    pub bytes_sent: u64,
    /// Response body bytes received (bodies read through [`ByteStream`]; headers not counted).
    pub bytes_received: u64,
}

impl StatsSnapshot {
    /// Requests (attempts) sent for `op`; 0 when none were.
    pub fn requests(&self, op: Operation) -> u64 {
        self.by_operation
            .iter()
            .find(|(o, _, _)| *o == op)
            .map_or(0, |(_, n, _)| *n)
    }
}

/// The body of a request.
pub enum Payload {
    /// No body (`content-length: 0`).
    Empty,
    /// A body held in memory: can be re-sent, so the request may be retried.
    Bytes(Bytes),
    /// A body of known length that can be sent only once: never retried.
    Stream {
        /// Total body length in bytes, sent as `content-length`; the stream must yield exactly this many.
        len: u64,
        /// The body's chunks; an error aborts the request.
        stream: BoxStream<'static, std::io::Result<Bytes>>,
    },
}

impl Payload {
    fn len(&self) -> u64 {
        match self {
            Payload::Empty => 0,
            Payload::Bytes(b) => b.len() as u64,
            Payload::Stream { len, .. } => *len,
        }
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload::Bytes(b)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(b: Vec<u8>) -> Self {
        Payload::Bytes(b.into())
    }
}

/// What HeadObject (or a GET's headers) says about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size of the whole object.
    pub size: u64,
    /// The `ETag` header as sent (quotes included); `None` if the service sent none.
    pub etag: Option<String>,
    /// The `Last-Modified` header; `None` if absent or not a valid HTTP date.
    pub last_modified: Option<SystemTime>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// `x-amz-meta-*` pairs, names without the prefix, lower case.
    pub metadata: Vec<(String, String)>,
}

/// Options of a PutObject, CreateMultipartUpload or CopyObject.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// `Content-Type` stored with the object; `None` leaves it to the service.
    pub content_type: Option<String>,
    /// `x-amz-meta-*` pairs (names without the prefix).
    pub metadata: Vec<(String, String)>,
    /// Only write if no object has the key (`If-None-Match: *`).
    pub if_none_match: bool,
}

/// A streaming GET response.
pub struct GetObjectOutput {
    /// The object's metadata from the response headers; `size` is the whole object's size, even for a
    /// ranged GET.
    pub meta: ObjectMeta,
    /// The byte range the body holds (half-open), when a range was asked.
    pub range: Option<Range<u64>>,
    /// The body, not yet read.
    pub body: ByteStream,
}

/// A response body read chunk by chunk, with an idle timeout per chunk.
pub struct ByteStream {
    inner: BoxStream<'static, Result<Bytes, S3Error>>,
}

impl ByteStream {
    fn new(body: Incoming, read_timeout: Duration, stats: Arc<Inner>, op: Operation) -> Self {
        let host = stats.endpoint.host().to_string();
        let s = futures_util::stream::try_unfold(body, move |mut body| {
            let host = host.clone();
            let stats = stats.clone();
            async move {
                loop {
                    let frame = match tokio::time::timeout(read_timeout, body.frame()).await {
                        Err(_) => {
                            return Err(S3Error::Timeout {
                                operation: op.name(),
                                host,
                                timeout: read_timeout,
                            })
                        }
                        Ok(None) => return Ok(None),
                        Ok(Some(Err(e))) => {
                            return Err(S3Error::Transport {
                                operation: op.name(),
                                host,
                                reason: e.to_string(),
                            })
                        }
                        Ok(Some(Ok(f))) => f,
                    };
                    if let Ok(data) = frame.into_data() {
                        stats
                            .stats
                            .bytes_received
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                        return Ok(Some((data, body)));
                    }
                }
            }
        });
        Self { inner: s.boxed() }
    }

    /// Reads the whole body, failing beyond `limit` bytes.
    pub async fn collect(mut self, limit: usize, op: &'static str) -> Result<Bytes, S3Error> {
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = self.inner.try_next().await? {
            if buf.len() + chunk.len() > limit {
                return Err(S3Error::BodyTooLarge { operation: op, limit });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

impl Stream for ByteStream {
    type Item = Result<Bytes, S3Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// A request a provider plugin asks the host to sign and send. Only reads
/// (`GET`, `HEAD`) are allowed: a plugin probes a bucket, it never changes it.
#[derive(Clone, Debug, Default)]
pub struct RawRequest {
    /// `GET` or `HEAD` (any case); anything else is refused.
    pub method: String,
    /// Object key; `None` addresses the bucket itself.
    pub key: Option<String>,
    /// Query parameters, raw (the client encodes them).
    pub query: Vec<(String, String)>,
    /// Extra headers; any of [`HOST_OWNED_HEADERS`] makes the request fail.
    pub headers: Vec<(String, String)>,
}

/// The answer to a [`RawRequest`], whatever its status.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// HTTP status code, success or not.
    pub status: u16,
    /// Response headers, names in lower case; values that are not visible ASCII are dropped.
    pub headers: Vec<(String, String)>,
    /// The whole body, at most the `max_body` given to [`S3Client::send_raw`].
    pub body: Bytes,
}

/// Headers a raw request may not set: the host owns addressing and signing.
pub const HOST_OWNED_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
];

/// The largest error body read to classify a failure.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// The largest XML result document accepted.
const RESULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// A client for one bucket. Cheap to clone; clones share the connection
/// pool, the credentials and the counters.
#[derive(Clone)]
pub struct S3Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    bucket: String,
    credentials: RwLock<Credentials>,
    http: HttpClient,
    retry: RetryPolicy,
    request_timeout: Duration,
    read_timeout: Duration,
    sign_payload: bool,
    stats: ClientStats,
    /// Why the last request was refused for its credentials; cleared by
    /// the next success. What a mount's health check reports.
    auth_failure: Mutex<Option<String>>,
    /// Whether `auth_failure` is set, so successes need not lock to clear it.
    auth_failed: AtomicBool,
    uploads: RwLock<Option<Arc<dyn UploadObserver>>>,
}

impl fmt::Debug for S3Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Client")
            .field("endpoint", &self.inner.endpoint)
            .field("bucket", &self.inner.bucket)
            .finish_non_exhaustive()
    }
}

impl S3Client {
    /// Builds a client (and its connection pool) for `cfg`; fails on an empty or unusable bucket name or a
    /// transport that cannot be set up. Sends no request.
    pub fn new(cfg: ClientConfig) -> Result<Self, ClientBuildError> {
        if cfg.bucket.is_empty() {
            return Err(ClientBuildError::EmptyBucket);
        }
        cfg.endpoint.check_bucket(&cfg.bucket)?;
        let http = build_client(&cfg.transport)?;
        let sign_payload = cfg.sign_payload && !cfg.endpoint.is_https();
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint: cfg.endpoint,
                bucket: cfg.bucket,
                credentials: RwLock::new(cfg.credentials),
                http,
                retry: cfg.retry,
                request_timeout: cfg.request_timeout,
                read_timeout: cfg.read_timeout,
                sign_payload,
                stats: ClientStats::default(),
                auth_failure: Mutex::new(None),
                auth_failed: AtomicBool::new(false),
                uploads: RwLock::new(None),
            }),
        })
    }

    /// The endpoint every request goes to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The bucket every request addresses.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// Replaces the credentials used by every later request, including
    /// those of mounts already using this client.
    pub fn set_credentials(&self, credentials: Credentials) {
        *self.inner.credentials.write().unwrap_or_else(|p| p.into_inner()) = credentials;
    }

    /// Why the bucket refused this client's credentials on the last
    /// request, if it did (revoked or rotated keys); `None` once a request
    /// succeeds again.
    pub fn auth_failure(&self) -> Option<String> {
        self.inner
            .auth_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reports this client's multipart uploads to `observer` from now on.
    pub fn set_upload_observer(&self, observer: Arc<dyn UploadObserver>) {
        *self.inner.uploads.write().unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    fn upload_observer(&self) -> Option<Arc<dyn UploadObserver>> {
        self.inner.uploads.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A snapshot of the request counters, shared by all clones of this client.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.inner.stats;
        StatsSnapshot {
            by_outcome: Operation::ALL
                .iter()
                .flat_map(|op| {
                    Outcome::ALL.iter().filter_map(move |o| {
                        let n = s.outcomes[op.index()][*o as usize].load(Ordering::Relaxed);
                        (n > 0).then_some((*op, *o, n))
                    })
                })
                .collect(),
            by_operation: Operation::ALL
                .iter()
                .map(|op| {
                    (
                        *op,
                        s.requests[op.index()].load(Ordering::Relaxed),
                        s.errors[op.index()].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            retries: s.retries.load(Ordering::Relaxed),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            bytes_received: s.bytes_received.load(Ordering::Relaxed),
        }
    }

    // ---- bucket ----

    /// HeadBucket: the bucket exists and the credentials may use it.
    pub async fn head_bucket(&self) -> Result<(), S3Error> {
        let call = Call::new(Operation::HeadBucket, Method::HEAD);
        self.send(call).await.map(drop)
    }

    // ---- listing ----

    /// One page of ListObjectsV2 (ListObjects where the store has only v1).
    pub async fn list_objects(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        max_keys: Option<u32>,
        continuation: Option<&str>,
        start_after: Option<&str>,
    ) -> Result<ListPage, S3Error> {
        let v1 = self.inner.endpoint.quirks().list_objects_v1_only;
        let max = max_keys.map(|m| m.to_string());
        let mut call = Call::new(Operation::ListObjects, Method::GET);
        if !v1 {
            call.query("list-type", "2");
        }
        call.query("encoding-type", "url");
        call.query("prefix", prefix);
        if let Some(d) = delimiter {
            call.query("delimiter", d);
        }
        if let Some(m) = &max {
            call.query("max-keys", m);
        }
        match (v1, continuation) {
            (false, Some(t)) => call.query("continuation-token", t),
            (true, Some(t)) => call.query("marker", t),
            (true, None) => {
                if let Some(s) = start_after {
                    call.query("marker", s);
                }
            }
            (false, None) => {}
        }
        if let (false, Some(s)) = (v1, start_after) {
            call.query("start-after", s);
        }
        let body = self.send_for_body(call, RESULT_BODY_LIMIT).await?;
        xml::parse_list(&body, v1).map_err(|reason| S3Error::InvalidResponse {
            operation: "ListObjects",
            reason,
        })
    }

    /// Every page under `prefix`, fetched one after the other as the stream is read.
    pub fn list_pages(
        &self,
        prefix: String,
        delimiter: Option<String>,
        max_keys: Option<u32>,
    ) -> impl Stream<Item = Result<ListPage, S3Error>> + Send + 'static {
        let client = self.clone();
        futures_util::stream::try_unfold(Some(None::<String>), move |state| {
            let client = client.clone();
            let prefix = prefix.clone();
            let delimiter = delimiter.clone();
            async move {
                let Some(token) = state else { return Ok(None) };
                let page = client
                    .list_objects(&prefix, delimiter.as_deref(), max_keys, token.as_deref(), None)
                    .await?;
                let next = page.next_token.clone().map(Some);
                Ok(Some((page, next)))
            }
        })
    }

    // ---- objects ----

    /// HeadObject.
    pub async fn head_object(&self, key: &str) -> Result<ObjectMeta, S3Error> {
        let mut call = Call::new(Operation::HeadObject, Method::HEAD);
        call.key = Some(key);
        let resp = self.send(call).await?;
        Ok(meta_from_headers(resp.headers(), None))
    }

    /// GetObject, streamed; `range` is half-open (`start..end`). A range that
    /// starts past the end of the object is an `InvalidRange` service error.
    /// `if_match` pins the ETag so a concurrent overwrite is detected.
    pub async fn get_object(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        if_match: Option<&str>,
    ) -> Result<GetObjectOutput, S3Error> {
        let mut call = Call::new(Operation::GetObject, Method::GET);
        call.key = Some(key);
        if let Some(r) = &range {
            if r.end <= r.start {
                return Err(S3Error::InvalidRequest {
                    operation: "GetObject",
                    reason: format!("empty range {r:?}"),
                });
            }
            call.header("range", format!("bytes={}-{}", r.start, r.end - 1));
        }
        if let Some(e) = if_match {
            call.header("if-match", e.to_string());
        }
        let resp = self.send(call).await?;
        let content_range = resp
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range);
        let status = resp.status();
        let total = content_range.as_ref().map(|(_, t)| *t);
        let meta = meta_from_headers(resp.headers(), total);
        let range = match (status, content_range) {
            (StatusCode::PARTIAL_CONTENT, Some((r, _))) => Some(r),
            _ => None,
        };
        let body = ByteStream::new(
            resp.into_body(),
            self.inner.read_timeout,
            self.inner.clone(),
            Operation::GetObject,
        );
        Ok(GetObjectOutput { meta, range, body })
    }

    /// GetObject of a whole (small) object into memory, up to `limit` bytes.
    pub async fn get_object_bytes(&self, key: &str, range: Option<Range<u64>>, limit: usize) -> Result<Bytes, S3Error> {
        self.get_object(key, range, None)
            .await?
            .body
            .collect(limit, "GetObject")
            .await
    }

    /// PutObject; returns the new ETag.
    pub async fn put_object(&self, key: &str, body: Payload, opts: &PutOptions) -> Result<Option<String>, S3Error> {
        let mut call = Call::new(Operation::PutObject, Method::PUT);
        call.key = Some(key);
        call.payload = body;
        put_headers(&mut call, opts);
        let resp = self.send(call).await?;
        Ok(header_string(resp.headers(), "etag"))
    }

    /// CopyObject within the bucket (objects up to 5 GiB; use
    /// [`S3Client::upload_part_copy`] beyond). Returns the new ETag.
    pub async fn copy_object(
        &self,
        src_key: &str,
        dst_key: &str,
        opts: Option<&PutOptions>,
    ) -> Result<Option<String>, S3Error> {
        let mut call = Call::new(Operation::CopyObject, Method::PUT);
        call.key = Some(dst_key);
        call.header("x-amz-copy-source", self.copy_source(src_key));
        if let Some(o) = opts {
            call.header("x-amz-metadata-directive", "REPLACE".to_string());
            put_headers(&mut call, o);
        }
        let body = self.send_for_body(call, RESULT_BODY_LIMIT).await?;
        xml::parse_etag_result(&body).map_err(|reason| S3Error::InvalidResponse {
            operation: "CopyObject",
            reason,
        })
    }

    /// DeleteObject (succeeds for a missing key, as S3 does).
    pub async fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        let mut call = Call::new(Operation::DeleteObject, Method::DELETE);
        call.key = Some(key);
        self.send(call).await.map(drop)
    }

    /// DeleteObjects, up to 1,000 keys; returns the keys that failed.
    pub async fn delete_objects(&self, keys: &[String]) -> Result<Vec<DeleteFailure>, S3Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if keys.len() > 1000 {
            return Err(S3Error::InvalidRequest {
                operation: "DeleteObjects",
                reason: "more than 1000 keys".into(),
            });
        }
        let body = xml::delete_objects_body(keys);
        let md5 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            md5::Md5::digest(body.as_bytes()),
        );
        let mut call = Call::new(Operation::DeleteObjects, Method::POST);
        call.query("delete", "");
        call.header("content-md5", md5);
        call.header("content-type", "application/xml".into());
        call.payload = Payload::Bytes(body.into());
        let body = self.send_for_body(call, RESULT_BODY_LIMIT).await?;
        xml::parse_delete_result(&body).map_err(|reason| S3Error::InvalidResponse {
            operation: "DeleteObjects",
            reason,
        })
    }

    // ---- multipart ----

    /// CreateMultipartUpload; returns the upload id.
    pub async fn create_multipart_upload(&self, key: &str, opts: &PutOptions) -> Result<String, S3Error> {
        let mut call = Call::new(Operation::CreateMultipartUpload, Method::POST);
        call.key = Some(key);
        call.query("uploads", "");
        put_headers(&mut call, opts);
        let body = self.send_for_body(call, RESULT_BODY_LIMIT).await?;
        let id = xml::parse_upload_id(&body).map_err(|reason| S3Error::InvalidResponse {
            operation: "CreateMultipartUpload",
            reason,
        })?;
        if let Some(o) = self.upload_observer() {
            o.started(key, &id);
        }
        Ok(id)
    }

    /// UploadPart; returns the part's ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Payload,
    ) -> Result<CompletedPart, S3Error> {
        let n = part_number.to_string();
        let mut call = Call::new(Operation::UploadPart, Method::PUT);
        call.key = Some(key);
        call.query("partNumber", &n);
        call.query("uploadId", upload_id);
        call.payload = body;
        let resp = self.send(call).await?;
        let etag = header_string(resp.headers(), "etag").ok_or_else(|| S3Error::InvalidResponse {
            operation: "UploadPart",
            reason: "no ETag in the response".into(),
        })?;
        Ok(CompletedPart { part_number, etag })
    }

    /// UploadPartCopy: part `part_number` is `range` (half-open) of `src_key`.
    pub async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        src_key: &str,
        range: Range<u64>,
    ) -> Result<CompletedPart, S3Error> {
        let n = part_number.to_string();
        let mut call = Call::new(Operation::UploadPartCopy, Method::PUT);
        call.key = Some(key);
        call.query("partNumber", &n);
        call.query("uploadId", upload_id);
        call.header("x-amz-copy-source", self.copy_source(src_key));
        call.header(
            "x-amz-copy-source-range",
            format!("bytes={}-{}", range.start, range.end.saturating_sub(1)),
        );
        let body = self.send_for_body(call, RESULT_BODY_LIMIT).await?;
        let etag = xml::parse_etag_result(&body)
            .map_err(|reason| S3Error::InvalidResponse {
                operation: "UploadPartCopy",
                reason,
            })?
            .ok_or_else(|| S3Error::InvalidResponse {
                operation: "UploadPartCopy",
                reason: "no ETag".into(),
            })?;
        Ok(CompletedPart { part_number, etag })
    }

    /// CompleteMultipartUpload; returns the object's ETag.
    pub async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<Option<String>, S3Error> {
        let mut call = Call::new(Operation::CompleteMultipartUpload, Method::POST);
        call.key = Some(key);
        call.query("uploadId", upload_id);
        call.header("content-type", "application/xml".into());
        call.payload = Payload::Bytes(xml::complete_multipart_body(parts).into());
        let body = self.send_for_body(call, RESULT_BODY_LIMIT).await?;
        if let Some(o) = self.upload_observer() {
            o.ended(upload_id);
        }
        xml::parse_etag_result(&body).map_err(|reason| S3Error::InvalidResponse {
            operation: "CompleteMultipartUpload",
            reason,
        })
    }

    /// AbortMultipartUpload.
    pub async fn abort_multipart_upload(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        let mut call = Call::new(Operation::AbortMultipartUpload, Method::DELETE);
        call.key = Some(key);
        call.query("uploadId", upload_id);
        let result = self.send(call).await.map(drop);
        // Gone already counts as ended: nothing is left to clean up.
        if matches!(&result, Ok(())) || matches!(&result, Err(e) if e.is_not_found()) {
            if let Some(o) = self.upload_observer() {
                o.ended(upload_id);
            }
        }
        result
    }

    /// One page of ListMultipartUploads under `prefix`.
    pub async fn list_multipart_uploads(
        &self,
        prefix: &str,
        next: Option<(&str, &str)>,
    ) -> Result<UploadsPage, S3Error> {
        let mut call = Call::new(Operation::ListMultipartUploads, Method::GET);
        call.query("uploads", "");
        call.query("prefix", prefix);
        if let Some((k, u)) = next {
            call.query("key-marker", k);
            call.query("upload-id-marker", u);
        }
        let body = self.send_for_body(call, RESULT_BODY_LIMIT).await?;
        xml::parse_uploads(&body).map_err(|reason| S3Error::InvalidResponse {
            operation: "ListMultipartUploads",
            reason,
        })
    }

    // ---- raw (plugins) ----

    /// Signs and sends a read-only request for a provider plugin, to this
    /// client's endpoint and bucket only. No retries; the body is cut off
    /// with an error beyond `max_body` bytes.
    pub async fn send_raw(&self, req: &RawRequest, max_body: usize) -> Result<RawResponse, S3Error> {
        const OP: &str = "Raw";
        let method = match req.method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            other => {
                return Err(S3Error::InvalidRequest {
                    operation: OP,
                    reason: format!("method {other} not allowed (GET, HEAD only)"),
                })
            }
        };
        let mut call = Call::new(Operation::Raw, method);
        call.key = req.key.as_deref();
        for (k, v) in &req.query {
            call.query(k, v);
        }
        for (k, v) in &req.headers {
            let lower = k.to_ascii_lowercase();
            if HOST_OWNED_HEADERS.contains(&lower.as_str()) {
                return Err(S3Error::InvalidRequest {
                    operation: OP,
                    reason: format!("header {k} is set by the host"),
                });
            }
            call.header_named(&lower, v.clone())?;
        }
        call.accept_any_status = true;
        let resp = self.send(call).await?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = ByteStream::new(
            resp.into_body(),
            self.inner.read_timeout,
            self.inner.clone(),
            Operation::Raw,
        )
        .collect(max_body, OP)
        .await?;
        Ok(RawResponse { status, headers, body })
    }

    /// A presigned GET URL for `key`, valid for `expires_in`: lets a plain
    /// HTTP client (curl, a browser) fetch one object without credentials.
    pub fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, S3Error> {
        let inner = &self.inner;
        let signing = |reason: String| S3Error::Signing {
            operation: "PresignGet",
            reason,
        };
        let uri = inner.endpoint.request_uri(&inner.bucket, Some(key), &[]);
        let signable = SignableRequest::new("GET", uri.as_str(), std::iter::empty(), SignableBody::UnsignedPayload)
            .map_err(|e| signing(e.to_string()))?;
        let mut settings = s3_signing_settings();
        settings.signature_location = aws_sigv4::http_request::SignatureLocation::QueryParams;
        settings.expires_in = Some(expires_in);
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        let instructions = self.sign(signable, settings).map_err(signing)?;
        let mut req = Request::builder()
            .uri(uri)
            .body(())
            .map_err(|e| signing(e.to_string()))?;
        instructions.apply_to_request_http1x(&mut req);
        Ok(req.uri().to_string())
    }

    // ---- plumbing ----

    /// Signs with the current credentials; the secret is only borrowed for
    /// the duration of the call.
    fn sign(&self, signable: SignableRequest<'_>, settings: SigningSettings) -> Result<SigningInstructions, String> {
        let identity = self
            .inner
            .credentials
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .identity();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.inner.endpoint.signing_region())
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let (instructions, _signature) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
        Ok(instructions)
    }

    fn copy_source(&self, src_key: &str) -> String {
        format!(
            "/{}/{}",
            super::endpoint::encode_query(&self.inner.bucket),
            super::endpoint::encode_key(src_key)
        )
    }

    /// Sends and reads the (bounded) body of a successful response; a 200
    /// carrying an `<Error>` document becomes a service error.
    async fn send_for_body(&self, call: Call<'_>, limit: usize) -> Result<Bytes, S3Error> {
        let op = call.op;
        let resp = self.send(call).await?;
        let body = ByteStream::new(resp.into_body(), self.inner.read_timeout, self.inner.clone(), op)
            .collect(limit, op.name())
            .await?;
        if let Some(source) = ServiceError::from_embedded(&body) {
            self.inner.stats.errors[op.index()].fetch_add(1, Ordering::Relaxed);
            return Err(S3Error::Service {
                operation: op.name(),
                source: Box::new(source),
            });
        }
        Ok(body)
    }

    /// Sends with retries; returns a response with a success status (or any
    /// status for raw calls).
    async fn send(&self, mut call: Call<'_>) -> Result<Response<Incoming>, S3Error> {
        let inner = &self.inner;
        let op = call.op;
        let host = inner.endpoint.request_host(&inner.bucket);
        let uri = inner.endpoint.request_uri(
            &inner.bucket,
            call.key,
            &call.query.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
        );
        let payload_len = call.payload.len();
        let timeout = inner.request_timeout + Duration::from_secs(payload_len / (1024 * 1024));
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let replayable = !matches!(call.payload, Payload::Stream { .. });
            let body = match &call.payload {
                Payload::Empty => BodySource::Empty,
                Payload::Bytes(b) => BodySource::Bytes(b.clone()),
                Payload::Stream { .. } => {
                    let Payload::Stream { stream, .. } = std::mem::replace(&mut call.payload, Payload::Empty) else {
                        unreachable!()
                    };
                    BodySource::Stream(stream)
                }
            };
            let req = self.build_request(&call, &uri, body, payload_len)?;
            inner.stats.requests[op.index()].fetch_add(1, Ordering::Relaxed);
            inner.stats.bytes_sent.fetch_add(payload_len, Ordering::Relaxed);
            let outcome = tokio::time::timeout(timeout, inner.http.request(req)).await;
            let can_retry = |attempt: u32| {
                replayable && attempt < inner.retry.max_attempts && started.elapsed() < inner.retry.max_elapsed
            };
            match &outcome {
                Ok(Ok(resp)) => inner.stats.count(op, Outcome::of_status(resp.status())),
                _ => inner.stats.count(op, Outcome::Network),
            }
            let err = match outcome {
                Ok(Ok(resp)) if resp.status().is_success() || call.accept_any_status => {
                    if resp.status().is_success() {
                        self.clear_auth_failure();
                    }
                    return Ok(resp);
                }
                Ok(Ok(resp)) if resp.status() == StatusCode::NOT_MODIFIED => return Ok(resp),
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = ByteStream::new(resp.into_body(), inner.read_timeout, inner.clone(), op)
                        .collect(ERROR_BODY_LIMIT, op.name())
                        .await
                        .unwrap_or_default();
                    let source = ServiceError::from_response(status, &headers, &body);
                    if source.is_auth() || status == StatusCode::UNAUTHORIZED {
                        self.note_auth_failure(&source);
                    }
                    // A 503 means the service refused the request before acting on it.
                    let refused = status == StatusCode::SERVICE_UNAVAILABLE || source.code == "SlowDown";
                    let retry = source.is_retryable() && (op.idempotent() || refused);
                    (
                        S3Error::Service {
                            operation: op.name(),
                            source: Box::new(source),
                        },
                        retry,
                    )
                }
                Ok(Err(e)) => {
                    let connect = e.is_connect();
                    let reason = error_chain(&e);
                    if connect {
                        (
                            S3Error::Connect {
                                operation: op.name(),
                                host: host.clone(),
                                reason,
                            },
                            true,
                        )
                    } else {
                        (
                            S3Error::Transport {
                                operation: op.name(),
                                host: host.clone(),
                                reason,
                            },
                            op.idempotent(),
                        )
                    }
                }
                Err(_) => (
                    S3Error::Timeout {
                        operation: op.name(),
                        host: host.clone(),
                        timeout,
                    },
                    op.idempotent(),
                ),
            };
            let (error, retryable) = err;
            inner.stats.errors[op.index()].fetch_add(1, Ordering::Relaxed);
            let policy_refused = matches!(&error, S3Error::Connect { reason, .. } if reason.contains("is not allowed"));
            if !retryable || policy_refused || !can_retry(attempt) {
                return Err(error);
            }
            inner.stats.retries.fetch_add(1, Ordering::Relaxed);
            let pause = inner.retry.backoff(attempt);
            tracing::debug!(operation = op.name(), attempt, ?pause, error = %error, "retrying S3 request");
            tokio::time::sleep(pause).await;
        }
    }

    fn note_auth_failure(&self, e: &ServiceError) {
        let why = format!(
            "the bucket refuses the disk's credentials ({}: {}); rotate them",
            e.code, e.message
        );
        *self.inner.auth_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        self.inner.auth_failed.store(true, Ordering::Release);
    }

    /// Runs on every successful request: only a failure recorded before
    /// costs a lock.
    fn clear_auth_failure(&self) {
        if self.inner.auth_failed.swap(false, Ordering::AcqRel) {
            *self.inner.auth_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    fn build_request(
        &self,
        call: &Call<'_>,
        uri: &str,
        body: BodySource,
        len: u64,
    ) -> Result<Request<RequestBody>, S3Error> {
        let inner = &self.inner;
        let op = call.op.name();
        let signing = |reason: String| S3Error::Signing { operation: op, reason };
        let mut req = Request::builder().method(call.method.clone()).uri(uri);
        let mut headers: Vec<(HeaderName, HeaderValue)> = call.headers.clone();
        if let (true, Operation::PutObject, BodySource::Bytes(b)) =
            (inner.endpoint.quirks().checksum_headers, call.op, &body)
        {
            // End-to-end integrity for stores that check it; off by default
            // because several S3-compatible stores reject these headers.
            let crc = crc32fast::hash(b).to_be_bytes();
            let value = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, crc);
            headers.push((
                HeaderName::from_static("x-amz-sdk-checksum-algorithm"),
                HeaderValue::from_static("CRC32"),
            ));
            if let Ok(v) = HeaderValue::try_from(value) {
                headers.push((HeaderName::from_static("x-amz-checksum-crc32"), v));
            }
        }
        let has_body = !matches!(body, BodySource::Empty) || matches!(call.method, Method::PUT | Method::POST);
        if has_body {
            headers.push((CONTENT_LENGTH, HeaderValue::from(len)));
        }
        let payload_hash;
        let signable_body = match &body {
            BodySource::Empty => SignableBody::Bytes(&[]),
            BodySource::Bytes(b) if inner.sign_payload => SignableBody::Bytes(b),
            BodySource::Bytes(_) | BodySource::Stream(_) => {
                payload_hash = "UNSIGNED-PAYLOAD".to_string();
                SignableBody::Precomputed(payload_hash)
            }
        };
        let header_strs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| Ok((k.as_str(), v.to_str().map_err(|e| signing(e.to_string()))?)))
            .collect::<Result<_, S3Error>>()?;
        let signable = SignableRequest::new(call.method.as_str(), uri, header_strs.into_iter(), signable_body)
            .map_err(|e| signing(e.to_string()))?;
        let instructions = self.sign(signable, s3_signing_settings()).map_err(signing)?;
        if let Some(h) = req.headers_mut() {
            for (k, v) in headers {
                h.append(k, v);
            }
        }
        let body: RequestBody = match body {
            BodySource::Empty => Empty::new().map_err(|never| match never {}).boxed_unsync(),
            BodySource::Bytes(b) => Full::new(b).map_err(|never| match never {}).boxed_unsync(),
            BodySource::Stream(s) => {
                let frames = s
                    .map_ok(Frame::data)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
                BodyExt::boxed_unsync(StreamBody::new(frames))
            }
        };
        let mut req = req.body(body).map_err(|e| S3Error::InvalidRequest {
            operation: op,
            reason: e.to_string(),
        })?;
        instructions.apply_to_request_http1x(&mut req);
        Ok(req)
    }
}

/// S3's SigV4 dialect: keys are encoded once and paths never normalised.
fn s3_signing_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings
}

enum BodySource {
    Empty,
    Bytes(Bytes),
    Stream(BoxStream<'static, std::io::Result<Bytes>>),
}

/// One request before signing.
struct Call<'a> {
    op: Operation,
    method: Method,
    key: Option<&'a str>,
    query: Vec<(&'a str, String)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    payload: Payload,
    accept_any_status: bool,
}

impl<'a> Call<'a> {
    fn new(op: Operation, method: Method) -> Self {
        Self {
            op,
            method,
            key: None,
            query: Vec::new(),
            headers: Vec::new(),
            payload: Payload::Empty,
            accept_any_status: false,
        }
    }

    fn query(&mut self, k: &'a str, v: &str) {
        self.query.push((k, v.to_string()));
    }

    /// Adds a header the client itself composes (always valid).
    fn header(&mut self, name: &'static str, value: String) {
        if let Ok(v) = HeaderValue::try_from(value) {
            self.headers.push((HeaderName::from_static(name), v));
        }
    }

    fn header_named(&mut self, name: &str, value: String) -> Result<(), S3Error> {
        let bad = |reason: String| S3Error::InvalidRequest {
            operation: self.op.name(),
            reason,
        };
        let n = HeaderName::try_from(name).map_err(|e| bad(format!("header name {name:?}: {e}")))?;
        let v = HeaderValue::try_from(value).map_err(|e| bad(format!("header {name}: {e}")))?;
        self.headers.push((n, v));
        Ok(())
    }
}

fn put_headers(call: &mut Call<'_>, opts: &PutOptions) {
    if let Some(ct) = &opts.content_type {
        if let Ok(v) = HeaderValue::try_from(ct.as_str()) {
            call.headers.push((CONTENT_TYPE, v));
        }
    }
    for (k, v) in &opts.metadata {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(format!("x-amz-meta-{}", k.to_ascii_lowercase())),
            HeaderValue::try_from(v.as_str()),
        ) {
            call.headers.push((n, v));
        }
    }
    if opts.if_none_match {
        call.header("if-none-match", "*".into());
    }
}

fn header_string(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn meta_from_headers(h: &HeaderMap, total_size: Option<u64>) -> ObjectMeta {
    let size = total_size.unwrap_or_else(|| {
        h.get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    let metadata = h
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix("x-amz-meta-")?;
            Some((name.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect();
    ObjectMeta {
        size,
        etag: header_string(h, "etag"),
        last_modified: h
            .get("last-modified")
            .and_then(|v| v.to_str().ok())
            .and_then(super::time::parse_http_date),
        content_type: header_string(h, "content-type"),
        metadata,
    }
}

/// `bytes START-END/TOTAL` → (START..END+1, TOTAL).
fn parse_content_range(v: &str) -> Option<(Range<u64>, u64)> {
    let rest = v.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end: u64 = b.trim().parse().ok()?;
    let total: u64 = total.trim().parse().ok()?;
    Some((start..end + 1, total))
}

/// The error and its causes on one line (hyper's top-level message alone
/// says little: "client error (Connect)").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0..10, 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
    }

    #[test]
    fn only_creates_and_completes_are_not_idempotent() {
        let non: Vec<_> = Operation::ALL.iter().filter(|o| !o.idempotent()).collect();
        assert_eq!(
            non,
            [
                &Operation::CreateMultipartUpload,
                &Operation::CompleteMultipartUpload,
                &Operation::Raw
            ]
        );
    }
}
