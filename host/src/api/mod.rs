//! The HTTP API: hyper 1 (+ rustls), `X-Api-Key` tenants, JSend envelopes,
//! strict JSON, the Disks routes of `API.md`.
//!
//! [`Server::start`] runs it in-process (tests, embedding); `byos3 serve`
//! is a thin command line around it.

pub mod auth;
pub mod config;
pub(crate) mod disks;
pub mod envelope;
pub mod json;
mod metrics;
pub mod policy;
mod routes;
pub(crate) mod sandboxes;
mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use zeroize::Zeroizing;

pub use auth::ApiKeys;
pub use policy::EndpointPolicy;
pub use routes::ROUTES;
pub use server::TlsFiles;

use crate::fs::MountOptions;
use crate::mount::{DirectoryResolver, MountManager, SandboxResolver};
use crate::plugin::{Limits, PluginHost};
use crate::store::{SqliteStore, Store};
use crate::vault::{key_check, verify_key_check, MasterKeyConfig, Vault};

/// The OpenAPI 3 description served at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The SQLite file inside the state directory.
pub const DB_FILE: &str = "byos3.sqlite";
/// The master key file inside the state directory.
pub const MASTER_KEY_FILE: &str = "master.key";
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

/// What a gateway serves: its state directory, plugins, master key,
/// endpoint policy, sandboxes and mount settings.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// SQLite file, master key, plugin cache, default sandbox roots and staging.
    pub state_dir: PathBuf,
    /// Where the provider plugins (`*.wasm`) are loaded from.
    pub plugin_dir: PathBuf,
    /// Compiled plugin cache (default `<state-dir>/plugin-cache`).
    pub plugin_cache_dir: Option<PathBuf>,
    /// Default: `<state-dir>/master.key`, or `BYOS3_MASTER_KEY`.
    pub master_key: MasterKeyConfig,
    /// Which endpoints disks may point at (SSRF guard).
    pub policy: EndpointPolicy,
    /// Fuel, memory and time limits of the provider plugins.
    pub plugin_limits: Limits,
    /// Where sandbox roots live (default: one directory per sandbox under
    /// `<state-dir>/sandboxes`). An embedding runtime supplies its own.
    pub sandboxes: Option<Arc<dyn SandboxResolver>>,
    /// Template of every mount (default: staging under `<state-dir>/staging`).
    pub mount_options: Option<MountOptions>,
}

impl GatewayOptions {
    /// Defaults for a state directory: the bundled plugins, the key file in
    /// the state directory (or `BYOS3_MASTER_KEY`), the default policy.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        let state_dir = state_dir.into();
        Self {
            master_key: MasterKeyConfig::from_env(state_dir.join(MASTER_KEY_FILE)),
            state_dir,
            plugin_dir: crate::plugin::default_plugin_dir(),
            plugin_cache_dir: None,
            policy: EndpointPolicy::default(),
            plugin_limits: Limits::default(),
            sandboxes: None,
            mount_options: None,
        }
    }
}

/// Shared state of all requests.
pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    /// `Err(reason)`: the disks routes answer 503.
    pub(crate) vault: Result<Arc<Vault>, String>,
    /// The key version new seals use (the store's current version).
    pub(crate) key_version: AtomicU32,
    /// `Err(reason)`: registering and rotating answer 503.
    pub(crate) providers: Result<PluginHost, String>,
    /// Used by the HTTP layer only (empty in a library-only gateway).
    pub(crate) keys: ApiKeys,
    pub(crate) policy: Arc<EndpointPolicy>,
    pub(crate) body_limit: usize,
    pub(crate) mounts: Arc<MountManager>,
    pub(crate) api_metrics: metrics::ApiMetrics,
    /// `GET /metrics` without an API key (the server listens on loopback).
    pub(crate) metrics_open: bool,
}

impl AppState {
    pub(crate) fn key_version(&self) -> u32 {
        self.key_version.load(Ordering::Acquire)
    }
}

