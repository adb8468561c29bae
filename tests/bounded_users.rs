//! Bounded Users under `stormwatch serve` (issue 14): made-up User IDs cannot lock out real ones when a User
//! directory is loaded, refusals are not counted as malformed, and memory at the 4,096-User cap is measured.

mod support;

use support::*;

fn fake_user(n: u32) -> String {
    format!(
        "02-00-00-00-{:02X}-{:02X}-{:02X}-{:02X}",
        n >> 24,
        (n >> 16) & 0xff,
        (n >> 8) & 0xff,
        n & 0xff
    )
}

fn lines_for(users: impl Iterator<Item = String>, ts: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for user in users {
        out.extend(
            format!("{{\"ts\":{ts},\"user\":\"{user}\",\"event\":\"request\",\"count\":1}}\n")
                .as_bytes(),
        );
    }
    out
}

/// 4,096 made-up User IDs locked out every new real User, and the refused lines were counted as malformed.
#[test]
fn with_a_user_directory_made_up_users_are_refused_as_unknown_and_real_ones_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let ingest = token(dir.path(), "exporter", "ingest", None);
    let directory = dir.path().join("users.txt");
    std::fs::write(
        &directory,
        format!("# the pilot's Users\n{FIREWALLED}\n{HEALTHY}\n{LATECOMER}\n"),
    )
    .unwrap();
    let config = config_file(
        dir.path(),
        &format!("user_directory = \"{}\"\n", directory.display()),
    );
    let args: Vec<&str> = config.iter().map(String::as_str).collect();
    let mut service = Service::start(dir.path(), &args);
    let bad = b"{\"ts\":1,\"user\":\"nobody\"}\n";
    let (status, answer) = service.post("/api/v1/events", Some(&ingest), bad, &[]);
    assert_eq!(status, 200, "{answer}");
    let flood = lines_for((0..5_000).map(fake_user), T0);
    let (status, answer) = service.post("/api/v1/events", Some(&ingest), &flood, &[]);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        (
            answer["accepted"].as_u64(),
            answer["malformed"].as_u64(),
            answer["refused"].as_u64()
        ),
        (Some(0), Some(0), Some(5_000)),
        "{answer}"
    );
    service.send_tcp(&firewall_lines(0..20, (300, 2_000)));
    let users = service.wait_for("/api/v1/users", &ops, 30, |u| {
        u.as_array().is_some_and(|u| u.len() == 2)
    });
    assert!(users.to_string().contains(FIREWALLED));
    let metrics = service.get("/metrics", None).1;
    assert_eq!(
        metric(
            &metrics,
            "stormwatch_ingest_refused_total{source=\"http\",reason=\"unknown_user\"}"
        ),
        Some(5_000.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "stormwatch_ingest_malformed_total{source=\"http\"}"
        )
        .unwrap_or(0.0),
        1.0,
        "unknown Users are not malformed: only the one bad line is"
    );
    // Refused lines are listed apart, in their own bounded list: the flood does not push the one malformed line
    // out of view.
    let quarantined = service.json("/api/v1/malformed?limit=1000", &ops);
    assert_eq!(quarantined["total"], 1, "{quarantined}");
    assert!(
        quarantined["recent"][0]["error"]
            .as_str()
            .is_some_and(|e| !e.contains("not in the User directory")),
        "{quarantined}"
    );
    assert_eq!(quarantined["refused"]["total"], 5_000);
    assert_eq!(
        quarantined["refused"]["recent"].as_array().map(Vec::len),
        Some(1_000),
        "the refused list is capped"
    );
    assert!(
        quarantined["refused"]["recent"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not in the User directory")),
        "{quarantined}"
    );
    // After a restart (the snapshot restores the table) the made-up Users are still not there, and a real User
    // that was never seen gets in.
    service.stop();
    // Once stopped (the quarantine file is flushed), it holds the refused lines within its per-minute budget,
    // not all 5,000.
    let file = std::fs::read_to_string(dir.path().join("quarantine.ndjson")).unwrap_or_default();
    let written = file
        .lines()
        .filter(|l| l.contains("not in the User directory"))
        .count();
    assert_eq!(
        written, 1_000,
        "refused records written to the quarantine file"
    );

    let service = Service::start(dir.path(), &args);
    service.send_tcp(&lines_for(
        std::iter::once(LATECOMER.to_owned()),
        T0 + 20_000,
    ));
    let users = service.wait_for("/api/v1/users", &ops, 30, |u| {
        u.to_string().contains(LATECOMER)
    });
    assert_eq!(
        users.as_array().map(Vec::len),
        Some(3),
        "the two real Users from before the restart and the newcomer, no made-up one: {users}"
    );
}

/// A real User first seen after the restart.
const LATECOMER: &str = "4C-E1-73-00-00-00-11-02";

