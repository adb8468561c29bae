//! The User directory's names and roles (issue 13): loaded from a CSV file, edited through the API with an ops
//! token (audited, kept across a restart), read by a User token for its own entry only, and shown beside the
//! EUI-64 in incidents, `/metrics` (`stormwatch_user_info`) and `replay`'s triage summary.

mod support;

use support::*;

const NEWCOMER: &str = "00-1A-2B-3C-4D-5E-6F-70";

fn send(
    service: &Service,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let (status, text) = request(
        service.http,
        method,
        path,
        Some(token),
        &[],
        body.as_bytes(),
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

fn one_line(user: &str, ts: i64) -> Vec<u8> {
    format!("{{\"ts\":{ts},\"user\":\"{user}\",\"event\":\"request\",\"count\":1}}\n").into_bytes()
}

#[test]
fn names_load_from_csv_edit_through_the_api_survive_a_restart_and_steer_the_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let ingest = token(dir.path(), "exporter", "ingest", None);
    let healthy = token(dir.path(), "lab", "user", Some(HEALTHY));
    let directory = dir.path().join("users.csv");
    std::fs::write(
        &directory,
        format!("user,name,role\n{FIREWALLED},\"Acme Energy, Ltd\",supplier\n{HEALTHY} # listed, no name\n"),
    )
    .unwrap();
    let config = config_file(
        dir.path(),
        &format!("user_directory = \"{}\"\n", directory.display()),
    );
    let args: Vec<&str> = config.iter().map(String::as_str).collect();
    let mut service = Service::start(dir.path(), &args);

    let listed = service.json("/api/v1/directory", &ops);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let metrics = service.get("/metrics", None).1;
    assert_eq!(
        metric(
            &metrics,
            &format!(
                "stormwatch_user_info{{user=\"{FIREWALLED}\",name=\"Acme Energy, Ltd\",role=\"supplier\"}}"
            )
        ),
        Some(1.0),
        "{metrics}"
    );

    // A User token reads its own entry, nobody else's, and writes nothing.
    assert_eq!(
        service
            .json("/api/v1/directory", &healthy)
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        service
            .get(&format!("/api/v1/directory/{FIREWALLED}"), Some(&healthy))
            .0,
        403
    );
    assert_eq!(
        service
            .get(&format!("/api/v1/directory/{HEALTHY}"), Some(&healthy))
            .0,
        200
    );
    let (status, _) = send(
        &service,
        "PUT",
        &format!("/api/v1/directory/{HEALTHY}"),
        &healthy,
        r#"{"name":"Me"}"#,
    );
    assert_eq!(status, 403);

    // Bad input is refused naming the field.
    let (status, body) = send(
        &service,
        "PUT",
        &format!("/api/v1/directory/{NEWCOMER}"),
        &ops,
        r#"{"name":"X","role":"retailer"}"#,
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("role")),
        "{body}"
    );
    let (status, _) = send(
        &service,
        "PUT",
        "/api/v1/directory/not-a-user",
        &ops,
        r#"{"name":"X"}"#,
    );
    assert_eq!(status, 400);

    // A User not in the file is refused until ops add it; then its lines get in.
    let (_, answer) = service.post(
        "/api/v1/events",
        Some(&ingest),
        &one_line(NEWCOMER, T0),
        &[],
    );
    assert!(answer.contains("\"refused\":1"), "{answer}");
    let put = format!("/api/v1/directory/{NEWCOMER}");
    let (status, body) = send(
        &service,
        "PUT",
        &put,
        &ops,
        r#"{"name":"Northern Grid","role":"network operator"}"#,
    );
    assert_eq!(
        (status, body["changed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (_, body) = send(
        &service,
        "PUT",
        &put,
        &ops,
        r#"{"name":"Northern Grid","role":"network_operator"}"#,
    );
    assert_eq!(
        body["changed"].as_bool(),
        Some(false),
        "the same entry again writes nothing"
    );
    let (_, answer) = service.post(
        "/api/v1/events",
        Some(&ingest),
        &one_line(NEWCOMER, T0 + 1_000),
        &[],
    );
    assert!(answer.contains("\"accepted\":1"), "{answer}");
    // Deleting a file entry refuses that User from now on.
    let (status, _) = send(
        &service,
        "DELETE",
        &format!("/api/v1/directory/{HEALTHY}"),
        &ops,
        "",
    );
    assert_eq!(status, 200);
    let (_, answer) = service.post(
        "/api/v1/events",
        Some(&ingest),
        &one_line(HEALTHY, T0 + 2_000),
        &[],
    );
    assert!(answer.contains("\"refused\":1"), "{answer}");
    let shown = service.json(&put, &ops);
    assert_eq!(
        shown["audit"].as_array().map(Vec::len),
        Some(1),
        "one audited write: {shown}"
    );
    assert_eq!(shown["audit"][0]["actor"], "ops");

    // The edits are in the store: a restart reads the file again and applies them over it.
    service.stop();
    let service = Service::start(dir.path(), &args);
    let entry = service.json(&put, &ops);
    assert_eq!(
        (entry["name"].as_str(), entry["role"].as_str()),
        (Some("Northern Grid"), Some("network_operator"))
    );
    assert_eq!(
        service
            .get(&format!("/api/v1/directory/{HEALTHY}"), Some(&ops))
            .0,
        404
    );
    let (_, answer) = service.post(
        "/api/v1/events",
        Some(&ingest),
        &one_line(HEALTHY, T0 + 3_000),
        &[],
    );
    assert!(
        answer.contains("\"refused\":1"),
        "a deletion outlives the restart: {answer}"
    );
}

/// The name shows beside the EUI-64 in the incident API and in `replay`'s triage summary.
#[test]
fn incidents_and_the_triage_summary_name_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let directory = dir.path().join("users.json");
    std::fs::write(
        &directory,
        format!(r#"[{{"user": "{FIREWALLED}", "name": "Acme Energy", "role": "supplier"}}, {{"user": "{HEALTHY}"}}]"#),
    )
    .unwrap();
    let config = config_file(
        dir.path(),
        &format!("user_directory = \"{}\"\n", directory.display()),
    );
    let args: Vec<&str> = config.iter().map(String::as_str).collect();
    let service = Service::start(dir.path(), &args);
    let lines = firewall_lines(0..500, (300, 2_000));
    service.send_tcp(&lines);
    let incidents = service.wait_for("/api/v1/incidents", &ops, 60, |list| {
        list.as_array().is_some_and(|l| !l.is_empty())
    });
    assert_eq!(
        incidents[0]["user_name"], "Acme Energy (supplier)",
        "{incidents}"
    );

    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, &lines).unwrap();
    let output = binary()
        .args(["replay", "--report"])
        .arg(dir.path().join("report.json"))
        .arg("--user-directory")
        .arg(&directory)
        .arg(&events)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("{FIREWALLED} Acme Energy (supplier)")),
        "{stdout}"
    );
}
