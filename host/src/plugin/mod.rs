//! Provider plugins: sandboxed WebAssembly components behind the WIT
//! contract `byos3:provider@0.1.0` (`wit/`).
//!
//! A plugin turns a disk's configuration into an [`Endpoint`] (`resolve`)
//! and probes a bucket through a host import that the host signs and sends
//! only to that endpoint (`probe`). The host:
//!
//! - loads every component of a plugin directory ([`PluginHost::load_dir`]),
//!   compiled once and cached on disk by file hash and wasmtime version;
//! - links no WASI at all: the only import is `byos3:provider/bucket`;
//! - runs every call in a fresh instance with a deadline on guest time
//!   (epoch interruption), a memory cap (resource limiter) and, for probes,
//!   a cap on the bytes pulled through the import; a trap, timeout or cap
//!   hit is a typed [`PluginError`] for that call, and the plugin is marked
//!   misbehaving in [`PluginHost::plugins`];
//! - picks a provider: `provider` from the config, else the first plugin
//!   whose `matches` accepts the endpoint, else the generic `s3` plugin.
//!
//! Registering a disk, as the API does it:
//!
//! ```no_run
//! # async fn f(cfg: byos3::plugin::DiskConfig, creds: byos3::s3::Credentials) -> anyhow::Result<()> {
//! use byos3::plugin::{default_cache_dir, default_plugin_dir, Limits, PluginHost};
//! use byos3::s3::{ClientConfig, S3Client};
//! let host = PluginHost::load_dir(&default_plugin_dir(), Some(&default_cache_dir()), Limits::default()).await?;
//! let resolved = host.resolve(&cfg).await?; // Err(ResolveError::Config { field, .. }) -> 400
//! let client = S3Client::new(ClientConfig::new(resolved.endpoint.clone(), cfg.bucket.clone(), creds))?;
//! let report = host.probe(&cfg, &resolved, &client).await?;
//! if !report.ok {
//!     // 422 (or 502 for "endpoint_unreachable") with report.code / message / hint / region
//! }
//! # Ok(()) }
//! ```

mod cache;
pub mod conformance;
mod contract;
mod convert;
mod host;
mod pack;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::s3::Endpoint;

pub use host::{LoadReport, PluginHost, ResolveExample};
pub use pack::{componentize, is_component, PackError};

/// The contract versions this host loads (`byos3:provider@X`).
pub const CONTRACT_VERSIONS: &[&str] = &["0.1.0"];

/// The plugin used when no provider is named and none matches the endpoint.
pub const GENERIC_PROVIDER: &str = "s3";

/// A disk's configuration as the user gave it (the `config` of
/// `POST /v1/disks`, plus the optional `provider`).
///
/// `options` carries provider-specific settings, as each plugin documents
/// them (`byos3 plugin list --json`). The option `sub_path`, when present,
/// is the key prefix [`PluginHost::probe`] lists under.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskConfig {
    /// Bucket the disk lives in; checked against the resolved endpoint's naming rules.
    pub bucket: String,
    /// Endpoint URL the user gave (`https://host[:port]`); `None` lets the plugin pick its default.
    pub endpoint: Option<String>,
    /// Region the user gave; `None` lets the plugin use its default region, if it has one.
    pub region: Option<String>,
    /// Path-style addressing forced on (`Some(true)`) or off (`Some(false)`); `None` leaves it to the plugin.
    pub use_path_style: Option<bool>,
    /// Id of the provider plugin to use; `None` (or empty) auto-detects it from the endpoint
    /// (see [`PluginHost::select`]).
    pub provider: Option<String>,
    /// Provider-specific options as (name, value) pairs, in the order given.
    pub options: Vec<(String, String)>,
}

impl DiskConfig {
    /// The value of option `name`, if given.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A configuration resolved by a provider plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedEndpoint {
    /// The id of the plugin that resolved it.
    pub provider: String,
    /// Base URL, signing region, addressing and quirks.
    pub endpoint: Endpoint,
}

impl ResolvedEndpoint {
    /// The resolved endpoint as JSON (what `byos3 plugin resolve` prints).
    pub fn to_json(&self) -> serde_json::Value {
        let ep = &self.endpoint;
        let q = ep.quirks();
        serde_json::json!({
            "provider": self.provider,
            "url": ep.url(),
            "signing_region": ep.signing_region(),
            "addressing": match ep.addressing() {
                crate::s3::Addressing::Path => "path",
                crate::s3::Addressing::VirtualHosted => "virtual-hosted",
            },
            "quirks": {
                "checksum_headers": q.checksum_headers,
                "uniform_part_size": q.uniform_part_size,
                "list_objects_v1_only": q.list_objects_v1_only,
                "max_parts": q.max_parts,
                "min_part_size": q.min_part_size,
                "upload_part_copy": q.upload_part_copy,
                "copy_object": q.copy_object,
            },
        })
    }
}

