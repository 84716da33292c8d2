//! The connection layer: pooled hyper client, rustls, name resolution with
//! overrides and an address policy checked on every new connection.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Decides which addresses the client may connect to (server-side request
/// forgery defence). Checked after every DNS resolution, so a name that
/// rebinds to a forbidden address between two connections is still refused.
pub trait AddressPolicy: Send + Sync + std::fmt::Debug {
    /// `Err(reason)` refuses the connection.
    fn check(&self, host: &str, addr: IpAddr) -> Result<(), String>;
}

/// Allows every address.
#[derive(Debug, Default)]
pub struct AllowAll;

impl AddressPolicy for AllowAll {
    fn check(&self, _host: &str, _addr: IpAddr) -> Result<(), String> {
        Ok(())
    }
}

/// Host name to address overrides, like curl's `--resolve`. A key starting
/// with `*.` matches every subdomain (`*.localhost` for virtual-hosted
/// requests against a loopback server).
#[derive(Clone, Debug, Default)]
pub struct ResolveOverrides {
    map: HashMap<String, IpAddr>,
}

impl ResolveOverrides {
    /// No overrides: every name goes to the system resolver.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends connections for `host` (case-insensitive; `*.domain` for every subdomain of `domain`, not
    /// `domain` itself) to `addr`, replacing an earlier override of the same name.
    pub fn insert(&mut self, host: impl Into<String>, addr: IpAddr) -> &mut Self {
        self.map.insert(host.into().to_ascii_lowercase(), addr);
        self
    }

    /// The override for `host`: an exact match first, else the closest `*.` wildcard; `None` when the
    /// system resolver should be asked.
    pub fn lookup(&self, host: &str) -> Option<IpAddr> {
        let host = host.to_ascii_lowercase();
        if let Some(a) = self.map.get(&host) {
            return Some(*a);
        }
        let mut rest = host.as_str();
        while let Some((_, tail)) = rest.split_once('.') {
            if let Some(a) = self.map.get(&format!("*.{tail}")) {
                return Some(*a);
            }
            rest = tail;
        }
        None
    }
}

/// How the client connects.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Time allowed to establish a TCP connection (TLS handshake not included).
    pub connect_timeout: Duration,
    /// Idle connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// How long an idle pooled connection is kept before it is closed.
    pub pool_idle_timeout: Duration,
    /// An extra PEM file of CA certificates trusted besides the platform's.
    pub extra_ca_file: Option<PathBuf>,
    /// Host names resolved to fixed addresses instead of through DNS (the policy still applies).
    pub resolve: ResolveOverrides,
    /// Which resolved addresses may be connected to; [`AllowAll`] by default.
    pub policy: Arc<dyn AddressPolicy>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            pool_max_idle_per_host: 64,
            pool_idle_timeout: Duration::from_secs(30),
            extra_ca_file: None,
            resolve: ResolveOverrides::default(),
            policy: Arc::new(AllowAll),
        }
    }
}

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// [`TransportConfig::extra_ca_file`] could not be read or holds a malformed PEM certificate.
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        /// The CA file.
        path: PathBuf,
        /// The read or PEM parse error.
        source: std::io::Error,
    },
    /// [`TransportConfig::extra_ca_file`] holds no certificate.
    #[error("CA file {path} holds no usable certificate")]
    CaFileEmpty {
        /// The CA file.
        path: PathBuf,
    },
    /// rustls refused a certificate or the TLS configuration.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

pub(crate) type RequestBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
pub(crate) type HttpClient = Client<HttpsConnector<QuickAckConnector>, RequestBody>;

/// Builds the pooled HTTP(S) client.
pub(crate) fn build_client(cfg: &TransportConfig) -> Result<HttpClient, TransportError> {
    let tls = tls_config(cfg.extra_ca_file.as_deref())?;
    let resolver = PolicyResolver {
        overrides: Arc::new(cfg.resolve.clone()),
        policy: cfg.policy.clone(),
    };
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(30)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(QuickAckConnector(http));
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
        .pool_idle_timeout(cfg.pool_idle_timeout)
        .build(https))
}

