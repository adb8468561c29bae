//! `stormwatch serve`: the live service. Settings come from defaults, an optional TOML file, `STORMWATCH_*`
//! variables and flags, in rising precedence, each setting under one name in all three (`config_layers`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use stormwatch_service::config::SETTINGS;
use stormwatch_service::config_layers::{self, Kind};
use stormwatch_service::service::ENGINE_QUEUE;
use stormwatch_service::{LogFormat, LogSource, ServeConfig, Service, Stopped};

#[cfg(feature = "kafka")]
#[path = "serve_kafka.rs"]
mod kafka_source;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// TOML file with any of the settings below, each under its own name (`data_dir = "..."` for --data-dir), and
    /// the `[engine]` and `[coordination]` tables only a file sets; see --print-config.
    #[arg(long, env = "STORMWATCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: SettingFlags,
    /// Batches the engine queue holds before sources are made to wait (tests use 1 to force backpressure).
    #[arg(long, default_value_t = ENGINE_QUEUE, hide = true)]
    pub engine_queue: usize,
    /// Fault injection for the health tests: the engine thread hangs this many seconds after it starts.
    #[arg(long, value_name = "SECONDS", hide = true)]
    pub fault_hang_engine_after: Option<u64>,
    /// Fault injection for the backpressure tests: once the service is up, every store write first waits this long.
    #[arg(long, value_name = "MS", hide = true)]
    pub fault_slow_store_ms: Option<u64>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Start even though the journal the last snapshot expects is missing, going on from the snapshot alone:
    /// what was applied after it is lost (reported in the log, metrics and /readyz).
    #[arg(long)]
    pub accept_lost_journal: bool,
}

/// One flag per setting of [`SETTINGS`], named after its TOML key, with the variable and the default in its help:
/// built from the table, so no setting can lack a flag.
#[derive(Debug, Default)]
pub struct SettingFlags {
    pub given: Vec<(&'static str, Vec<String>)>,
}

impl clap::FromArgMatches for SettingFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let given = SETTINGS
            .iter()
            .filter_map(|setting| {
                let values = matches.get_many::<String>(setting.key)?;
                Some((setting.key, values.cloned().collect()))
            })
            .collect();
        Ok(SettingFlags { given })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for SettingFlags {
    fn augment_args(command: clap::Command) -> clap::Command {
        SETTINGS.iter().fold(command, |command, setting| {
            let mut help = setting.help.to_owned();
            if let Some(default) = config_layers::default_text(setting.key) {
                help.push_str(&format!(" [default: {default}]"));
            }
            help.push_str(&format!(" [env: {}]", setting.variable()));
            let arg = clap::Arg::new(setting.key)
                .long(setting.key.replace('_', "-"))
                .value_name(setting.value_name)
                .help(help)
                .hide(!setting.built());
            command.arg(match config_layers::kind(setting.key) {
                Kind::List => arg.action(clap::ArgAction::Append),
                Kind::Switch => arg.num_args(0..=1).default_missing_value("true"),
                _ => arg,
            })
        })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl ServeArgs {
    fn layered(&self) -> anyhow::Result<config_layers::Layered> {
        let variables = std::env::vars_os()
            .filter_map(|(name, value)| {
                let name = name.into_string().ok()?;
                if !name.starts_with("STORMWATCH_") {
                    return None;
                }
                Some(
                    value
                        .into_string()
                        .map(|value| (name.clone(), value))
                        .map_err(|_| anyhow::anyhow!("{name} is not valid UTF-8")),
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(config_layers::layer(&config_layers::Given {
            file: self.config.clone(),
            variables,
            flags: self.settings.given.clone(),
        })?)
    }

    fn effective(&self) -> anyhow::Result<ServeConfig> {
        Ok(self.layered()?.config)
    }

    pub fn log_format(&self) -> LogFormat {
        self.effective().map(|c| c.log_format).unwrap_or_default()
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let layered = args.layered()?;
    let config = layered.config;
    for name in &layered.unknown_variables {
        tracing::warn!(
            variable = %name,
            "{name} names no setting and is ignored; `stormwatch serve --help` lists every STORMWATCH_* variable"
        );
    }
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    #[cfg(feature = "kafka")]
    let log_source = kafka_source::options(&config)
        .map(|options| Box::new(kafka_source::Wiring::new(options)) as Box<dyn LogSource>);
    #[cfg(not(feature = "kafka"))]
    let log_source: Option<Box<dyn LogSource>> = None;
    let stopped = Service::new(config)
        .engine_queue(args.engine_queue)
        .hang_engine_after(args.fault_hang_engine_after.map(Duration::from_secs))
        .slow_store_writes(args.fault_slow_store_ms.map(Duration::from_millis))
        .accept_lost_journal(args.accept_lost_journal)
        .log_source(log_source)
        .run()?;
    Ok(match stopped {
        Stopped::Clean => ExitCode::SUCCESS,
        Stopped::GraceExceeded => ExitCode::from(3),
    })
}
