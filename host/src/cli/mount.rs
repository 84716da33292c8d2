//! `byos3 mount BUCKET[/PREFIX] DIR`: mounts a bucket in the foreground
//! until Ctrl-C or SIGTERM, then flushes and unmounts. The endpoint comes
//! from `--endpoint/--region/--path-style`, or from a provider plugin
//! (`--provider`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::fs::{self, MountOptions};
use crate::s3::{Addressing, ClientConfig, Credentials, Endpoint, S3Client};

#[derive(clap::Args)]
pub struct MountArgs {
    /// The bucket, optionally followed by a key prefix: `bucket` or `bucket/some/prefix`.
    pub target: String,
    /// The directory to mount at.
    pub dir: PathBuf,
    /// S3 endpoint URL, e.g. `https://s3.example.com` or `http://127.0.0.1:3900`
    /// (optional with a `--provider` that knows its endpoint).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Signing region (default us-east-1, or the provider's default).
    #[arg(long)]
    pub region: Option<String>,
    /// Resolve the endpoint, region, addressing and quirks with this
    /// provider plugin (see `byos3 plugin list`).
    #[arg(long)]
    pub provider: Option<String>,
    /// Where provider plugins are loaded from.
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// Path-style addressing (`host/bucket/key`) instead of virtual-hosted.
    #[arg(long)]
    pub path_style: bool,
    /// Refuse every change (EROFS).
    #[arg(long)]
    pub read_only: bool,
    /// Owner of every file (default: the mounting user).
    #[arg(long)]
    pub uid: Option<u32>,
    #[arg(long)]
    pub gid: Option<u32>,
    /// Permission bits of files, octal.
    #[arg(long, default_value = "644", value_parser = parse_octal)]
    pub file_mode: u16,
    /// Permission bits of directories, octal.
    #[arg(long, default_value = "755", value_parser = parse_octal)]
    pub dir_mode: u16,
    /// Seconds attributes are trusted.
    #[arg(long, default_value_t = 1.0)]
    pub metadata_ttl: f64,
    /// Seconds "no such file" is trusted.
    #[arg(long, default_value_t = 1.0)]
    pub negative_ttl: f64,
    /// Seconds a directory listing is trusted.
    #[arg(long, default_value_t = 1.0)]
    pub listing_ttl: f64,
    /// Most data requests in flight.
    #[arg(long, default_value_t = 64)]
    pub max_concurrent_requests: usize,
    /// Multipart part size in MiB.
    #[arg(long, default_value_t = 8)]
    pub part_size_mib: u64,
    /// Where in-place changes are staged (default: the system temp dir).
    #[arg(long)]
    pub staging_dir: Option<PathBuf>,
    /// Most MiB staged at once.
    #[arg(long, default_value_t = 10_240)]
    pub staging_cap_mib: u64,
    /// Memory budget of the mount process, MiB: read-ahead and upload buffers take at most 5/8 of it, the rest is headroom.
    #[arg(long, default_value_t = 256)]
    pub memory_budget_mib: u64,
    /// Let other users use the mount.
    #[arg(long)]
    pub allow_other: bool,
    /// At exit, detach a busy mount lazily instead of waiting.
    #[arg(long)]
    pub lazy_unmount: bool,
}

fn parse_octal(s: &str) -> Result<u16, String> {
    u16::from_str_radix(s, 8)
        .map_err(|e| format!("not an octal mode: {e}"))
        .and_then(|m| {
            if m <= 0o7777 {
                Ok(m)
            } else {
                Err("mode above 7777".into())
            }
        })
}

fn secs(v: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("--{what} must be a non-negative number of seconds"))
}

