//! Drives `stormwatch serve` as a hostile client would: each test reproduces one attack from the service's
//! security review (issue 14) and checks it now fails safely.

mod support;

use support::*;

const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];

/// User B posts User A's change id with `"user": B`: before the fix the change moved to B (201 "updated"), A got
/// 403 on its own change and B could cancel it.
#[test]
fn a_user_token_cannot_take_over_cancel_or_read_another_users_change() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let a = token(dir.path(), "supplier-a", "user", Some(FIREWALLED));
    let b = token(dir.path(), "supplier-b", "user", Some(HEALTHY));
    let service = Service::start(dir.path(), &[]);
    let change = firewall_change("CHG-A", 0, 60);
    let (status, body) = service.post("/api/v1/changes", Some(&a), change.as_bytes(), &JSON);
    assert_eq!(status, 201, "{body}");

    let hijack = change.replace(FIREWALLED, HEALTHY);
    let (status, body) = service.post("/api/v1/changes", Some(&b), hijack.as_bytes(), &JSON);
    assert_eq!(status, 403, "B re-registered A's change: {body}");
    assert!(!body.contains(FIREWALLED), "the 403 names A: {body}");
    // In a batch, the hijack spoils the whole batch: B's own notice is not written either.
    let own = firewall_change("CHG-B", 0, 60).replace(FIREWALLED, HEALTHY);
    let batch = format!("[{own},{hijack}]");
    let (status, body) = service.post("/api/v1/changes", Some(&b), batch.as_bytes(), &JSON);
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains(FIREWALLED), "the 403 names A: {body}");
    assert_eq!(service.get("/api/v1/changes/CHG-B", Some(&ops)).0, 404);

    for (method, path, body) in [
        ("GET", "/api/v1/changes/CHG-A", &b""[..]),
        ("DELETE", "/api/v1/changes/CHG-A", b""),
        (
            "POST",
            "/api/v1/changes/CHG-A/status",
            br#"{"status":"cancelled"}"#,
        ),
    ] {
        let (status, answer) = request(service.http, method, path, Some(&b), &JSON, body);
        assert_eq!(status, 403, "{method} {path} by B: {answer}");
        assert!(!answer.contains(FIREWALLED), "the 403 names A: {answer}");
    }

    let stored = service.json("/api/v1/changes/CHG-A", &a);
    assert_eq!(stored["change"]["user"], FIREWALLED);
    assert_eq!(stored["change"]["status"], "in_progress");
    assert_eq!(
        stored["audit"].as_array().map(Vec::len),
        Some(1),
        "only A's creation is in the audit trail: {stored}"
    );
    // ops may still move a change between Users.
    let (status, body) = service.post("/api/v1/changes", Some(&ops), hijack.as_bytes(), &JSON);
    assert_eq!(status, 201, "{body}");
}
