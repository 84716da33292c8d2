//! The state every operation works on: the registry, the vault, the
//! provider plugins, the endpoint policy and the live mounts of one state
//! directory, opened once and shared.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::policy::EndpointPolicy;
use super::sandboxes;
use crate::fs::MountOptions;
use crate::mount::{DirectoryResolver, MountManager, SandboxResolver};
use crate::plugin::{Limits, PluginHost};
use crate::store::{SqliteStore, Store};
use crate::vault::{key_check, verify_key_check, MasterKeyConfig, Vault};

/// The SQLite file inside the state directory.
pub const DB_FILE: &str = "byos3.sqlite";
/// The master key file inside the state directory.
pub const MASTER_KEY_FILE: &str = "master.key";

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

/// What every operation shares.
pub(crate) struct State {
    pub(crate) store: Arc<dyn Store>,
    /// `Err(reason)`: the disks routes answer 503.
    pub(crate) vault: Result<Arc<Vault>, String>,
    /// The key version new seals use (the store's current version).
    pub(crate) key_version: AtomicU32,
    /// `Err(reason)`: registering and rotating answer 503.
    pub(crate) providers: Result<PluginHost, String>,
    pub(crate) policy: Arc<EndpointPolicy>,
    pub(crate) mounts: Arc<MountManager>,
}

impl State {
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

/// Opens the store, the vault and the plugins, and re-attaches the
/// recorded disks. A missing master key or plugin directory does not stop
/// the start: the disks operations answer 503 with the reason instead.
pub(crate) async fn open_state(opts: &GatewayOptions) -> anyhow::Result<Arc<State>> {
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
    let state = Arc::new(State {
        store,
        vault,
        key_version: AtomicU32::new(key_version),
        providers,
        policy: Arc::new(opts.policy.clone()),
        mounts: Arc::new(
            MountManager::new(resolver, mount_options).with_upload_journal(opts.state_dir.join("uploads-in-flight")),
        ),
    });
    sandboxes::reattach_all(&state).await;
    spawn_health_checks(&state);
    Ok(state)
}

/// How often mounts are checked (a dead FUSE session, refused credentials).
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// Checks the mounts every [`HEALTH_INTERVAL`] until the state is dropped,
/// so state changes are logged and `/metrics` is current between API calls.
fn spawn_health_checks(state: &Arc<State>) {
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
pub(crate) fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
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
