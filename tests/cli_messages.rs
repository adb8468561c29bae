//! The messages a newcomer meets outside `replay`: errors that name each cause once, settings named like their
//! flags, environment variables blamed by name, Kafka options on a build without Kafka, `gen` and `evaluate`
//! help, and `changes import` of a file it cannot use. Each drives the real binary.

use std::path::Path;
use std::process::{Command, Output};

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stormwatch"));
    // The tests set what they test; nothing from the caller's environment.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STORMWATCH_") {
            command.env_remove(key);
        }
    }
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run stormwatch")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Fails with exit code 2 and returns the one `stormwatch: error:` line.
fn error_of(command: &mut Command) -> String {
    let output = run(command);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.starts_with("stormwatch: error: "), "{text}");
    text
}

#[test]
fn errors_print_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let missing_input = error_of(
        binary()
            .args(["replay", "/no/such/events.ndjson", "--report"])
            .arg(&report),
    );
    let missing_config = error_of(binary().args([
        "serve",
        "--print-config",
        "--config",
        "/no/such/stormwatch.toml",
    ]));
    for text in [&missing_input, &missing_config] {
        assert_eq!(
            text.matches("No such file or directory").count(),
            1,
            "{text}"
        );
    }
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "http = = 1\n").unwrap();
    let text = error_of(
        binary()
            .args(["serve", "--print-config", "--config"])
            .arg(&bad_toml),
    );
    assert_eq!(text.matches("TOML parse error").count(), 1, "{text}");
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(
        store.join("stormwatch.db"),
        "this is not SQLite\n".repeat(100),
    )
    .unwrap();
    let text = error_of(binary().args(["changes", "list", "--data-dir"]).arg(&store));
    assert_eq!(text.matches("file is not a database").count(), 1, "{text}");
    let text = error_of(
        binary()
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--ingest",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(&store),
    );
    assert_eq!(
        (
            text.matches("file is not a database").count(),
            text.matches("cannot open").count()
        ),
        (1, 1),
        "{text}"
    );
}

#[test]
fn a_bad_environment_variable_is_named_not_the_flag() {
    let text = error_of(
        binary()
            .args(["serve", "--print-config"])
            .env("STORMWATCH_LATENESS", "abc"),
    );
    assert!(
        text.contains("STORMWATCH_LATENESS=\"abc\" is not valid"),
        "{text}"
    );
    assert!(!text.contains("--lateness"), "{text}");
    let text = error_of(
        binary()
            .args(["serve", "--print-config"])
            .env("STORMWATCH_LOG_FORMAT", "xml"),
    );
    assert!(text.contains("STORMWATCH_LOG_FORMAT=\"xml\""), "{text}");
}

/// Every setting flag of `serve` is a key `--print-config` prints under the same name (`--data-dir` is
/// `data_dir`), every setting is listed (unset ones as comments), and the printed file reads back as a config.
#[test]
fn print_config_names_settings_like_the_flags_and_lists_unset_ones() {
    let output = run(binary().args(["serve", "--print-config"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let help =
        String::from_utf8_lossy(&run(binary().args(["serve", "--help"])).stdout).into_owned();
    // The top-level settings, before the `[engine]` tables.
    let keys: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with('['))
        .map(|l| l.trim_start_matches("# "))
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
        .collect();
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("--"))
        .map(|flag| flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        // `--accept-lost-journal` is a one-time answer to one start, never a setting a file could repeat.
        .filter(|flag| {
            ![
                "config",
                "print-config",
                "accept-lost-journal",
                "help",
                "version",
                "",
            ]
            .contains(flag)
        })
        .collect();
    assert!(
        flags.contains(&"data-dir") && flags.contains(&"lateness"),
        "{help}"
    );
    for flag in &flags {
        let key = flag.replace('-', "_");
        assert!(
            keys.contains(&key.as_str()),
            "--{flag} has no `{key}` setting in --print-config:\n{text}"
        );
    }
    for key in ["alertmanager", "public_url"] {
        assert!(
            text.contains(&format!("# {key} = ")),
            "{key} not listed as unset: {text}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("printed.toml");
    std::fs::write(&file, &text).unwrap();
    let again = run(binary()
        .args(["serve", "--print-config", "--config"])
        .arg(&file));
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout), text);
}

#[cfg(not(feature = "kafka"))]
#[test]
fn kafka_options_on_a_build_without_kafka_say_so() {
    const SAYS: &str = "built without the `kafka` feature";
    let text = error_of(binary().args([
        "kafka-produce",
        "events.ndjson",
        "--brokers",
        "127.0.0.1:9092",
    ]));
    assert!(text.contains(SAYS), "{text}");
    let text = error_of(binary().args([
        "serve",
        "--print-config",
        "--kafka-brokers",
        "127.0.0.1:9092",
    ]));
    assert!(
        text.contains(SAYS) && text.contains("--kafka-brokers"),
        "{text}"
    );
    let text = error_of(
        binary()
            .args(["serve", "--print-config"])
            .env("STORMWATCH_KAFKA_TOPIC", "telemetry"),
    );
    assert!(
        text.contains(SAYS) && text.contains("STORMWATCH_KAFKA_TOPIC"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kafka.toml");
    std::fs::write(&file, "kafka_topic = \"telemetry\"\n").unwrap();
    let text = error_of(
        binary()
            .args(["serve", "--print-config", "--config"])
            .arg(&file),
    );
    assert!(
        text.contains(SAYS) && text.contains("kafka_topic"),
        "{text}"
    );
}

#[test]
fn gen_refuses_a_duration_without_a_unit() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(binary()
        .args(["gen", "--duration", "3", "--out"])
        .arg(dir.path().join("run")));
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("`3` has no unit: write 3s, 3m, 3h or 3d"),
        "{text}"
    );
    assert!(!dir.path().join("run").exists());
}

/// `-q` is the same promise in both commands: nothing but warnings and errors.
#[test]
fn quiet_prints_nothing_in_gen_and_in_replay() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = run(binary()
        .args(["gen", "-q", "--users", "3", "--duration", "10m", "--out"])
        .arg(&out));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        (output.stdout.len(), output.stderr.len()),
        (0, 0),
        "{}",
        stderr(&output)
    );
    let events = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("events"))
        })
        .expect("gen wrote an events file");
    let output = run(binary()
        .args(["replay", "-q", "--report"])
        .arg(dir.path().join("r.json"))
        .arg(&events));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        (output.stdout.len(), output.stderr.len()),
        (0, 0),
        "{}",
        stderr(&output)
    );
    assert!(dir.path().join("r.json").is_file());
}

