//! Tests of the `Store` handle: durability across reopening, the async twins, clones and shutdown.

use std::path::Path;

use super::*;
use stormwatch_core::changes::{Category, ChangeOwner};

/// A store in a fresh temporary directory; keep the directory alive as long as the store.
pub(super) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

pub(super) fn notice(id: &str, owner: ChangeOwner, start_ms: i64, end_ms: i64) -> ChangeNotice {
    ChangeNotice::planned(id, owner, Category::Network, start_ms, end_ms)
}

/// An incident of `user` (any spelling, or `*`) from `onset` to `resolved`.
pub(crate) fn record(id: &str, user: &str, onset: i64, resolved: Option<i64>) -> IncidentRecord {
    IncidentRecord {
        id: id.into(),
        user: user.into(),
        kind: stormwatch_core::incident::IncidentKind::Backlog,
        onset,
        detected: onset + 30,
        resolved,
        peak_depth: 100,
        verdict: stormwatch_core::incident::Verdict::UnregisteredChangeSuspected,
        suspects: vec![],
        peak_rate: 10.0,
        baseline_rate: 1.0,
        peak_ratio: 10.0,
        users: vec![],
        evidence: stormwatch_core::report::Evidence::default(),
    }
}

pub(super) const USER_A: Eui64 = Eui64(0x90B3_D51F_3001_0007);
pub(super) const USER_B: Eui64 = Eui64(0x90B3_D51F_3001_0008);

#[test]
fn reopening_keeps_changes_audit_tokens_incidents_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let secret = {
        let store = Store::open(dir.path()).unwrap();
        let batch = vec![notice("CHG-1", ChangeOwner::User(USER_A), 1_000, 2_000)];
        store
            .upsert_changes(batch, "alice".into(), Default::default())
            .unwrap();
        store
            .set_change_status("CHG-1".into(), ChangeStatus::Cancelled, "bob".into())
            .unwrap();
        store
            .save_incident(record("INC-1", "90-B3-D5-1F-30-01-00-07", 10, None), None)
            .unwrap();
        store.save_snapshot(vec![1, 2, 3]).unwrap();
        let (_, secret) = store.add_token("ops".into(), Role::Ops, None).unwrap();
        secret
    };
    let store = Store::open(dir.path()).unwrap();
    let change = store.get_change("CHG-1".into()).unwrap().unwrap();
    assert_eq!(change.notice.status, ChangeStatus::Cancelled);
    assert_eq!(store.change_audit("CHG-1".into()).unwrap().len(), 2);
    assert_eq!(store.load_register().unwrap().len(), 1);
    assert!(store.get_incident("INC-1".into()).unwrap().is_some());
    assert_eq!(store.load_snapshot().unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(
        store.authenticate(secret).unwrap().map(|p| p.name),
        Some("ops".into())
    );
}

#[test]
fn open_existing_takes_the_directory_or_the_file_and_never_creates() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Store::open_existing(dir.path()).unwrap_err();
    assert!(matches!(missing, StoreError::Missing { .. }), "{missing:?}");
    assert!(!dir.path().join(DB_FILE).exists());
    drop(Store::open(dir.path()).unwrap());
    for path in [dir.path().to_owned(), dir.path().join(DB_FILE)] {
        let store = Store::open_existing(&path).unwrap();
        assert_eq!(store.path(), dir.path().join(DB_FILE));
    }
}

#[test]
fn open_names_a_data_dir_it_cannot_create() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let error = Store::open(&file.join("sub")).unwrap_err();
    assert!(error.to_string().contains("plain-file"), "{error}");
}

#[test]
fn async_twins_share_the_owner_thread_with_blocking_clones() {
    let (_dir, store) = temp_store();
    let clone = store.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let outcomes = runtime
        .block_on(clone.upsert_changes_async(
            vec![notice("CHG-9", ChangeOwner::Dcc, 0, 10)],
            "service".into(),
            Default::default(),
        ))
        .unwrap();
    assert_eq!(outcomes[0].outcome, Upsert::Created);
    assert!(store.get_change("CHG-9".into()).unwrap().is_some());
    let listed = runtime
        .block_on(clone.list_changes_async(ChangeFilter::default()))
        .unwrap();
    assert_eq!(listed.len(), 1);
}

#[test]
fn dropping_the_last_handle_finishes_queued_work_and_closes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let other = store.clone();
    let worker = std::thread::spawn(move || {
        other.save_snapshot(vec![7]).unwrap();
    });
    worker.join().unwrap();
    drop(store);
    // With the connection closed, SQLite has checkpointed and removed the WAL file.
    assert!(
        !wal(dir.path()).exists(),
        "the WAL should be gone once the store is closed"
    );
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.load_snapshot().unwrap(), Some(vec![7]));
}

fn wal(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("{DB_FILE}-wal"))
}

#[test]
fn external_writes_change_only_for_other_connections_commits() {
    let (dir, service) = temp_store();
    let before = service.external_writes().unwrap();
    service.save_snapshot(vec![1]).unwrap();
    assert_eq!(
        service.external_writes().unwrap(),
        before,
        "own writes do not count"
    );
    let cli = Store::open(dir.path()).unwrap();
    cli.upsert_changes(
        vec![notice("CHG-1", ChangeOwner::Dcc, 0, 1)],
        "cli".into(),
        Default::default(),
    )
    .unwrap();
    assert_ne!(service.external_writes().unwrap(), before);
    assert_eq!(service.load_register().unwrap().len(), 1);
}

#[test]
fn snapshot_is_replaced_whole() {
    let (_dir, store) = temp_store();
    assert_eq!(store.load_snapshot().unwrap(), None);
    store.save_snapshot(vec![1; 1000]).unwrap();
    store.save_snapshot(b"second".to_vec()).unwrap();
    assert_eq!(store.load_snapshot().unwrap(), Some(b"second".to_vec()));
}
