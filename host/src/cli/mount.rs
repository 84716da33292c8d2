//! `byos3 mount` (not built yet: placeholder so the command tree compiles).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct MountArgs {}

pub async fn run(_args: MountArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`byos3 mount` is not implemented yet")
}
