//! Placeholder for the `replay` command until its owner lands it.

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {}

pub fn run(_args: ReplayArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`replay` is not built yet")
}
