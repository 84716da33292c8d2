//! `byos3 plugin` (not built yet: placeholder so the command tree compiles).

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// List the plugins of a plugin directory.
    List,
}

pub async fn run(_args: PluginCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`byos3 plugin` is not implemented yet")
}