/// A finished run leaves exactly its three files; an interrupted one leaves its events under a `.partial` name and
/// no truth, so nothing passes for a whole run.
#[test]
fn an_interrupted_gen_leaves_only_a_file_named_partial() {
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let output = run(binary()
        .args(["gen", "-q", "--users", "3", "--duration", "10m", "--out"])
        .arg(&done));
    assert!(output.status.success(), "{}", stderr(&output));
    let mut names: Vec<String> = std::fs::read_dir(&done)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["changes.json", "events.ndjson", "truth.json"]);

    let cut = dir.path().join("cut");
    let mut child = binary()
        .args(["gen", "-q", "--users", "30", "--duration", "30d", "--out"])
        .arg(&cut)
        .spawn()
        .unwrap();
    let partial = cut.join("events.ndjson.partial");
    let started = std::time::Instant::now();
    while !partial.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no partial file appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SIGTERM, not SIGINT: a shell that starts a job in the background without job control (`.ci/run &`) makes
    // its children ignore SIGINT, and then this generator ran its whole 30 days.
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(partial.exists());
    assert!(!cut.join("events.ndjson").exists());
    assert!(!cut.join("truth.json").exists());
}

#[test]
fn evaluate_usage_shows_the_sweep() {
    let output = run(binary().args(["evaluate", "--help"]));
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("stormwatch evaluate --sweep [--seeds N]"),
        "{help}"
    );
    let output = run(binary().arg("evaluate"));
    assert!(
        stderr(&output).contains("evaluate --sweep"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn replay_help_documents_changes_db() {
    let output = run(binary().args(["replay", "--help"]));
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--changes-db <PATH>"), "{help}");
    assert!(
        help.contains("change register of a Stormwatch store"),
        "{help}"
    );
}

/// A file `changes import` cannot use stops the import before the store is even created, with the reason, as the
/// same file stops `replay --changes`.
#[test]
fn changes_import_of_a_missing_or_unusable_file_fails_clearly_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = error_of(
        binary()
            .args(["changes", "import", "/no/such/changes.csv", "--data-dir"])
            .arg(&data),
    );
    assert!(
        text.contains("cannot read change file `/no/such/changes.csv`: No such file or directory")
            && text.contains("nothing was imported"),
        "{text}"
    );
    assert!(!text.contains("valid notices were stored"), "{text}");
    let no_end = dir.path().join("no_end.csv");
    std::fs::write(
        &no_end,
        "id,user,title,category,start\nCHG-1,90-B3-D5-1F-30-01-00-07,fw,network,2026-03-10T09:00:00Z\n",
    )
    .unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/changes.json");
    let text = error_of(
        binary()
            .args(["changes", "import"])
            .arg(&examples)
            .arg(&no_end)
            .arg("--data-dir")
            .arg(&data),
    );
    assert!(
        text.contains("lacks required column(s) `end`") && text.contains("nothing was imported"),
        "{text}"
    );
    assert!(!data.exists(), "the store was created for nothing");
    let replayed = error_of(
        binary()
            .args(["replay", "--changes"])
            .arg(&no_end)
            .arg("--report")
            .arg(dir.path().join("r.json"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/events.ndjson")),
    );
    assert!(
        replayed.contains("lacks required column(s) `end`"),
        "{replayed}"
    );
}
