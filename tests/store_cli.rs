//! Drives the built binary's `changes`, `tokens` and `replay --changes-db` commands against a temporary store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

/// Runs the binary on the store in `data_dir`, with no inherited data dir and a known `$USER` for the audit.
fn run(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stormwatch"))
        .env_remove("STORMWATCH_DATA_DIR")
        .env("USER", "tester")
        .args(args)
        // Last, after the subcommand's own arguments: `--data-dir` is accepted anywhere after `changes`/`tokens`.
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run stormwatch")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    output
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn listed(data_dir: &Path) -> Vec<Value> {
    let output = ok(run(data_dir, &["changes", "list", "--json"]));
    serde_json::from_slice(&output.stdout).expect("list --json prints a JSON array")
}

fn ids(notices: &[Value]) -> Vec<&str> {
    notices.iter().filter_map(|n| n["id"].as_str()).collect()
}

#[test]
fn add_then_list_json_gives_back_the_contract_notice() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let output = ok(run(
        &store,
        &[
            "changes",
            "add",
            "--id",
            "CHG-2026-0043",
            "--user",
            "90b3d51f30010007",
            "--title",
            "Bulk tariff update",
            "--category",
            "campaign",
            "--start",
            "2026-03-10T08:55:00Z",
            "--end",
            "2026-03-10T09:15:00+00:00",
            "--srv",
            "1.1.1",
            "--srv",
            "4.1.1",
            "--expected-direction",
            "to_dsp",
            "--expected-rate-factor",
            "1.5",
            "--contact",
            "ops@example.invalid",
        ],
    ));
    // A 20-minute campaign at 09:00 is stored, with advice after the first line.
    let printed = stdout(&output);
    assert_eq!(printed.lines().next(), Some("created CHG-2026-0043"));
    assert!(
        printed.contains("warning CHG-2026-0043 [short_window]"),
        "{printed}"
    );
    let expected = json!({
        "id": "CHG-2026-0043", "user": "90-B3-D5-1F-30-01-00-07", "title": "Bulk tariff update",
        "category": "campaign", "start": "2026-03-10T08:55:00Z", "end": "2026-03-10T09:15:00Z",
        "status": "planned", "srvs": ["1.1.1", "4.1.1"],
        "expected": {"direction": "to_dsp", "rate_factor": 1.5}, "contact": "ops@example.invalid",
    });
    assert_eq!(listed(&store), vec![expected]);

    let table = stdout(&ok(run(&store, &["changes", "list"])));
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains("CHG-2026-0043") && table.contains("Bulk tariff update"),
        "{table}"
    );
    let none = listed_with(&store, &["--user", "DCC"]);
    assert!(none.is_empty(), "{none:?}");
}

fn listed_with(data_dir: &Path, filter: &[&str]) -> Vec<Value> {
    let mut args = vec!["changes", "list", "--json"];
    args.extend_from_slice(filter);
    serde_json::from_slice(&ok(run(data_dir, &args)).stdout).unwrap()
}

#[test]
fn add_refuses_a_bad_field_naming_it_and_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &[
            "changes",
            "add",
            "--id",
            "X",
            "--user",
            "DCC",
            "--title",
            "t",
            "--category",
            "network",
            "--start",
            "2026-03-10T10:00:00Z",
            "--end",
            "2026-03-10T09:00:00Z",
        ],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("field `end`") && message.contains("--end"),
        "{message}"
    );
    assert!(listed(dir.path()).is_empty());
}

#[test]
fn importing_the_contract_examples_gives_three_notices() {
    let dir = tempfile::tempdir().unwrap();
    let (json_file, csv_file) = (data("changes.json"), data("changes.csv"));
    let output = ok(run(
        dir.path(),
        &[
            "changes",
            "import",
            json_file.to_str().unwrap(),
            csv_file.to_str().unwrap(),
        ],
    ));
    // The CSV holds the same notices as the JSON, so the second copy changes nothing.
    assert!(
        stdout(&output).contains("3 created, 0 updated, 3 unchanged"),
        "{}",
        stdout(&output)
    );
    let notices = listed(dir.path());
    assert_eq!(
        ids(&notices),
        ["CHG-2026-0043", "CHG-2026-0042", "DCC-PM-2026-03"]
    );
    let dcc = listed_with(dir.path(), &["--user", "dcc"]);
    assert_eq!(ids(&dcc), ["DCC-PM-2026-03"]);
    let window = listed_with(
        dir.path(),
        &[
            "--from",
            "2026-03-10T09:30:00Z",
            "--to",
            "2026-03-11T00:00:00Z",
        ],
    );
    assert_eq!(ids(&window), ["CHG-2026-0042"]);
    let in_progress = listed_with(dir.path(), &["--status", "in_progress"]);
    assert_eq!(ids(&in_progress), ["CHG-2026-0042"]);
}

