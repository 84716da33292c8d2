//! `byos3 serve` (not built yet: placeholder so the command tree compiles).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ServeArgs {}

pub async fn run(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`byos3 serve` is not implemented yet")
}
