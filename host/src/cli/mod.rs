//! The `byos3` command line. One file per command group.

mod disk;
mod mount;
mod plugin;
mod sandbox;
mod serve;
mod vault;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "byos3",
    version,
    about = "Mount your own S3-compatible bucket into a sandbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Provider plugins: list, resolve, test, new.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Mount a bucket (or a prefix of it) at a directory, in the foreground.
    Mount(mount::MountArgs),
    /// Run the HTTP API server.
    Serve(serve::ServeArgs),
    /// Disks on a running server: create, list, show, rotate, delete.
    #[command(subcommand)]
    Disk(disk::DiskCommand),
    /// Credential vault administration: rotate-key.
    #[command(subcommand)]
    Vault(vault::VaultCommand),
    /// Sandboxes on a running server: create, list, show, delete.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// Attach a disk to a sandbox at a mount path (returns once mounted).
    Attach(sandbox::AttachArgs),
    /// Detach a disk: flush, unmount; the bucket is never touched.
    Detach(sandbox::DetachArgs),
}

/// Entry point of the `byos3` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("byos3: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Plugin(c) => plugin::run(c).await,
            Command::Mount(a) => mount::run(a).await,
            Command::Serve(a) => serve::run(a).await,
            Command::Disk(c) => disk::run(c).await,
            Command::Vault(c) => vault::run(c).await,
            Command::Sandbox(c) => sandbox::run(c).await,
            Command::Attach(a) => sandbox::attach(a).await,
            Command::Detach(a) => sandbox::detach(a).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("byos3: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BYOS3_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // The signing crate traces its parameters, access key id included,
        // at `trace`: never let a log level reach that.
        .add_directive("aws_sigv4=debug".parse().expect("static directive"));
    // fuser's session tries its own unmount after ours (flush first, busy
    // detection) has already happened, and warns that it failed; unless
    // the operator asks about fuser explicitly, that warning is noise.
    let filter = if std::env::var("BYOS3_LOG").is_ok_and(|v| v.contains("fuser")) {
        filter
    } else {
        filter.add_directive("fuser::session=error".parse().expect("static directive"))
    };
    let json = std::env::var("BYOS3_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
