//! Tests of the stored change register: upserts all or nothing, audit rows, filters, status changes.

use crate::store::tests::{USER_A, USER_B, notice, temp_store};
use crate::store::{
    AuditAction, ChangeFilter, Registration, Store, StoreError, Upsert, UpsertOutcome,
};
use stormwatch_core::changes::{ChangeNotice, ChangeOwner, ChangeStatus};

/// Whole notices written by a caller confined to `owner`.
fn upsert_confined(
    store: &Store,
    notices: Vec<ChangeNotice>,
    actor: &str,
    owner: ChangeOwner,
) -> Result<Vec<UpsertOutcome>, StoreError> {
    let registrations = notices.into_iter().map(Registration::Replace).collect();
    store.register_changes(
        registrations,
        actor.into(),
        Some(owner),
        Default::default(),
        Box::new(|_| Ok(())),
    )
}

/// The fields of a JSON object, as a merge registration takes them.
fn fields(value: serde_json::Value) -> Registration {
    Registration::Merge(value.as_object().cloned().unwrap_or_default())
}

fn ids(changes: &[crate::store::StoredChange]) -> Vec<&str> {
    changes.iter().map(|c| c.notice.id.as_str()).collect()
}

#[test]
fn upsert_creates_then_updates_then_leaves_identical_notices_alone() {
    let (_dir, store) = temp_store();
    let first = notice("CHG-1", ChangeOwner::User(USER_A), 1_000, 2_000);
    let outcomes = store
        .upsert_changes(vec![first.clone()], "alice".into(), Default::default())
        .unwrap();
    assert_eq!(outcomes[0].outcome, Upsert::Created);
    let mut moved = first.clone();
    moved.end_ms = 3_000;
    moved.status = ChangeStatus::InProgress;
    let outcomes = store
        .upsert_changes(
            vec![moved.clone(), moved.clone()],
            "bob".into(),
            Default::default(),
        )
        .unwrap();
    let kinds: Vec<_> = outcomes.iter().map(|o| o.outcome).collect();
    assert_eq!(kinds, [Upsert::Updated, Upsert::Unchanged]);
    let stored = store.get_change("CHG-1".into()).unwrap().unwrap();
    assert_eq!(stored.notice, moved);
    assert!(stored.updated_ms >= stored.created_ms);

    let audit = store.change_audit("CHG-1".into()).unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(
        (audit[0].action, audit[0].actor.as_str()),
        (AuditAction::Create, "alice")
    );
    assert_eq!(audit[0].after_status, Some(ChangeStatus::Planned));
    assert_eq!(
        (audit[1].action, audit[1].actor.as_str()),
        (AuditAction::Update, "bob")
    );
    assert_eq!(audit[1].before_status, Some(ChangeStatus::Planned));
    assert_eq!(audit[1].after_status, Some(ChangeStatus::InProgress));
    assert!(
        audit[1]
            .detail
            .contains("end: 1970-01-01T00:00:02Z -> 1970-01-01T00:00:03Z"),
        "{}",
        audit[1].detail
    );
    assert!(
        audit[1].detail.contains("status: planned -> in_progress"),
        "{}",
        audit[1].detail
    );
}

#[test]
fn a_batch_with_one_row_the_database_refuses_leaves_nothing() {
    let (_dir, store) = temp_store();
    store
        .upsert_changes(
            vec![notice("KEEP", ChangeOwner::Dcc, 0, 10)],
            "setup".into(),
            Default::default(),
        )
        .unwrap();
    // Built by hand past the validator, so the schema's CHECK is what refuses it, after rows before it were written.
    let backwards = notice("BAD", ChangeOwner::User(USER_A), 500, 100);
    let mut retitled = notice("KEEP", ChangeOwner::Dcc, 0, 10);
    retitled.title = "changed".into();
    let batch = vec![
        notice("NEW-1", ChangeOwner::User(USER_A), 0, 10),
        retitled,
        backwards,
        notice("NEW-2", ChangeOwner::User(USER_B), 0, 10),
    ];
    let error = store
        .upsert_changes(batch, "import".into(), Default::default())
        .unwrap_err();
    match &error {
        StoreError::Constraint { field, .. } => assert_eq!(field, "end"),
        other => panic!("expected a constraint on `end`, got {other:?}"),
    }
    let all = store.list_changes(ChangeFilter::default()).unwrap();
    assert_eq!(ids(&all), ["KEEP"]);
    assert_eq!(all[0].notice.title, "network change KEEP");
    assert!(store.change_audit("NEW-1".into()).unwrap().is_empty());
    assert_eq!(store.change_audit("KEEP".into()).unwrap().len(), 1);
}

