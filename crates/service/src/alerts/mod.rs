//! Pushing incidents to an Alertmanager (v2 API) from a thread of its own, so a slow or absent Alertmanager
//! never holds up the engine. Firing alerts are re-sent every minute (Alertmanager resolves alerts it stops
//! hearing about); a resolved incident is sent once more with `endsAt`, and again every few seconds until
//! Alertmanager has taken it (otherwise the page would stay up until Alertmanager's own timeout). Each alert's
//! labels are fixed for its incident's life; its annotations carry the incident as it is now.

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
    /// The User's party name and role from the User directory (`Acme Energy (supplier)`), when it has one.
    pub user_label: Option<String>,
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

/// What paging depends on at first sight, then kept for the incident's life: a verdict that changes later must
/// update the alert, not make a second one (Alertmanager tells alerts apart by their labels).
pub fn severity_of(record: &IncidentRecord) -> &'static str {
    if record.verdict == Verdict::ExpectedImpact {
        "info"
    } else {
        "page"
    }
}

/// The top suspect as a person reads it: ID, title, score and reasons. Under `unregistered_change_suspected` no
/// registered change fits: the nearest candidate is named as ruled out, never as the suspect.
pub fn top_suspect(record: &IncidentRecord) -> String {
    let Some(s) = record.suspects.first() else {
        return "none: no registered change fits, an unregistered change is suspected".to_owned();
    };
    let mut named = if s.title.is_empty() {
        s.change.clone()
    } else {
        format!("{} \"{}\"", s.change, s.title)
    };
    if !s.contact.is_empty() {
        named.push_str(&format!(" [contact {}]", s.contact));
    }
    let judged = format!("{named} (score {:.2}): {}", s.score, s.reasons.join("; "));
    if record.verdict == Verdict::UnregisteredChangeSuspected {
        format!(
            "none: an unregistered change is suspected; nearest registered change ruled out: {judged}"
        )
    } else {
        judged
    }
}

/// The console's page for an incident: what a person can open (the console asks for a token once, then lands
/// there); the JSON API needs a bearer token a browser does not send.
pub fn console_url(public_url: &str, incident: &str) -> String {
    format!("{}/#/incident/{incident}", public_url.trim_end_matches('/'))
}

/// The alert for one incident. Labels are its identity for life (alertname, incident, user, kind and the
/// severity it was first sent with); everything that moves while it is open (verdict, peak, top suspect) is in
/// the annotations, current on every send.
pub fn alert_body(
    record: &IncidentRecord,
    severity: &str,
    resolved: bool,
    public_url: Option<&str>,
    user_label: Option<&str>,
) -> Value {
    let top = top_suspect(record);
    let who = match user_label {
        Some(label) => format!("{label}, User {}", record.user),
        None => format!("User {}", record.user),
    };
    let mut alert = json!({
        "labels": {
            "alertname": "StormwatchIncident",
            "incident": record.id,
            "user": record.user,
            "kind": record.kind.as_str(),
            "severity": severity,
        },
        "annotations": {
            "summary": format!("{} at {who} since {}", record.kind.as_str(), stormwatch_core::triage::utc(record.onset)),
            "description": format!(
                "{} for {}, peak depth {}, {:.1}x normal; verdict {}. Top suspect: {}",
                record.kind.as_str(), duration(record.detected - record.onset), record.peak_depth, record.peak_ratio,
                record.verdict.as_str(), top
            ),
            "verdict": record.verdict.as_str(),
            "peak_depth": record.peak_depth.to_string(),
            "top_suspect": top,
        },
        "startsAt": stormwatch_core::rfc3339::format_ms(record.onset).unwrap_or_else(rfc3339_now),
    });
    if let Some(label) = user_label {
        alert["annotations"]["user_name"] = label.into();
    }
    if let Some(base) = public_url {
        let link = console_url(base, &record.id);
        alert["generatorURL"] = link.clone().into();
        alert["annotations"]["incident_url"] = link.into();
        alert["annotations"]["api_url"] = format!(
            "{}/api/v1/incidents/{}",
            base.trim_end_matches('/'),
            record.id
        )
        .into();
    }
    if resolved {
        alert["endsAt"] = rfc3339_now().into();
    }
    alert
}

/// Whether `record` is a network-wide backlog that a DCC change explains: while it is, a companion alert
/// `StormwatchDccCause` fires, and the shipped Alertmanager config mutes each User's own backlog alerts by it.
/// It is a separate alert so that the incident's own labels never depend on the verdict.
fn dcc_cause(record: &IncidentRecord) -> bool {
    record.user == "*"
        && record.kind == stormwatch_core::incident::IncidentKind::Backlog
        && record.verdict == Verdict::DccChange
}

