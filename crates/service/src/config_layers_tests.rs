use super::*;

fn variables(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn refused(given: Given) -> String {
    layer(&given).unwrap_err().to_string()
}

fn refused_variable(name: &str, value: &str) -> String {
    refused(Given {
        variables: variables(&[(name, value)]),
        ..Given::default()
    })
}

fn layered(given: Given) -> ServeConfig {
    layer(&given).unwrap_or_else(|e| panic!("{e}")).config
}

#[test]
fn every_setting_in_the_table_is_a_field_and_every_field_is_in_the_table() {
    let printed = toml::Table::try_from(ServeConfig::default()).unwrap();
    for key in printed.keys() {
        if key == "engine" || key == "coordination" {
            continue;
        }
        assert!(
            SETTINGS.iter().any(|s| s.key == key),
            "`{key}` is printed by --print-config but has no flag or variable: add it to SETTINGS"
        );
    }
    for setting in SETTINGS.iter().filter(|s| s.built()) {
        // Unset by default (an Option) or printed; either way a field of ServeConfig.
        let error = toml::from_str::<ServeConfig>(&format!("{} = []", setting.key))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            !error.contains("unknown field"),
            "`{}` is in SETTINGS but not a field: {error}",
            setting.key
        );
        assert!(!setting.help.is_empty() && !setting.value_name.is_empty());
    }
}

#[test]
fn variables_beat_the_defaults_and_flags_beat_variables() {
    let config = layered(Given {
        variables: variables(&[
            ("STORMWATCH_USER_DIRECTORY", "users.csv"),
            ("STORMWATCH_INGEST_AUTH", "token"),
            ("STORMWATCH_HTTP_MAX_BODY_MIB", "3"),
            ("STORMWATCH_LATENESS", "2"),
            ("STORMWATCH_FOLLOW", "a.ndjson:b.ndjson"),
            ("STORMWATCH_REPLAY_MODE", "true"),
        ]),
        flags: vec![("http_max_body_mib", vec!["4".into()])],
        ..Given::default()
    });
    assert_eq!(config.user_directory, Some(PathBuf::from("users.csv")));
    assert_eq!(config.ingest_auth, crate::IngestAuth::Token);
    assert_eq!(config.http_max_body_mib, 4, "the flag wins");
    assert_eq!(config.lateness_s, 2.0);
    assert_eq!(
        config.follow,
        [PathBuf::from("a.ndjson"), PathBuf::from("b.ndjson")]
    );
    assert!(config.replay_mode);
}

#[test]
fn a_bad_value_is_blamed_on_where_it_came_from() {
    let flag = |key: &'static str, value: &str| {
        refused(Given {
            flags: vec![(key, vec![value.to_owned()])],
            ..Given::default()
        })
    };
    for (text, says) in [
        (
            refused_variable("STORMWATCH_INGEST_AUTH", "sometimes"),
            "STORMWATCH_INGEST_AUTH=\"sometimes\" is not valid",
        ),
        (
            flag("retention_days", "a year"),
            "--retention-days=\"a year\" is not valid: give a whole number",
        ),
        (
            flag("http", "localhost"),
            "--http=\"localhost\" is not valid",
        ),
    ] {
        assert!(text.starts_with(says), "{text}");
    }
}

#[test]
fn engine_settings_as_variables_or_flags_are_refused_naming_the_table() {
    let text = refused_variable("STORMWATCH_FIT_THRESHOLD", "0.6");
    assert!(
        text.contains("STORMWATCH_FIT_THRESHOLD") && text.contains("[engine.correlator]"),
        "{text}"
    );
    let text = refused_variable("STORMWATCH_ENGINE_WARMUP", "1");
    assert!(text.contains("[engine]"), "{text}");
    let text = file_only_flag("--max-concurrent-high-risk").unwrap_or_default();
    assert!(text.contains("[coordination]"), "{text}");
    assert_eq!(file_only_flag("--no-such-thing"), None);
    let text = refused_variable("STORMWATCH_ACCEPT_LOST_JOURNAL", "1");
    assert!(text.contains("--accept-lost-journal"), "{text}");
}

#[test]
fn unknown_variables_are_reported_and_the_tests_own_are_not() {
    let layered = layer(&Given {
        variables: variables(&[
            ("STORMWATCH_DATADIR", "x"),
            ("STORMWATCH_TEST_KAFKA", "127.0.0.1:9092"),
            ("STORMWATCH_OVERLOAD_SECONDS", "60"),
            ("STORMWATCH_KAFKA_DEBUG", "broker"),
            ("STORMWATCH_CONFIG", "serve.toml"),
        ]),
        ..Given::default()
    })
    .unwrap();
    assert_eq!(layered.unknown_variables, ["STORMWATCH_DATADIR"]);
}

#[test]
fn kinds_and_defaults_come_from_the_defaults() {
    assert_eq!(kind("follow"), Kind::List);
    assert_eq!(kind("lateness"), Kind::Number);
    assert_eq!(kind("retention_days"), Kind::Whole);
    assert_eq!(kind("replay_mode"), Kind::Switch);
    assert_eq!(kind("user_directory"), Kind::Text);
    assert_eq!(default_text("http").as_deref(), Some("127.0.0.1:8080"));
    assert_eq!(default_text("user_directory"), None);
    assert_eq!(default_text("follow"), None);
}