/// The TCP connector whose connections acknowledge received data at once.
///
/// A server that leaves Nagle's algorithm on (Garage does) writes a
/// response's headers, then holds a small body until they are
/// acknowledged, while Linux delays that acknowledgement by up to 40 ms:
/// a 4 KiB GET took 42 ms instead of 1. Acknowledging at once costs one
/// small packet per read and removes the stall for any server.
#[derive(Clone)]
pub(crate) struct QuickAckConnector(HttpConnector<PolicyResolver>);

impl tower_service::Service<hyper::Uri> for QuickAckConnector {
    type Response = QuickAck;
    type Error = <HttpConnector<PolicyResolver> as tower_service::Service<hyper::Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAck, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(QuickAck) })
    }
}

/// A TCP connection that re-arms `TCP_QUICKACK` whenever it has to wait
/// for data (the kernel drops back to delayed acknowledgements on its own).
pub(crate) struct QuickAck(TokioIo<tokio::net::TcpStream>);

impl QuickAck {
    fn arm(&self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let on: libc::c_int = 1;
            // SAFETY: a valid socket descriptor owned by this connection and
            // an option value of the size passed. A failure only leaves the
            // default acknowledgement timing, so it is ignored.
            unsafe {
                libc::setsockopt(
                    self.0.inner().as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

impl hyper::rt::Read for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let read = Pin::new(&mut self.0).poll_read(cx, buf);
        // Only waiting matters: data already queued was acknowledged when it
        // arrived. Arming also sends an acknowledgement the kernel is still
        // holding back, so a segment that landed just before this is covered.
        if read.is_pending() {
            self.arm();
        }
        read
    }
}

impl hyper::rt::Write for QuickAck {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

impl Connection for QuickAck {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}

pub(crate) fn tls_config(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig, TransportError> {
    let mut roots = platform_roots().clone();
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path).map_err(|source| TransportError::CaFile {
            path: path.to_path_buf(),
            source,
        })?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|source| TransportError::CaFile {
                path: path.to_path_buf(),
                source,
            })?;
            roots.add(cert).map_err(|e| TransportError::Tls(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(TransportError::CaFileEmpty {
                path: path.to_path_buf(),
            });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}

/// The platform's CA certificates, read once per process: reading them is
/// slow (every file of the system store) and a host builds a client per disk.
/// An unreadable system store is not fatal when an extra CA is configured
/// (a self-hosted store), so only what loads counts.
fn platform_roots() -> &'static rustls::RootCertStore {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

/// Resolves names through the overrides, else the system resolver, and
/// drops addresses the policy refuses.
#[derive(Clone, Debug)]
pub(crate) struct PolicyResolver {
    overrides: Arc<ResolveOverrides>,
    policy: Arc<dyn AddressPolicy>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    #[error("DNS lookup of {host} failed: {source}")]
    Lookup { host: String, source: std::io::Error },
    #[error("{host} resolved to no address")]
    NoAddress { host: String },
    #[error("address {addr} of {host} is not allowed: {reason}")]
    NotAllowed { host: String, addr: IpAddr, reason: String },
}

impl tower_service::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = match this.overrides.lookup(&host) {
                Some(ip) => vec![SocketAddr::new(ip, 0)],
                None => tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map_err(|source| ResolveError::Lookup {
                        host: host.clone(),
                        source,
                    })?
                    .collect(),
            };
            if addrs.is_empty() {
                return Err(ResolveError::NoAddress { host });
            }
            let mut allowed = Vec::with_capacity(addrs.len());
            let mut refused = None;
            for a in addrs {
                match this.policy.check(&host, a.ip()) {
                    Ok(()) => allowed.push(a),
                    Err(reason) => refused = Some((a.ip(), reason)),
                }
            }
            match (allowed.is_empty(), refused) {
                (true, Some((addr, reason))) => Err(ResolveError::NotAllowed { host, addr, reason }),
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_override_matches_subdomains_only() {
        let mut o = ResolveOverrides::new();
        o.insert("*.localhost", "127.0.0.1".parse().unwrap());
        assert!(o.lookup("bucket.localhost").is_some());
        assert!(o.lookup("a.b.LOCALHOST").is_some());
        assert!(o.lookup("localhost").is_none());
        assert!(o.lookup("localhost.evil").is_none());
    }
}