#[test]
fn a_notice_whose_time_cannot_be_written_fails_the_batch_naming_the_field() {
    let (_dir, store) = temp_store();
    let batch = vec![
        notice("OK", ChangeOwner::Dcc, 0, 10),
        notice("FAR", ChangeOwner::Dcc, i64::MAX - 1, i64::MAX),
    ];
    let error = store
        .upsert_changes(batch, "t".into(), Default::default())
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Constraint { field, .. } if field == "start"),
        "{error:?}"
    );
    assert!(store.load_register().unwrap().is_empty());
}

#[test]
fn filters_by_owner_window_overlap_and_status() {
    let (_dir, store) = temp_store();
    let mut cancelled = notice("C", ChangeOwner::User(USER_A), 300, 400);
    cancelled.status = ChangeStatus::Cancelled;
    let batch = vec![
        notice("A", ChangeOwner::User(USER_A), 100, 200),
        notice("B", ChangeOwner::User(USER_B), 150, 250),
        cancelled,
        notice("D", ChangeOwner::Dcc, 50, 120),
    ];
    store
        .upsert_changes(batch, "t".into(), Default::default())
        .unwrap();
    let list = |filter| store.list_changes(filter).unwrap();
    assert_eq!(ids(&list(ChangeFilter::default())), ["D", "A", "B", "C"]);
    let mine = ChangeFilter {
        user: Some(ChangeOwner::User(USER_A)),
        ..Default::default()
    };
    assert_eq!(ids(&list(mine)), ["A", "C"]);
    let dcc = ChangeFilter {
        user: Some(ChangeOwner::Dcc),
        ..Default::default()
    };
    assert_eq!(ids(&list(dcc)), ["D"]);
    let window = ChangeFilter {
        from_ms: Some(200),
        to_ms: Some(300),
        ..Default::default()
    };
    assert_eq!(
        ids(&list(window)),
        ["A", "B", "C"],
        "touching windows count"
    );
    let after = ChangeFilter {
        from_ms: Some(201),
        ..Default::default()
    };
    assert_eq!(ids(&list(after)), ["B", "C"]);
    let status = ChangeFilter {
        status: Some(ChangeStatus::Cancelled),
        ..Default::default()
    };
    assert_eq!(ids(&list(status)), ["C"]);
}

#[test]
fn cancelling_writes_status_and_audit_once() {
    let (_dir, store) = temp_store();
    store
        .upsert_changes(
            vec![notice("CHG-1", ChangeOwner::Dcc, 0, 10)],
            "a".into(),
            Default::default(),
        )
        .unwrap();
    let change = store
        .set_change_status("CHG-1".into(), ChangeStatus::Cancelled, "ops".into())
        .unwrap();
    assert_eq!(change.previous, ChangeStatus::Planned);
    assert_eq!(change.change.notice.status, ChangeStatus::Cancelled);
    let again = store
        .set_change_status("CHG-1".into(), ChangeStatus::Cancelled, "ops".into())
        .unwrap();
    assert_eq!(again.previous, ChangeStatus::Cancelled);
    let audit = store.change_audit("CHG-1".into()).unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1].action, AuditAction::Status);
    assert_eq!(audit[1].detail, "status: planned -> cancelled");
    let register = store.load_register().unwrap();
    assert_eq!(
        register.get("CHG-1").map(|n| n.status),
        Some(ChangeStatus::Cancelled)
    );

    let missing = store
        .set_change_status("NOPE".into(), ChangeStatus::Cancelled, "ops".into())
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound { .. }),
        "{missing:?}"
    );
}

#[test]
fn a_confined_caller_never_writes_over_another_owners_change() {
    let (_dir, store) = temp_store();
    let a = ChangeOwner::User(USER_A);
    let b = ChangeOwner::User(USER_B);
    store
        .upsert_changes(
            vec![notice("CHG-A", a, 0, 10)],
            "a".into(),
            Default::default(),
        )
        .unwrap();
    let hijack = notice("CHG-A", b, 0, 20);
    let own = notice("CHG-B", b, 0, 10);
    let error = upsert_confined(&store, vec![own, hijack], "b", b).unwrap_err();
    assert!(matches!(error, StoreError::NotYours { .. }), "{error:?}");
    assert!(
        !error.to_string().contains(&USER_A.to_string()),
        "names the owner: {error}"
    );
    assert_eq!(
        store.get_change("CHG-B".into()).unwrap(),
        None,
        "all or nothing"
    );
    let error = store
        .set_change_status_confined("CHG-A".into(), ChangeStatus::Cancelled, "b".into(), b)
        .unwrap_err();
    assert!(matches!(error, StoreError::NotYours { .. }), "{error:?}");
    let stored = store.get_change("CHG-A".into()).unwrap().unwrap();
    assert_eq!(
        (stored.notice.owner, stored.notice.status),
        (a, ChangeStatus::Planned)
    );
    // The owner itself still may.
    store
        .set_change_status_confined("CHG-A".into(), ChangeStatus::Cancelled, "a".into(), a)
        .unwrap();
}

