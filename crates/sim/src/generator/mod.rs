//! `stormwatch gen`: realistic DSP telemetry with incidents injected on demand, the change notices around them,
//! and the truth the engine has to reproduce. Equal options give byte-identical files.
//!
//! The run is planned first ([`plan`], [`scenarios`]), then simulated second by second ([`sim`]) and written
//! through a merge of two exporters ([`output`]).

mod adversarial;
mod builder;
mod decoys;
mod format;
mod layout;
mod line;
mod malformed;
mod options;
#[cfg(test)]
mod oracle;
mod output;
mod partial_srv;
mod plan;
mod population;
mod ramp;
mod sample;
mod scenarios;
mod shape;
mod sim;
mod sink;
mod slow_leak;
mod small_users;
mod truth;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;

pub use options::{
    Compression, DEFAULT_START_MS, DEFAULT_USERS, GenOptions, Scenario, format_duration,
    parse_duration, parse_start,
};
pub use truth::{GeneratorInfo, Truth, TruthIncident};

/// Each message carries its cause in a `cause` field, which is deliberately not a `source()`: the binary prints
/// the whole chain, and a cause in both printed twice.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("{0}")]
    Option(String),
    #[error("unknown scenario `{0}` (try `all`, or one of: {names})", names = scenario_names())]
    UnknownScenario(String),
    #[error("cannot plan the run: {0}")]
    Plan(String),
    #[error("cannot write {}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

fn scenario_names() -> String {
    Scenario::every()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How far a run has got, for a progress bar.
#[derive(Copy, Clone, Debug)]
pub struct Progress {
    pub seconds_done: u64,
    pub seconds_total: u64,
    pub lines: u64,
}

/// What a finished run wrote.
#[derive(Clone, Debug)]
pub struct GenSummary {
    pub truth: Truth,
    pub events_path: PathBuf,
    pub changes_path: PathBuf,
    pub truth_path: PathBuf,
    pub duration_s: u64,
}

/// Independent random streams, so that (for example) a different malformed rate leaves the traffic unchanged.
fn stream(seed: u64, purpose: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Generates a run into `options.out` (created if missing). `progress` is called every simulated ten minutes.
pub fn generate(
    options: &GenOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<GenSummary, GenError> {
    options.validate()?;
    let shape = shape::DailyShape::new();
    let mut users = population::build(
        options.users,
        options.scale,
        &shape,
        &mut stream(options.seed, 1),
    );
    let plan = layout::lay_out(options, &mut users, &shape, &mut stream(options.seed, 2))?;
    let duration_s = u64::try_from(plan.end_s - plan.start_s).unwrap_or(0);

    let out = options.out.as_path();
    std::fs::create_dir_all(out).map_err(|source| GenError::Io {
        path: out.to_path_buf(),
        cause: source,
    })?;
    let events_path = out.join(options.compression.file_name());
    let ids = users.iter().map(|u| u.id.0).collect();
    let mut writer = output::EventWriter::create(
        &events_path,
        options.compression,
        options.level,
        options.malformed_rate,
        ids,
        stream(options.seed, 4),
    )?;
    writer.set_skews(&plan.skews);
    writer.set_duplicates(plan.duplicates);
    let mut sim = sim::Sim::new(users, shape, &plan, stream(options.seed, 3));
    let mut lines = Vec::new();
    for t in plan.start_s..plan.end_s {
        sim.second(t, &mut lines);
        writer.second(t, &mut lines)?;
        let done = (t - plan.start_s + 1) as u64;
        if done.is_multiple_of(600) || t + 1 == plan.end_s {
            progress(Progress {
                seconds_done: done,
                seconds_total: duration_s,
                lines: writer.events + writer.malformed,
            });
        }
    }
    let (events, malformed) = writer.finish()?;

    let mut incidents = Vec::new();
    for (planned, peak) in plan.incidents.iter().zip(sim.peaks()) {
        let mut truth = planned.truth.clone();
        if planned.peak_watch.is_some() {
            truth.min_peak_depth = Some(min_peak(peak));
        }
        incidents.push(truth);
    }
    let truth = Truth {
        generator: GeneratorInfo {
            seed: options.seed,
            scenarios: options
                .scenarios
                .iter()
                .map(|s| s.name().to_owned())
                .collect(),
            args: options.canonical_args(duration_s),
        },
        events,
        malformed,
        incidents,
    };
    let changes_path = out.join("changes.json");
    write_json(&changes_path, &plan.changes)?;
    let truth_path = out.join("truth.json");
    write_json(&truth_path, &truth)?;
    Ok(GenSummary {
        truth,
        events_path,
        changes_path,
        truth_path,
        duration_s,
    })
}

/// What the report must at least show for a backlog whose true peak was `peak`: the engine samples depth, so
/// allow 5 %, rounded down to three significant figures.
fn min_peak(peak: u64) -> u64 {
    let floor = peak * 95 / 100;
    let mut unit = 1;
    while floor / unit >= 1000 {
        unit *= 10;
    }
    floor / unit * unit
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), GenError> {
    let io = |source| GenError::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    let mut text = serde_json::to_string_pretty(value).map_err(|e| io(std::io::Error::other(e)))?;
    text.push('\n');
    std::fs::write(path, text).map_err(io)
}

#[cfg(test)]
#[path = "generator_tests.rs"]
mod tests;