/// Without a directory the table still caps at 4,096 Users; the lines it refuses are counted as refused, not
/// malformed. Also measures resident memory at the cap.
#[test]
fn at_the_user_cap_lines_are_refused_not_malformed_and_memory_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = token(dir.path(), "exporter", "ingest", None);
    let service = Service::start(dir.path(), &[]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = service.rss_kib();
    // Ten seconds of traffic for 4,096 Users fills their per-second rings with real slots.
    for second in 0..10 {
        let lines = lines_for((0..4_096).map(fake_user), T0 + second * 1_000);
        let (status, answer) = service.post("/api/v1/events", Some(&ingest), &lines, &[]);
        assert_eq!(status, 200, "{answer}");
    }
    let extra = lines_for((4_096..5_096).map(fake_user), T0 + 10_000);
    let (_, answer) = service.post("/api/v1/events", Some(&ingest), &extra, &[]);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        (answer["refused"].as_u64(), answer["malformed"].as_u64()),
        (Some(1_000), Some(0)),
        "{answer}"
    );
    let metrics = service.wait_status("/metrics", 200, 30, |m| {
        metric(m, "stormwatch_users").is_some_and(|n| n >= 4_096.0)
    });
    let after = service.rss_kib();
    let per_user = (after.saturating_sub(before) * 1024) / 4_096;
    eprintln!(
        "RSS {before} KiB before, {after} KiB with 4,096 Users: {per_user} bytes per User; /metrics is {} bytes",
        metrics.len()
    );
    assert!(after < 1024 * 1024, "RSS {after} KiB at 4,096 Users");
}

/// Without a User directory, 4,096 made-up User IDs locked every new real User out for good, and the lock-out
/// survived restarts because the snapshot restored them. Made-up Users that fall silent are now evicted once idle
/// for `evict_idle_after_s` of event time (60 s here), a real User gets in, and a restart does not bring them back.
/// A User that falls silent with messages waiting is never evicted.
#[test]
fn made_up_users_that_fall_silent_are_evicted_and_stay_out_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let ingest = token(dir.path(), "exporter", "ingest", None);
    let config = config_file(dir.path(), "[engine]\nevict_idle_after_s = 60\n");
    let args: Vec<&str> = config.iter().map(String::as_str).collect();
    let mut service = Service::start(dir.path(), &args);
    let counts = |answer: &str| {
        let answer: serde_json::Value = serde_json::from_str(answer).unwrap();
        (answer["accepted"].as_u64(), answer["refused"].as_u64())
    };
    // 4,095 made-up Users and one real User whose 500 queued messages are never delivered: it falls silent with
    // a queue, which is a backlog (its exporter may be behind the same firewall), never idleness.
    let mut flood = lines_for((0..4_095).map(fake_user), T0);
    flood.extend(
        format!("{{\"ts\":{T0},\"user\":\"{FIREWALLED}\",\"event\":\"queued\",\"count\":500}}\n")
            .as_bytes(),
    );
    let (status, answer) = service.post("/api/v1/events", Some(&ingest), &flood, &[]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(counts(&answer), (Some(4_096), Some(0)), "{answer}");
    let real = |second: i64| lines_for(std::iter::once(LATECOMER.to_owned()), T0 + second * 1_000);
    let (_, answer) = service.post("/api/v1/events", Some(&ingest), &real(1), &[]);
    assert_eq!(counts(&answer), (Some(0), Some(1)), "locked out: {answer}");
    // One made-up User keeps sending (the rest of the network's traffic, moving event time on); the others are
    // silent from their first line.
    let mut keeper = Vec::new();
    for second in 1..=100 {
        keeper.extend(lines_for(
            std::iter::once(fake_user(0)),
            T0 + second * 1_000,
        ));
    }
    let (status, answer) = service.post("/api/v1/events", Some(&ingest), &keeper, &[]);
    assert_eq!(status, 200, "{answer}");
    let metrics = service.wait_status("/metrics", 200, 30, |m| {
        metric(m, "stormwatch_users_evicted_total") == Some(4_094.0)
            && metric(m, "stormwatch_users") == Some(2.0)
    });
    assert!(
        !metrics.contains("user=\"02-00-00-00-00-00-00-05\""),
        "an evicted User's series leave /metrics"
    );
    assert_eq!(
        metric(
            &metrics,
            "stormwatch_user_flow_rate{user=\"02-00-00-00-00-00-00-00\",flow=\"requests\"}"
        ),
        Some(1.0),
        "the keeper's stay"
    );
    let (status, body) = service.get(&format!("/api/v1/users/{}", fake_user(5)), Some(&ops));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("evicted from memory at"), "{body}");
    let silent = service.json(&format!("/api/v1/users/{FIREWALLED}"), &ops);
    assert_eq!(silent["depth"], 500, "kept with its queue: {silent}");
    let (_, answer) = service.post("/api/v1/events", Some(&ingest), &real(101), &[]);
    assert_eq!(
        counts(&answer),
        (Some(1), Some(0)),
        "a real User gets in: {answer}"
    );
    service.wait_for("/api/v1/users", &ops, 30, |u| {
        u.as_array().is_some_and(|u| u.len() == 3)
    });

    service.stop();
    let service = Service::start(dir.path(), &args);
    let users = service.wait_for("/api/v1/users", &ops, 30, |u| {
        u.as_array().is_some_and(|u| !u.is_empty())
    });
    let ids: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["user"].as_str())
        .collect();
    assert_eq!(
        ids.len(),
        3,
        "the keeper, the User with a queue and the newcomer, no evicted made-up User: {users}"
    );
    assert!(
        ids.contains(&LATECOMER) && ids.contains(&FIREWALLED),
        "{users}"
    );
    let (status, body) = service.get(&format!("/api/v1/users/{}", fake_user(5)), Some(&ops));
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("evicted from memory at"),
        "the record survives: {body}"
    );
    let another = lines_for(std::iter::once(HEALTHY.to_owned()), T0 + 102_000);
    let (_, answer) = service.post("/api/v1/events", Some(&ingest), &another, &[]);
    assert_eq!(counts(&answer), (Some(1), Some(0)), "{answer}");
}