#[test]
fn the_warnings_of_a_registration_are_stored_and_outlive_later_changes_to_the_register() {
    use stormwatch_core::changes::WarningKind;
    let (_dir, store) = temp_store();
    let kinds = |found: &[stormwatch_core::changes::Warning]| -> Vec<WarningKind> {
        found.iter().map(|w| w.kind).collect()
    };
    // 2026-03-10T11:00Z, quiet hours: a DCC window, then a User's network change inside it (one hour, long
    // enough for its category).
    let eleven = 1_773_140_400_000;
    let hour = 3_600_000;
    let dcc = notice("DCC-1", ChangeOwner::Dcc, eleven, eleven + 2 * hour);
    let own = notice("CHG-1", ChangeOwner::User(USER_A), eleven, eleven + hour);
    store
        .upsert_changes(vec![dcc], "ops".into(), Default::default())
        .unwrap();
    let outcomes = store
        .upsert_changes(vec![own.clone()], "a".into(), Default::default())
        .unwrap();
    assert_eq!(
        kinds(&outcomes[0].warnings),
        [WarningKind::DccMaintenanceOverlap]
    );
    assert_eq!(outcomes[0].warnings[0].related, ["DCC-1"]);
    // Cancelling the DCC window moves nothing on record; registering the change again unchanged neither.
    store
        .set_change_status("DCC-1".into(), ChangeStatus::Cancelled, "ops".into())
        .unwrap();
    let stored = store.get_change("CHG-1".into()).unwrap().unwrap();
    assert_eq!(
        stored.warnings.as_deref().map(kinds),
        Some(vec![WarningKind::DccMaintenanceOverlap])
    );
    let again = store
        .upsert_changes(vec![own.clone()], "a".into(), Default::default())
        .unwrap();
    assert_eq!(again[0].outcome, Upsert::Unchanged);
    assert_eq!(
        kinds(&again[0].warnings),
        [WarningKind::DccMaintenanceOverlap]
    );
    // An update is a new registration: judged again, against the register as it now stands.
    let mut moved = own;
    moved.title = "Firewall rules, second go".into();
    let updated = store
        .upsert_changes(vec![moved], "a".into(), Default::default())
        .unwrap();
    assert_eq!(updated[0].outcome, Upsert::Updated);
    assert!(updated[0].warnings.is_empty(), "{:?}", updated[0].warnings);
    let listed = store.list_changes(ChangeFilter::default()).unwrap();
    let stored = listed.iter().find(|c| c.notice.id == "CHG-1").unwrap();
    assert_eq!(stored.warnings.as_deref(), Some(&[][..]));
}

#[test]
fn the_register_in_memory_follows_writes_and_is_put_back_when_a_write_fails() {
    let (_dir, store) = temp_store();
    let mine = notice("CHG-A", ChangeOwner::User(USER_A), 1_000, 2_000);
    upsert_confined(&store, vec![mine.clone()], "a", ChangeOwner::User(USER_A)).unwrap();
    assert_eq!(store.with_register(|r| r.len()), 1);
    // The first notice is applied in memory before the second is refused: the whole write is put back.
    let moved = notice("CHG-A", ChangeOwner::User(USER_A), 5_000, 6_000);
    let theirs = notice("CHG-B", ChangeOwner::User(USER_B), 1_000, 2_000);
    let refused = upsert_confined(&store, vec![moved, theirs], "a", ChangeOwner::User(USER_A));
    assert!(
        matches!(refused, Err(StoreError::NotYours { .. })),
        "{refused:?}"
    );
    let kept = store.with_register(|r| r.get("CHG-A").cloned());
    assert_eq!(kept, Some(mine));
    assert_eq!(
        store.with_register(|r| r.overlapping(5_000, 6_000).len()),
        0
    );
    assert_eq!(store.with_register(|r| r.len()), 1);
    // A status change reaches it too.
    store
        .set_change_status("CHG-A".into(), ChangeStatus::Cancelled, "a".into())
        .unwrap();
    assert_eq!(
        store.with_register(|r| r.get("CHG-A").map(|n| n.status)),
        Some(ChangeStatus::Cancelled)
    );
}

#[test]
fn a_bulk_write_reports_progress_per_chunk() {
    let (_dir, store) = temp_store();
    let notices: Vec<_> = (0..1_001)
        .map(|n| {
            notice(
                &format!("CHG-{n}"),
                ChangeOwner::User(USER_A),
                n * 1_000,
                n * 1_000 + 500,
            )
        })
        .collect();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    store
        .upsert_changes_with_progress(
            notices,
            "sync".into(),
            Default::default(),
            Box::new(move |p| kept.lock().unwrap().push((p.written, p.judged))),
        )
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (500, 0),
            (1_000, 0),
            (1_001, 0),
            (1_001, 500),
            (1_001, 1_000),
            (1_001, 1_001)
        ]
    );
}

