//! `byos3 vault`: master key administration on a state directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::api::{open_vault, DB_FILE};
use crate::store::SqliteStore;

#[derive(clap::Subcommand)]
pub enum VaultCommand {
    /// Re-seal every credential under a new master key version, in one
    /// transaction. A running server keeps working during and after.
    RotateKey {
        /// The server's state directory [default: ./byos3-data].
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// The server's JSON configuration file (for state_dir and master_key_file).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

pub async fn run(cmd: VaultCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VaultCommand::RotateKey { state_dir, config } => {
            let opts = super::serve::options(None, state_dir, None, config.as_deref())?;
            let db = opts.gateway.state_dir.join(DB_FILE);
            anyhow::ensure!(
                db.exists(),
                "{} does not exist: is --state-dir the server's state directory?",
                db.display()
            );
            let report = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let store = SqliteStore::open(&db).with_context(|| format!("opening {}", db.display()))?;
                let (vault, _) = open_vault(&store, &opts.gateway.master_key).map_err(anyhow::Error::msg)?;
                crate::vault::rotate_key(&store, &vault)
            })
            .await??;
            println!(
                "byos3: master key rotated from version {} to {}; {} credential record(s) re-sealed; old key versions retired",
                report.old_version, report.new_version, report.resealed
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
