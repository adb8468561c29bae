//! `stormwatch changes import` from change-management tools: the ServiceNow fixture through the built-in mapping,
//! a re-import that updates by id with audit rows, and a CSV through its own column mapping.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::binary;

const SUPPLIER: &str = "90-B3-D5-1F-30-01-00-07";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/servicenow")
        .join(name)
}

fn run(data_dir: &Path, args: &[&str]) -> Output {
    binary()
        .args(["changes"])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .args(if args.first() == Some(&"import") {
            &["--actor", "change-sync"][..]
        } else {
            &[]
        })
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_servicenow_export_imports_and_a_later_export_updates_by_id_with_audit() {
    let dir = tempfile::tempdir().unwrap();
    let first = fixture("change_request.json");
    let output = run(
        dir.path(),
        &[
            "import",
            "--servicenow",
            "--user",
            SUPPLIER,
            first.to_str().unwrap(),
        ],
    );
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("stored 8 notices (8 created, 0 updated, 0 unchanged)"),
        "{printed}"
    );
    // The firmware wave declares no expected impact; the head-end upgrade runs through the morning peak.
    assert!(
        printed.contains("warning CHG0031004 [undeclared_impact]"),
        "{printed}"
    );
    assert!(
        printed.contains("warning CHG0031003 [morning_peak]"),
        "{printed}"
    );
    let listed = run(dir.path(), &["list", "--json"]);
    let notices: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let find = |list: &serde_json::Value, id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap_or_default()
    };
    let firewall = find(&notices, "CHG0031001");
    assert_eq!(firewall["user"], SUPPLIER);
    assert_eq!(firewall["category"], "network");
    assert_eq!(firewall["start"], "2026-03-16T22:00:00Z");
    assert_eq!(find(&notices, "CHG0031002")["category"], "certificate");
    assert_eq!(find(&notices, "CHG0031007")["status"], "completed");
    assert_eq!(find(&notices, "CHG0031008")["status"], "cancelled");

    let update = fixture("change_request_update.json");
    let output = run(
        dir.path(),
        &[
            "import",
            "--servicenow",
            "--user",
            SUPPLIER,
            update.to_str().unwrap(),
        ],
    );
    let printed = text(&output);
    assert!(
        printed.contains("stored 8 notices (0 created, 2 updated, 6 unchanged)"),
        "{printed}"
    );
    let shown = run(dir.path(), &["show", "CHG0031001", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let audit = shown["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 2, "{shown}");
    assert_eq!(audit[1]["action"], "update");
    assert_eq!(audit[1]["actor"], "change-sync");
    assert!(
        audit[1]["detail"]
            .as_str()
            .unwrap()
            .contains("2026-03-17T22:00:00Z"),
        "{shown}"
    );
    assert_eq!(shown["notice"]["start"], "2026-03-17T22:00:00Z");
}

#[test]
fn a_csv_imports_through_its_column_mapping_and_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = fixture("csv_mapping.toml");
    let csv = fixture("changes.csv");
    let output = run(
        dir.path(),
        &[
            "import",
            "--mapping",
            mapping.to_str().unwrap(),
            csv.to_str().unwrap(),
        ],
    );
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("stored 3 notices (3 created"), "{printed}");
    let listed = run(
        dir.path(),
        &["list", "--json", "--user", "90-B3-D5-1F-30-01-00-09"],
    );
    let notices: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let categories: Vec<&str> = notices
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["category"].as_str())
        .collect();
    assert_eq!(categories, ["network", "certificate", "campaign"]);
    assert_eq!(notices[0]["contact"], "netops@supplier-b.invalid");

    // A ServiceNow export without a User, and with no --user: refused before anything is read or stored.
    let export = fixture("change_request.json");
    let output = run(
        dir.path(),
        &["import", "--servicenow", export.to_str().unwrap()],
    );
    assert!(!output.status.success());
    assert!(
        text(&output).contains("give --user EUI-64"),
        "{}",
        text(&output)
    );
    // A broken mapping names itself; an unknown key is refused, not ignored.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[fields]\nid = \"number\"\ntitle = \"x\"\nstart = \"a\"\nend = \"b\"\nowner = \"c\"\n",
    )
    .unwrap();
    let output = run(
        dir.path(),
        &[
            "import",
            "--mapping",
            bad.to_str().unwrap(),
            csv.to_str().unwrap(),
        ],
    );
    assert!(!output.status.success());
    let printed = text(&output);
    assert!(
        printed.contains("bad.toml") && printed.contains("owner"),
        "{printed}"
    );
    // A record the mapping cannot place is listed with its file, record and reason; the others are stored.
    let partial = dir.path().join("partial.json");
    std::fs::write(&partial, r#"{"result": [
        {"number": "CHG9", "short_description": "ok", "start_date": "2026-03-16 22:00:00", "end_date": "2026-03-16 23:00:00", "state": "-2", "category": "Network"},
        {"number": "CHG10", "short_description": "odd", "start_date": "2026-03-16 22:00:00", "end_date": "2026-03-16 23:00:00", "state": "-2", "category": "Inquiry / Help"}
    ]}"#).unwrap();
    let output = run(
        dir.path(),
        &[
            "import",
            "--servicenow",
            "--user",
            SUPPLIER,
            partial.to_str().unwrap(),
        ],
    );
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(printed.contains("stored 1 notice"), "{printed}");
    assert!(
        printed.contains("record 2 (CHG10): field `category`"),
        "{printed}"
    );
    assert!(printed.contains("[category] table"), "{printed}");
}

#[test]
fn the_built_in_mapping_prints_and_reads_back_as_a_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["import", "--print-mapping"]);
    assert!(output.status.success(), "{}", text(&output));
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    let copy = dir.path().join("mine.toml");
    std::fs::write(
        &copy,
        printed.replace("# user = \"u_dcc_user_id\"", "user = \"u_dcc_user_id\""),
    )
    .unwrap();
    let export = dir.path().join("export.json");
    std::fs::write(&export, format!(r#"{{"result": [{{"number": "CHG1", "short_description": "x", "start_date": "2026-03-16 22:00:00", "end_date": "2026-03-16 23:00:00", "state": "-1", "category": "Telecom", "u_dcc_user_id": "{SUPPLIER}"}}]}}"#)).unwrap();
    let output = run(
        dir.path(),
        &[
            "import",
            "--mapping",
            copy.to_str().unwrap(),
            export.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let listed: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["list", "--json"]).stdout).unwrap();
    assert_eq!(listed[0]["status"], "in_progress");
    assert_eq!(listed[0]["category"], "network");
}