#[test]
fn an_import_with_one_bad_notice_stores_the_others_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("changes.ndjson");
    let line = |id: &str, end: &str| {
        json!({"id": id, "user": "DCC", "title": "t", "category": "other",
               "start": "2026-03-10T09:00:00Z", "end": end})
        .to_string()
    };
    let lines = [
        line("GOOD-1", "2026-03-10T10:00:00Z"),
        line("BAD", "2026-03-10T08:00:00Z"),
        line("GOOD-2", "2026-03-10T11:00:00Z"),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let store = dir.path().join("store");
    let output = run(&store, &["changes", "import", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("changes.ndjson line 2 (BAD): field `end`"),
        "{message}"
    );
    assert!(
        message.contains("the 2 valid notices were stored"),
        "{message}"
    );
    assert_eq!(ids(&listed(&store)), ["GOOD-1", "GOOD-2"]);
}

#[test]
fn cancel_then_show_prints_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let changes = data("changes.json");
    ok(run(
        dir.path(),
        &["changes", "import", changes.to_str().unwrap()],
    ));
    let output = ok(run(
        dir.path(),
        &["changes", "cancel", "CHG-2026-0042", "--actor", "bob"],
    ));
    assert_eq!(
        stdout(&output).trim(),
        "cancelled CHG-2026-0042 (was in_progress)"
    );

    let text = stdout(&ok(run(dir.path(), &["changes", "show", "CHG-2026-0042"])));
    assert!(text.contains("status    cancelled"), "{text}");
    assert!(text.contains("audit trail:"), "{text}");
    assert!(
        text.contains("create  tester"),
        "the default actor is $USER: {text}"
    );
    assert!(
        text.contains("status  bob") && text.contains("in_progress -> cancelled"),
        "{text}"
    );

    let shown: Value = serde_json::from_slice(
        &ok(run(
            dir.path(),
            &["changes", "show", "CHG-2026-0042", "--json"],
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(shown["notice"]["status"], "cancelled");
    let actions: Vec<&str> = shown["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["action"].as_str())
        .collect();
    assert_eq!(actions, ["create", "status"]);

    let missing = run(dir.path(), &["changes", "show", "NOPE"]);
    assert!(!missing.status.success() && stderr(&missing).contains("no change `NOPE`"));
}

#[test]
fn tokens_add_list_revoke_and_list_never_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let added = ok(run(
        dir.path(),
        &[
            "tokens",
            "add",
            "--name",
            "supplier-a",
            "--role",
            "user",
            "--user",
            "90-B3-D5-1F-30-01-00-07",
        ],
    ));
    let secret = stdout(&added).trim().to_owned();
    assert!(
        secret.starts_with("sw_") && secret.len() == 67,
        "stdout is the secret alone: {secret}"
    );
    assert!(
        stderr(&added).contains("cannot be shown again"),
        "{}",
        stderr(&added)
    );
    ok(run(
        dir.path(),
        &["tokens", "add", "--name", "ingest", "--role", "ingest"],
    ));

    let unbound = run(
        dir.path(),
        &["tokens", "add", "--name", "x", "--role", "user"],
    );
    assert!(!unbound.status.success() && stderr(&unbound).contains("field `user`"));

    let secret_hex = &secret["sw_".len()..];
    for args in [&["tokens", "list"][..], &["tokens", "list", "--json"][..]] {
        let output = ok(run(dir.path(), args));
        let text = format!("{}{}", stdout(&output), stderr(&output));
        assert!(
            text.contains("supplier-a") && text.contains("ingest"),
            "{text}"
        );
        assert!(!text.contains(secret_hex), "a secret was listed: {text}");
    }

    let revoked = ok(run(dir.path(), &["tokens", "revoke", "supplier-a"]));
    assert!(
        stdout(&revoked).contains("revoked token 1 `supplier-a`"),
        "{}",
        stdout(&revoked)
    );
    let again = run(dir.path(), &["tokens", "revoke", "1"]);
    assert!(!again.status.success(), "{}", stdout(&again));
    let tokens: Vec<Value> =
        serde_json::from_slice(&ok(run(dir.path(), &["tokens", "list", "--json"])).stdout).unwrap();
    assert!(
        tokens[0]["revoked_ms"].is_i64() && tokens[1]["revoked_ms"].is_null(),
        "{tokens:?}"
    );
}

#[test]
fn reading_commands_refuse_a_missing_store_instead_of_creating_one() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent");
    for args in [&["changes", "list"][..], &["tokens", "list"][..]] {
        let output = run(&absent, args);
        assert!(!output.status.success());
        assert!(
            stderr(&output).contains("--data-dir"),
            "{}",
            stderr(&output)
        );
    }
    assert!(!absent.exists());
}

#[test]
fn the_data_dir_defaults_to_the_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let changes = data("changes.json");
    let status = Command::new(env!("CARGO_BIN_EXE_stormwatch"))
        .env("STORMWATCH_DATA_DIR", dir.path())
        .args(["changes", "import", changes.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(listed(dir.path()).len(), 3);
}

#[test]
fn replay_picks_up_the_register_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let changes = data("changes.json");
    ok(run(
        &store,
        &["changes", "import", changes.to_str().unwrap()],
    ));
    let events = data("events.ndjson");
    let report = dir.path().join("report.json");
    let db = store.join("stormwatch.db");
    let output = Command::new(env!("CARGO_BIN_EXE_stormwatch"))
        .args(["replay", events.to_str().unwrap(), "--quiet", "--report"])
        .arg(&report)
        .arg("--changes-db")
        .arg(&db)
        .output()
        .unwrap();
    ok(output);
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["summary"]["changes_loaded"], 3, "{report}");
    assert_eq!(report["summary"]["events"], 11);

    let missing = Command::new(env!("CARGO_BIN_EXE_stormwatch"))
        .args(["replay", events.to_str().unwrap(), "--quiet", "--report"])
        .arg(dir.path().join("other.json"))
        .arg("--changes-db")
        .arg(dir.path().join("nowhere"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no Stormwatch store"),
        "{}",
        stderr(&missing)
    );
}

/// The flags of the README's `changes add` example.
const README_ADD: [&str; 12] = [
    "--id",
    "CHG-2026-0042",
    "--user",
    "90-B3-D5-1F-30-01-00-07",
    "--title",
    "Firewall rule migration",
    "--category",
    "network",
    "--start",
    "2026-03-10T09:00:00Z",
    "--end",
    "2026-03-10T10:00:00Z",
];

/// Issue 23: `changes add` with an id from examples/changes.json (as the README's example does) reset the contact
/// and the status it was not given, and printed only "updated". Now only the fields given change, and the changes
/// are printed; `--replace` replaces the notice whole and says so.
#[test]
fn add_with_an_existing_id_changes_only_the_fields_given_and_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = data("changes.json");
    ok(run(&store, &["changes", "import", file.to_str().unwrap()]));
    let before = listed(&store)
        .into_iter()
        .find(|n| n["id"] == "CHG-2026-0042")
        .expect("examples/changes.json registers CHG-2026-0042");
    assert!(before["contact"].is_string(), "{before}");
    // The README's example, as it is written there.
    let printed = stdout(&ok(run(
        &store,
        &[&["changes", "add"][..], &README_ADD].concat(),
    )));
    let after = listed(&store)
        .into_iter()
        .find(|n| n["id"] == "CHG-2026-0042")
        .unwrap();
    for kept in ["contact", "status", "srvs"] {
        assert_eq!(after[kept], before[kept], "`{kept}` kept: {printed}");
    }
    // Only the end moves: the first line says how many fields changed, one line per field follows.
    let printed = stdout(&ok(run(
        &store,
        &[
            "changes",
            "add",
            "--id",
            "CHG-2026-0042",
            "--end",
            "2026-03-10T11:00:00Z",
        ],
    )));
    assert_eq!(
        printed.lines().take(2).collect::<Vec<_>>(),
        [
            "updated CHG-2026-0042: 1 field changed, the others kept:",
            "  end: 2026-03-10T10:00:00Z -> 2026-03-10T11:00:00Z",
        ],
        "{printed}"
    );
    // A new id still needs every required field, named by its flag.
    let output = run(
        &store,
        &["changes", "add", "--id", "CHG-NEW", "--title", "half"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("(check --user)"),
        "{}",
        stderr(&output)
    );

    let printed = stdout(&ok(run(
        &store,
        &[&["changes", "add", "--replace"][..], &README_ADD].concat(),
    )));
    assert!(
        printed
            .starts_with("replaced CHG-2026-0042 whole (--replace: fields not given were cleared)"),
        "{printed}"
    );
    assert!(printed.contains("  contact: "), "{printed}");
    let replaced = listed(&store)
        .into_iter()
        .find(|n| n["id"] == "CHG-2026-0042")
        .unwrap();
    assert!(replaced.get("contact").is_none(), "{replaced}");
    assert_eq!(replaced["status"], "planned");
}
