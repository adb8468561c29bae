//! Placeholder for the `gen` command until its owner lands it.

#[derive(clap::Args, Debug)]
pub struct GenArgs {}

pub fn run(_args: GenArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`gen` is not built yet")
}
