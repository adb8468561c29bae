//! `stormwatch health`: what an operator answers about the service's readiness without an API token, from the
//! store (a running service picks the answer up within `store_probe_every_s`).

use std::process::ExitCode;

use super::changes::DataDir;

#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    #[command(flatten)]
    pub data_dir: DataDir,
    #[command(subcommand)]
    pub command: HealthCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum HealthCommand {
    /// Acknowledge that the engine started without a snapshot it could not read: clears the `snapshot_lost`
    /// readiness check (as `POST /api/v1/health/snapshot/acknowledge` does).
    AcknowledgeSnapshot,
}

pub fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let store = args.data_dir.existing()?;
    match args.command {
        HealthCommand::AcknowledgeSnapshot => {
            let pending = store.snapshot_loss()?;
            store.acknowledge_snapshot_loss()?;
            match pending {
                Some((reason, _)) => println!("acknowledged: {reason}"),
                None => println!("no lost snapshot is pending"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
