//! The documentation against the binary (issue 23: `--help` cited a file that does not exist and left scenarios
//! out, the README and docs/api.md quoted answers and flags the binary does not have). Every `stormwatch` command
//! and flag quoted in README.md, docs/ and the examples' and fixtures' READMEs is one the binary takes; every
//! script, test and bench named there exists; every route named there is routed by a live service; the answers
//! quoted for the routes below have exactly the fields the service sends; the numbers the READMEs quote for
//! detection are the binary's settings; every file `--help` names exists and `gen --help` names every scenario.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use support::{FIREWALLED, Service, binary, firewall_lines, token};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, every page of docs/, and the READMEs of examples/ and fixtures/: each by its path in the repository,
/// with its text.
fn documents() -> Vec<(String, String)> {
    let mut paths = vec![root().join("README.md"), root().join("examples/README.md")];
    for dir in ["docs", "fixtures", "fixtures/servicenow"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        found.sort();
        paths.extend(found);
    }
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path
                .strip_prefix(root())
                .unwrap_or(&path)
                .display()
                .to_string();
            (name, text)
        })
        .collect()
}

/// The lines of fenced blocks (continuation lines joined, `# comments` cut) and every inline code span.
fn quoted(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            let line = line.split(" # ").next().unwrap_or(line).trim_end();
            match line.strip_suffix('\\') {
                Some(head) => pending.push_str(head),
                None => {
                    pending.push_str(line);
                    out.push(std::mem::take(&mut pending).trim().to_owned());
                }
            }
            continue;
        }
        out.extend(
            line.split('`')
                .skip(1)
                .step_by(2)
                .map(|span| span.trim().to_owned()),
        );
    }
    out
}

/// Every subcommand path of the binary (`["changes", "add"]`, ...) with its `--help` text.
fn subcommands() -> BTreeMap<Vec<String>, String> {
    fn help(path: &[String]) -> String {
        let output = binary().args(path).arg("--help").output().unwrap();
        assert!(output.status.success(), "{path:?} --help");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
    fn walk(path: Vec<String>, found: &mut BTreeMap<Vec<String>, String>) {
        let text = help(&path);
        let names: Vec<String> = text
            .split("\nCommands:\n")
            .nth(1)
            .map(|section| {
                section
                    .lines()
                    .take_while(|l| l.starts_with("  "))
                    .filter_map(|l| l.split_whitespace().next())
                    .filter(|name| *name != "help")
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        found.insert(path.clone(), text);
        for name in names {
            let mut child = path.clone();
            child.push(name);
            walk(child, found);
        }
    }
    let mut found = BTreeMap::new();
    walk(Vec::new(), &mut found);
    found
}

/// A quoted `stormwatch ...` command (or `cargo run [--release] -- ...`): its words after the binary.
fn stormwatch_words(line: &str) -> Option<Vec<String>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let start = match *words.first()? {
        "stormwatch" => 1,
        "cargo" if words.get(1) == Some(&"run") => words.iter().position(|w| *w == "--")? + 1,
        _ => return None,
    };
    Some(words[start..].iter().map(|w| (*w).to_owned()).collect())
}

/// The flags a help text lists.
fn flags_of(help: &str) -> BTreeSet<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches(['.', ')', ':', ';']).to_owned())
        .collect()
}

