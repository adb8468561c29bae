//! Change coordination end to end: registration warnings (API and CLI), the forward schedule and its calendar
//! feed, and change outcomes, against the real binary.

mod support;

use support::{Service, binary, token};

const SUPPLIER: &str = "90-B3-D5-1F-30-01-00-07";
const OTHER: &str = "90-B3-D5-1F-30-01-00-09";

fn post_json(service: &Service, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let (status, text) = service.post(
        "/api/v1/changes",
        Some(token),
        body.to_string().as_bytes(),
        &[("Content-Type", "application/json")],
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Polls `/metrics` until `check` holds (the gauge is republished after each write and every 30 s).
fn wait_for_metrics(service: &Service, check: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    loop {
        let (_, page) = service.get("/metrics", None);
        if check(&page) {
            return page;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {page}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn kinds(warnings: &serde_json::Value) -> Vec<&str> {
    warnings
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["kind"].as_str())
        .collect()
}

#[test]
fn registration_warns_never_refuses_and_the_warnings_stay_on_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let supplier = token(dir.path(), "supplier", "user", Some(SUPPLIER));
    let service = Service::start(dir.path(), &[]);
    let release = serde_json::json!({
        "id": "DCC-REL-9", "user": "DCC", "title": "DSP release 9", "category": "dcc_maintenance",
        "start": "2030-03-12T10:00:00Z", "end": "2030-03-12T14:00:00Z",
    });
    let (status, body) = post_json(&service, &ops, &release);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["warned"], 0, "{body}");
    // A firmware wave with no declared impact, over the DCC release, in a window too short for a device change.
    let firmware = serde_json::json!({
        "id": "CHG-FW-1", "user": SUPPLIER, "title": "Firmware 2.1 activation", "category": "device",
        "start": "2030-03-12T13:00:00Z", "end": "2030-03-12T13:30:00Z",
    });
    let (status, body) = post_json(&service, &supplier, &firmware);
    assert_eq!(status, 201, "a warning is never a refusal: {body}");
    let change = &body["changes"][0];
    assert_eq!(change["outcome"], "created");
    assert_eq!(
        kinds(&change["warnings"]),
        [
            "dcc_maintenance_overlap",
            "undeclared_impact",
            "short_window"
        ],
        "{body}"
    );
    assert_eq!(change["warnings"][0]["related"][0], "DCC-REL-9");
    let shown = service.json("/api/v1/changes/CHG-FW-1", &supplier);
    assert_eq!(kinds(&shown["warnings"]).len(), 3, "{shown}");
    assert_eq!(kinds(&shown["current_warnings"]).len(), 3, "{shown}");
    // A later registration on top of it moves the current warnings only: what registration said stays recorded.
    let later = serde_json::json!({
        "id": "DCC-BCDR-1", "user": "DCC", "title": "BCDR test", "category": "dcc_maintenance",
        "start": "2030-03-12T13:10:00Z", "end": "2030-03-12T13:20:00Z",
    });
    assert_eq!(post_json(&service, &ops, &later).0, 201);
    let shown = service.json("/api/v1/changes/CHG-FW-1", &supplier);
    assert_eq!(kinds(&shown["warnings"]).len(), 3, "{shown}");
    assert!(
        kinds(&shown["current_warnings"]).contains(&"bcdr_test_overlap"),
        "{shown}"
    );
    // Cancelling the DCC release and the test clears the overlaps from the current warnings, not the recorded.
    let (status, _) = service.post(
        "/api/v1/changes/DCC-BCDR-1/status",
        Some(&ops),
        br#"{"status":"cancelled"}"#,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 200);
    let (status, _) = service.post(
        "/api/v1/changes/DCC-REL-9/status",
        Some(&ops),
        br#"{"status":"cancelled"}"#,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 200);
    let shown = service.json("/api/v1/changes/CHG-FW-1", &supplier);
    assert_eq!(
        kinds(&shown["current_warnings"]),
        ["undeclared_impact", "short_window"],
        "{shown}"
    );
    assert_eq!(kinds(&shown["warnings"]).len(), 3, "{shown}");
    // The list and the schedule carry the recorded warnings too; the schedule the current ones beside them.
    let list = service.json("/api/v1/changes", &supplier);
    assert_eq!(kinds(&list[0]["warnings"]).len(), 3, "{list}");
    let schedule = service.json(
        "/api/v1/schedule?from=2030-03-12T00:00:00Z&to=2030-03-13T00:00:00Z&user=90-B3-D5-1F-30-01-00-07",
        &supplier,
    );
    let entry = &schedule["changes"][0];
    assert_eq!(kinds(&entry["warnings"]).len(), 3, "{schedule}");
    assert_eq!(kinds(&entry["current_warnings"]).len(), 2, "{schedule}");
    assert_eq!(entry["warnings_recorded"], true);
    // Re-registering it unchanged keeps the record; updating its window records the warnings of the new one.
    let (_, body) = post_json(&service, &supplier, &firmware);
    assert_eq!(body["changes"][0]["outcome"], "unchanged", "{body}");
    assert_eq!(kinds(&body["changes"][0]["warnings"]).len(), 3, "{body}");
    let mut moved = firmware.clone();
    moved["end"] = "2030-03-12T19:00:00Z".into();
    let (_, body) = post_json(&service, &supplier, &moved);
    assert_eq!(body["changes"][0]["outcome"], "updated", "{body}");
    assert_eq!(
        kinds(&body["changes"][0]["warnings"]),
        ["undeclared_impact"],
        "{body}"
    );
    post_json(&service, &supplier, &firmware);
    // The gauge counts planned changes ahead with a warning, by kind, once the service has published.
    let page = wait_for_metrics(&service, |page| {
        page.contains("stormwatch_change_upcoming_conflicts{kind=\"short_window\"} 1")
            && page.contains(
                "stormwatch_change_upcoming_conflicts{kind=\"dcc_maintenance_overlap\"} 0",
            )
    });
    assert!(
        page.contains("stormwatch_change_upcoming_conflicts{kind=\"undeclared_impact\"} 1"),
        "{page}"
    );
}

#[test]
fn the_cli_prints_warnings_with_thresholds_from_the_serve_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "[coordination]\nclock = \"utc\"\nmax_concurrent_high_risk = 1\n",
    )
    .unwrap();
    let file = dir.path().join("changes.json");
    let notices = serde_json::json!([
        {"id": "CHG-N-1", "user": SUPPLIER, "title": "Firewall", "category": "network",
         "start": "2030-03-12T10:00:00Z", "end": "2030-03-12T12:00:00Z"},
        {"id": "CHG-C-1", "user": OTHER, "title": "Certificate rotation", "category": "certificate",
         "start": "2030-03-12T11:00:00Z", "end": "2030-03-12T12:00:00Z"},
        {"id": "CHG-Q-1", "user": OTHER, "title": "Quiet application change", "category": "application",
         "start": "2030-03-12T14:00:00Z", "end": "2030-03-12T17:00:00Z"},
    ]);
    std::fs::write(&file, notices.to_string()).unwrap();
    let output = binary()
        .args(["changes", "import", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("warning CHG-N-1 [high_risk_pile_up]: 2 high-risk changes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning CHG-C-1 [high_risk_pile_up]"),
        "{stdout}"
    );
    assert!(!stdout.contains("CHG-Q-1 ["), "{stdout}");
    assert!(stdout.contains("2 of 3 notices have warnings"), "{stdout}");
    // A broken config is an error naming the file, not silently the defaults.
    std::fs::write(
        &config,
        "[coordination]\nmax_concurrent_high_risk = \"many\"\n",
    )
    .unwrap();
    let output = binary()
        .args([
            "changes",
            "add",
            "--id",
            "CHG-X",
            "--user",
            SUPPLIER,
            "--title",
            "x",
            "--category",
            "other",
        ])
        .args([
            "--start",
            "2030-03-12T14:00:00Z",
            "--end",
            "2030-03-12T15:00:00Z",
            "--data-dir",
        ])
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("serve.toml"), "{stderr}");
}

/// Registers a DCC release, two changes of the supplier and one of another User.
fn schedule_fixture(service: &Service, ops: &str) {
    let notices = serde_json::json!([
        {"id": "DCC-REL-9", "user": "DCC", "title": "DSP release 9", "category": "dcc_maintenance",
         "start": "2030-03-12T10:00:00Z", "end": "2030-03-12T14:00:00Z"},
        {"id": "CHG-FW-1", "user": SUPPLIER, "title": "Firmware 2.1, phase 1; comms hubs", "category": "device",
         "start": "2030-03-12T13:00:00Z", "end": "2030-03-12T18:00:00Z",
         "expected": {"direction": "to_user", "rate_factor": 3.0}, "contact": "ops@supplier.invalid"},
        {"id": "CHG-NET-2", "user": SUPPLIER, "title": "Firewall rules", "category": "network",
         "start": "2030-03-14T10:00:00Z", "end": "2030-03-14T12:00:00Z", "status": "cancelled"},
        {"id": "CHG-OTHER-1", "user": OTHER, "title": "Other's certificate rotation", "category": "certificate",
         "start": "2030-03-12T11:00:00Z", "end": "2030-03-12T12:00:00Z"},
        {"id": "CHG-LATER", "user": OTHER, "title": "Next month", "category": "other",
         "start": "2030-05-01T10:00:00Z", "end": "2030-05-01T12:00:00Z"},
    ]);
    let (status, body) = post_json(service, ops, &notices);
    assert_eq!(status, 201, "{body}");
}

fn ids(schedule: &serde_json::Value) -> Vec<&str> {
    schedule["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .collect()
}

#[test]
fn the_schedule_merges_user_and_dcc_changes_and_a_user_token_sees_its_own_and_the_dccs() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let supplier = token(dir.path(), "supplier", "user", Some(SUPPLIER));
    let service = Service::start(dir.path(), &[]);
    schedule_fixture(&service, &ops);
    let range = "from=2030-03-10T00:00:00Z&to=2030-03-17T00:00:00Z";
    let all = service.json(&format!("/api/v1/schedule?{range}"), &ops);
    assert_eq!(
        ids(&all),
        ["DCC-REL-9", "CHG-OTHER-1", "CHG-FW-1", "CHG-NET-2"],
        "{all}"
    );
    assert_eq!(
        all["rows"],
        serde_json::json!(["DCC", SUPPLIER, OTHER]),
        "{all}"
    );
    let firmware = &all["changes"][2];
    assert_eq!(firmware["owner"], "user");
    assert_eq!(firmware["status"], "planned");
    assert_eq!(firmware["expected"]["rate_factor"], 3.0);
    assert_eq!(all["changes"][0]["owner"], "dcc");
    let mine = service.json(&format!("/api/v1/schedule?{range}"), &supplier);
    assert_eq!(ids(&mine), ["DCC-REL-9", "CHG-FW-1", "CHG-NET-2"], "{mine}");
    let devices = service.json(&format!("/api/v1/schedule?{range}&category=device"), &ops);
    assert_eq!(ids(&devices), ["CHG-FW-1"]);
    let dcc_only = service.json(&format!("/api/v1/schedule?{range}&user=DCC"), &supplier);
    assert_eq!(ids(&dcc_only), ["DCC-REL-9"]);
    let (status, body) = service.get(
        &format!("/api/v1/schedule?{range}&user={OTHER}"),
        Some(&supplier),
    );
    assert_eq!(status, 403, "{body}");
    for bad in [
        "category=firmware",
        "from=yesterday",
        "from=2030-03-10T00:00:00Z&to=2030-03-01T00:00:00Z",
        "from=0&to=99999999999999",
    ] {
        let (status, body) = service.get(&format!("/api/v1/schedule?{bad}"), Some(&ops));
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(service.get("/api/v1/schedule", None).0, 401);
    // Outcomes: a User token sees its own row only, and no other User's changes.
    let outcomes = service.json(
        "/api/v1/outcomes?to=2030-03-20T00:00:00Z&days=30",
        &supplier,
    );
    let owners: Vec<&str> = outcomes["owners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["owner"].as_str())
        .collect();
    assert_eq!(owners, [SUPPLIER], "{outcomes}");
    assert_eq!(outcomes["owners"][0]["changes_registered"], 2);
    let (status, _) = service.get(&format!("/api/v1/outcomes/{OTHER}"), Some(&supplier));
    assert_eq!(status, 403);
    let (status, _) = service.get("/api/v1/outcomes/DCC?days=0", Some(&ops));
    assert_eq!(status, 400);
}

#[test]
fn the_calendar_feed_reads_back_with_an_independent_parser() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let supplier = token(dir.path(), "supplier", "user", Some(SUPPLIER));
    // Calendar clients cannot send headers: a calendar key, good for the feed only, rides in the query.
    let key = token(dir.path(), "supplier-cal", "calendar", Some(SUPPLIER));
    let service = Service::start(dir.path(), &[]);
    schedule_fixture(&service, &ops);
    let range = "from=2030-03-10T00:00:00Z&to=2030-03-17T00:00:00Z";
    let (status, feed) = service.get(&format!("/api/v1/schedule.ics?{range}&key={key}"), None);
    assert_eq!(status, 200, "{feed}");
    assert!(feed.starts_with("BEGIN:VCALENDAR\r\n"), "{feed}");
    let mut parser = ical::IcalParser::new(std::io::BufReader::new(feed.as_bytes()));
    let calendar = parser
        .next()
        .expect("one calendar")
        .expect("a valid calendar");
    assert!(parser.next().is_none());
    let prop = |event: &ical::parser::ical::component::IcalEvent, name: &str| -> String {
        event
            .properties
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
            .unwrap_or_default()
    };
    let events: Vec<_> = calendar.events.iter().collect();
    // What the independent parser read, for a person running the test with --nocapture.
    for event in &events {
        for property in &event.properties {
            eprintln!(
                "{}: {}",
                property.name,
                property.value.as_deref().unwrap_or("")
            );
        }
        eprintln!();
    }
    let uids: Vec<String> = events.iter().map(|e| prop(e, "UID")).collect();
    assert_eq!(
        uids,
        [
            "DCC-REL-9@stormwatch",
            "CHG-FW-1@stormwatch",
            "CHG-NET-2@stormwatch"
        ]
    );
    let firmware = events[1];
    assert_eq!(prop(firmware, "DTSTART"), "20300312T130000Z");
    assert_eq!(prop(firmware, "DTEND"), "20300312T180000Z");
    assert_eq!(prop(firmware, "STATUS"), "TENTATIVE");
    assert_eq!(prop(firmware, "CATEGORIES"), "device");
    // Text values come back escaped as RFC 5545 writes them (`;` and `,` with a backslash, newlines as \n). The
    // `ical` crate trims each physical line before unfolding, so a space where a long line was folded is lost:
    // compare without spaces (calendar clients unfold as the RFC says and keep it).
    let squash = |text: &str| text.replace(' ', "");
    assert_eq!(
        squash(&prop(firmware, "SUMMARY")),
        squash(&format!(
            "[{SUPPLIER}] CHG-FW-1: Firmware 2.1\\, phase 1\\; comms hubs"
        ))
    );
    let description = squash(&prop(firmware, "DESCRIPTION"));
    for expected in [
        "Expected impact: to_user up to 3.0x normal",
        "Warning (dcc_maintenance_overlap)",
    ] {
        assert!(description.contains(&squash(expected)), "{description}");
    }
    assert_eq!(prop(events[2], "STATUS"), "CANCELLED");
    assert!(events.iter().all(|e| !prop(e, "DTSTAMP").is_empty()));
    // The same request twice gives the same feed: DTSTAMP is the change's last write, not the request time.
    let again = service
        .get(&format!("/api/v1/schedule.ics?{range}&key={key}"), None)
        .1;
    assert_eq!(again, feed);
    // The same feed with the supplier's own token in a header: the key sees no more than its User would.
    let (status, headed) = service.get(&format!("/api/v1/schedule.ics?{range}"), Some(&supplier));
    assert_eq!((status, &headed), (200, &feed));
    std::fs::write(dir.path().join("schedule.ics"), &feed).unwrap();
}

#[test]
fn a_calendar_key_reads_the_feed_only_and_no_bearer_token_is_taken_from_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let supplier = token(dir.path(), "supplier", "user", Some(SUPPLIER));
    let key = token(dir.path(), "supplier-cal", "calendar", Some(SUPPLIER));
    let all = token(dir.path(), "dcc-ops-cal", "calendar", None);
    let service = Service::start(dir.path(), &[]);
    schedule_fixture(&service, &ops);
    let range = "from=2030-03-10T00:00:00Z&to=2030-03-17T00:00:00Z";
    let feed = |query: &str| service.get(&format!("/api/v1/schedule.ics?{range}&{query}"), None);
    let events = |text: &str| text.matches("BEGIN:VEVENT").count();
    let (status, mine) = feed(&format!("key={key}"));
    assert_eq!((status, events(&mine)), (200, 3), "{mine}");
    assert!(
        !mine.contains("CHG-OTHER-1"),
        "a bound key sees its User's and the DCC's"
    );
    let (status, every) = feed(&format!("key={all}"));
    assert_eq!((status, events(&every)), (200, 4), "{every}");
    // Bearer tokens in the URL are refused, valid or not, and a token passed as a key too.
    for secret in [&ops, &supplier, &"sw_wrong".to_owned()] {
        let (status, body) = feed(&format!("token={secret}"));
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("calendar key"), "{body}");
    }
    for secret in [&ops, &supplier] {
        let (status, body) = feed(&format!("key={secret}"));
        assert_eq!(status, 403, "{body}");
        assert!(
            !body.contains(secret.as_str()),
            "never echo a secret: {body}"
        );
    }
    assert_eq!(feed("key=sw_wrong").0, 401);
    assert_eq!(feed("key=").0, 401);
    // The key opens nothing else, in a header or not.
    for path in [
        "/api/v1/schedule",
        "/api/v1/changes",
        "/api/v1/changes/CHG-FW-1",
        "/api/v1/incidents",
        "/api/v1/outcomes",
        "/api/v1/users",
    ] {
        let (status, body) = service.get(path, Some(&key));
        assert_eq!(status, 403, "{path}: {body}");
    }
    let notice = serde_json::json!({"id": "CHG-CAL", "user": SUPPLIER, "title": "x", "category": "other",
        "start": "2030-03-12T14:00:00Z", "end": "2030-03-12T15:00:00Z"});
    assert_eq!(post_json(&service, &key, &notice).0, 403);
    let (status, _) = service.post(
        "/api/v1/events",
        Some(&key),
        b"{}\n",
        &[("Content-Type", "application/x-ndjson")],
    );
    assert_eq!(status, 403);
    // Revoked, it stops at once.
    let output = binary()
        .args(["tokens", "revoke", "supplier-cal", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(feed(&format!("key={key}")).0, 401);
}

/// `stormwatch gen` into `dir`: a 4-hour run from 22:00 to 02:00, so changes and incidents fall on two days.
fn generate(dir: &std::path::Path) -> (serde_json::Value, serde_json::Value) {
    let output = binary()
        .args(["gen", "--out"])
        .arg(dir)
        .args([
            "--users",
            "40",
            "--scale",
            "0.04",
            "--start",
            "2026-03-10T22:00:00Z",
            "--duration",
            "4h",
        ])
        .args([
            "--scenario",
            "firewall_backlog",
            "--scenario",
            "unregistered_backlog",
            "--scenario",
            "decoys",
        ])
        .args(["--compress", "gz", "-q"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
    };
    (read("changes.json"), read("truth.json"))
}

#[test]
fn outcomes_on_a_generated_run_match_its_truth() {
    let gen_dir = tempfile::tempdir().unwrap();
    let (changes, truth) = generate(gen_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    let (status, body) = post_json(&service, &ops, &changes);
    assert_eq!(status, 201, "{body}");
    let events = std::fs::read(gen_dir.path().join("events.ndjson.gz")).unwrap();
    let (status, body) = service.post(
        "/api/v1/events",
        Some(&ops),
        &events,
        &[
            ("Content-Encoding", "gzip"),
            ("Content-Type", "application/x-ndjson"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let truth_incidents = truth["incidents"].as_array().unwrap();
    // Wait until every true incident is stored with its true verdict.
    let incidents = service.wait_for("/api/v1/incidents", &ops, 120, |list| {
        truth_incidents.iter().all(|t| {
            list.as_array().into_iter().flatten().any(|i| {
                i["user"] == t["user"] && i["kind"] == t["kind"] && i["verdict"] == t["verdict"]
            })
        })
    });
    let owner_of = |change: &str| -> String {
        changes
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["id"] == change)
            .and_then(|c| c["user"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let summary = service.json(
        "/api/v1/outcomes?to=2026-03-11T03:00:00Z&days=2&sort=owner&order=asc",
        &ops,
    );
    let rows = summary["owners"].as_array().unwrap();
    let row = |owner: &str| {
        rows.iter()
            .find(|r| r["owner"] == owner)
            .cloned()
            .unwrap_or_default()
    };
    for incident in truth_incidents {
        let user = incident["user"].as_str().unwrap();
        match incident["top_suspect"].as_str() {
            Some(cause) => {
                let owner = owner_of(cause);
                let figures = service.json(
                    &format!("/api/v1/outcomes/{owner}?to=2026-03-11T03:00:00Z&days=2"),
                    &ops,
                );
                let change = figures["changes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["change"] == cause)
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(change["outcome"], "attributed", "{cause}: {figures}");
                // Linked both ways: the attributed incident names the change as its top suspect.
                let id = change["attributed"][0].as_str().unwrap();
                let stored = service.json(&format!("/api/v1/incidents/{id}"), &ops);
                assert_eq!(stored["suspects"][0]["change"], cause);
                assert_eq!(stored["user"], user);
                let shown = service.json(&format!("/api/v1/changes/{cause}"), &ops);
                assert_eq!(shown["outcome"]["outcome"], "attributed", "{shown}");
            }
            None => assert!(
                row(user)["unregistered_change_suspected"].as_u64() >= Some(1),
                "{user}: {summary}"
            ),
        }
    }
    // Every User's changes are over: each is decided, and only the true causes failed.
    let causes: std::collections::BTreeSet<&str> = truth_incidents
        .iter()
        .filter_map(|i| i["top_suspect"].as_str())
        .collect();
    let mut expected: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for change in changes.as_array().unwrap() {
        let id = change["id"].as_str().unwrap();
        let entry = expected.entry(owner_of(id)).or_default();
        entry.0 += 1;
        entry.1 += u64::from(causes.contains(id));
    }
    for (owner, (decided, failed)) in &expected {
        let figures = row(owner);
        assert_eq!(figures["changes_decided"], *decided, "{owner}: {summary}");
        assert_eq!(figures["changes_attributed"], *failed, "{owner}: {summary}");
        let rate = *failed as f64 / *decided as f64;
        assert!(
            (figures["change_failure_rate"].as_f64().unwrap_or(-1.0) - rate).abs() < 1e-9,
            "{owner}: {summary}"
        );
    }
    let unexplained = truth_incidents
        .iter()
        .filter(|i| i["verdict"] == "unregistered_change_suspected")
        .count();
    let counted: u64 = rows
        .iter()
        .filter_map(|r| r["unregistered_change_suspected"].as_u64())
        .sum();
    assert_eq!(
        counted as usize, unexplained,
        "{summary}; incidents {incidents}"
    );
    // Sorting: by failure rate, highest first, rows without a rate last.
    let sorted = service.json(
        "/api/v1/outcomes?to=2026-03-11T03:00:00Z&days=2&sort=change_failure_rate",
        &ops,
    );
    let rates: Vec<Option<f64>> = sorted["owners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["change_failure_rate"].as_f64())
        .collect();
    let known: Vec<f64> = rates.iter().map_while(|r| *r).collect();
    assert!(known.windows(2).all(|w| w[0] >= w[1]), "{rates:?}");
    assert!(
        rates[known.len()..].iter().all(Option::is_none),
        "{rates:?}"
    );
    assert_eq!(service.get("/api/v1/outcomes?sort=luck", Some(&ops)).0, 400);
    // The table, for a person running the test with --nocapture.
    eprintln!(
        "owner                    registered decided attributed rate  incidents unregistered detect_s"
    );
    for row in rows {
        eprintln!(
            "{:<24} {:>10} {:>7} {:>10} {:>5} {:>9} {:>12} {:>8}",
            row["owner"].as_str().unwrap_or_default(),
            row["changes_registered"],
            row["changes_decided"],
            row["changes_attributed"],
            row["change_failure_rate"]
                .as_f64()
                .map_or("-".into(), |r| format!("{r:.2}")),
            row["incidents"],
            row["unregistered_change_suspected"],
            row["median_onset_to_detection_s"]
        );
    }
}

/// Issue 23: with replayed data (event time 2026-03-10) the schedule was empty and outcomes were judged by the wall
/// clock, months later: a change whose window event time had not reached was called clean. Every time-scoped view
/// now defaults to the event time of the data the service holds, takes `from` and `to`, and a change is pending
/// until event time passes its window.
#[test]
fn views_follow_the_event_time_of_replayed_data() {
    use support::{FIREWALLED, HEALTHY, T0, firewall_change, firewall_lines};
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &["--snapshot-every", "1"]);
    let at = |seconds: i64| {
        stormwatch_core::rfc3339::format_seconds(T0 + seconds * 1000).unwrap_or_default()
    };
    // Before any telemetry the views' clock is the wall clock.
    let fresh = service.json("/api/v1/schedule", &ops);
    assert_eq!(fresh["clock"], "wall_clock", "{fresh}");
    let notices = serde_json::json!([
        // Over the day before the data: decided, and no incident names it.
        {"id": "CHG-EARLIER", "user": HEALTHY, "title": "Head-end patch", "category": "application",
         "start": at(-30 * 3_600), "end": at(-29 * 3_600), "status": "completed"},
        // Its window ends after the last event time: pending, whatever the wall clock says.
        {"id": "CHG-LATER", "user": "DCC", "title": "DSP release", "category": "dcc_maintenance",
         "start": at(2 * 3_600), "end": at(3 * 3_600)},
    ]);
    let (status, body) = post_json(&service, &ops, &notices);
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_json(
        &service,
        &ops,
        &serde_json::from_str(&firewall_change("CHG-FW-1", 280, 3_600)).unwrap(),
    );
    assert_eq!(status, 201, "{body}");
    service.send_tcp(&firewall_lines(0..900, (300, 2_000)));
    service.wait_for("/api/v1/incidents?open=true", &ops, 60, |v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|i| i["user"] == FIREWALLED))
    });

    // The incident opens while the feed is still being applied: wait for the views' clock to reach its end.
    let schedule = service.wait_for("/api/v1/schedule", &ops, 60, |v| {
        v["now"]
            .as_str()
            .is_some_and(|n| n.starts_with("2026-03-10T09:1"))
    });
    assert_eq!(schedule["clock"], "event_time", "{schedule}");
    assert_eq!(ids(&schedule), ["CHG-FW-1", "CHG-LATER"], "{schedule}");
    let outcome = |id: &str| {
        schedule["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["id"] == id)
            .map(|c| c["outcome"]["outcome"].clone())
            .unwrap_or_default()
    };
    assert_eq!(outcome("CHG-LATER"), "pending");
    assert_eq!(outcome("CHG-FW-1"), "attributed");
    // `from` and `to` reach back to the earlier change, decided and clean.
    let earlier = service.json(
        &format!(
            "/api/v1/schedule?from={}&to={}",
            at(-32 * 3_600),
            at(-28 * 3_600)
        ),
        &ops,
    );
    assert_eq!(ids(&earlier), ["CHG-EARLIER"], "{earlier}");
    assert_eq!(earlier["changes"][0]["outcome"]["outcome"], "clean");
    assert_eq!(
        service.json("/api/v1/changes/CHG-LATER", &ops)["outcome"]["outcome"],
        "pending"
    );

    // Outcomes: the period ends at event time; a User's figures count its open incident.
    let summary = service.json("/api/v1/outcomes", &ops);
    assert_eq!(summary["clock"], "event_time", "{summary}");
    assert!(
        summary["to"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-03-10")),
        "{summary}"
    );
    let mine = service.json(&format!("/api/v1/outcomes/{FIREWALLED}"), &ops);
    assert!(mine["figures"]["incidents"].as_u64() >= Some(1), "{mine}");
    // A period reaching past the event time: the change in it is still judged as of event time, so pending.
    let dcc = service.json(&format!("/api/v1/outcomes/DCC?to={}", at(4 * 3_600)), &ops);
    assert_eq!(dcc["changes"][0]["outcome"], "pending", "{dcc}");
    assert_eq!(dcc["figures"]["changes_decided"], 0, "{dcc}");
    let window = service.json(
        &format!(
            "/api/v1/outcomes/{HEALTHY}?from={}&to={}",
            at(-32 * 3_600),
            at(-28 * 3_600)
        ),
        &ops,
    );
    assert_eq!(window["changes"][0]["outcome"], "clean", "{window}");
    assert_eq!(
        service
            .get(
                "/api/v1/outcomes?from=2026-03-10T10:00:00Z&to=2026-03-10T09:00:00Z",
                Some(&ops)
            )
            .0,
        400
    );

    // The command line judges as of the same event time, recorded in the store by the service.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let shown = loop {
        let output = binary()
            .args(["changes", "show", "CHG-LATER", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if text.contains("as of event time 2026-03-10") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(shown.contains("outcome   pending"), "{shown}");
}
