//! The operations kit in `dashboards/`: the structure of every dashboard, rule and example config; every metric
//! it names checked against a running `stormwatch serve`; and the backlog alert end to end through a real
//! Prometheus and Alertmanager (`#[ignore]`d: needs them; `scripts/test-all` runs it).

mod support;

#[path = "support/dashboards.rs"]
mod dashboards;
#[path = "support/prometheus.rs"]
mod prometheus;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use dashboards::{
    exported_names, files, kit, kit_expressions, load_json, load_yaml, metric_names,
    variable_promql,
};
use prometheus::{Server, find_binary, free_address, poll};
use support::{
    FIREWALLED, HEALTHY, Service, config_file, firewall_change, firewall_lines, metric, token,
};

/// Series that Prometheus makes itself rather than scraping: the kit may use these.
const PROMETHEUS_SERIES: &[&str] = &["up", "ALERTS"];

/// Families only an instance fed from Kafka exports; tests/kafka.rs checks these against one (feature `kafka`).
const KAFKA_PREFIX: &str = "stormwatch_kafka_";

/// Variables Grafana defines on every dashboard.
const GRAFANA_BUILTINS: &[&str] = &[
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
    "__data",
    "__field",
    "__series",
    "__value",
    "__from",
    "__to",
];

const PANEL_TYPES: &[&str] = &[
    "stat",
    "timeseries",
    "table",
    "bargauge",
    "state-timeline",
    "gauge",
    "text",
    "row",
];

const SEVERITIES: &[&str] = &["page", "ticket", "info"];

fn rules_path() -> PathBuf {
    kit().join("prometheus/stormwatch.rules.yml")
}

/// Every rule of the rules file, with its group's name.
fn rules() -> Vec<(String, Value)> {
    let document = load_yaml(&rules_path());
    let groups = document["groups"].as_array().expect("`groups` list");
    assert!(!groups.is_empty(), "no rule groups");
    groups
        .iter()
        .flat_map(|group| {
            let name = group["name"].as_str().expect("group name").to_owned();
            group["rules"]
                .as_array()
                .expect("`rules` list")
                .iter()
                .map(move |rule| (name.clone(), rule.clone()))
        })
        .collect()
}

fn recorded_names() -> BTreeSet<String> {
    rules()
        .iter()
        .filter_map(|(_, rule)| rule["record"].as_str().map(str::to_owned))
        .collect()
}

/// Grafana variables a text refers to: `$name`, `${name}`, `${name:format}`, `${__data.fields.x}`.
fn variables_used(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let braced = rest.starts_with('{');
        let name: String = rest
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && (braced || !name.starts_with(|c: char| c.is_ascii_digit())) {
            used.insert(name);
        }
    }
    used
}

fn overlaps(a: &Value, b: &Value) -> bool {
    let span = |p: &Value, at: &str, size: &str| {
        let start = p["gridPos"][at].as_i64().unwrap_or(0);
        (start, start + p["gridPos"][size].as_i64().unwrap_or(0))
    };
    let ((ax0, ax1), (ay0, ay1)) = (span(a, "x", "w"), span(a, "y", "h"));
    let ((bx0, bx1), (by0, by1)) = (span(b, "x", "w"), span(b, "y", "h"));
    ax0 < bx1 && bx0 < ax1 && ay0 < by1 && by0 < ay1
}

