//! `byos3 serve`: the HTTP API server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::api::config::FileConfig;
use crate::api::{EndpointPolicy, Server, ServerOptions, TlsFiles};
use crate::vault::MasterKeyConfig;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "./byos3-data";

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8787].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// SQLite file, master key, generated API key, plugin cache [default: ./byos3-data].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Provider plugins (*.wasm) [default: the bundled plugins].
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// A JSON configuration file (see the `byos3::api::config` docs); flags win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// The server options from flags, the config file, the environment
/// (`BYOS3_API_KEYS`, `BYOS3_MASTER_KEY`) and the defaults, in that order.
pub(crate) fn options(
    listen: Option<SocketAddr>,
    state_dir: Option<PathBuf>,
    plugin_dir: Option<PathBuf>,
    config: Option<&std::path::Path>,
) -> anyhow::Result<ServerOptions> {
    let file = match config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let listen = listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
    let state_dir = state_dir
        .or_else(|| file.state_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let mut opts = ServerOptions::new(listen, state_dir);
    if let Some(d) = plugin_dir.or_else(|| file.plugin_dir.clone()) {
        opts.gateway.plugin_dir = d;
    }
    opts.gateway.plugin_cache_dir = file.plugin_cache_dir.clone();
    if let Some(f) = &file.master_key_file {
        opts.gateway.master_key = MasterKeyConfig::from_env(f.clone());
    }
    opts.api_keys = file.api_keys.clone();
    if let Ok(v) = std::env::var("BYOS3_API_KEYS") {
        opts.api_keys
            .add_env(&v)
            .map_err(anyhow::Error::msg)
            .context("BYOS3_API_KEYS")?;
    }
    opts.gateway.policy = EndpointPolicy::new(&file.policy_allow, &file.policy_deny).map_err(anyhow::Error::msg)?;
    if let Some(t) = file.probe_timeout {
        opts.gateway.plugin_limits.probe_timeout = t;
    }
    opts.tls = file.tls;
    Ok(opts)
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut opts = options(args.listen, args.state_dir, args.plugin_dir, args.config.as_deref())?;
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        opts.tls = Some(TlsFiles { cert, key });
    }
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let mut server = Server::start(opts).await?;
    if let Some(key) = server.take_generated_key() {
        // Shown once: only its hash is stored.
        println!(
            "byos3: no API key was configured; created one for tenant \"default\" (shown only now, stored hashed):"
        );
        println!("  X-Api-Key: {}", key.as_str());
    }
    if let Some(why) = server.disks_unavailable() {
        eprintln!("byos3: warning: the disks API answers 503: {why}");
    }
    println!("byos3 API listening on {scheme}://{}", server.local_addr());
    wait_for_signal().await?;
    tracing::info!("signal received; shutting down");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
