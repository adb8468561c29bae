//! Placeholder for the `demo` command until its owner lands it.

#[derive(clap::Args, Debug)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("`demo` is not built yet")
}