/// The outcome of probing a bucket.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProbeReport {
    /// The bucket is usable: `code` is `"ok"`.
    pub ok: bool,
    /// One of [`ProbeReport::CODES`].
    pub code: String,
    /// What happened, in words a user can act on.
    pub message: String,
    /// What to do about it, when the plugin knows.
    pub hint: Option<String>,
    /// The bucket's region, when the service said which it is.
    pub region: Option<String>,
}

impl ProbeReport {
    /// Every code a probe may report.
    pub const CODES: [&'static str; 9] = [
        "ok",
        "bucket_not_found",
        "access_denied",
        "invalid_access_key",
        "signature_mismatch",
        "wrong_region",
        "endpoint_unreachable",
        "unsupported",
        "other",
    ];
}

/// Per-call limits applied to every plugin call.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Guest execution time per call (time spent waiting on the `bucket`
    /// import is not counted; see `probe_timeout`).
    pub call_timeout: Duration,
    /// Linear memory a plugin instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Response bytes (headers + body) one probe may pull through the import.
    pub probe_bytes: usize,
    /// Requests one probe may send through the import.
    pub probe_requests: u32,
    /// Wall-clock bound of one request sent through the import.
    pub request_timeout: Duration,
    /// Wall-clock bound of a whole probe, requests included.
    pub probe_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_millis(100),
            memory_bytes: 32 * 1024 * 1024,
            probe_bytes: 1024 * 1024,
            probe_requests: 16,
            request_timeout: Duration::from_secs(3),
            probe_timeout: Duration::from_secs(10),
        }
    }
}

/// Health of a loaded plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginStatus {
    /// Loaded, and no call has failed.
    Ok,
    /// Some calls trapped, timed out or hit a cap.
    Misbehaving {
        /// Failed calls since the plugin was loaded.
        failures: u64,
        /// The most recent failure, as its [`PluginError`] message.
        last_error: String,
    },
}

impl std::fmt::Display for PluginStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginStatus::Ok => f.write_str("ok"),
            PluginStatus::Misbehaving { failures, last_error } => {
                write!(f, "misbehaving ({failures} failed call(s); last: {last_error})")
            }
        }
    }
}

/// A loaded plugin, as listed by [`PluginHost::plugins`].
#[derive(Clone, Debug)]
pub struct PluginInfo {
    /// Stable provider id used in disk configs (`provider: "r2"`): `[a-z0-9][a-z0-9-]*`, unique per host.
    pub id: String,
    /// Human-readable name ("Cloudflare R2").
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The contract it was built against (`0.1.0`).
    pub contract_version: String,
    /// What the plugin is for, in the plugin's words.
    pub description: String,
    /// Where the provider documents its S3 endpoints, if the plugin says.
    pub docs_url: Option<String>,
    /// The region used when a disk config gives none, if the provider has one.
    pub default_region: Option<String>,
    /// Whether a disk config for this provider must give an endpoint.
    pub endpoint_required: bool,
    /// Options the plugin understands: (name, description).
    pub options: Vec<(String, String)>,
    /// The `.wasm` file the plugin was loaded from.
    pub file: PathBuf,
    /// sha256 of the file, lowercase hex.
    pub sha256: String,
    /// Health at the time of listing: whether any call has failed.
    pub status: PluginStatus,
}

/// Which plugin export a call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// `describe`: who the plugin is, its options and resolve table.
    Describe,
    /// `matches`: whether an endpoint URL belongs to the provider.
    Matches,
    /// `resolve`: a disk config into an endpoint.
    Resolve,
    /// `probe`: checking a bucket through the `bucket` import.
    Probe,
}

impl std::fmt::Display for CallKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallKind::Describe => "describe",
            CallKind::Matches => "matches",
            CallKind::Resolve => "resolve",
            CallKind::Probe => "probe",
        })
    }
}