/// Opens the master key for `store`: creates the key file only when the
/// store holds no sealed data yet, records the key check on first use and
/// verifies it afterwards. `Err` explains why the disks API cannot run.
pub fn open_vault(store: &dyn Store, cfg: &MasterKeyConfig) -> Result<(Arc<Vault>, u32), String> {
    let state = store.vault_state().map_err(|e| e.to_string())?;
    let vault = Vault::load(cfg, state.is_none()).map_err(|e| format!("cannot load the master key: {e}"))?;
    let state = match state {
        Some(s) => s,
        None => {
            let v = vault.current_version();
            let check = vault
                .with_key(v, |k| key_check(k, v))
                .and_then(|c| c)
                .map_err(|e| e.to_string())?;
            store.init_vault(v, &check).map_err(|e| e.to_string())?
        }
    };
    let v = state.current_version;
    let check = state.checks.iter().find(|(cv, _)| *cv == v).map(|(_, c)| c.clone());
    let ok = vault
        .with_key(v, |k| check.as_deref().is_some_and(|c| verify_key_check(k, v, c)))
        .map_err(|_| {
            format!("the data is sealed under master key version {v}, which the configured master key does not hold")
        })?;
    if !ok {
        return Err(format!(
            "the configured master key version {v} is not the key the data was sealed with (wrong master key)"
        ));
    }
    Ok((Arc::new(vault), v))
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
        let state = open_state(g, keys, metrics_open_on(addr)).await?;
        let disks_unavailable = match (&state.vault, &state.providers) {
            (Err(e), _) | (_, Err(e)) => Some(e.clone()),
            _ => None,
        };
        let mounts = state.mounts.clone();
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

/// Opens the store, the vault and the plugins, and re-attaches the
/// recorded disks. A missing master key or plugin directory does not stop
/// the start: the disks operations answer 503 with the reason instead.
pub(crate) async fn open_state(
    opts: &GatewayOptions,
    keys: ApiKeys,
    metrics_open: bool,
) -> anyhow::Result<Arc<AppState>> {
    create_private_dir(&opts.state_dir)?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&opts.state_dir.join(DB_FILE))
            .with_context(|| format!("opening the database in {}", opts.state_dir.display()))?,
    );
    let (vault, key_version) = match open_vault(store.as_ref(), &opts.master_key) {
        Ok((v, n)) => (Ok(v), n),
        Err(e) => {
            tracing::error!(error = %e, "the disks API is not configured (answers 503) until the master key is fixed");
            (Err(e), 0)
        }
    };
    let cache = opts
        .plugin_cache_dir
        .clone()
        .unwrap_or_else(|| opts.state_dir.join("plugin-cache"));
    let providers = match PluginHost::load_dir(&opts.plugin_dir, Some(&cache), opts.plugin_limits.clone()).await {
        Ok(h) if h.plugins().is_empty() => Err(format!("no provider plugin in {}", opts.plugin_dir.display())),
        Ok(h) => {
            let ids: Vec<String> = h.plugins().into_iter().map(|p| p.id).collect();
            tracing::info!(dir = %opts.plugin_dir.display(), plugins = %ids.join(","), "loaded provider plugins");
            Ok(h)
        }
        Err(e) => Err(format!("cannot load the provider plugins: {e}")),
    };
    if let Err(e) = &providers {
        tracing::error!(error = %e, "registering disks answers 503 until plugins are available");
    }
    let resolver = opts
        .sandboxes
        .clone()
        .unwrap_or_else(|| Arc::new(DirectoryResolver::new(opts.state_dir.join("sandboxes"))));
    let mount_options = opts.mount_options.clone().unwrap_or_else(|| MountOptions {
        staging_dir: opts.state_dir.join("staging"),
        ..MountOptions::default()
    });
    let state = Arc::new(AppState {
        store,
        vault,
        key_version: AtomicU32::new(key_version),
        providers,
        keys,
        policy: Arc::new(opts.policy.clone()),
        body_limit: BODY_LIMIT,
        mounts: Arc::new(
            MountManager::new(resolver, mount_options).with_upload_journal(opts.state_dir.join("uploads-in-flight")),
        ),
        api_metrics: metrics::ApiMetrics::default(),
        metrics_open,
    });
    sandboxes::reattach_all(&state).await;
    spawn_health_checks(&state);
    Ok(state)
}

/// Whether `GET /metrics` may skip the API key on a server listening on
/// `addr`: only on loopback, where the scraper is on the same host. An
/// unspecified address (`0.0.0.0`, `::`) listens everywhere, so it is not.
fn metrics_open_on(addr: SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// How often mounts are checked (a dead FUSE session, refused credentials).
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// Checks the mounts every [`HEALTH_INTERVAL`] until the state is dropped,
/// so state changes are logged and `/metrics` is current between API calls.
fn spawn_health_checks(state: &Arc<AppState>) {
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEALTH_INTERVAL).await;
            let Some(state) = weak.upgrade() else { break };
            state.mounts.check_health();
        }
    });
}

/// Creates `dir` (mode 0700 when new).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// The probe deadline the server applies (the plugin's, plus slack).
pub(crate) fn probe_deadline(limits: &Limits) -> Duration {
    limits.probe_timeout + Duration::from_secs(2)
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