#[test]
fn every_command_and_flag_the_docs_quote_is_one_the_binary_takes() {
    let commands = subcommands();
    let top: BTreeSet<String> = commands
        .keys()
        .filter(|p| p.len() == 1)
        .map(|p| p[0].clone())
        .collect();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (name, text) in documents() {
        for quote in quoted(&text) {
            // `stormwatch ...` anywhere, and spans such as `serve --print-config` that begin with a subcommand.
            let words = stormwatch_words(&quote).or_else(|| {
                let words: Vec<String> = quote.split_whitespace().map(str::to_owned).collect();
                (words.len() >= 2 && top.contains(&words[0])).then_some(words)
            });
            let Some(words) = words else { continue };
            // Kafka commands and flags exist only in a `--features kafka` build (scripts/test-all runs one).
            if !cfg!(feature = "kafka") && words.iter().any(|w| w.contains("kafka")) {
                continue;
            }
            let mut depth = 0;
            while depth < words.len() && commands.contains_key(&words[..=depth]) {
                depth += 1;
            }
            if depth == 0 {
                // A span like `stormwatch` followed by prose is not a command line; `stormwatch X` is.
                if quote.starts_with("stormwatch ")
                    && words.first().is_some_and(|w| !w.starts_with('-'))
                {
                    wrong.push(format!("{name}: `{quote}`: no subcommand `{}`", words[0]));
                }
                continue;
            }
            let help = &commands[&words[..depth].to_vec()];
            let known = flags_of(help);
            for word in &words[depth..] {
                // A synopsis writes optional flags as `[--changes FILE]...`.
                let Some(flag) = word.trim_start_matches('[').split('=').next().filter(|f| {
                    f.starts_with("--")
                        && f.len() > 2
                        && f[2..].starts_with(|c: char| c.is_ascii_alphabetic())
                }) else {
                    continue;
                };
                let flag = flag.trim_end_matches(['.', ')', ':', ';', ',', ']']);
                checked += 1;
                if !known.contains(flag) && flag != "--help" && flag != "--version" {
                    wrong.push(format!(
                        "{name}: `{quote}`: `stormwatch {}` has no {flag}",
                        words[..depth].join(" ")
                    ));
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} flags found in the docs");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_script_test_and_bench_the_docs_quote_exists() {
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (name, text) in documents() {
        for quote in quoted(&text) {
            let words: Vec<&str> = quote.split_whitespace().collect();
            for (index, word) in words.iter().enumerate() {
                let file = word.trim_end_matches(['.', ',', ')', ':', ';']);
                let runnable = [
                    "benches/",
                    "scripts/",
                    "dashboards/check",
                    "fixtures/regenerate.sh",
                    ".ci/",
                ]
                .iter()
                .any(|prefix| file.starts_with(prefix));
                if runnable && index == 0 {
                    checked += 1;
                    if !root().join(file).exists() {
                        wrong.push(format!("{name}: `{quote}`: no {file}"));
                    }
                }
                let target = match (index.checked_sub(1).map(|i| words[i]), words.first()) {
                    (Some("--test"), Some(&"cargo")) => Some(format!("tests/{file}.rs")),
                    (Some("--bench"), Some(&"cargo")) => Some(format!("benches/{file}.rs")),
                    _ => None,
                };
                if let Some(target) = target {
                    checked += 1;
                    if !root().join(&target).is_file() {
                        wrong.push(format!("{name}: `{quote}`: no {target}"));
                    }
                }
            }
        }
    }
    assert!(
        checked > 10,
        "only {checked} scripts, tests and benches found in the docs"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every `METHOD /path` the docs name, and the bare `/metrics`, `/healthz`, `/readyz`.
fn routes_quoted() -> BTreeMap<(String, String), String> {
    const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
    let mut routes = BTreeMap::new();
    for (name, text) in documents() {
        for span in quoted(&text) {
            let words: Vec<&str> = span.split_whitespace().collect();
            for pair in words.windows(2) {
                let methods: Vec<&str> = pair[0].split('/').collect();
                if !methods.iter().all(|m| METHODS.contains(m)) || !pair[1].starts_with('/') {
                    continue;
                }
                let route = pair[1].split('?').next().unwrap_or(pair[1]);
                let route = route.trim_end_matches(['`', ',', '.', ':', ')']);
                // Stormwatch's own routes; other systems' APIs (ServiceNow's) are quoted too.
                if !route.starts_with("/api/v1/") {
                    continue;
                }
                for method in methods {
                    routes.insert((method.to_owned(), route.to_owned()), name.clone());
                }
            }
            if ["/metrics", "/healthz", "/readyz"].contains(&span.as_str()) {
                routes.insert(("GET".into(), span.clone()), name.clone());
            }
        }
    }
    routes
}

/// A value for each `{parameter}` of a route, so the route is reached (the thing named need not exist).
fn filled(route: &str) -> String {
    route
        .split('/')
        .map(|part| match part {
            "{id}" => "INC-999999",
            "{owner}" => "DCC",
            "{user}" => FIREWALLED,
            "{change}" => "CHG-NOPE",
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn send(service: &Service, token: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let json = [("Content-Type", "application/json")];
    let headers: &[(&str, &str)] = if method == "POST" || method == "PUT" {
        &json
    } else {
        &[]
    };
    support::request(
        service.http,
        method,
        path,
        Some(token),
        headers,
        body.as_bytes(),
    )
}

#[test]
fn every_route_the_docs_name_is_routed_by_the_service() {
    let routes = routes_quoted();
    assert!(routes.len() >= 25, "{routes:?}");
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    // A route that does not exist answers 404 with nothing in the body; one that exists answers with words.
    let (status, body) = send(&service, &ops, "GET", "/api/v1/no-such-route", "");
    assert_eq!((status, body.as_str()), (404, ""), "the router's own 404");
    let mut wrong = Vec::new();
    for ((method, route), named_in) in &routes {
        let body = if route == "/api/v1/events" { "" } else { "{}" };
        let (status, answer) = send(&service, &ops, method, &filled(route), body);
        if status == 405 || (status == 404 && answer.is_empty()) {
            wrong.push(format!("{named_in}: {method} {route} answers {status}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The top-level field names of the first JSON object in `text` (`"name"` before a `:` or a `,` or `}` at depth 1).
fn keys_of(text: &str) -> BTreeSet<String> {
    let Some(start) = text.find('{') else {
        return BTreeSet::new();
    };
    let mut keys = BTreeSet::new();
    let (mut depth, mut chars) = (0, text[start..].char_indices().peekable());
    // A name follows `{` or `,`; a string after `:` or `|` is a value.
    let mut before = ' ';
    while let Some((at, c)) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            '"' => {
                let rest = &text[start + at + 1..];
                let Some(end) = rest.find('"') else { break };
                if depth == 1 && (before == '{' || before == ',') {
                    keys.insert(rest[..end].to_owned());
                }
                for _ in 0..=end {
                    chars.next();
                }
                before = '"';
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            before = c;
        }
    }
    keys
}

/// The answer docs/api.md quotes under the heading of `route`: the first `200 `{` or `201 `{` in its section.
fn api_md_answer(route: &str) -> String {
    let text = std::fs::read_to_string(root().join("docs/api.md")).unwrap();
    let heading = format!("### `{route}");
    let at = text
        .find(&heading)
        .unwrap_or_else(|| panic!("docs/api.md has no heading {heading}"));
    let section = &text[at + heading.len()..];
    let section = &section[..section.find("\n### ").unwrap_or(section.len())];
    let answer = ["200 `{", "201 `{", "200 `[{"]
        .iter()
        .filter_map(|marker| section.find(marker).map(|i| i + 4))
        .min()
        .unwrap_or_else(|| panic!("no quoted answer under {heading}"));
    section[answer..].to_owned()
}

/// Issue 23: the README's events answer lacked `refused`. The answers the README and docs/api.md quote for these
/// routes have the fields the service sends, no more and no fewer.
#[test]
fn the_answers_the_docs_quote_have_the_fields_the_service_sends() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    let json = |(status, body): (u16, String)| -> serde_json::Value {
        assert!(status < 300, "{status} {body}");
        serde_json::from_str(&body).unwrap()
    };
    let live_keys = |value: &serde_json::Value| -> BTreeSet<String> {
        value
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let readme_answer = |after: &str| -> String {
        let at = readme
            .find(after)
            .unwrap_or_else(|| panic!("README.md no longer has {after}"));
        readme[at + after.len()..].to_owned()
    };
    let events = json(send(
        &service,
        &ops,
        "POST",
        "/api/v1/events",
        &String::from_utf8(firewall_lines(0..3, (1_000, 1_000))).unwrap(),
    ));
    let change = serde_json::json!({
        "id": "CHG-DOC", "user": FIREWALLED, "title": "Firewall rule migration", "category": "network",
        "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T10:00:00Z",
    });
    let registered = json(send(
        &service,
        &ops,
        "POST",
        "/api/v1/changes",
        &change.to_string(),
    ));
    let directory = json(send(
        &service,
        &ops,
        "PUT",
        &format!("/api/v1/directory/{FIREWALLED}"),
        r#"{"name": "Acme Energy", "role": "supplier"}"#,
    ));
    let cases: Vec<(&str, String, serde_json::Value)> = vec![
        (
            "README.md: POST /api/v1/events",
            readme_answer("| `POST /api/v1/events` | NDJSON telemetry; answers "),
            events.clone(),
        ),
        (
            "README.md: PUT /api/v1/directory",
            readme_answer("http://127.0.0.1:8080/api/v1/directory/90-B3-D5-1F-30-01-00-07     # "),
            directory,
        ),
        (
            "docs/api.md: POST /api/v1/events",
            api_md_answer("POST /api/v1/events"),
            events,
        ),
        (
            "docs/api.md: POST /api/v1/changes",
            api_md_answer("POST /api/v1/changes"),
            registered.clone(),
        ),
        (
            "docs/api.md: registered change",
            api_md_answer("POST /api/v1/changes")
                .split_once('[')
                .map(|(_, rest)| rest)
                .unwrap_or_default()
                .to_owned(),
            registered["changes"][0].clone(),
        ),
        (
            "docs/api.md: GET /api/v1/changes/{id}",
            api_md_answer("GET /api/v1/changes/{id}"),
            json(send(&service, &ops, "GET", "/api/v1/changes/CHG-DOC", "")),
        ),
        (
            "docs/api.md: GET /api/v1/schedule",
            api_md_answer("GET /api/v1/schedule?"),
            json(send(&service, &ops, "GET", "/api/v1/schedule", "")),
        ),
        (
            "docs/api.md: GET /api/v1/outcomes",
            api_md_answer("GET /api/v1/outcomes?"),
            json(send(&service, &ops, "GET", "/api/v1/outcomes", "")),
        ),
        (
            "docs/api.md: GET /api/v1/outcomes/{owner}",
            api_md_answer("GET /api/v1/outcomes/{owner}"),
            json(send(
                &service,
                &ops,
                "GET",
                &format!("/api/v1/outcomes/{FIREWALLED}"),
                "",
            )),
        ),
        (
            "docs/api.md: POST /api/v1/changes/{id}/status",
            api_md_answer("POST /api/v1/changes/{id}/status"),
            json(send(
                &service,
                &ops,
                "POST",
                "/api/v1/changes/CHG-DOC/status",
                r#"{"status": "in_progress"}"#,
            )),
        ),
    ];
    let mut wrong = Vec::new();
    for (what, quoted, live) in &cases {
        let (documented, sent) = (keys_of(quoted), live_keys(live));
        if documented.is_empty() || documented != sent {
            wrong.push(format!(
                "{what}: the docs quote {documented:?}, the service sends {sent:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // docs/api.md says a rejected body is answered in JSON, as every other error.
    let (status, body) = send(&service, &ops, "POST", "/api/v1/changes", "{x");
    assert_eq!(status, 400, "{body}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| v["error"].is_string()),
        "{body}"
    );
}

/// The numbers README.md and examples/README.md quote for detection are the binary's own settings.
#[test]
fn the_detection_numbers_the_readmes_quote_are_the_binarys_settings() {
    let output = binary().args(["serve", "--print-config"]).output().unwrap();
    let config: toml::Value = toml::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap();
    let detectors = &config["engine"]["detectors"];
    let int = |value: &toml::Value| value.as_integer().unwrap_or(-1);
    let min_age = int(&detectors["backlog"]["min_age_s"]);
    let min_depth = int(&detectors["backlog"]["min_depth"]);
    let backlog_open = int(&detectors["backlog_lifecycle"]["open_after_s"]);
    let storm_open = int(&detectors["storm_lifecycle"]["open_after_s"]);
    let warmup_min = detectors["baselines"]["warmup_s"]
        .as_integer()
        .unwrap_or(-1)
        / 60;
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let examples = std::fs::read_to_string(root().join("examples/README.md")).unwrap();
    let expected = [
        (
            &readme,
            format!("its oldest message has waited at least {min_age} s"),
        ),
        (
            &readme,
            format!("| {backlog_open} s more of building (a hiccup must last over a minute"),
        ),
        (
            &readme,
            format!("with at least {min_depth} messages waiting |"),
        ),
        (&readme, format!("| {storm_open} s |")),
        (
            &readme,
            format!("For its first {warmup_min} minutes a User is judged on nothing"),
        ),
        (
            &examples,
            format!("a storm opens only after {storm_open} s of"),
        ),
        (
            &examples,
            format!("waited {min_age} s and {backlog_open} s more have passed"),
        ),
        (
            &examples,
            format!("a baseline that first warms up over {warmup_min} minutes"),
        ),
    ];
    let missing: Vec<&String> = expected
        .iter()
        .filter(|(text, phrase)| !text.replace('\n', " ").contains(phrase.as_str()))
        .map(|(_, phrase)| phrase)
        .collect();
    assert!(missing.is_empty(), "the READMEs no longer say {missing:?}");
}

/// Issue 23: `changes import --help` cited `contract/changes.md`, which does not exist, and `gen --help` left 7
/// scenarios out of `--scenario`.
#[test]
fn every_file_the_help_names_exists_and_gen_names_every_scenario() {
    let mut wrong = Vec::new();
    for (path, help) in subcommands() {
        for word in help.split(|c: char| c.is_whitespace() || "()[],;`".contains(c)) {
            let word = word.trim_end_matches(['.', ':']);
            if word.ends_with(".md") && !root().join(word).is_file() {
                wrong.push(format!("stormwatch {} --help names {word}", path.join(" ")));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The scenarios `gen` takes, from its own long help, each in the short line of --scenario too.
    let long =
        String::from_utf8(binary().args(["gen", "--help"]).output().unwrap().stdout).unwrap();
    let names: Vec<&str> = long
        .split("Scenarios:\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.len() >= 20, "{names:?}");
    let short = String::from_utf8(binary().args(["gen", "-h"]).output().unwrap().stdout).unwrap();
    let line = short
        .lines()
        .find(|l| l.trim_start().starts_with("--scenario"))
        .unwrap_or_default();
    let left_out: Vec<&&str> = names.iter().filter(|n| !line.contains(**n)).collect();
    assert!(
        left_out.is_empty(),
        "--scenario leaves out {left_out:?}: {line}"
    );
    // And each is one `gen` takes.
    for name in names {
        let dir = tempfile::tempdir().unwrap();
        let output = binary()
            .args(["gen", "--scenario", name, "--duration", "1s", "-q", "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("unknown scenario"), "{name}: {stderr}");
    }
}

#[test]
fn quoted_fields_are_told_from_quoted_values() {
    let keys = keys_of(
        r#"201 `{"changes": [{"id": "...", "outcome": "created" | "updated"}], "warned": N, "counts": {"created": N}}`"#,
    );
    assert_eq!(
        keys,
        BTreeSet::from([
            "changes".to_owned(),
            "warned".to_owned(),
            "counts".to_owned()
        ])
    );
    assert_eq!(
        keys_of(r#"`{"from", "to", "owners": [ROW, ...]}`"#).len(),
        3
    );
}
