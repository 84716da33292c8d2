//! The wasmtime component host: loading, per-call sandboxing, selection.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, ResourceLimiter, Store, UpdateDeadline};

use super::cache::Cache;
use super::contract::v0_1::byos3::provider::{bucket, types as wit};
use super::contract::v0_1::{Provider, ProviderPre};
use super::contract::{HOST_IMPORT_PREFIXES, PLUGIN_INTERFACE_PREFIX};
use super::{
    convert, wasm_files, CallKind, DiskConfig, Limits, PluginError, PluginInfo, PluginStatus, ProbeReport,
    ResolveError, ResolvedEndpoint, CONTRACT_VERSIONS, GENERIC_PROVIDER,
};
use crate::s3::{RawRequest, S3Client, S3Error, HOST_OWNED_HEADERS};

/// How often the engine's epoch advances: the granularity of deadlines.
const TICK: Duration = Duration::from_millis(5);

/// The loaded plugins of one directory. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    limits: Limits,
    plugins: Vec<Loaded>,
    report: LoadReport,
    _ticker: Ticker,
}

struct Loaded {
    info: PluginInfo,
    pre: ProviderPre<CallState>,
    health: Mutex<PluginStatus>,
}

/// What loading a directory did, for operators and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Components compiled (cache miss).
    pub compiled: usize,
    /// Components taken from the compiled cache.
    pub cached: usize,
    /// Wall-clock time the whole load took.
    pub elapsed: Duration,
}

/// Advances the engine epoch every [`TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("byos3-plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the plugin epoch thread");
        Self { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Why the host stopped a call (carried through wasmtime as the trap error).
#[derive(Debug, thiserror::Error)]
enum Abort {
    #[error("deadline")]
    Deadline,
    #[error("probe bytes")]
    ProbeBytes,
    #[error("probe requests")]
    ProbeRequests,
    #[error("{0}")]
    Forbidden(String),
}

/// Per-call state: one store, one instance, one call.
struct CallState {
    memory_cap: usize,
    memory_hit: bool,
    client: Option<S3Client>,
    started: Instant,
    in_host: Duration,
    bytes_left: usize,
    requests_left: u32,
    request_timeout: Duration,
}

impl CallState {
    /// Time spent running guest code (waiting on the import excluded).
    fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.in_host)
    }
}

