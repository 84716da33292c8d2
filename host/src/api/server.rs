//! The HTTP plumbing: listener, optional TLS, per-connection hyper tasks,
//! request ids, access log, body limit, graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;
use zeroize::Zeroizing;

use super::envelope::{ApiError, Body};
use super::{routes, AppState};

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a client may take to send a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Certificate chain and private key files (PEM).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM file with the server's certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// PEM file with the certificate's private key.
    pub key: std::path::PathBuf,
}

/// Builds the rustls acceptor for `tls`.
pub fn tls_acceptor(tls: &TlsFiles) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use anyhow::Context as _;
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let certs = rustls_pemfile::certs(&mut read(&tls.cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", tls.cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", tls.cert.display());
    let key = rustls_pemfile::private_key(&mut read(&tls.key)?.as_slice())
        .with_context(|| format!("parsing the private key in {}", tls.key.display()))?
        .with_context(|| format!("{} holds no private key", tls.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Accepts connections until `shutdown` flips, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let watcher = graceful.watcher();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, req, peer).await) }
                    });
                    let mut builder = http1::Builder::new();
                    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).keep_alive(true);
                    let result = match tls {
                        None => watcher.watch(builder.serve_connection(TokioIo::new(stream), svc)).await,
                        Some(acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls_stream)) => watcher.watch(builder.serve_connection(TokioIo::new(tls_stream), svc)).await,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        },
                    };
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: draining requests in flight"
    );
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown: some connections did not finish within {DRAIN_TIMEOUT:?}");
    }
}

/// A valid client-supplied request id is kept; otherwise a new one.
fn request_id(req: &Request<Incoming>) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("req_{}", ulid::Ulid::new()))
}

/// Per-request facts for the access log.
#[derive(Default)]
pub(crate) struct RequestLog {
    pub tenant: Option<String>,
}

async fn handle(state: Arc<AppState>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let rid = request_id(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %rid);
    let mut log = RequestLog::default();
    let result = routes::route(&state, req, &mut log).instrument(span.clone()).await;
    let mut resp = result.unwrap_or_else(ApiError::into_response);
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let took = started.elapsed();
    state
        .api_metrics
        .record(routes::template(&path), routes::method_label(&method), status, took);
    let us = took.as_micros() as u64;
    let _enter = span.enter();
    let tenant = log.tenant.as_deref().unwrap_or("-");
    if status >= 500 {
        tracing::warn!(%peer, %method, %path, status, tenant, us, "request");
    } else {
        tracing::info!(%peer, %method, %path, status, tenant, us, "request");
    }
    resp
}

/// Bodies up to this size are read to the end (and dropped) before a 413
/// is sent, so that the client, still sending, sees the answer instead of a
/// reset connection. Larger ones get the 413 at once and the connection closes.
const DRAIN_LIMIT: u64 = 2 * 1024 * 1024;

/// Reads a JSON request body of at most `limit` bytes into a buffer that is
/// zeroized when dropped (it may hold credentials). The buffer is allocated
/// once at full size, so no reallocation leaves a copy behind.
pub(crate) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
        .with("limit", limit)
    };
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ok = ct
            .to_str()
            .ok()
            .and_then(|s| s.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !ok {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON (Content-Type: application/json)",
            ));
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(too_large());
    }
    let mut over = declared.is_some_and(|n| n > limit as u64);
    let mut out = Zeroizing::new(Vec::with_capacity(declared.map_or(limit, |n| n as usize).min(limit)));
    let mut seen = 0u64;
    let mut body = req.into_body();
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body did not arrive in time",
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    format!("could not read the request body: {e}"),
                ))
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len() as u64;
        if seen > limit as u64 {
            over = true;
        }
        if over {
            if seen > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        out.extend_from_slice(&data);
        // `data` is dropped here; hyper's own buffers are not under our control.
    }
    if over {
        return Err(too_large());
    }
    Ok(out)
}
