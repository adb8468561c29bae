//! Pushing incidents to an Alertmanager (v2 API) from a thread of its own, so a slow or absent Alertmanager
//! never holds up the engine. Firing alerts are re-sent every minute (Alertmanager resolves alerts it stops
//! hearing about); a resolved incident is sent once more with `endsAt`, and again every few seconds until
//! Alertmanager has taken it (otherwise the page would stay up until Alertmanager's own timeout).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::{Value, json};

use stormwatch_core::incident::Verdict;
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::triage::duration;

const RESEND_EVERY: Duration = Duration::from_secs(60);
/// How soon a resolution Alertmanager did not take is tried again.
const RETRY_RESOLVED_EVERY: Duration = Duration::from_secs(10);
/// Alerts waiting to be sent; beyond this the oldest updates are dropped and counted in the log.
const QUEUE: usize = 1_024;

pub struct AlertMessage {
    pub record: IncidentRecord,
    pub resolved: bool,
}

/// Starts the sender thread; returns the channel the engine notifies on.
pub fn start(base_url: String, public_url: Option<String>) -> Sender<AlertMessage> {
    let (sender, receiver) = crossbeam::channel::bounded(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("alertmanager".into())
        .spawn(move || {
            run(
                &base_url,
                public_url.as_deref(),
                &receiver,
                RESEND_EVERY,
                RETRY_RESOLVED_EVERY,
            )
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the Alertmanager sender");
    }
    sender
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The alert for one incident, with labels user, kind and verdict and the top suspect in the annotations.
pub fn alert_body(record: &IncidentRecord, resolved: bool, public_url: Option<&str>) -> Value {
    let top = record.suspects.first().map_or_else(
        || "none: no registered change fits, an unregistered change is suspected".to_owned(),
        |s| {
            format!(
                "{} (score {:.2}): {}",
                s.change,
                s.score,
                s.reasons.join("; ")
            )
        },
    );
    let link = public_url.map(|base| {
        format!(
            "{}/api/v1/incidents/{}",
            base.trim_end_matches('/'),
            record.id
        )
    });
    let severity = if record.verdict == Verdict::ExpectedImpact {
        "info"
    } else {
        "page"
    };
    let mut alert = json!({
        "labels": {
            "alertname": "StormwatchIncident",
            "incident": record.id,
            "user": record.user,
            "kind": record.kind.as_str(),
            "verdict": record.verdict.as_str(),
            "severity": severity,
        },
        "annotations": {
            "summary": format!("{} at User {} since {}", record.kind.as_str(), record.user, stormwatch_core::triage::utc(record.onset)),
            "description": format!(
                "{} for {}, peak depth {}, {:.1}x normal; verdict {}. Top suspect: {}",
                record.kind.as_str(), duration(record.detected - record.onset), record.peak_depth, record.peak_ratio,
                record.verdict.as_str(), top
            ),
            "top_suspect": top,
        },
        "startsAt": stormwatch_core::rfc3339::format_ms(record.onset).unwrap_or_else(rfc3339_now),
    });
    if let Some(link) = link {
        alert["generatorURL"] = link.clone().into();
        alert["annotations"]["incident_url"] = link.into();
    }
    if resolved {
        alert["endsAt"] = rfc3339_now().into();
    }
    alert
}

fn run(
    base_url: &str,
    public_url: Option<&str>,
    input: &Receiver<AlertMessage>,
    resend_every: Duration,
    retry_every: Duration,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let url = format!("{}/api/v2/alerts", base_url.trim_end_matches('/'));
    let mut firing: BTreeMap<String, IncidentRecord> = BTreeMap::new();
    // Resolutions not yet taken, with the body as first sent (its `endsAt` is the time of resolution).
    let mut resolving: BTreeMap<String, Value> = BTreeMap::new();
    let mut last_resend = Instant::now();
    let mut last_retry = Instant::now();
    loop {
        let mut wait = resend_every.saturating_sub(last_resend.elapsed());
        if !resolving.is_empty() {
            wait = wait.min(retry_every.saturating_sub(last_retry.elapsed()));
        }
        match input.recv_timeout(wait) {
            Ok(message) => {
                let alert = alert_body(&message.record, message.resolved, public_url);
                let sent = post(&agent, &url, &Value::Array(vec![alert.clone()]));
                let id = message.record.id.clone();
                if message.resolved {
                    firing.remove(&id);
                    if !sent {
                        resolving.insert(id, alert);
                    }
                } else {
                    resolving.remove(&id);
                    firing.insert(id, message.record);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if !resolving.is_empty() && last_retry.elapsed() >= retry_every {
            last_retry = Instant::now();
            let body = Value::Array(resolving.values().cloned().collect());
            if post(&agent, &url, &body) {
                tracing::info!(
                    resolved = resolving.len(),
                    "Alertmanager took the resolutions it missed"
                );
                resolving.clear();
            }
        }
        if last_resend.elapsed() >= resend_every {
            last_resend = Instant::now();
            if !firing.is_empty() {
                let body = Value::Array(
                    firing
                        .values()
                        .map(|r| alert_body(r, false, public_url))
                        .collect(),
                );
                post(&agent, &url, &body);
            }
        }
    }
}

/// Posts `body`, three tries; true once Alertmanager took it.
fn post(agent: &ureq::Agent, url: &str, body: &Value) -> bool {
    for attempt in 1..=3 {
        match agent.post(url).send_json(body) {
            Ok(_) => return true,
            Err(error) => {
                tracing::warn!(%url, attempt, %error, "Alertmanager push failed");
                std::thread::sleep(Duration::from_millis(200 * attempt));
            }
        }
    }
    false
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;
