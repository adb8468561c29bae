//! The per-User series of `/metrics` (depth, backlog age, flows against baseline, watches), rendered at scrape time
//! from the values the engine thread copied at its last tick. They are not registered with the metrics recorder:
//! it drops a series only through its wall-clock `idle_timeout`, which applies to every metric of a kind alike
//! (`stormwatch_build_info`, set once at start, would go too) and keeps an evicted User's series until it expires.
//! Without a drop, every User ever seen would stay in `/metrics` and in memory, and made-up User IDs that come and
//! go (each evicted when idle) would grow both without bound. Here a User that leaves the engine's table leaves
//! `/metrics` at the next tick.

use std::fmt::Write;
use std::sync::Mutex;

use stormwatch_core::engine::Engine;
use stormwatch_core::engine::window::Flow;
use stormwatch_core::incident::IncidentKind;
use stormwatch_core::telemetry::Eui64;

pub const DEPTH: &str = "stormwatch_user_queue_depth";
pub const BACKLOG_AGE: &str = "stormwatch_user_backlog_age_seconds";
pub const FLOW_RATE: &str = "stormwatch_user_flow_rate";
pub const FLOW_BASELINE: &str = "stormwatch_user_flow_baseline";
pub const FLOW_RATIO: &str = "stormwatch_user_flow_ratio";
pub const DELIVERING: &str = "stormwatch_user_delivering";
pub const CLOCK_OFFSET: &str = "stormwatch_user_clock_offset_seconds";
pub const WATCH: &str = "stormwatch_user_watch";

/// The flows published per User, with their label value.
const PUBLISHED: [(Flow, &str); 5] = [
    (Flow::Requests, "requests"),
    (Flow::Rejected, "rejected"),
    (Flow::QueuedResponses, "queued_responses"),
    (Flow::QueuedAlerts, "queued_alerts"),
    (Flow::Delivered, "delivered"),
];

/// One User's values at the last tick.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    user: Eui64,
    depth: f64,
    age: f64,
    delivering: f64,
    clock_offset: f64,
    /// By kind, in [`IncidentKind::ALL`] order.
    watch: [f64; 4],
    rates: [f64; 5],
    baselines: [f64; 5],
    ratios: [f64; 5],
}

/// The last tick's samples. Process-wide, like the metrics recorder `/metrics` renders beside them.
static LATEST: Mutex<Vec<Sample>> = Mutex::new(Vec::new());

/// Copies each User's values, once per tick. `spare` is the previous tick's buffer, swapped back out, so a steady
/// table allocates nothing.
pub fn publish(engine: &Engine, spare: &mut Vec<Sample>) {
    fill(engine, spare);
    if let Ok(mut latest) = LATEST.lock() {
        std::mem::swap(&mut *latest, spare);
    }
}

fn fill(engine: &Engine, samples: &mut Vec<Sample>) {
    samples.clear();
    samples.extend(engine.users().map(|(key, user)| {
        let baselines = user.flow_baselines();
        let mut sample = Sample {
            user: user.id,
            depth: user.depth() as f64,
            age: user.view.backlog_age_s as f64,
            delivering: if user.view.now.get(Flow::Delivered) > 0 {
                1.0
            } else {
                0.0
            },
            clock_offset: user.clock_offset_ms as f64 / 1000.0,
            watch: engine
                .watches_of(key)
                .map(|watch| if watch.is_some() { 1.0 } else { 0.0 }),
            ..Sample::default()
        };
        for (index, (flow, _)) in PUBLISHED.iter().enumerate() {
            let rate = user.view.short_rate(*flow);
            let baseline = baselines[index];
            sample.rates[index] = rate;
            sample.baselines[index] = baseline;
            sample.ratios[index] = if baseline > 0.0 { rate / baseline } else { 0.0 };
        }
        sample
    }));
}

/// No User at all (the engine was rebuilt): nothing to show until the next tick.
pub fn clear() {
    if let Ok(mut latest) = LATEST.lock() {
        latest.clear();
    }
}

/// The series in the Prometheus text format, each family with its HELP and TYPE lines.
pub fn render() -> String {
    // Copied out so the engine thread's next tick never waits on the formatting.
    let samples = match LATEST.lock() {
        Ok(latest) => latest.clone(),
        Err(_) => return String::new(),
    };
    render_samples(&samples)
}