#[test]
fn grafana_dashboards_are_provisionable_and_well_formed() {
    let paths = files(&kit().join("grafana/dashboards"), &[".json"]);
    assert!(paths.len() >= 3, "network, per-User and health dashboards");
    let mut uids = BTreeSet::new();
    for path in &paths {
        let at = path.display();
        let dashboard = load_json(path);
        let uid = dashboard["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty() && uid.len() <= 40,
            "{at}: uid of 1 to 40 characters"
        );
        assert!(uids.insert(uid.to_owned()), "{at}: uid {uid} used twice");
        assert!(
            dashboard["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{at}: title"
        );
        assert!(
            dashboard["schemaVersion"].as_i64().is_some_and(|v| v >= 36),
            "{at}: schemaVersion"
        );
        // No numeric `id`: Grafana assigns it, and a provisioned file carrying one clashes between instances.
        assert!(
            dashboard["id"].is_null(),
            "{at}: provisioned dashboards carry no id"
        );

        let variables = dashboard["templating"]["list"]
            .as_array()
            .unwrap_or_else(|| panic!("{at}: templating.list"));
        let defined: BTreeSet<String> = variables
            .iter()
            .map(|v| v["name"].as_str().expect("variable name").to_owned())
            .collect();
        assert_eq!(
            defined.len(),
            variables.len(),
            "{at}: variable names unique"
        );
        let datasource = variables
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{at}: a `datasource` variable"));
        assert_eq!(datasource["type"], "datasource", "{at}");
        assert_eq!(datasource["query"], "prometheus", "{at}");
        let expected_source = json!({"type": "prometheus", "uid": "${datasource}"});
        for variable in variables.iter().filter(|v| v["type"] == "query") {
            let name = &variable["name"];
            assert_eq!(
                variable["datasource"], expected_source,
                "{at}: variable {name}"
            );
            let query = variable["query"]["query"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: variable {name} has a query"));
            assert!(
                variable_promql(query).is_some(),
                "{at}: variable {name}: `{query}` reads no metric"
            );
        }

        let mut used = BTreeSet::new();
        for link in dashboard["links"].as_array().into_iter().flatten() {
            used.extend(variables_used(link["url"].as_str().unwrap_or_default()));
        }
        let panels = dashboard["panels"]
            .as_array()
            .unwrap_or_else(|| panic!("{at}: panels"));
        assert!(!panels.is_empty(), "{at}: no panels");
        let mut ids = BTreeSet::new();
        for (index, panel) in panels.iter().enumerate() {
            let title = panel["title"].as_str().unwrap_or_default();
            let here = format!("{at}: panel `{title}`");
            assert!(!title.is_empty(), "{at}: panel {index} has no title");
            assert!(
                ids.insert(panel["id"].as_i64().expect("panel id")),
                "{here}: id used twice"
            );
            let kind = panel["type"].as_str().unwrap_or_default();
            assert!(PANEL_TYPES.contains(&kind), "{here}: panel type `{kind}`");
            let grid = &panel["gridPos"];
            let (x, w, h) = (grid["x"].as_i64(), grid["w"].as_i64(), grid["h"].as_i64());
            assert!(
                matches!((x, w, h, grid["y"].as_i64()), (Some(x), Some(w), Some(h), Some(y)) if x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24),
                "{here}: gridPos {grid} inside the 24 columns"
            );
            for other in &panels[..index] {
                assert!(
                    !overlaps(panel, other),
                    "{here} overlaps panel `{}`",
                    other["title"]
                );
            }
            if kind == "row" || kind == "text" {
                continue;
            }
            assert_eq!(panel["datasource"], expected_source, "{here}: datasource");
            let targets = panel["targets"]
                .as_array()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| panic!("{here}: no targets"));
            let mut refs = BTreeSet::new();
            for target in targets {
                assert!(
                    refs.insert(target["refId"].as_str().expect("refId")),
                    "{here}: refId used twice"
                );
                assert_eq!(
                    target["datasource"], expected_source,
                    "{here}: target datasource"
                );
                let expr = target["expr"].as_str().unwrap_or_default();
                assert!(
                    !metric_names(expr).is_empty(),
                    "{here}: expr `{expr}` reads no metric"
                );
                used.extend(variables_used(expr));
            }
            for link in panel["fieldConfig"]["defaults"]["links"]
                .as_array()
                .into_iter()
                .flatten()
            {
                used.extend(variables_used(link["url"].as_str().unwrap_or_default()));
            }
        }
        for name in &used {
            assert!(
                defined.contains(name) || GRAFANA_BUILTINS.contains(&name.as_str()),
                "{at}: `${name}` is not a variable of this dashboard"
            );
        }
    }

    let provider = load_yaml(&kit().join("grafana/provisioning/dashboards/stormwatch.yml"));
    assert_eq!(provider["apiVersion"], 1);
    let provider = &provider["providers"][0];
    assert_eq!(provider["type"], "file");
    assert!(provider["options"]["path"].as_str().is_some());
    let sources = load_yaml(&kit().join("grafana/provisioning/datasources/prometheus.yml"));
    assert_eq!(sources["apiVersion"], 1);
    assert_eq!(sources["datasources"][0]["type"], "prometheus");
}

#[test]
fn every_alert_has_a_severity_for_and_annotations_naming_what_and_where() {
    let rules = rules();
    let mut groups = BTreeSet::new();
    for (group, rule) in &rules {
        groups.insert(group.clone());
        let (alert, record) = (rule["alert"].as_str(), rule["record"].as_str());
        let name = alert.or(record).unwrap_or("?");
        assert!(
            alert.is_some() != record.is_some(),
            "{group}/{name}: exactly one of alert and record"
        );
        assert!(
            rule["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
            "{group}/{name}: expr"
        );
        if let Some(record) = record {
            // level:metric:operations, so a recorded series is never mistaken for an exported one.
            assert!(
                record.starts_with("stormwatch:") && record.matches(':').count() == 2,
                "{record}: recording rule names follow level:metric:operations"
            );
            continue;
        }
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            SEVERITIES.contains(&severity),
            "{name}: severity `{severity}`"
        );
        assert!(
            rule["for"].as_str().is_some(),
            "{name}: `for`, so one odd scrape never notifies"
        );
        let annotations = &rule["annotations"];
        for key in ["summary", "description"] {
            assert!(
                annotations[key].as_str().is_some_and(|s| s.len() > 10),
                "{name}: annotation {key}"
            );
        }
        let links: Vec<&str> = annotations
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.ends_with("_url"))
            .filter_map(|(_, value)| value.as_str())
            .collect();
        assert!(
            links
                .iter()
                .any(|l| l.starts_with("{{ $labels.stormwatch_url }}/")),
            "{name}: a link (annotation `*_url`) into Stormwatch"
        );
        let expr = rule["expr"].as_str().unwrap_or_default();
        if expr.contains("stormwatch_open_incidents") || expr.contains("stormwatch_user_") {
            for key in ["summary", "description"] {
                assert!(
                    annotations[key]
                        .as_str()
                        .is_some_and(|s| s.contains("$labels.user")),
                    "{name}: {key} names the User"
                );
            }
        }
    }
    assert!(
        groups.len() >= 3,
        "recording, incident and health groups: {groups:?}"
    );
}