impl ResourceLimiter for CallState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> anyhow::Result<bool> {
        if desired > self.memory_cap {
            self.memory_hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> anyhow::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

impl wit::Host for CallState {}

impl bucket::Host for CallState {
    async fn call(&mut self, req: wit::S3Request) -> wasmtime::Result<Result<wit::S3Response, wit::RequestError>> {
        let Some(client) = self.client.clone() else {
            return Err(Abort::Forbidden("the bucket import may only be used during probe".into()).into());
        };
        if self.requests_left == 0 {
            return Err(Abort::ProbeRequests.into());
        }
        self.requests_left -= 1;
        for (name, _) in &req.headers {
            let lower = name.to_ascii_lowercase();
            if HOST_OWNED_HEADERS.contains(&lower.as_str()) {
                return Err(Abort::Forbidden(format!(
                    "it set the {name:?} header; the host alone decides where a request goes and how it is signed"
                ))
                .into());
            }
        }
        let raw = RawRequest {
            method: match req.method {
                wit::Method::Get => "GET".into(),
                wit::Method::Head => "HEAD".into(),
            },
            key: req.key,
            query: req.query,
            headers: req.headers,
        };
        let t0 = Instant::now();
        let outcome = tokio::time::timeout(self.request_timeout, client.send_raw(&raw, self.bytes_left)).await;
        self.in_host += t0.elapsed();
        let resp = match outcome {
            Err(_) => {
                return Ok(Err(wit::RequestError::Unreachable(wit::UnreachableInfo {
                    kind: wit::UnreachableKind::Timeout,
                    message: format!(
                        "no answer from {} within {:?}",
                        client.endpoint().url(),
                        self.request_timeout
                    ),
                })))
            }
            Ok(Err(S3Error::BodyTooLarge { .. })) => return Err(Abort::ProbeBytes.into()),
            Ok(Err(e)) => return Ok(Err(request_error(&e))),
            Ok(Ok(resp)) => resp,
        };
        let header_bytes: usize = resp.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        let used = resp.body.len() + header_bytes;
        if used > self.bytes_left {
            return Err(Abort::ProbeBytes.into());
        }
        self.bytes_left -= used;
        Ok(Ok(wit::S3Response {
            status: resp.status,
            headers: resp.headers,
            body: resp.body.to_vec(),
        }))
    }
}

/// Says which part of reaching the endpoint failed.
fn request_error(e: &S3Error) -> wit::RequestError {
    let message = e.to_string();
    let lower = message.to_ascii_lowercase();
    let tls = ["certificate", "tls", "handshake", "corrupt message", "alert"]
        .iter()
        .any(|w| lower.contains(w));
    let kind = match e {
        S3Error::Timeout { .. } => wit::UnreachableKind::Timeout,
        S3Error::Connect { .. } if lower.contains("dns error") || lower.contains("lookup") => wit::UnreachableKind::Dns,
        S3Error::Connect { .. } | S3Error::Transport { .. } if tls => wit::UnreachableKind::Tls,
        S3Error::Connect { .. } => wit::UnreachableKind::Connect,
        _ => return wit::RequestError::Other(message),
    };
    wit::RequestError::Unreachable(wit::UnreachableInfo { kind, message })
}

/// One call into a plugin.
enum Call<'a> {
    Instantiate,
    Describe,
    Matches(&'a str),
    Resolve(&'a wit::DiskConfig),
    Probe(&'a wit::DiskConfig, &'a wit::Endpoint, &'a str),
}

enum Answer {
    Instantiated,
    Describe(wit::ProviderInfo),
    Matches(bool),
    Resolve(Result<wit::Endpoint, wit::ConfigError>),
    Probe(wit::ProbeReport),
}

impl Call<'_> {
    fn kind(&self) -> CallKind {
        match self {
            Call::Instantiate | Call::Describe => CallKind::Describe,
            Call::Matches(_) => CallKind::Matches,
            Call::Resolve(_) => CallKind::Resolve,
            Call::Probe(..) => CallKind::Probe,
        }
    }
}

fn engine() -> Result<Engine, PluginError> {
    let mut c = Config::new();
    c.async_support(true);
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.max_wasm_stack(1024 * 1024);
    let engine = Engine::new(&c).map_err(|e| PluginError::Compile {
        file: PathBuf::new(),
        reason: format!("{e:#}"),
    })?;
    Ok(engine)
}

fn linker(engine: &Engine) -> Linker<CallState> {
    let mut linker = Linker::new(engine);
    Provider::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
        .expect("the host interfaces are defined once");
    linker
}

/// The contract version of the `plugin` interface the component exports.
fn contract_version(engine: &Engine, component: &Component) -> Result<String, String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    let version = exports
        .iter()
        .find_map(|n| n.strip_prefix(PLUGIN_INTERFACE_PREFIX))
        .ok_or_else(|| format!("it exports no `{PLUGIN_INTERFACE_PREFIX}X` interface (exports: {exports:?})"))?;
    if !CONTRACT_VERSIONS.contains(&version) {
        return Err(format!(
            "it implements contract {version}, which this host does not know (it loads {})",
            CONTRACT_VERSIONS.join(", ")
        ));
    }
    for (name, _) in ty.imports(engine) {
        if !HOST_IMPORT_PREFIXES.iter().any(|p| name.starts_with(p)) {
            return Err(format!(
                "it imports `{name}`, which the host does not provide (plugins get no WASI)"
            ));
        }
    }
    Ok(version.to_string())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

impl PluginHost {
    /// Loads every `*.wasm` file directly inside `dir` (components, or core
    /// modules built by `wit-bindgen`, packed on the fly). Compiled
    /// components are cached in `cache_dir` when given. Refuses the whole
    /// directory, naming the file, when a file is not a provider plugin or
    /// two plugins claim the same id.
    pub async fn load_dir(dir: &Path, cache_dir: Option<&Path>, limits: Limits) -> Result<PluginHost, PluginError> {
        Self::load_files(&wasm_files(dir)?, cache_dir, limits).await
    }

    /// Loads the given plugin files (same rules as [`PluginHost::load_dir`]).
    pub async fn load_files(
        files: &[PathBuf],
        cache_dir: Option<&Path>,
        limits: Limits,
    ) -> Result<PluginHost, PluginError> {
        let t0 = Instant::now();
        let engine = engine()?;
        let ticker = Ticker::start(&engine);
        let cache = cache_dir.map(|d| Cache::new(d, &engine));
        let linker = linker(&engine);
        let mut report = LoadReport::default();
        let mut plugins: Vec<Loaded> = Vec::new();
        for file in files.iter().cloned() {
            let bytes = tokio::fs::read(&file).await.map_err(|source| PluginError::Io {
                path: file.clone(),
                source,
            })?;
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let component = match cache.as_ref().and_then(|c| c.load(&engine, &sha256)) {
                Some(c) => {
                    report.cached += 1;
                    c
                }
                None => {
                    let (eng, f) = (engine.clone(), file.clone());
                    let component = tokio::task::spawn_blocking(move || compile(&eng, &f, &bytes))
                        .await
                        .map_err(|e| PluginError::Compile {
                            file: file.clone(),
                            reason: e.to_string(),
                        })??;
                    if let Some(cache) = &cache {
                        cache.store(&sha256, &component);
                    }
                    report.compiled += 1;
                    component
                }
            };
            let not_a_plugin = |reason: String| PluginError::NotAPlugin {
                file: file.clone(),
                reason,
            };
            let contract_version = contract_version(&engine, &component).map_err(not_a_plugin)?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(|e| not_a_plugin(format!("{e:#}")))?;
            let pre = ProviderPre::new(pre).map_err(|e| not_a_plugin(format!("{e:#}")))?;
            let mut loaded = Loaded {
                info: PluginInfo {
                    id: String::new(),
                    name: String::new(),
                    version: String::new(),
                    contract_version,
                    description: String::new(),
                    docs_url: None,
                    default_region: None,
                    endpoint_required: false,
                    options: Vec::new(),
                    file: file.clone(),
                    sha256,
                    status: PluginStatus::Ok,
                },
                pre,
                health: Mutex::new(PluginStatus::Ok),
            };
            let d = match run(&engine, &limits, &loaded, Call::Describe, None).await {
                Ok(Answer::Describe(d)) => d,
                Ok(_) => unreachable!("describe answers describe"),
                Err(e) => return Err(not_a_plugin(format!("describe failed: {e}"))),
            };
            if !valid_id(&d.id) {
                return Err(not_a_plugin(format!(
                    "its id {:?} is not [a-z0-9][a-z0-9-]* (at most 63 bytes)",
                    d.id
                )));
            }
            if let Some(first) = plugins.iter().find(|p| p.info.id == d.id) {
                return Err(PluginError::Duplicate {
                    id: d.id,
                    file,
                    first: first.info.file.clone(),
                });
            }
            let b = |s: String| convert::bounded(s, 512);
            loaded.info.id = d.id;
            loaded.info.name = b(d.name);
            loaded.info.version = b(d.version);
            loaded.info.description = b(d.description);
            loaded.info.docs_url = d.docs_url.map(b);
            loaded.info.default_region = d.default_region.map(b);
            loaded.info.endpoint_required = d.endpoint_required;
            loaded.info.options = d.options.into_iter().map(|o| (b(o.name), b(o.description))).collect();
            tracing::debug!(id = %loaded.info.id, file = %file.display(), "loaded provider plugin");
            plugins.push(loaded);
        }
        report.elapsed = t0.elapsed();
        Ok(PluginHost {
            inner: Arc::new(Inner {
                engine,
                limits,
                plugins,
                report,
                _ticker: ticker,
            }),
        })
    }

    /// Every loaded plugin, in load order (file name), with its health.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.inner
            .plugins
            .iter()
            .map(|p| PluginInfo {
                status: p.health.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                ..p.info.clone()
            })
            .collect()
    }

    /// What [`PluginHost::load_dir`] did (compiled vs cached, time).
    pub fn load_report(&self) -> LoadReport {
        self.inner.report.clone()
    }

    /// The per-call limits every plugin call runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    fn find(&self, id: &str) -> Result<&Loaded, PluginError> {
        self.inner
            .plugins
            .iter()
            .find(|p| p.info.id == id)
            .ok_or_else(|| PluginError::UnknownProvider {
                id: id.to_string(),
                known: self.inner.plugins.iter().map(|p| p.info.id.clone()).collect(),
            })
    }

    async fn call(&self, plugin: &Loaded, call: Call<'_>, client: Option<S3Client>) -> Result<Answer, PluginError> {
        run(&self.inner.engine, &self.inner.limits, plugin, call, client).await
    }

    /// The plugin for `cfg`: `cfg.provider` if given; else the first plugin
    /// whose `matches` accepts the endpoint; else the generic one.
    pub async fn select(&self, cfg: &DiskConfig) -> Result<String, ResolveError> {
        if let Some(id) = cfg.provider.as_deref().filter(|p| !p.is_empty()) {
            return self
                .find(id)
                .map(|p| p.info.id.clone())
                .map_err(|e| ResolveError::Config {
                    provider: None,
                    field: "provider".into(),
                    message: e.to_string(),
                });
        }
        if let Some(endpoint) = cfg.endpoint.as_deref() {
            for p in self.inner.plugins.iter().filter(|p| p.info.id != GENERIC_PROVIDER) {
                match self.call(p, Call::Matches(endpoint), None).await {
                    Ok(Answer::Matches(true)) => return Ok(p.info.id.clone()),
                    Ok(_) => {}
                    // A broken plugin must not stop auto-detection; it is
                    // already logged and marked misbehaving.
                    Err(_) => {}
                }
            }
        }
        self.find(GENERIC_PROVIDER).map(|p| p.info.id.clone()).map_err(|_| ResolveError::Config {
            provider: None,
            field: "provider".into(),
            message: format!(
                "no provider plugin recognises the endpoint and the generic {GENERIC_PROVIDER:?} plugin is not loaded; name a provider"
            ),
        })
    }

    /// Resolves a disk configuration into an endpoint with the selected
    /// provider plugin.
    pub async fn resolve(&self, cfg: &DiskConfig) -> Result<ResolvedEndpoint, ResolveError> {
        let id = self.select(cfg).await?;
        self.resolve_with(&id, cfg).await
    }

    /// Resolves with the plugin `id`, ignoring `cfg.provider`.
    pub async fn resolve_with(&self, id: &str, cfg: &DiskConfig) -> Result<ResolvedEndpoint, ResolveError> {
        let plugin = self.find(id)?;
        let wcfg = convert::disk_config(cfg);
        let answer = match self.call(plugin, Call::Resolve(&wcfg), None).await? {
            Answer::Resolve(a) => a,
            _ => unreachable!("resolve answers resolve"),
        };
        let config_error = |field: &str, message: String| ResolveError::Config {
            provider: Some(id.to_string()),
            field: field.to_string(),
            message,
        };
        match answer {
            Ok(ep) => {
                let endpoint = convert::endpoint(&ep).map_err(|e| config_error("endpoint", e.to_string()))?;
                endpoint
                    .check_bucket(&cfg.bucket)
                    .map_err(|e| config_error("bucket", e.to_string()))?;
                Ok(ResolvedEndpoint {
                    provider: id.to_string(),
                    endpoint,
                })
            }
            Err(e) => Err(config_error(
                &convert::bounded(e.field, 128),
                convert::bounded(e.message, 2048),
            )),
        }
    }

    /// Probes the bucket with the plugin that resolved `resolved`, sending
    /// requests only through `client` (its endpoint, bucket and
    /// credentials). Lists under the option `sub_path` when given.
    pub async fn probe(
        &self,
        cfg: &DiskConfig,
        resolved: &ResolvedEndpoint,
        client: &S3Client,
    ) -> Result<ProbeReport, PluginError> {
        let plugin = self.find(&resolved.provider)?;
        let wcfg = convert::disk_config(cfg);
        let wep = convert::wit_endpoint(&resolved.endpoint);
        let prefix = cfg.option("sub_path").unwrap_or("");
        match self
            .call(plugin, Call::Probe(&wcfg, &wep, prefix), Some(client.clone()))
            .await?
        {
            Answer::Probe(r) => Ok(convert::probe_report(r)),
            _ => unreachable!("probe answers probe"),
        }
    }

    /// Instantiates plugin `id` in a fresh sandbox without calling it: a
    /// health check, and what benchmarks time as the per-call overhead.
    pub async fn instantiate(&self, id: &str) -> Result<(), PluginError> {
        self.call(self.find(id)?, Call::Instantiate, None).await.map(|_| ())
    }

    /// Calls `matches` of plugin `id` (for tests and `byos3 plugin test`).
    pub async fn matches(&self, id: &str, endpoint: &str) -> Result<bool, PluginError> {
        match self.call(self.find(id)?, Call::Matches(endpoint), None).await? {
            Answer::Matches(m) => Ok(m),
            _ => unreachable!("matches answers matches"),
        }
    }

    /// The plugin's own resolve table: (case name, config, expected
    /// endpoint or the field of the expected config error).
    pub async fn examples(&self, id: &str) -> Result<Vec<ResolveExample>, PluginError> {
        let plugin = self.find(id)?;
        let d = match self.call(plugin, Call::Describe, None).await? {
            Answer::Describe(d) => d,
            _ => unreachable!("describe answers describe"),
        };
        let mut out = Vec::new();
        for case in d.examples {
            let config = DiskConfig {
                bucket: case.config.bucket,
                endpoint: case.config.endpoint,
                region: case.config.region,
                use_path_style: case.config.use_path_style,
                provider: None,
                options: case.config.options,
            };
            let expect = match case.expect {
                Ok(ep) => Ok(convert::endpoint(&ep).map_err(|e| PluginError::BadOutput {
                    plugin: id.to_string(),
                    call: CallKind::Describe,
                    reason: format!("example {:?} expects an invalid endpoint: {e}", case.name),
                })?),
                Err(field) => Err(field),
            };
            out.push(ResolveExample {
                name: case.name,
                config,
                expect,
            });
        }
        Ok(out)
    }
}

/// One row of a plugin's own resolve table.
#[derive(Clone, Debug)]
pub struct ResolveExample {
    /// The case's name, as the plugin gives it.
    pub name: String,
    /// The disk config the case resolves (`provider` is always `None`).
    pub config: DiskConfig,
    /// The expected endpoint, or the field of the expected config error.
    pub expect: Result<crate::s3::Endpoint, String>,
}

fn compile(engine: &Engine, file: &Path, bytes: &[u8]) -> Result<Component, PluginError> {
    let component = super::pack::componentize(bytes).map_err(|e| PluginError::NotAPlugin {
        file: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    Component::new(engine, &component).map_err(|e| PluginError::Compile {
        file: file.to_path_buf(),
        reason: format!("{e:#}"),
    })
}

/// Runs one call in a fresh store and instance, under the limits.
async fn run(
    engine: &Engine,
    limits: &Limits,
    plugin: &Loaded,
    call: Call<'_>,
    client: Option<S3Client>,
) -> Result<Answer, PluginError> {
    let kind = call.kind();
    let id = if plugin.info.id.is_empty() {
        plugin.info.file.display().to_string()
    } else {
        plugin.info.id.clone()
    };
    let mut store = Store::new(
        engine,
        CallState {
            memory_cap: limits.memory_bytes,
            memory_hit: false,
            client,
            started: Instant::now(),
            in_host: Duration::ZERO,
            bytes_left: limits.probe_bytes,
            requests_left: limits.probe_requests,
            request_timeout: limits.request_timeout,
        },
    );
    store.limiter(|s| s as &mut dyn ResourceLimiter);
    let budget = limits.call_timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |ctx| {
        if ctx.data().guest_time() > budget {
            return Err(Abort::Deadline.into());
        }
        // Yielding lets other tasks of the runtime thread run while a
        // plugin computes.
        Ok(UpdateDeadline::Yield(1))
    });
    let outcome = {
        let fut = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            let g = instance.byos3_provider_plugin();
            Ok::<_, wasmtime::Error>(match call {
                Call::Instantiate => Answer::Instantiated,
                Call::Describe => Answer::Describe(g.call_describe(&mut store).await?),
                Call::Matches(e) => Answer::Matches(g.call_matches(&mut store, e).await?),
                Call::Resolve(c) => Answer::Resolve(g.call_resolve(&mut store, c).await?),
                Call::Probe(c, e, p) => Answer::Probe(g.call_probe(&mut store, c, e, p).await?),
            })
        };
        if kind == CallKind::Probe {
            tokio::time::timeout(limits.probe_timeout, fut).await.ok()
        } else {
            Some(fut.await)
        }
    };
    let error = match outcome {
        Some(Ok(answer)) => return Ok(answer),
        None => PluginError::ProbeTimeout {
            plugin: id.clone(),
            limit: limits.probe_timeout,
        },
        Some(Err(e)) => classify(&id, kind, limits, store.data().memory_hit, &e),
    };
    tracing::warn!(plugin = %id, call = %kind, error = %error, "provider plugin call failed");
    let mut health = plugin.health.lock().unwrap_or_else(|e| e.into_inner());
    let failures = match &*health {
        PluginStatus::Ok => 1,
        PluginStatus::Misbehaving { failures, .. } => failures + 1,
    };
    *health = PluginStatus::Misbehaving {
        failures,
        last_error: error.to_string(),
    };
    Err(error)
}

fn classify(id: &str, call: CallKind, limits: &Limits, memory_hit: bool, e: &wasmtime::Error) -> PluginError {
    let plugin = id.to_string();
    if let Some(abort) = e.downcast_ref::<Abort>() {
        return match abort {
            Abort::Deadline => PluginError::Timeout {
                plugin,
                call,
                limit: limits.call_timeout,
            },
            Abort::ProbeBytes => PluginError::ProbeBytesLimit {
                plugin,
                limit: limits.probe_bytes,
            },
            Abort::ProbeRequests => PluginError::ProbeRequestLimit {
                plugin,
                limit: limits.probe_requests,
            },
            Abort::Forbidden(reason) => PluginError::Forbidden {
                plugin,
                call,
                reason: reason.clone(),
            },
        };
    }
    if memory_hit {
        return PluginError::MemoryLimit {
            plugin,
            call,
            limit: limits.memory_bytes,
        };
    }
    let message = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{e:#}").lines().next().unwrap_or_default().to_string(),
    };
    PluginError::Trap {
        plugin,
        call,
        message: convert::bounded(message, 512),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: S3Error) -> Option<wit::UnreachableKind> {
        match request_error(&e) {
            wit::RequestError::Unreachable(i) => Some(i.kind),
            wit::RequestError::Other(_) => None,
        }
    }

    #[test]
    fn unreachable_endpoints_say_which_step_failed() {
        let connect = |reason: &str| S3Error::Connect {
            operation: "Raw",
            host: "h".into(),
            reason: reason.into(),
        };
        assert_eq!(
            kind(connect(
                "client error (Connect): dns error: failed to lookup address information"
            )),
            Some(wit::UnreachableKind::Dns)
        );
        assert_eq!(
            kind(connect("tcp connect error: Connection refused (os error 111)")),
            Some(wit::UnreachableKind::Connect)
        );
        assert_eq!(
            kind(connect("invalid peer certificate: UnknownIssuer")),
            Some(wit::UnreachableKind::Tls)
        );
        assert_eq!(
            kind(connect("received corrupt message of type InvalidContentType")),
            Some(wit::UnreachableKind::Tls)
        );
        let timeout = S3Error::Timeout {
            operation: "Raw",
            host: "h".into(),
            timeout: Duration::from_secs(3),
        };
        assert_eq!(kind(timeout), Some(wit::UnreachableKind::Timeout));
        assert_eq!(
            kind(S3Error::InvalidResponse {
                operation: "Raw",
                reason: "x".into()
            }),
            None
        );
    }

    #[test]
    fn ids_are_dns_labels() {
        assert!(valid_id("s3") && valid_id("my-store") && valid_id("frozen-0-1"));
        assert!(
            !valid_id("") && !valid_id("-x") && !valid_id("Has Caps") && !valid_id("a/b") && !valid_id(&"a".repeat(64))
        );
    }
}
