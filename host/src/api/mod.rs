//! The HTTP API: hyper 1 (+ rustls), `X-Api-Key` tenants, JSend envelopes,
//! strict JSON, the Disks routes of `API.md`.
//!
//! [`Server::start`] runs it in-process (tests, embedding); `byos3 serve`
//! is a thin command line around it.

pub mod auth;
pub mod config;
mod disks;
pub mod envelope;
pub mod json;
mod metrics;
mod routes;
mod sandboxes;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::watch;
use zeroize::Zeroizing;

pub use crate::gateway::policy::EndpointPolicy;
pub use crate::gateway::{open_vault, GatewayOptions, DB_FILE, MASTER_KEY_FILE};
pub use auth::ApiKeys;
pub use routes::ROUTES;
pub use server::TlsFiles;

use crate::gateway::state::{create_private_dir, open_state, State};
use crate::mount::MountManager;

/// The OpenAPI 3 description served at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The generated API key hashes inside the state directory.
pub const API_KEYS_FILE: &str = "api-keys";

/// Everything the server needs: where it listens and who may call it,
/// around the [`GatewayOptions`] of the state it serves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The address to bind (loopback by default).
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// The tenants' API keys.
    pub api_keys: ApiKeys,
    /// With no API key configured and none generated before: create one
    /// for tenant `default` (its hash is stored, the key returned once).
    pub generate_api_key: bool,
    /// The state, plugins, keys and mounts served.
    pub gateway: GatewayOptions,
}

impl ServerOptions {
    /// Defaults for a state directory: loopback on `listen`, the bundled
    /// plugins, the key file in the state directory, `BYOS3_MASTER_KEY` if set.
    pub fn new(listen: SocketAddr, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            tls: None,
            api_keys: ApiKeys::new(),
            generate_api_key: true,
            gateway: GatewayOptions::new(state_dir),
        }
    }
}

/// What the HTTP layer shares: the gateway's state plus who may call.
pub(crate) struct AppState {
    pub(crate) gw: Arc<State>,
    pub(crate) keys: ApiKeys,
    pub(crate) body_limit: usize,
    pub(crate) api_metrics: metrics::ApiMetrics,
    /// `GET /metrics` without an API key (the server listens on loopback).
    pub(crate) metrics_open: bool,
}

/// A running API server.
pub struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    generated_key: Option<Zeroizing<String>>,
    disks_unavailable: Option<String>,
    mounts: Arc<MountManager>,
}

impl Server {
    /// Opens the state directory, loads keys and plugins, re-attaches the
    /// recorded disks, binds and serves.
    pub async fn start(opts: ServerOptions) -> anyhow::Result<Server> {
        let g = &opts.gateway;
        create_private_dir(&g.state_dir)?;
        let mut keys = opts.api_keys.clone();
        let key_file = g.state_dir.join(API_KEYS_FILE);
        let mut generated_key = None;
        if key_file.exists() {
            keys.add_file(&key_file).map_err(anyhow::Error::msg)?;
        } else if keys.is_empty() && opts.generate_api_key {
            generated_key = Some(
                auth::create_key_file(&key_file, "default")
                    .with_context(|| format!("writing {}", key_file.display()))?,
            );
            keys.add_file(&key_file).map_err(anyhow::Error::msg)?;
        }
        anyhow::ensure!(
            !keys.is_empty(),
            "no API key is configured (BYOS3_API_KEYS, the config file, or {})",
            key_file.display()
        );
        let tls = opts.tls.as_ref().map(server::tls_acceptor).transpose()?;
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("listening on {}", opts.listen))?;
        let addr = listener.local_addr()?;
        let gw = open_state(g).await?;
        let disks_unavailable = match (&gw.vault, &gw.providers) {
            (Err(e), _) | (_, Err(e)) => Some(e.clone()),
            _ => None,
        };
        let mounts = gw.mounts.clone();
        let state = Arc::new(AppState {
            gw,
            keys,
            body_limit: BODY_LIMIT,
            api_metrics: metrics::ApiMetrics::default(),
            metrics_open: metrics_open_on(addr),
        });
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, tls, state, rx));
        tracing::info!(%addr, tls = opts.tls.is_some(), state_dir = %g.state_dir.display(), "byos3 API listening");
        Ok(Server {
            addr,
            shutdown: tx,
            task,
            generated_key,
            disks_unavailable,
            mounts,
        })
    }

    /// The address the server is bound to (the actual port when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API key created on this start (no key was configured), to show once.
    pub fn take_generated_key(&mut self) -> Option<Zeroizing<String>> {
        self.generated_key.take()
    }

    /// Why the disks routes answer 503, if they do.
    pub fn disks_unavailable(&self) -> Option<&str> {
        self.disks_unavailable.as_deref()
    }

    /// Stops accepting, lets requests in flight finish, then flushes and
    /// unmounts every attached disk (they are re-attached on the next start).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        for (req, e) in self.mounts.shutdown().await {
            tracing::error!(sandbox = %req.sandbox_id, mount_path = %req.mount_path, error = %e, "unmount at shutdown failed");
        }
    }
}

/// Whether `GET /metrics` may skip the API key on a server listening on
/// `addr`: only on loopback, where the scraper is on the same host. An
/// unspecified address (`0.0.0.0`, `::`) listens everywhere, so it is not.
fn metrics_open_on(addr: SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::metrics_open_on;

    #[test]
    fn metrics_skip_the_key_only_on_loopback() {
        for open in ["127.0.0.1:80", "127.0.0.2:80", "[::1]:80"] {
            assert!(metrics_open_on(open.parse().unwrap()), "{open}");
        }
        for closed in ["0.0.0.0:80", "[::]:80", "10.1.2.3:80", "[2001:db8::1]:80"] {
            assert!(!metrics_open_on(closed.parse().unwrap()), "{closed}");
        }
    }
}
