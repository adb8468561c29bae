//! Placeholder for the `evaluate` command until its owner lands it.

#[derive(clap::Args, Debug)]
pub struct EvaluateArgs {}

pub fn run(_args: EvaluateArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`evaluate` is not built yet")
}
