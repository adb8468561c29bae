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
    // Cancelling the DCC release clears the overlap from the change's listed warnings.
    let (status, _) = service.post(
        "/api/v1/changes/DCC-REL-9/status",
        Some(&ops),
        br#"{"status":"cancelled"}"#,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 200);
    let shown = service.json("/api/v1/changes/CHG-FW-1", &supplier);
    assert_eq!(
        kinds(&shown["warnings"]),
        ["undeclared_impact", "short_window"],
        "{shown}"
    );
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
