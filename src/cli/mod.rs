//! Subcommands of the `stormwatch` binary; each file owns one command's flags and its terminal output.

pub mod change_import;
pub mod change_show;
pub mod change_warnings;
pub mod changes;
pub mod demo;
pub mod evaluate;
pub mod fit;
pub mod generate;
pub mod health;
#[cfg(feature = "kafka")]
pub mod kafka_produce;
pub mod replay;
pub mod scored_runs;
pub mod serve;
pub mod table;
pub mod tokens;

/// What a Kafka flag, setting or subcommand says on a build without the feature.
#[cfg(not(feature = "kafka"))]
pub use stormwatch_service::config::WITHOUT_KAFKA;

/// Logs go to stderr through `tracing`, as text or JSON; `RUST_LOG` overrides the default level.
pub fn init_logging(format: stormwatch_service::LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        stormwatch_service::LogFormat::Json => builder.json().init(),
        stormwatch_service::LogFormat::Text => builder.init(),
    }
}

/// Writes `value` as pretty JSON to `path`, naming the file in any error.
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    use anyhow::Context;
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut writer, value)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut writer, b"\n")?;
    std::io::Write::flush(&mut writer)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
