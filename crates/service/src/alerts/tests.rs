//! The Alertmanager sender against a stand-in that fails on demand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use super::*;

/// A stand-in Alertmanager: answers 500 to the first `failures` requests, then 200; sends each accepted body.
fn flaky_alertmanager(failures: usize) -> (String, std::sync::mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().map_while(Result::ok).enumerate() {
            let mut reader = BufReader::new(stream);
            let (mut length, mut line) = (0, String::new());
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let status = if n < failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = reader.get_mut().write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            if n >= failures
                && let Ok(value) = serde_json::from_slice(&body)
            {
                let _ = sender.send(value);
            }
        }
    });
    (url, receiver)
}

/// Found by the security review: a resolve push that failed was never retried, so the page stayed up.
#[test]
fn a_resolution_alertmanager_missed_is_sent_again() {
    let (url, accepted) = flaky_alertmanager(3);
    let (notify, input) = crossbeam::channel::bounded(4);
    std::thread::spawn(move || {
        run(
            &url,
            None,
            &input,
            Duration::from_secs(3_600),
            Duration::from_millis(100),
        )
    });
    let record = crate::store::tests::record("inc-1", "90-B3-D5-1F-30-01-00-07", 0, Some(60_000));
    notify
        .send(AlertMessage {
            record,
            resolved: true,
            user_label: None,
        })
        .unwrap();
    let body = accepted
        .recv_timeout(Duration::from_secs(30))
        .expect("the resolution is retried until taken");
    assert_eq!(body[0]["labels"]["incident"], "inc-1");
    assert!(body[0]["endsAt"].is_string(), "{body}");
}

fn suspect(change: &str, title: &str) -> stormwatch_core::incident::Suspect {
    stormwatch_core::incident::Suspect {
        change: change.into(),
        title: title.into(),
        contact: String::new(),
        score: 0.8,
        reasons: vec!["same User".into()],
    }
}

fn open(record: &IncidentRecord) -> AlertMessage {
    AlertMessage {
        record: record.clone(),
        resolved: false,
        user_label: None,
    }
}

/// Issue 13: a change registered after the incident opened turned the verdict, and the alert kept saying the old
/// one (and, with the verdict as a label, would have become a second alert). Now the labels stay, the annotations
/// move, and only what a person acts on pushes at once.
#[test]
fn a_new_verdict_updates_the_same_alert_and_a_growing_peak_waits_for_the_resend() {
    let mut firing = BTreeMap::new();
    let mut record = crate::store::tests::record("INC-000001", "90-B3-D5-1F-30-01-00-07", 0, None);
    let first = on_message(&mut firing, open(&record), Some("https://sw.example"));
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0]["annotations"]["verdict"],
        "unregistered_change_suspected"
    );
    assert_eq!(
        first[0]["annotations"]["incident_url"],
        "https://sw.example/#/incident/INC-000001"
    );

    record.peak_depth = 90_000;
    let grown = on_message(&mut firing, open(&record), None);
    assert!(
        grown.is_empty(),
        "a bigger peak alone waits for the re-send: {grown:?}"
    );
    let resend = firing["INC-000001"].bodies(None);
    assert_eq!(resend[0]["annotations"]["peak_depth"], "90000");

    record.verdict = Verdict::RegisteredChange;
    record.suspects = vec![suspect("CHG-LATE-1", "Firewall rule migration")];
    let changed = on_message(&mut firing, open(&record), None);
    assert_eq!(changed.len(), 1, "a new verdict is pushed at once");
    assert_eq!(
        changed[0]["labels"], first[0]["labels"],
        "same alert, same identity"
    );
    assert!(changed[0]["labels"].get("verdict").is_none());
    assert_eq!(changed[0]["annotations"]["verdict"], "registered_change");
    assert_eq!(
        changed[0]["annotations"]["top_suspect"],
        "CHG-LATE-1 \"Firewall rule migration\" (score 0.80): same User"
    );

    // Severity is what it was first sent with, even when the verdict would now say otherwise.
    record.verdict = Verdict::ExpectedImpact;
    let expected = on_message(&mut firing, open(&record), None);
    assert_eq!(expected[0]["labels"]["severity"], "page");
}

/// The correlator's nearest candidate under `unregistered_change_suspected` counted against itself: it must not
/// read as the suspect.
#[test]
fn an_unregistered_verdict_names_its_nearest_candidate_as_ruled_out() {
    let mut record = crate::store::tests::record("INC-2", "90-B3-D5-1F-30-01-00-07", 0, None);
    record.suspects = vec![suspect("CHG-9", "Tariff push")];
    let top = top_suspect(&record);
    assert!(
        top.starts_with(
            "none: an unregistered change is suspected; nearest registered change ruled out: CHG-9"
        ),
        "{top}"
    );
}

/// A network-wide backlog whose verdict becomes `dcc_change` fires a companion alert (what the shipped
/// Alertmanager config mutes Users' backlogs by) and resolves it when the verdict moves on or the incident ends.
#[test]
fn a_dcc_verdict_on_a_network_backlog_fires_and_resolves_its_companion() {
    let mut firing = BTreeMap::new();
    let mut record = crate::store::tests::record("INC-NET", "*", 0, None);
    assert_eq!(on_message(&mut firing, open(&record), None).len(), 1);
    record.verdict = Verdict::DccChange;
    let bodies = on_message(&mut firing, open(&record), None);
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1]["labels"]["alertname"], "StormwatchDccCause");
    assert!(bodies[1].get("endsAt").is_none());
    assert_eq!(
        firing["INC-NET"].bodies(None).len(),
        2,
        "re-sent while it holds"
    );
    let ended = on_message(
        &mut firing,
        AlertMessage {
            record: record.clone(),
            resolved: true,
            user_label: None,
        },
        None,
    );
    assert_eq!(ended.len(), 2);
    assert!(ended.iter().all(|b| b["endsAt"].is_string()), "{ended:?}");
    assert!(firing.is_empty());
}

/// Issue 13: alerts named the User by EUI-64 only and the change by ID only. The party name is an annotation
/// (never a label: a rename must update the alert, not open a second one), and the contact sits beside the ID.
#[test]
fn the_alert_names_the_party_and_the_suspects_contact_without_touching_its_labels() {
    let mut record = crate::store::tests::record("inc-9", "90-B3-D5-1F-30-01-00-07", 0, None);
    let mut top = suspect("CHG-1", "Firewall rule migration");
    top.contact = "netops@example.invalid".into();
    top.score = 0.9;
    record.suspects = vec![top];
    record.verdict = stormwatch_core::incident::Verdict::RegisteredChange;
    let named = alert_body(&record, "page", false, None, Some("Acme Energy (supplier)"));
    let plain = alert_body(&record, "page", false, None, None);
    assert_eq!(named["labels"], plain["labels"]);
    assert_eq!(named["annotations"]["user_name"], "Acme Energy (supplier)");
    let summary = named["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("Acme Energy (supplier), User 90-B3-D5-1F-30-01-00-07"),
        "{summary}"
    );
    let top = named["annotations"]["top_suspect"].as_str().unwrap();
    assert!(
        top.starts_with("CHG-1 \"Firewall rule migration\" [contact netops@example.invalid]"),
        "{top}"
    );
    assert!(plain["annotations"].get("user_name").is_none());
}