/// Issue 23: `changes add` with an existing id reset every field it was not given. A merge changes only the
/// fields given and says which; a replace clears the rest and says it replaced.
#[test]
fn a_merge_changes_only_the_fields_given_and_a_replace_says_it_replaced() {
    let (_dir, store) = temp_store();
    let register = |registration: Registration| {
        store
            .register_changes(
                vec![registration],
                "ops".into(),
                None,
                Default::default(),
                Box::new(|_| Ok(())),
            )
            .map(|mut outcomes| outcomes.remove(0))
    };
    let created = register(fields(serde_json::json!({
        "id": "CHG-2026-0042", "user": USER_A.to_string(), "title": "Firewall rule migration",
        "category": "network", "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T10:00:00Z",
        "status": "in_progress", "contact": "noc@example.invalid", "srvs": ["4.1.1"],
    })))
    .unwrap();
    assert_eq!(
        (created.outcome, created.replaced),
        (Upsert::Created, false)
    );

    let moved = register(fields(serde_json::json!({
        "id": "CHG-2026-0042", "end": "2026-03-10T11:00:00Z", "title": "Firewall rule migration, phase 2",
    })))
    .unwrap();
    assert_eq!((moved.outcome, moved.replaced), (Upsert::Updated, false));
    let changed: Vec<&str> = moved.changed.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(changed, ["end", "title"]);
    assert_eq!(moved.changed[0].before, "2026-03-10T10:00:00Z");
    assert_eq!(moved.changed[0].after, "2026-03-10T11:00:00Z");
    let stored = store
        .get_change("CHG-2026-0042".into())
        .unwrap()
        .unwrap()
        .notice;
    assert_eq!(stored.contact.as_deref(), Some("noc@example.invalid"));
    assert_eq!(stored.status, ChangeStatus::InProgress);
    assert_eq!(stored.srvs.len(), 1);
    assert_eq!(
        stored, moved.notice,
        "the outcome carries the merged notice"
    );

    // `null` clears an optional field; the same fields again change nothing.
    let cleared = register(fields(
        serde_json::json!({"id": "CHG-2026-0042", "contact": null}),
    ))
    .unwrap();
    assert_eq!(cleared.changed.len(), 1);
    assert_eq!(cleared.changed[0].after, serde_json::Value::Null);
    let again = register(fields(
        serde_json::json!({"id": "CHG-2026-0042", "contact": null}),
    ))
    .unwrap();
    assert_eq!(again.outcome, Upsert::Unchanged);

    let whole = notice("CHG-2026-0042", ChangeOwner::User(USER_A), 1_000, 2_000);
    let replaced = register(Registration::Replace(whole.clone())).unwrap();
    assert!(replaced.replaced);
    let stored = store
        .get_change("CHG-2026-0042".into())
        .unwrap()
        .unwrap()
        .notice;
    assert_eq!(stored, whole);
    assert_eq!(
        stored.status,
        ChangeStatus::Planned,
        "a replace resets the status"
    );
    let audit = store.change_audit("CHG-2026-0042".into()).unwrap();
    let details: Vec<&str> = audit.iter().map(|a| a.detail.as_str()).collect();
    assert!(details[1].starts_with("end: "), "{details:?}");
    assert!(details[3].starts_with("replaced whole: "), "{details:?}");
}

#[test]
fn a_merge_for_a_new_id_needs_every_required_field_and_a_check_refuses_the_batch() {
    let (_dir, store) = temp_store();
    let error = store
        .register_changes(
            vec![
                Registration::Replace(notice("CHG-OK", ChangeOwner::Dcc, 0, 10)),
                fields(serde_json::json!({"id": "CHG-NEW", "title": "half a notice"})),
            ],
            "ops".into(),
            None,
            Default::default(),
            Box::new(|_| Ok(())),
        )
        .unwrap_err();
    match &error {
        StoreError::Invalid { index, field, .. } => {
            assert_eq!((*index, field.as_str()), (1, "user"))
        }
        other => panic!("expected an invalid notice, got {other:?}"),
    }
    assert_eq!(
        store.get_change("CHG-OK".into()).unwrap(),
        None,
        "all or nothing"
    );
    let error = store
        .register_changes(
            vec![Registration::Replace(notice(
                "CHG-LONG",
                ChangeOwner::Dcc,
                0,
                10,
            ))],
            "ops".into(),
            None,
            Default::default(),
            Box::new(|_| Err(("title".into(), "field `title` is too long".into()))),
        )
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Invalid { field, .. } if field == "title"),
        "{error:?}"
    );
}
