//! The `stormwatch` binary: command-line parsing and the I/O edge around the library's engine.

mod cli;

use clap::{Parser, Subcommand};

/// Stormwatch detects backlogs and message storms in DCC DSP<->User telemetry and names the registered
/// change that most likely caused each one.
#[derive(Parser, Debug)]
#[command(name = "stormwatch", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay recorded telemetry through the engine and write the incident report.
    Replay(cli::replay::ReplayArgs),
    /// Generate realistic telemetry, change notices and a truth file, with incidents injected on demand.
    Gen(cli::generate::GenArgs),
    /// Replay generated scenarios and score the incidents found against their truth.json.
    Evaluate(cli::evaluate::EvaluateArgs),
    /// Run the live service: TCP and HTTP ingest, the change register, incident API and Prometheus metrics.
    Serve(cli::serve::ServeArgs),
    /// Generate the 1.5 M-message firewall backlog among normal traffic, replay it and print the triage.
    Demo(cli::demo::DemoArgs),
    /// Manage the change register in the store: add, import, list, show and cancel change notices.
    Changes(cli::changes::ChangesArgs),
    /// Manage the API tokens of the live service: add (shows the secret once), list and revoke.
    Tokens(cli::tokens::TokensArgs),
    /// Answer the live service's readiness checks that need a person: acknowledge a lost engine snapshot.
    Health(cli::health::HealthArgs),
    /// Write a telemetry file to a Kafka topic, keyed by User ID (for tests and demos of `serve --kafka-*`).
    #[cfg(feature = "kafka")]
    KafkaProduce(cli::kafka_produce::KafkaProduceArgs),
    /// Accepted on a build without the `kafka` feature only to say so.
    #[cfg(not(feature = "kafka"))]
    #[command(hide = true)]
    KafkaProduce(NoKafka),
}

/// Any arguments: the command cannot run on this build.
#[cfg(not(feature = "kafka"))]
#[derive(clap::Args, Debug)]
struct NoKafka {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return refuse_arguments(error),
    };
    // The service reports what it does; one-shot commands only warn.
    match &cli.command {
        Command::Serve(args) => cli::init_logging(args.log_format(), "info"),
        _ => cli::init_logging(stormwatch_service::LogFormat::Text, "warn"),
    }
    let outcome = match cli.command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Replay(args) => cli::replay::run(args),
        Command::Gen(args) => cli::generate::run(args),
        Command::Evaluate(args) => cli::evaluate::run(args),
        Command::Demo(args) => cli::demo::run(args),
        Command::Changes(args) => cli::changes::run(args),
        Command::Tokens(args) => cli::tokens::run(args),
        Command::Health(args) => cli::health::run(args),
        #[cfg(feature = "kafka")]
        Command::KafkaProduce(args) => cli::kafka_produce::run(args),
        #[cfg(not(feature = "kafka"))]
        Command::KafkaProduce(_) => Err(anyhow::anyhow!("kafka-produce: {}", cli::WITHOUT_KAFKA)),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("stormwatch: error: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Clap's own answer to bad arguments, except for a `serve` flag that names an `[engine]` or `[coordination]`
/// setting: that one is told where the setting can be set.
fn refuse_arguments(error: clap::Error) -> std::process::ExitCode {
    let serving = std::env::args().nth(1).as_deref() == Some("serve");
    if serving && error.kind() == clap::error::ErrorKind::UnknownArgument {
        let flag = match error.get(clap::error::ContextKind::InvalidArg) {
            Some(clap::error::ContextValue::String(flag)) => Some(flag.clone()),
            _ => None,
        };
        if let Some(refusal) = flag
            .as_deref()
            .and_then(stormwatch_service::config_layers::file_only_flag)
        {
            eprintln!("stormwatch: error: {refusal}");
            return std::process::ExitCode::from(2);
        }
    }
    error.exit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
