//! Tests of incident triage: acknowledgements, notes and suspect judgements are appended with actor and time,
//! fold into the standing state, and refuse unknown incidents and changes; the state history follows saves.

use crate::store::tests::{USER_A, notice, record, temp_store};
use crate::store::{Judgement, Store, StoreError, TriageAction, TriageRequest};
use stormwatch_core::changes::ChangeOwner;
use stormwatch_core::incident::{Suspect, Verdict};

fn judge(store: &Store, change: &str, judgement: Judgement, actor: &str) -> bool {
    store
        .triage_incident(
            "INC-1".into(),
            TriageRequest::Suspect {
                change: change.into(),
                judgement,
                text: String::new(),
            },
            actor.into(),
        )
        .unwrap()
        .written
}

fn with_incident_and_changes() -> (tempfile::TempDir, Store) {
    let (dir, store) = temp_store();
    store
        .save_incident(record("INC-1", "90-B3-D5-1F-30-01-00-07", 100, None), None)
        .unwrap();
    let changes = vec![
        notice("CHG-1", ChangeOwner::User(USER_A), 0, 1_000),
        notice("CHG-2", ChangeOwner::Dcc, 0, 1_000),
    ];
    store
        .upsert_changes(changes, "alice".into(), Default::default())
        .unwrap();
    (dir, store)
}

#[test]
fn actions_are_audited_and_fold_into_the_standing_triage() {
    let (_dir, store) = with_incident_and_changes();
    let ack = |actor: &str| {
        store
            .triage_incident(
                "INC-1".into(),
                TriageRequest::Acknowledge {
                    text: "looking".into(),
                },
                actor.into(),
            )
            .unwrap()
    };
    assert!(ack("ops-alice").written);
    assert!(
        !ack("ops-bob").written,
        "a second acknowledgement writes nothing"
    );
    let note = TriageRequest::Note {
        text: "  firewall team paged  ".into(),
    };
    store
        .triage_incident("INC-1".into(), note, "ops-bob".into())
        .unwrap();
    assert!(judge(&store, "CHG-1", Judgement::Confirmed, "ops-bob"));
    assert!(!judge(&store, "CHG-1", Judgement::Confirmed, "ops-bob"));
    assert!(judge(&store, "CHG-2", Judgement::Rejected, "ops-bob"));
    assert!(judge(&store, "CHG-2", Judgement::Undecided, "ops-alice"));

    let triage = store.incident_triage("INC-1".into()).unwrap();
    let acknowledged = triage.acknowledged.as_ref().unwrap();
    assert_eq!(
        (acknowledged.actor.as_str(), acknowledged.text.as_str()),
        ("ops-alice", "looking")
    );
    assert!(acknowledged.at_ms > 0, "wall-clock time");
    assert_eq!(triage.notes.len(), 1);
    assert_eq!(triage.notes[0].text, "firewall team paged", "trimmed");
    assert_eq!(triage.judgement_of("CHG-1"), Some(Judgement::Confirmed));
    assert_eq!(triage.judgement_of("CHG-2"), None, "withdrawn");
    let actions: Vec<_> = triage.log.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            TriageAction::Acknowledge,
            TriageAction::Note,
            TriageAction::Suspect,
            TriageAction::Suspect,
            TriageAction::Suspect
        ],
        "every write is in the trail, in order"
    );
    let many = store
        .incident_triages(vec!["INC-1".into(), "INC-9".into()])
        .unwrap();
    assert_eq!(many[0].log, triage.log);
    assert!(many[1].log.is_empty());
}

#[test]
fn unknown_incidents_changes_and_empty_notes_are_refused_without_writing() {
    let (_dir, store) = with_incident_and_changes();
    let refuse = |id: &str, request: TriageRequest| {
        store
            .triage_incident(id.into(), request, "ops".into())
            .unwrap_err()
    };
    let missing = refuse(
        "INC-9",
        TriageRequest::Acknowledge {
            text: String::new(),
        },
    );
    assert!(
        matches!(
            missing,
            StoreError::NotFound {
                what: "incident",
                ..
            }
        ),
        "{missing:?}"
    );
    let change = refuse(
        "INC-1",
        TriageRequest::Suspect {
            change: "CHG-9".into(),
            judgement: Judgement::Confirmed,
            text: String::new(),
        },
    );
    assert!(
        matches!(change, StoreError::NotFound { what: "change", .. }),
        "{change:?}"
    );
    let empty = refuse("INC-1", TriageRequest::Note { text: " ".into() });
    assert!(
        matches!(&empty, StoreError::Constraint { field, .. } if field == "text"),
        "{empty:?}"
    );
    let long = refuse(
        "INC-1",
        TriageRequest::Note {
            text: "x".repeat(crate::store::MAX_NOTE_CHARS + 1),
        },
    );
    assert!(matches!(long, StoreError::Constraint { .. }), "{long:?}");
    assert!(
        store
            .incident_triage("INC-1".into())
            .unwrap()
            .log
            .is_empty()
    );
    assert!(matches!(
        store.incident_triage("INC-9".into()),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn history_records_opening_verdict_changes_and_resolution_once_each() {
    let (_dir, store) = with_incident_and_changes();
    let mut incident = record("INC-1", "90-B3-D5-1F-30-01-00-07", 100, None);
    incident.peak_depth = 5_000;
    store.save_incident(incident.clone(), None).unwrap();
    incident.verdict = Verdict::RegisteredChange;
    incident.suspects = vec![Suspect {
        change: "CHG-1".into(),
        title: String::new(),
        contact: String::new(),
        score: 0.9,
        reasons: vec!["same User".into()],
    }];
    store.save_incident(incident.clone(), None).unwrap();
    store.save_incident(incident.clone(), None).unwrap();
    incident.resolved = Some(900);
    store.save_incident(incident, None).unwrap();
    let history = store.incident_triage("INC-1".into()).unwrap().history;
    let states: Vec<_> = history.iter().map(|h| h.state.as_str()).collect();
    assert_eq!(
        states,
        ["opened", "verdict", "resolved"],
        "a growing peak is no transition"
    );
    assert_eq!(history[0].event_ms, Some(130), "opened at detection");
    assert!(
        history[1]
            .detail
            .contains("unregistered_change_suspected -> registered_change; top suspect CHG-1"),
        "{}",
        history[1].detail
    );
    assert_eq!(history[2].event_ms, Some(900));
}
