//! Subcommands of the `stormwatch` binary; each file owns one command's flags and its terminal output.

pub mod demo;
pub mod evaluate;
pub mod generate;
pub mod replay;

/// Logs go to stderr through `tracing`; `RUST_LOG` selects the level (default `warn`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