fn render_samples(samples: &[Sample]) -> String {
    if samples.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(samples.len() * 1_800);
    let mut family = |name: &str, help: &str, each: &dyn Fn(&mut String, &str, &Sample)| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
        for sample in samples {
            each(&mut out, name, sample);
        }
        out.push('\n');
    };
    let one = |value: fn(&Sample) -> f64| {
        move |out: &mut String, name: &str, s: &Sample| {
            let _ = writeln!(out, "{name}{{user=\"{}\"}} {}", s.user, number(value(s)));
        }
    };
    let per_flow = |value: fn(&Sample) -> [f64; 5]| {
        move |out: &mut String, name: &str, s: &Sample| {
            for ((_, flow), v) in PUBLISHED.iter().zip(value(s)) {
                let _ = writeln!(
                    out,
                    "{name}{{user=\"{}\",flow=\"{flow}\"}} {}",
                    s.user,
                    number(v)
                );
            }
        }
    };
    family(
        DEPTH,
        "Queue depth of each User at the last closed second",
        &one(|s| s.depth),
    );
    family(
        BACKLOG_AGE,
        "Age of the oldest message waiting for each User",
        &one(|s| s.age),
    );
    family(
        FLOW_RATE,
        "10-second mean rate per second of each User flow",
        &per_flow(|s| s.rates),
    );
    family(
        FLOW_BASELINE,
        "Baseline rate per second of each User flow",
        &per_flow(|s| s.baselines),
    );
    family(
        FLOW_RATIO,
        "Rate against baseline of each User flow",
        &per_flow(|s| s.ratios),
    );
    family(
        DELIVERING,
        "1 when the User's deliveries succeeded in the last closed second, else 0",
        &one(|s| s.delivering),
    );
    family(
        CLOCK_OFFSET,
        "How far each User's clock runs ahead of network event time (negative: behind), once recognised",
        &one(|s| s.clock_offset),
    );
    family(
        WATCH,
        "1 while an anomaly of this kind is on watch for the User (pending: not an incident yet), else 0",
        &|out: &mut String, name: &str, s: &Sample| {
            for (kind, v) in IncidentKind::ALL.iter().zip(s.watch) {
                let _ = writeln!(
                    out,
                    "{name}{{user=\"{}\",kind=\"{}\"}} {}",
                    s.user,
                    kind.as_str(),
                    number(v)
                );
            }
        },
    );
    out
}

/// A sample value as Prometheus reads it.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormwatch_core::changes::ChangeRegister;
    use stormwatch_core::engine::EngineConfig;
    use stormwatch_core::telemetry::{Event, EventKind};

    #[test]
    fn a_user_that_leaves_the_table_leaves_the_series() {
        let config = EngineConfig {
            evict_idle_after_s: 60,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(config, ChangeRegister::default());
        let t0 = 1_773_133_200_000;
        let (keeper, passing) = (Eui64(0x90B3_D51F_3001_0001), Eui64(0x0200_0000_0000_0001));
        engine
            .ingest(&Event::new(t0, passing, EventKind::Request, 1))
            .unwrap();
        let mut samples = Vec::new();
        for second in 0..100 {
            let event = Event::new(t0 + second * 1000, keeper, EventKind::Request, 7);
            engine.ingest(&event).unwrap();
            if second == 40 {
                assert_eq!(engine.user_count(), 2);
                fill(&engine, &mut samples);
                let text = render_samples(&samples);
                assert!(
                    text.contains(&format!("{DEPTH}{{user=\"{passing}\"}} 0\n")),
                    "{text}"
                );
                assert!(
                    text.contains(&format!(
                        "{FLOW_RATE}{{user=\"{keeper}\",flow=\"requests\"}} 7\n"
                    )),
                    "{text}"
                );
                assert!(text.contains(&format!("# TYPE {WATCH} gauge\n")));
            }
        }
        fill(&engine, &mut samples);
        let text = render_samples(&samples);
        assert!(!text.contains(&passing.to_string()), "{text}");
        assert!(
            text.contains(&format!("{DEPTH}{{user=\"{keeper}\"}} 0\n")),
            "{text}"
        );
        assert_eq!(render_samples(&[]), "");
    }

    #[test]
    fn values_read_as_prometheus_numbers() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
    }
}