pub async fn run(args: MountArgs) -> anyhow::Result<ExitCode> {
    let (bucket, prefix) = match args.target.split_once('/') {
        Some((b, p)) => (b.to_string(), p.to_string()),
        None => (args.target.clone(), String::new()),
    };
    if bucket.is_empty() {
        bail!("BUCKET must not be empty (BUCKET or BUCKET/PREFIX)");
    }
    let key_id = std::env::var("AWS_ACCESS_KEY_ID").context("AWS_ACCESS_KEY_ID is not set")?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").context("AWS_SECRET_ACCESS_KEY is not set")?;
    let token = std::env::var("AWS_SESSION_TOKEN").ok().filter(|t| !t.is_empty());
    let endpoint = match &args.provider {
        Some(provider) => {
            use crate::plugin::{default_cache_dir, default_plugin_dir, DiskConfig, Limits, PluginHost};
            let dir = args.plugin_dir.clone().unwrap_or_else(default_plugin_dir);
            let host = PluginHost::load_dir(&dir, Some(&default_cache_dir()), Limits::default())
                .await
                .with_context(|| format!("loading provider plugins from {}", dir.display()))?;
            let cfg = DiskConfig {
                bucket: bucket.clone(),
                endpoint: args.endpoint.clone(),
                region: args.region.clone(),
                use_path_style: args.path_style.then_some(true),
                provider: Some(provider.clone()),
                options: Vec::new(),
            };
            host.resolve(&cfg)
                .await
                .with_context(|| format!("provider {provider:?} refused the configuration"))?
                .endpoint
        }
        None => {
            let Some(url) = &args.endpoint else {
                bail!("--endpoint URL is required (or --provider ID)")
            };
            let addressing = if args.path_style {
                Addressing::Path
            } else {
                Addressing::VirtualHosted
            };
            let region = args.region.as_deref().unwrap_or("us-east-1");
            Endpoint::new(url, region, addressing).context("invalid --endpoint")?
        }
    };
    let client = S3Client::new(ClientConfig::new(
        endpoint,
        bucket.clone(),
        Credentials::new(key_id, secret, token),
    ))
    .context("cannot build the S3 client")?;
    client
        .head_bucket()
        .await
        .with_context(|| format!("cannot reach bucket {bucket:?}"))?;

    let defaults = MountOptions::default();
    let opts = MountOptions {
        read_only: args.read_only,
        uid: args.uid.unwrap_or(defaults.uid),
        gid: args.gid.unwrap_or(defaults.gid),
        file_mode: args.file_mode,
        dir_mode: args.dir_mode,
        metadata_ttl: secs(args.metadata_ttl, "metadata-ttl")?,
        negative_ttl: secs(args.negative_ttl, "negative-ttl")?,
        listing_ttl: secs(args.listing_ttl, "listing-ttl")?,
        max_concurrent_requests: args.max_concurrent_requests.max(1),
        part_size: args.part_size_mib.max(5) * 1024 * 1024,
        staging_dir: args.staging_dir.unwrap_or(defaults.staging_dir.clone()),
        staging_cap: args.staging_cap_mib * 1024 * 1024,
        memory_budget: args.memory_budget_mib.max(16) * 1024 * 1024,
        allow_other: args.allow_other,
        lazy_unmount: args.lazy_unmount,
        ..defaults
    };
    let dir = args.dir.clone();
    let handle = tokio::task::spawn_blocking(move || fs::mount(client, &prefix, &dir, opts)).await??;
    eprintln!(
        "byos3: mounted {} at {}; Ctrl-C or SIGTERM to unmount",
        args.target,
        handle.mountpoint().display()
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("byos3: flushing and unmounting {}", args.dir.display());
    let mut handle = handle;
    // A busy mount: say so and retry for a while before giving up lazily.
    for attempt in 0..30 {
        let lazy = args.lazy_unmount || attempt == 29;
        let (h, result) = tokio::task::spawn_blocking(move || {
            let r = handle.try_unmount(lazy);
            (handle, r)
        })
        .await?;
        handle = h;
        match result {
            Ok(()) => return Ok(ExitCode::SUCCESS),
            Err(fs::FsError::Busy { .. }) => {
                if attempt == 0 {
                    eprintln!(
                        "byos3: {} is busy; waiting for processes to leave it",
                        args.dir.display()
                    );
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                eprintln!("byos3: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::FAILURE)
}