/// Loading a plugin or calling one failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Reading the plugin directory or a plugin file failed.
    #[error("plugin directory {}: {source}", path.display())]
    Io {
        /// The directory or file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A `.wasm` file is not a provider component for a supported contract, or its `describe` failed
    /// or gave an invalid id.
    #[error("{}: not a byos3 provider plugin: {reason}", file.display())]
    NotAPlugin {
        /// The offending `.wasm` file.
        file: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// Two files of one directory provide the same provider id.
    #[error("{}: provider id {id:?} is already provided by {}; remove one of them", file.display(), first.display())]
    Duplicate {
        /// The provider id both files claim.
        id: String,
        /// The file loaded second (rejected).
        file: PathBuf,
        /// The file that already provides `id`.
        first: PathBuf,
    },
    /// wasmtime could not compile the component (or set up its engine).
    #[error("{}: cannot compile the component: {reason}", file.display())]
    Compile {
        /// The `.wasm` file being compiled.
        file: PathBuf,
        /// wasmtime's error.
        reason: String,
    },
    /// No loaded plugin has this provider id.
    #[error("no provider plugin {id:?} is loaded (loaded: {})", known.join(", "))]
    UnknownProvider {
        /// The id asked for.
        id: String,
        /// The ids that are loaded, in load order.
        known: Vec<String>,
    },
    /// The call used more guest time than [`Limits::call_timeout`].
    #[error("plugin {plugin:?}: {call} ran longer than its {limit:?} deadline")]
    Timeout {
        /// Id of the plugin that was called.
        plugin: String,
        /// The export that was called.
        call: CallKind,
        /// The deadline it exceeded.
        limit: Duration,
    },
    /// The instance tried to grow its memory past [`Limits::memory_bytes`].
    #[error("plugin {plugin:?}: {call} exceeded its {limit} byte memory cap")]
    MemoryLimit {
        /// Id of the plugin that was called.
        plugin: String,
        /// The export that was called.
        call: CallKind,
        /// The cap, in bytes.
        limit: usize,
    },
    /// A probe pulled more than [`Limits::probe_bytes`] through the `bucket` import.
    #[error("plugin {plugin:?}: probe tried to read more than {limit} bytes through the bucket import")]
    ProbeBytesLimit {
        /// Id of the plugin that was probing.
        plugin: String,
        /// The cap, in bytes.
        limit: usize,
    },
    /// A probe sent more than [`Limits::probe_requests`] requests through the `bucket` import.
    #[error("plugin {plugin:?}: probe sent more than {limit} requests through the bucket import")]
    ProbeRequestLimit {
        /// Id of the plugin that was probing.
        plugin: String,
        /// The cap, in requests.
        limit: u32,
    },
    /// A whole probe, requests included, ran past [`Limits::probe_timeout`].
    #[error("plugin {plugin:?}: probe timed out after {limit:?} (requests included)")]
    ProbeTimeout {
        /// Id of the plugin that was probing.
        plugin: String,
        /// The wall-clock bound it exceeded.
        limit: Duration,
    },
    /// The host stopped the call for using the `bucket` import in a way it may not: outside a probe,
    /// or setting a header the host owns (`host`, `authorization`, ...).
    #[error("plugin {plugin:?}: {call} was stopped: {reason}")]
    Forbidden {
        /// Id of the plugin that was called.
        plugin: String,
        /// The export that was called.
        call: CallKind,
        /// What the plugin tried to do.
        reason: String,
    },
    /// The guest trapped (or the call failed in another way not covered by a cap).
    #[error("plugin {plugin:?}: {call} trapped: {message}")]
    Trap {
        /// Id of the plugin that was called.
        plugin: String,
        /// The export that was called.
        call: CallKind,
        /// The trap message, truncated to 512 bytes.
        message: String,
    },
    /// The call returned, but its answer is not valid (e.g. an endpoint the host cannot use).
    #[error("plugin {plugin:?}: {call} returned an invalid answer: {reason}")]
    BadOutput {
        /// Id of the plugin that was called.
        plugin: String,
        /// The export that was called.
        call: CallKind,
        /// What is wrong with the answer.
        reason: String,
    },
}

impl PluginError {
    /// The plugin misbehaved (trap, deadline, cap, invalid answer), as
    /// opposed to a loading or lookup problem.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            PluginError::Timeout { .. }
                | PluginError::MemoryLimit { .. }
                | PluginError::ProbeBytesLimit { .. }
                | PluginError::ProbeRequestLimit { .. }
                | PluginError::ProbeTimeout { .. }
                | PluginError::Forbidden { .. }
                | PluginError::Trap { .. }
                | PluginError::BadOutput { .. }
        )
    }
}

/// Resolving a disk configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The configuration is wrong: `field` (`bucket`, `endpoint`, `region`,
    /// `use_path_style`, `provider`, `options.<name>`) and why.
    #[error("{field}: {message}")]
    Config {
        /// Id of the plugin that rejected the config; `None` when no plugin could be selected.
        provider: Option<String>,
        /// The offending field.
        field: String,
        /// Why it is wrong, in words a user can act on.
        message: String,
    },
    /// The plugin failed (trap, deadline, invalid answer).
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

impl ResolveError {
    /// The offending config field, for a configuration error.
    pub fn field(&self) -> Option<&str> {
        match self {
            ResolveError::Config { field, .. } => Some(field),
            ResolveError::Plugin(_) => None,
        }
    }

    /// The message, for a configuration error.
    pub fn message(&self) -> String {
        match self {
            ResolveError::Config { message, .. } => message.clone(),
            ResolveError::Plugin(e) => e.to_string(),
        }
    }
}

/// The plugin directory: `BYOS3_PLUGIN_DIR`, else the `plugins/dist` folder
/// of this source tree (filled by `scripts/build-plugins`).
pub fn default_plugin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BYOS3_PLUGIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/dist"))
}

/// The default compiled-component cache: `BYOS3_PLUGIN_CACHE`, else
/// `$XDG_CACHE_HOME/byos3/plugins` or `~/.cache/byos3/plugins`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BYOS3_PLUGIN_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache"));
    base.join("byos3/plugins")
}

/// Lists the `*.wasm` files directly inside `dir`, sorted by name.
pub(crate) fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, PluginError> {
    let io = |source| PluginError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