/// The companion alert of a network-wide backlog: firing while a DCC change explains it, resolved otherwise.
pub fn cause_body(record: &IncidentRecord, firing: bool, public_url: Option<&str>) -> Value {
    let mut alert = json!({
        "labels": {
            "alertname": "StormwatchDccCause",
            "incident": record.id,
            "user": record.user,
            "kind": record.kind.as_str(),
            "severity": "info",
        },
        "annotations": {
            "summary": "a DCC change explains this network-wide backlog: each User's own backlog alert is muted",
            "top_suspect": top_suspect(record),
        },
        "startsAt": stormwatch_core::rfc3339::format_ms(record.onset).unwrap_or_else(rfc3339_now),
    });
    if let Some(base) = public_url {
        alert["generatorURL"] = console_url(base, &record.id).into();
    }
    if !firing {
        alert["endsAt"] = rfc3339_now().into();
    }
    alert
}

/// An incident the sender keeps re-sending, with what it was first sent as.
struct Firing {
    record: IncidentRecord,
    severity: &'static str,
    /// The companion cause alert is firing in Alertmanager.
    cause: bool,
    user_label: Option<String>,
}

impl Firing {
    fn bodies(&self, public_url: Option<&str>) -> Vec<Value> {
        let mut bodies = vec![alert_body(
            &self.record,
            self.severity,
            false,
            public_url,
            self.user_label.as_deref(),
        )];
        if self.cause {
            bodies.push(cause_body(&self.record, true, public_url));
        }
        bodies
    }
}

/// What a person acts on: a change in these is pushed at once; the figures (peak, age) go out with the next
/// re-send, so a growing backlog does not push every second.
fn headline(record: &IncidentRecord) -> (Verdict, Option<&str>) {
    (
        record.verdict,
        record.suspects.first().map(|s| s.change.as_str()),
    )
}

/// The bodies to post for one message, updating what is firing.
fn on_message(
    firing: &mut BTreeMap<String, Firing>,
    message: AlertMessage,
    public_url: Option<&str>,
) -> Vec<Value> {
    let id = message.record.id.clone();
    let known = firing.remove(&id);
    if message.resolved {
        let severity = known
            .as_ref()
            .map_or_else(|| severity_of(&message.record), |f| f.severity);
        let mut bodies = vec![alert_body(
            &message.record,
            severity,
            true,
            public_url,
            message.user_label.as_deref(),
        )];
        if known.as_ref().is_some_and(|f| f.cause) || dcc_cause(&message.record) {
            bodies.push(cause_body(&message.record, false, public_url));
        }
        return bodies;
    }
    let cause_now = dcc_cause(&message.record);
    let (severity, push) = match &known {
        Some(f) => (
            f.severity,
            headline(&f.record) != headline(&message.record) || f.cause != cause_now,
        ),
        None => (severity_of(&message.record), true),
    };
    let mut bodies = Vec::new();
    if push {
        bodies.push(alert_body(
            &message.record,
            severity,
            false,
            public_url,
            message.user_label.as_deref(),
        ));
        if cause_now {
            bodies.push(cause_body(&message.record, true, public_url));
        } else if known.as_ref().is_some_and(|f| f.cause) {
            bodies.push(cause_body(&message.record, false, public_url));
        }
    }
    firing.insert(
        id,
        Firing {
            record: message.record,
            severity,
            cause: cause_now,
            user_label: message.user_label,
        },
    );
    bodies
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
    let mut firing: BTreeMap<String, Firing> = BTreeMap::new();
    // Resolutions not yet taken, with the bodies as first sent (their `endsAt` is the time of resolution).
    let mut resolving: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut last_resend = Instant::now();
    let mut last_retry = Instant::now();
    loop {
        let mut wait = resend_every.saturating_sub(last_resend.elapsed());
        if !resolving.is_empty() {
            wait = wait.min(retry_every.saturating_sub(last_retry.elapsed()));
        }
        match input.recv_timeout(wait) {
            Ok(message) => {
                let id = message.record.id.clone();
                let resolved = message.resolved;
                let bodies = on_message(&mut firing, message, public_url);
                let sent = bodies.is_empty() || post(&agent, &url, &Value::Array(bodies.clone()));
                if resolved {
                    if !sent {
                        resolving.insert(id, bodies);
                    }
                } else {
                    resolving.remove(&id);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if !resolving.is_empty() && last_retry.elapsed() >= retry_every {
            last_retry = Instant::now();
            let body = Value::Array(resolving.values().flatten().cloned().collect());
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
                let body =
                    Value::Array(firing.values().flat_map(|f| f.bodies(public_url)).collect());
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
#[path = "tests.rs"]
mod tests;