/// An alert test's expected alert matches a rule when it names the rule's alert and carries its labels (three
/// rules share `StormwatchBlind`, told apart by `cause`).
fn expects_rule(alert: &Value, rule: &Value) -> bool {
    rule["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(key, value)| &alert["exp_labels"][key] == value)
}

#[test]
fn every_rule_has_a_promtool_test_that_fires_it_and_one_that_must_not() {
    let tests: Vec<(PathBuf, Value)> = files(&kit().join("prometheus/tests"), &[".test.yml"])
        .into_iter()
        .map(|path| {
            let document = load_yaml(&path);
            (path, document)
        })
        .collect();
    assert!(!tests.is_empty(), "no promtool test files");
    let mut cases = Vec::new();
    let mut exprs = Vec::new();
    for (path, document) in &tests {
        let rule_files = document["rule_files"].as_array().expect("rule_files");
        for file in rule_files {
            let file = path.parent().unwrap().join(file.as_str().expect("path"));
            assert_eq!(
                file.canonicalize().ok(),
                rules_path().canonicalize().ok(),
                "{}: tests the shipped rules",
                path.display()
            );
        }
        for test in document["tests"].as_array().expect("tests") {
            cases.extend(
                test["alert_rule_test"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            exprs.extend(
                test["promql_expr_test"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| t["expr"].as_str().unwrap_or_default().to_owned()),
            );
        }
    }
    let mut missing = Vec::new();
    for (_, rule) in rules() {
        if let Some(record) = rule["record"].as_str() {
            if !exprs.iter().any(|e| metric_names(e).contains(record)) {
                missing.push(format!("{record}: no promql_expr_test reads it"));
            }
            continue;
        }
        let alert = rule["alert"].as_str().unwrap_or_default();
        let named: Vec<&Value> = cases.iter().filter(|c| c["alertname"] == alert).collect();
        let fires = named.iter().any(|c| {
            c["exp_alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| expects_rule(a, &rule))
        });
        let silent = named
            .iter()
            .any(|c| c["exp_alerts"].as_array().is_some_and(Vec::is_empty));
        if !fires {
            missing.push(format!(
                "{alert} {}: no test where it fires",
                rule["labels"]
            ));
        }
        if !silent {
            missing.push(format!(
                "{alert}: no test where it must stay silent (exp_alerts: [])"
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn example_configs_scrape_stormwatch_with_the_rules_and_route_by_user_and_kind() {
    let config_path = kit().join("prometheus/prometheus.yml");
    let config = load_yaml(&config_path);
    let rule_files: Vec<PathBuf> = config["rule_files"]
        .as_array()
        .expect("rule_files")
        .iter()
        .map(|f| config_path.parent().unwrap().join(f.as_str().unwrap()))
        .collect();
    assert!(
        rule_files
            .iter()
            .any(|f| f.canonicalize().ok() == rules_path().canonicalize().ok()),
        "prometheus.yml loads the rules"
    );
    let job = config["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .find(|j| j["job_name"] == "stormwatch")
        .expect("a `stormwatch` job, which the scrape-failing alert selects");
    assert!(
        job["static_configs"][0]["labels"]["stormwatch_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http")),
        "the `stormwatch_url` label the alert links are built on"
    );

    let alertmanager = load_yaml(&kit().join("alertmanager/alertmanager.yml"));
    let group_by: Vec<&str> = alertmanager["route"]["group_by"]
        .as_array()
        .expect("route.group_by")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(group_by, ["user", "kind"]);
    let network_wide = alertmanager["inhibit_rules"]
        .as_array()
        .expect("inhibit_rules")
        .iter()
        .find(|rule| {
            let source: Vec<&str> = rule["source_matchers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            source.contains(&r#"user="*""#) && source.contains(&r#"verdict="dcc_change""#)
        })
        .expect("an inhibit rule sourced by a network-wide DCC-change incident");
    assert!(
        network_wide["target_matchers"]
            .as_array()
            .is_some_and(|t| t.iter().any(|m| m == r#"user!="*""#)),
        "it mutes User-level alerts, not itself"
    );
    assert!(
        network_wide["target_matchers"]
            .as_array()
            .is_some_and(|t| t.iter().any(|m| m == r#"kind="backlog""#)),
        "it mutes only User-level backlog alerts: paused deliveries do not explain a User's storm"
    );
    let receivers: BTreeSet<&str> = alertmanager["receivers"]
        .as_array()
        .expect("receivers")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    let mut routes = vec![&alertmanager["route"]];
    while let Some(route) = routes.pop() {
        if let Some(receiver) = route["receiver"].as_str() {
            assert!(
                receivers.contains(receiver),
                "route to unknown receiver {receiver}"
            );
        }
        routes.extend(route["routes"].as_array().into_iter().flatten());
    }
}

/// A stat panel counting incidents shows 0 before the first one (not "No data"), and a Kafka panel on an
/// instance without Kafka says why it is empty.
#[test]
fn panels_show_zero_before_the_first_incident_and_say_why_kafka_is_empty() {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let (mut counted, mut kafka) = (0, 0);
    for path in files(&kit().join("grafana/dashboards"), &[".json"]) {
        let dashboard = load_json(&path);
        let mut panels = Vec::new();
        walk(&dashboard["panels"], &mut panels);
        for panel in panels {
            let title = format!("{}: {}", path.display(), panel["title"]);
            let exprs: Vec<&str> = panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str())
                .collect();
            if panel["type"] == "stat" && exprs.iter().any(|e| e.contains("incidents")) {
                counted += 1;
                for expr in &exprs {
                    assert!(expr.ends_with(" or vector(0)"), "{title}: {expr}");
                }
            }
            if exprs.iter().any(|e| e.contains("stormwatch_kafka_")) {
                kafka += 1;
                let no_value = panel["fieldConfig"]["defaults"]["noValue"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    no_value.contains("No Kafka source"),
                    "{title}: noValue {no_value:?}"
                );
            }
        }
    }
    assert!(
        counted >= 2,
        "the network's and the User's open-incident stats"
    );
    assert!(kafka >= 4, "the health dashboard's Kafka panels");
}

/// The rules file's header points at its unit tests; they must be where it says.
#[test]
fn the_rules_file_names_its_tests_where_they_are() {
    let rules = std::fs::read_to_string(rules_path()).unwrap();
    let header: String = rules.lines().take_while(|l| l.starts_with('#')).collect();
    assert!(header.contains("tests/*.test.yml beside"), "{header}");
    let tests = files(&kit().join("prometheus/tests"), &[".test.yml"]);
    assert!(
        !tests.is_empty(),
        "no dashboards/prometheus/tests/*.test.yml"
    );
}

#[test]
fn metric_names_are_found_wherever_promql_puts_them_and_nowhere_else() {
    let names = |expr: &str| -> Vec<String> { metric_names(expr).into_iter().collect() };
    assert_eq!(
        names(
            r#"sum by (job, instance) (rate(a_total{source="tcp", x=~"b|c"}[5m] offset 1m)) / on (job) group_left (version) b_info"#
        ),
        ["a_total", "b_info"]
    );
    assert_eq!(
        names(
            r#"topk(10, rec:x:max{instance=~"$instance"}) > 0.05 and bool 1e3 unless count(c) by (user)"#
        ),
        ["c", "rec:x:max"]
    );
    assert_eq!(
        names(
            r#"m{user=~"$user|\\*", q="}\"["} - ignoring(a) n[${__range}:1m] or sum without (flow) (o)"#
        ),
        ["m", "n", "o"]
    );
    assert_eq!(
        names("time() - max(w{a='x'})  # a comment, not_a_metric\n+ v"),
        ["v", "w"]
    );
    assert_eq!(
        variable_promql("label_values(d{i=~\"$i\"}, user)").as_deref(),
        Some("d{i=~\"$i\"}")
    );
    assert_eq!(variable_promql("label_values(user)"), None);
    let page = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\n# TYPE g gauge\ng{a=\"b\"} 2\nplain 3\n";
    assert_eq!(
        exported_names(page).into_iter().collect::<Vec<_>>(),
        ["g", "h", "h_bucket", "h_count", "h_sum", "plain"]
    );
}

#[test]
fn every_metric_the_kit_names_is_exported_by_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    // A User directory, so the dashboards' name join (`stormwatch_user_info`) has a sample to join on.
    let directory = dir.path().join("users.csv");
    std::fs::write(
        &directory,
        format!("{FIREWALLED},Acme Energy,supplier\n{HEALTHY}\n"),
    )
    .unwrap();
    let config = config_file(
        dir.path(),
        &format!("user_directory = \"{}\"\n", directory.display()),
    );
    let args: Vec<&str> = config.iter().map(String::as_str).collect();
    let service = Service::start(dir.path(), &args);
    // The firewall scenario opens a backlog incident, so every family appears, incidents and malformed included.
    let mut lines = firewall_lines(0..500, (300, 2_000));
    lines.extend(b"not telemetry\n");
    service.send_tcp(&lines);
    let page = poll(
        "a /metrics page with the open backlog and every family",
        60,
        || {
            let (status, page) = service.get("/metrics", None);
            let open = page.lines().any(|l| {
                l.starts_with("stormwatch_open_incidents{")
                    && l.contains(FIREWALLED)
                    && l.ends_with(" 1")
            });
            (status == 200
                && open
                && page.contains("\nstormwatch_incidents_total{")
                && page.contains("\nstormwatch_ingest_malformed_total{"))
            .then_some(page)
        },
        || service.get("/metrics", None).1,
    );
    assert_eq!(
        metric(
            &page,
            &format!(
                "stormwatch_user_info{{user=\"{FIREWALLED}\",name=\"Acme Energy\",role=\"supplier\"}}"
            )
        ),
        Some(1.0),
        "the directory's info metric"
    );
    let exported = exported_names(&page);
    let recorded = recorded_names();
    let mut unknown: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let expressions = kit_expressions();
    assert!(
        expressions.len() > 30,
        "rules, tests and panels all read: {}",
        expressions.len()
    );
    for (place, expr) in &expressions {
        for name in metric_names(expr) {
            if !exported.contains(&name)
                && !name.starts_with(KAFKA_PREFIX)
                && !recorded.contains(&name)
                && !PROMETHEUS_SERIES.contains(&name.as_str())
            {
                unknown.entry(name).or_default().insert(place.clone());
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics named in dashboards/ that the service does not export:\n{}\nexported: {exported:?}",
        unknown
            .iter()
            .map(|(name, places)| format!(
                "  {name}: {}",
                places.iter().cloned().collect::<Vec<_>>().join("; ")
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

struct Tools {
    prometheus: PathBuf,
    alertmanager: PathBuf,
    promtool: PathBuf,
}

/// The real servers. The test that calls this is `#[ignore]`d, so it runs only when asked (`--include-ignored`, as
/// `scripts/test-all` does); asked and without them, it fails: a skipped test would report a pass it did not run.
fn tools() -> Tools {
    let found = (
        find_binary(&["prometheus"]),
        find_binary(&["prometheus-alertmanager", "alertmanager"]),
        find_binary(&["promtool"]),
    );
    let (Some(prometheus), Some(alertmanager), Some(promtool)) = found else {
        panic!(
            "the end-to-end test needs prometheus, prometheus-alertmanager (or alertmanager) and promtool on \
             PATH; on Debian: apt-get install prometheus prometheus-alertmanager (scripts/test-all does)"
        );
    };
    Tools {
        prometheus,
        alertmanager,
        promtool,
    }
}

/// The shipped prometheus.yml pointed at this test's servers, scraping and evaluating every second.
fn test_prometheus_config(stormwatch: &str, alertmanager: &str) -> String {
    let mut config = std::fs::read_to_string(kit().join("prometheus/prometheus.yml")).unwrap();
    for (from, to) in [
        ("scrape_interval: 15s", "scrape_interval: 1s"),
        ("evaluation_interval: 15s", "evaluation_interval: 1s"),
        ("127.0.0.1:8080", stormwatch),
        ("127.0.0.1:9093", alertmanager),
    ] {
        assert!(
            config.contains(from),
            "prometheus.yml no longer has `{from}`: update this test"
        );
        config = config.replace(from, to);
    }
    config
}

/// The shipped rules with every `for:` cut to a second, so the test waits seconds, not minutes.
fn test_rules() -> String {
    let rules = std::fs::read_to_string(rules_path()).unwrap();
    let mut shortened = 0;
    let lines: Vec<String> = rules
        .lines()
        .map(|line| {
            let body = line.trim_start();
            if body.starts_with("for: ") {
                shortened += 1;
                format!("{}for: 1s", &line[..line.len() - body.len()])
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(shortened > 0, "no `for:` to shorten");
    lines.join("\n") + "\n"
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Alerts Prometheus holds (pending or firing).
fn prometheus_alerts(prometheus: &Server) -> Vec<Value> {
    prometheus.get_json("/api/v1/alerts")["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Alerts Alertmanager holds that are not resolved (active, suppressed or unprocessed).
fn alertmanager_alerts(alertmanager: &Server) -> Vec<Value> {
    alertmanager
        .get_json("/api/v2/alerts")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn find<'a>(alerts: &'a [Value], alertname: &str, user: &str) -> Option<&'a Value> {
    alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == alertname && a["labels"]["user"] == user)
}

#[test]
#[ignore = "needs prometheus, alertmanager, promtool (scripts/test-all)"]
fn a_backlog_alert_fires_and_resolves_through_real_prometheus_and_alertmanager() {
    let tools = tools();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);

    // Alertmanager with the shipped configuration, clustering off: one loopback-only instance.
    let am_address = free_address();
    let mut command = Command::new(&tools.alertmanager);
    command
        .arg(format!(
            "--config.file={}",
            kit().join("alertmanager/alertmanager.yml").display()
        ))
        .arg(format!("--storage.path={}", path("alertmanager").display()))
        .arg(format!("--web.listen-address={am_address}"))
        .arg("--cluster.listen-address=");
    let alertmanager = Server::start(
        "alertmanager",
        command,
        am_address,
        &path("alertmanager.log"),
    );

    // Stormwatch pushing its own alerts there. The change that explains the backlog is registered only after
    // the incident opened (issue 13: the alert kept its first verdict and suspect).
    const PUBLIC: &str = "http://stormwatch.test";
    std::fs::create_dir(path("stormwatch")).unwrap();
    let ops = token(&path("stormwatch"), "ops", "ops", None);
    // Named Users, so every dashboard query that joins names on (`stormwatch_user_info`) has data.
    std::fs::write(
        path("users.csv"),
        format!("{FIREWALLED},Acme Energy,supplier\n{HEALTHY},Northern Grid,network_operator\n"),
    )
    .unwrap();
    let config = config_file(
        &path("stormwatch"),
        &format!("user_directory = \"{}\"\n", path("users.csv").display()),
    );
    let service = Service::start(
        &path("stormwatch"),
        &[
            &config[0],
            &config[1],
            "--alertmanager",
            &format!("http://{am_address}"),
            "--public-url",
            PUBLIC,
        ],
    );

    // Prometheus with the shipped prometheus.yml and rules, scraping and evaluating every second.
    let prometheus_dir = path("prometheus");
    std::fs::create_dir(&prometheus_dir).unwrap();
    let config = prometheus_dir.join("prometheus.yml");
    std::fs::write(
        &config,
        test_prometheus_config(&service.http.to_string(), &am_address.to_string()),
    )
    .unwrap();
    std::fs::write(prometheus_dir.join("stormwatch.rules.yml"), test_rules()).unwrap();
    let check = Command::new(&tools.promtool)
        .args(["check", "config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check config on the test copy: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let prom_address = free_address();
    let mut command = Command::new(&tools.prometheus);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", path("tsdb").display()))
        .arg(format!("--web.listen-address={prom_address}"));
    let prometheus = Server::start("prometheus", command, prom_address, &path("prometheus.log"));

    // The firewall scenario: the User's endpoint refuses everything from second 300.
    service.send_tcp(&firewall_lines(0..500, (300, 700)));

    let describe = || format!("{:#}", Value::Array(alertmanager_alerts(&alertmanager)));
    let before = poll(
        "Stormwatch's own alert in Alertmanager, before any change is registered",
        120,
        || {
            find(
                &alertmanager_alerts(&alertmanager),
                "StormwatchIncident",
                FIREWALLED,
            )
            .cloned()
        },
        describe,
    );
    eprintln!("annotations before the change: {:#}", before["annotations"]);
    assert_eq!(
        before["annotations"]["verdict"],
        "unregistered_change_suspected"
    );
    assert!(
        before["annotations"]["top_suspect"]
            .as_str()
            .is_some_and(|t| t.starts_with("none")),
        "{before:#}"
    );
    let (status, body) = service.post(
        "/api/v1/changes",
        Some(&ops),
        firewall_change("CHG-FW", 280, 3_600).as_bytes(),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 201, "{body}");
    let after = poll(
        "the same alert's annotations naming the late change",
        60,
        || {
            let alerts = alertmanager_alerts(&alertmanager);
            let direct: Vec<&Value> = alerts
                .iter()
                .filter(|a| {
                    a["labels"]["alertname"] == "StormwatchIncident"
                        && a["labels"]["user"] == FIREWALLED
                })
                .collect();
            assert_eq!(
                direct.len(),
                1,
                "one alert for the incident, whatever its verdict: {alerts:#?}"
            );
            (direct[0]["annotations"]["verdict"] == "registered_change").then(|| direct[0].clone())
        },
        describe,
    );
    eprintln!("annotations after the change: {:#}", after["annotations"]);
    assert_eq!(after["fingerprint"], before["fingerprint"], "same identity");
    assert_eq!(after["labels"], before["labels"]);

    let fired = poll(
        "StormwatchBacklog firing in Prometheus for the firewalled User, with the new verdict",
        120,
        || {
            find(
                &prometheus_alerts(&prometheus),
                "StormwatchBacklog",
                FIREWALLED,
            )
            .filter(|a| a["state"] == "firing" && a["labels"]["verdict"] == "registered_change")
            .cloned()
        },
        || format!("{:#}", Value::Array(prometheus_alerts(&prometheus))),
    );
    assert_eq!(fired["labels"]["kind"], "backlog");
    assert_eq!(fired["labels"]["verdict"], "registered_change");
    assert_eq!(fired["labels"]["severity"], "page");
    assert_eq!(
        fired["annotations"]["incident_url"],
        format!("http://{}/#/user/{FIREWALLED}", service.http)
    );
    let alerts = prometheus_alerts(&prometheus);
    // (Health alerts may be pending: the scenario is one burst of old event time, then silence.)
    assert!(
        !alerts.iter().any(|a| a["labels"]["user"] == HEALTHY),
        "only the firewalled User is in trouble: {alerts:#?}"
    );

    // Every rule evaluates without error against the real series (once each group has run).
    let rule_states = || -> Vec<Value> {
        prometheus.get_json("/api/v1/rules")["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let states = poll(
        "every rule evaluated",
        30,
        || {
            let states = rule_states();
            states
                .iter()
                .all(|r| r["health"] != "unknown")
                .then_some(states)
        },
        || format!("{:#}", Value::Array(rule_states())),
    );
    let broken: Vec<String> = states
        .iter()
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
        .collect();
    assert!(broken.is_empty(), "rules failing in Prometheus: {broken:?}");

    // Every dashboard panel's query runs and returns series, as Grafana would ask for them. Recorded series
    // and rates need a few evaluations after Prometheus starts, hence the wait. This service reads no Kafka,
    // so the Kafka panels have no data here (tests/kafka.rs checks their metrics on instances that do).
    let queries: Vec<(String, String)> = kit_expressions()
        .into_iter()
        .filter(|(place, _)| place.starts_with("grafana"))
        .filter(|(_, expr)| {
            !metric_names(expr)
                .iter()
                .any(|n| n.starts_with(KAFKA_PREFIX))
        })
        .map(|(place, expr)| {
            let query = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$user", FIREWALLED);
            (place, query)
        })
        .collect();
    let without_data = || -> Vec<String> {
        queries
            .iter()
            .filter_map(|(place, query)| {
                let answer =
                    prometheus.get_json(&format!("/api/v1/query?query={}", url_encode(query)));
                let empty = answer["data"]["result"]
                    .as_array()
                    .is_none_or(Vec::is_empty);
                (answer["status"] != "success" || empty)
                    .then(|| format!("{place}: `{query}` -> {answer}"))
            })
            .collect()
    };
    poll(
        "data for every dashboard query",
        60,
        || without_data().is_empty().then_some(()),
        || without_data().join("\n"),
    );

    // Alertmanager: Stormwatch's own alert with the top suspect, and Prometheus's copy muted by it.
    // Prometheus's copies (one per verdict label it has had) are all muted by the direct alert.
    let (direct, copy) = poll(
        "both alerts in Alertmanager, Prometheus's copy muted by the direct one",
        60,
        || {
            let alerts = alertmanager_alerts(&alertmanager);
            let direct = find(&alerts, "StormwatchIncident", FIREWALLED)?.clone();
            let copies: Vec<&Value> = alerts
                .iter()
                .filter(|a| {
                    a["labels"]["alertname"] == "StormwatchBacklog"
                        && a["labels"]["user"] == FIREWALLED
                })
                .collect();
            let copy = copies
                .iter()
                .find(|a| a["labels"]["verdict"] == "registered_change")?;
            copies
                .iter()
                .all(|a| a["status"]["state"] == "suppressed")
                .then(|| (direct, (*copy).clone()))
        },
        || format!("{:#}", Value::Array(alertmanager_alerts(&alertmanager))),
    );
    assert_eq!(direct["labels"]["kind"], "backlog");
    assert_eq!(direct["status"]["state"], "active", "{direct:#}");
    let top = direct["annotations"]["top_suspect"]
        .as_str()
        .unwrap_or_default();
    assert!(
        top.starts_with("CHG-FW \"Firewall rule migration\" (score") && top.contains("same User"),
        "top suspect: {direct:#}"
    );
    assert!(
        direct["annotations"]["incident_url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{PUBLIC}/#/incident/INC-"))),
        "a console page a person can open: {direct:#}"
    );
    assert_eq!(
        copy["status"]["inhibitedBy"][0], direct["fingerprint"],
        "{copy:#}"
    );
    // The party's name from the User directory: in Stormwatch's own alert, and joined in by the rule.
    assert_eq!(
        direct["annotations"]["user_name"], "Acme Energy (supplier)",
        "{direct:#}"
    );
    assert_eq!(
        copy["annotations"]["user_name"], "Acme Energy (supplier)",
        "{copy:#}"
    );

    // A network-wide backlog explained by a DCC change mutes the User-level alerts while it is open.
    let mut network = json!([{
        "labels": {
            "alertname": "StormwatchDccCause", "incident": "INC-TEST-NETWORK", "user": "*",
            "kind": "backlog", "severity": "info",
        },
        "annotations": {"summary": "backlog at many Users at once"},
        "startsAt": rfc3339_now(),
    }]);
    alertmanager.post_json("/api/v2/alerts", &network);
    let state_of_direct = || {
        find(
            &alertmanager_alerts(&alertmanager),
            "StormwatchIncident",
            FIREWALLED,
        )
        .map(|a| a["status"]["state"].clone())
    };
    poll(
        "the User's alert muted by the network-wide one",
        30,
        || (state_of_direct()? == "suppressed").then_some(()),
        describe,
    );
    network[0]["endsAt"] = rfc3339_now().into();
    alertmanager.post_json("/api/v2/alerts", &network);
    poll(
        "the User's alert active again once the network-wide one resolved",
        30,
        || (state_of_direct()? == "active").then_some(()),
        describe,
    );

    // The endpoint comes back at second 700 and the queue drains: the alert resolves everywhere.
    service.send_tcp(&firewall_lines(500..2_400, (300, 700)));
    poll(
        "StormwatchBacklog gone from Prometheus",
        120,
        || {
            find(
                &prometheus_alerts(&prometheus),
                "StormwatchBacklog",
                FIREWALLED,
            )
            .is_none()
            .then_some(())
        },
        || format!("{:#}", Value::Array(prometheus_alerts(&prometheus))),
    );
    poll(
        "no alert about the firewalled User left in Alertmanager",
        60,
        || {
            let alerts = alertmanager_alerts(&alertmanager);
            (!alerts.iter().any(|a| a["labels"]["user"] == FIREWALLED)).then_some(())
        },
        describe,
    );
    let incidents = service.json("/api/v1/incidents?open=true", &ops);
    assert_eq!(incidents.as_array().map(Vec::len), Some(0), "{incidents:#}");
    drop(prometheus);
    drop(service);
    drop(alertmanager);
}
