//! Tests of API tokens: only hashes stored, roles bound correctly, revocation final.

use crate::store::tests::{USER_A, temp_store};
use crate::store::{Role, SECRET_PREFIX, StoreError};

#[test]
fn the_secret_is_returned_once_and_only_its_hash_is_stored() {
    let (_dir, store) = temp_store();
    let (id, secret) = store.add_token("ci".into(), Role::Ingest, None).unwrap();
    assert!(
        secret.starts_with(SECRET_PREFIX) && secret.len() == SECRET_PREFIX.len() + 64,
        "{secret}"
    );
    let path = store.path().to_owned();
    drop(store);
    let db = rusqlite::Connection::open(&path).unwrap();
    let stored: String = db
        .query_row("SELECT hash FROM tokens WHERE id = ?1", [id.0], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(stored, super::hash(&secret));
    assert_ne!(stored, secret);
    let dump: Vec<String> = db
        .prepare("SELECT name || role || coalesce(user, '') || hash FROM tokens")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        dump.iter()
            .all(|row| !row.contains(&secret[SECRET_PREFIX.len()..]))
    );
}

#[test]
fn authenticates_the_right_principal_and_nothing_else() {
    let (_dir, store) = temp_store();
    assert!(!store.has_tokens().unwrap());
    let (id, secret) = store
        .add_token("supplier-a".into(), Role::User, Some(USER_A))
        .unwrap();
    let (_, other) = store.add_token("ops".into(), Role::Ops, None).unwrap();
    assert_ne!(secret, other);
    assert!(store.has_tokens().unwrap());
    let principal = store.authenticate(secret.clone()).unwrap().unwrap();
    assert_eq!(principal.token_id, id);
    assert_eq!((principal.role, principal.user), (Role::User, Some(USER_A)));
    assert_eq!(principal.name, "supplier-a");
    assert_eq!(store.authenticate("sw_wrong".into()).unwrap(), None);
    assert_eq!(store.authenticate(String::new()).unwrap(), None);
}

#[test]
fn a_revoked_token_never_authenticates_and_its_name_can_be_reused() {
    let (_dir, store) = temp_store();
    let (id, secret) = store.add_token("ci".into(), Role::Ingest, None).unwrap();
    let revoked = store.revoke_token("ci".into()).unwrap();
    assert_eq!(revoked.id, id);
    assert!(revoked.revoked_ms.is_some());
    assert_eq!(store.authenticate(secret).unwrap(), None);
    assert!(!store.has_tokens().unwrap());
    let again = store.revoke_token(id.to_string()).unwrap_err();
    assert!(matches!(again, StoreError::NotFound { .. }), "{again:?}");

    let (new_id, new_secret) = store.add_token("ci".into(), Role::Ingest, None).unwrap();
    assert_ne!(new_id, id);
    assert!(store.authenticate(new_secret).unwrap().is_some());
    let listed = store.list_tokens().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].revoked_ms.is_some() && listed[1].revoked_ms.is_none());
    let by_id = store.revoke_token(new_id.to_string()).unwrap();
    assert_eq!(by_id.id, new_id);
}

#[test]
fn refuses_bad_names_duplicates_and_mismatched_users_naming_the_field() {
    let (_dir, store) = temp_store();
    store.add_token("ops".into(), Role::Ops, None).unwrap();
    let cases = [
        ("ops", Role::Ops, None, "name"),
        ("", Role::Ops, None, "name"),
        ("42", Role::Ops, None, "name"),
        (" padded", Role::Ops, None, "name"),
        ("unbound", Role::User, None, "user"),
        ("bound-ops", Role::Ops, Some(USER_A), "user"),
    ];
    for (name, role, user, field) in cases {
        match store.add_token(name.into(), role, user) {
            Err(StoreError::Constraint { field: got, .. }) => assert_eq!(got, field, "{name}"),
            other => panic!("{name}: expected a constraint on `{field}`, got {other:?}"),
        }
    }
    assert_eq!(store.list_tokens().unwrap().len(), 1);
    let missing = store.revoke_token("nobody".into()).unwrap_err();
    assert!(missing.to_string().contains("nobody"), "{missing}");
}

#[test]
fn role_names_round_trip() {
    for role in Role::ALL {
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    assert_eq!(Role::parse("admin"), None);
}

#[test]
fn a_calendar_key_may_be_bound_to_a_user_or_not_and_other_roles_keep_their_rules() {
    let (_dir, store) = temp_store();
    let (_, bound) = store
        .add_token("cal-a".into(), Role::Calendar, Some(USER_A))
        .unwrap();
    let (_, all) = store.add_token("cal".into(), Role::Calendar, None).unwrap();
    let who = store.authenticate(bound).unwrap().unwrap();
    assert_eq!((who.role, who.user), (Role::Calendar, Some(USER_A)));
    let who = store.authenticate(all).unwrap().unwrap();
    assert_eq!((who.role, who.user), (Role::Calendar, None));
    assert!(
        store
            .add_token("ops-a".into(), Role::Ops, Some(USER_A))
            .is_err()
    );
    assert!(store.add_token("user".into(), Role::User, None).is_err());
    let listed = store.list_tokens().unwrap();
    assert_eq!(listed[0].role.as_str(), "calendar");
}
