//! Tests of stored incidents: upsert by id, filters by state, User (including `*` incidents), kind and window.

use crate::store::tests::{USER_A, USER_B, record, temp_store};
use crate::store::{IncidentFilter, Upsert};
use stormwatch_core::incident::IncidentKind;

fn ids(incidents: &[crate::store::StoredIncident]) -> Vec<&str> {
    incidents.iter().map(|i| i.record.id.as_str()).collect()
}

#[test]
fn saving_again_by_id_replaces_the_record() {
    let (_dir, store) = temp_store();
    let open = record("INC-1", "90-B3-D5-1F-30-01-00-07", 100, None);
    assert_eq!(
        store.save_incident(open.clone(), None).unwrap(),
        Upsert::Created
    );
    assert_eq!(
        store.save_incident(open.clone(), None).unwrap(),
        Upsert::Unchanged
    );
    let resolved = stormwatch_core::report::IncidentRecord {
        resolved: Some(500),
        ..open
    };
    let extra = serde_json::json!({"shard": 3});
    assert_eq!(
        store
            .save_incident(resolved.clone(), Some(extra.clone()))
            .unwrap(),
        Upsert::Updated
    );
    let stored = store.get_incident("INC-1".into()).unwrap().unwrap();
    assert_eq!(stored.record, resolved);
    assert_eq!(stored.extra, Some(extra));
    assert!(store.get_incident("INC-2".into()).unwrap().is_none());
}

#[test]
fn filters_by_state_user_kind_and_window() {
    let (_dir, store) = temp_store();
    let mut storm = record("INC-2", "90b3d51f30010008", 300, Some(400));
    storm.kind = IncidentKind::RequestStorm;
    let mut wide = record("INC-3", "*", 350, None);
    wide.users = vec![
        "90-B3-D5-1F-30-01-00-07".into(),
        "90-B3-D5-1F-30-01-00-09".into(),
    ];
    for incident in [
        record("INC-1", "90-B3-D5-1F-30-01-00-07", 100, Some(200)),
        storm,
        wide,
    ] {
        store.save_incident(incident, None).unwrap();
    }
    let list = |filter| store.list_incidents(filter).unwrap();
    assert_eq!(
        ids(&list(IncidentFilter::default())),
        ["INC-1", "INC-2", "INC-3"]
    );
    assert_eq!(
        ids(&list(IncidentFilter {
            open: Some(true),
            ..Default::default()
        })),
        ["INC-3"]
    );
    assert_eq!(
        ids(&list(IncidentFilter {
            open: Some(false),
            ..Default::default()
        })),
        ["INC-1", "INC-2"]
    );
    let a = IncidentFilter {
        user: Some(USER_A),
        ..Default::default()
    };
    assert_eq!(
        ids(&list(a)),
        ["INC-1", "INC-3"],
        "a `*` incident listing the User counts"
    );
    let b = IncidentFilter {
        user: Some(USER_B),
        ..Default::default()
    };
    assert_eq!(
        ids(&list(b)),
        ["INC-2"],
        "any spelling of the User is indexed in one form"
    );
    let kind = IncidentFilter {
        kind: Some(IncidentKind::RequestStorm),
        ..Default::default()
    };
    assert_eq!(ids(&list(kind)), ["INC-2"]);
    let window = IncidentFilter {
        from_ms: Some(200),
        to_ms: Some(320),
        ..Default::default()
    };
    assert_eq!(ids(&list(window)), ["INC-1", "INC-2"]);
    let late = IncidentFilter {
        from_ms: Some(1_000),
        ..Default::default()
    };
    assert_eq!(
        ids(&list(late)),
        ["INC-3"],
        "an open incident lasts until now"
    );
}

#[test]
fn a_network_incident_keeps_the_users_every_writer_reported() {
    let (_dir, store) = temp_store();
    let share =
        |users: &[stormwatch_core::telemetry::Eui64]| stormwatch_core::report::IncidentRecord {
            users: users.iter().map(|u| u.to_string()).collect(),
            ..record("INC-backlog-NET-100", "*", 100, None)
        };
    store.save_incident(share(&[USER_A]), None).unwrap();
    store.save_incident(share(&[USER_B]), None).unwrap();
    let stored = store
        .get_incident("INC-backlog-NET-100".into())
        .unwrap()
        .unwrap();
    let mut expected = vec![USER_A.to_string(), USER_B.to_string()];
    expected.sort();
    assert_eq!(stored.record.users, expected);
    let by_user = IncidentFilter {
        user: Some(USER_A),
        ..IncidentFilter::default()
    };
    assert_eq!(
        ids(&store.list_incidents(by_user).unwrap()),
        ["INC-backlog-NET-100"]
    );
    // `?user=*`: the network-wide ones only, not each User's own.
    store
        .save_incident(record("INC-own", &USER_A.to_string(), 0, None), None)
        .unwrap();
    let network = IncidentFilter {
        network_only: true,
        ..IncidentFilter::default()
    };
    assert_eq!(
        ids(&store.list_incidents(network).unwrap()),
        ["INC-backlog-NET-100"]
    );
}

/// After a lost snapshot the engine once numbered from 1 again, and the next incident overwrote the stored
/// `INC-000001` (its record gone, the new storm carrying its acknowledgement and history).
#[test]
fn a_numbered_id_stored_for_another_incident_is_refused_not_overwritten() {
    let (_dir, store) = temp_store();
    let old = record("INC-000001", "90-B3-D5-1F-30-01-00-07", 100, Some(200));
    store.save_incident(old.clone(), None).unwrap();
    let other = record("INC-000001", "90-B3-D5-1F-30-01-00-08", 5_000, None);
    let error = store.save_incident(other, None).unwrap_err();
    assert!(
        matches!(error, crate::store::StoreError::IncidentIdTaken { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("refusing to overwrite"),
        "{error}"
    );
    let stored = store.get_incident("INC-000001".into()).unwrap().unwrap();
    assert_eq!(stored.record, old);
    // A later version of the same incident (same User, kind and detection) still updates it.
    let resolved_later = stormwatch_core::report::IncidentRecord {
        resolved: Some(900),
        ..old
    };
    assert_eq!(
        store.save_incident(resolved_later, None).unwrap(),
        Upsert::Updated
    );
}

/// Stable IDs (Kafka) name kind, User and onset: instances that detected the same incident at different
/// seconds write it alike.
#[test]
fn a_stable_id_may_be_written_by_instances_that_detected_it_at_different_times() {
    let (_dir, store) = temp_store();
    let id = "INC-backlog-NET-1773133500";
    let mut first = record(id, "*", 100, None);
    first.users = vec!["90-B3-D5-1F-30-01-00-07".into()];
    store.save_incident(first.clone(), None).unwrap();
    let mut second = first.clone();
    second.detected += 7;
    second.users = vec!["90-B3-D5-1F-30-01-00-09".into()];
    assert_eq!(store.save_incident(second, None).unwrap(), Upsert::Updated);
}
