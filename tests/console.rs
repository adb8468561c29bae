//! The triage console in a real headless Chromium against a live `stormwatch serve`: sign in with a token, find the
//! firewall backlog on the overview, read its chart, suspects and ruled-out changes, acknowledge it, add a note,
//! confirm its suspect, visit its User, and register a change through the form (a bad one first). A second test
//! loads the overview with 100 Users and 50 open incidents. Screenshots go to `target/console-screenshots/`;
//! `STORMWATCH_UPDATE_SCREENSHOT=1` also copies the incident page to `docs/console-incident.png`. Two more tests,
//! without a browser, check the served assets and the triage API's rules (roles, validation, audit).

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::sync::Mutex;

use browser::{Browser, Tools, tools};
use support::*;

/// One browser at a time: two Chromiums and two services at once would starve a two-core machine.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// RFC 3339 for `seconds` after the scenario's T0.
fn at(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(T0 / 1000 + seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn register(service: &Service, token: &str, body: &str) {
    let (status, answer) = service.post(
        "/api/v1/changes",
        Some(token),
        body.as_bytes(),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 201, "{answer}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

async fn sign_in(browser: &Browser, service: &Service, token: &str) {
    browser
        .client
        .goto(&format!("http://{}/", service.http))
        .await
        .expect("load the console");
    browser.fill("#token", token).await;
    browser.click("#sign-in button[type=submit]").await;
}

fn open_backlog_id(service: &Service, token: &str) -> String {
    let open = service.wait_for("/api/v1/incidents?open=true", token, 60, |v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|i| i["user"] == FIREWALLED))
    });
    open.as_array()
        .and_then(|a| a.iter().find(|i| i["user"] == FIREWALLED))
        .and_then(|i| i["id"].as_str())
        .expect("the firewall backlog's id")
        .to_owned()
}

/// A service with the firewall backlog open, its User named by the directory, the changes the correlator rules out
/// and the late-registered change that explains it: the ops token, the incident's id and its record.
fn triage_scenario(dir: &std::path::Path) -> (Service, String, String, serde_json::Value) {
    let ops = token(dir, "ops", "ops", None);
    let directory = dir.join("users.csv");
    std::fs::write(
        &directory,
        format!("{FIREWALLED},Acme Energy,supplier\n{HEALTHY},Northern Grid,network_operator\n"),
    )
    .unwrap();
    let config = config_file(
        dir,
        &format!("user_directory = \"{}\"\n", directory.display()),
    );
    let args: Vec<&str> = config.iter().map(String::as_str).collect();
    let service = Service::start(dir, &args);
    // Changes the correlator will rule out: another User's, one long finished, one not yet begun.
    register(
        &service,
        &ops,
        &format!(
            r#"[{{"id":"CHG-NEIGHBOUR-1","user":"{HEALTHY}","title":"Load balancer swap","category":"network","start":"{}","end":"{}","status":"in_progress","contact":"lb-team@example.invalid"}},
                {{"id":"CHG-CERT-OLD","user":"{FIREWALLED}","title":"Certificate renewal","category":"certificate","start":"{}","end":"{}","status":"completed"}},
                {{"id":"CHG-DCC-LATER","user":"DCC","title":"DSP release 26.3","category":"dcc_maintenance","start":"{}","end":"{}","status":"planned"}}]"#,
            at(200),
            at(1_800),
            at(-5 * 3_600),
            at(-4 * 3_600),
            at(3_600),
            at(7_200)
        ),
    );
    service.send_tcp(&firewall_lines(0..600, (300, 2_000)));
    let id = open_backlog_id(&service, &ops);
    // Registered late, as happens: the verdict changes, and the timeline shows it.
    register(&service, &ops, &firewall_change("CHG-FW-1", 280, 3_600));
    let incident = service.wait_for(&format!("/api/v1/incidents/{id}"), &ops, 30, |v| {
        v["suspects"][0]["change"] == "CHG-FW-1"
    });
    (service, ops, id, incident)
}

#[test]
#[ignore = "needs chromium, chromedriver (scripts/test-all)"]
fn an_operator_triages_the_firewall_backlog_and_registers_a_change() {
    let tools = tools();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (service, ops, id, incident) = triage_scenario(dir.path());

    runtime().block_on(async {
        let browser = Browser::start(&tools, 1440, 1000).await;
        sign_in(&browser, &service, "sw_not_a_token").await;
        browser
            .text_where("#token-error", |t| t.contains("unknown or revoked"))
            .await;
        sign_in(&browser, &service, &ops).await;
        incident_flow(&browser, &service, &ops, &id, &incident).await;
        change_register_flow(&browser, &service, &ops).await;
        browser.close().await;
    });
}

async fn incident_flow(
    browser: &Browser,
    service: &Service,
    ops: &str,
    id: &str,
    incident: &serde_json::Value,
) {
    // The overview lists the incident with its User and top suspect.
    let row = format!("tr[data-incident='{id}']");
    let text = browser
        .text_where(&row, |t| t.contains(FIREWALLED) && t.contains("CHG-FW-1"))
        .await;
    assert!(text.contains("Backlog"), "{text}");
    // The User directory's name stands beside the EUI-64 (it arrives with the first poll).
    browser
        .text_where(&row, |t| t.contains("Acme Energy (supplier)"))
        .await;
    assert!(text.contains("Registered change"), "{text}");
    browser
        .text_where("[data-metric='users-in-trouble'] dd", |t| t.contains('1'))
        .await;
    browser.screenshot("overview.png").await;

    // The incident page: chart, suspects with every reason, ruled-out changes, timeline.
    browser
        .click(&format!("{row} a[href^='#/incident/']"))
        .await;
    browser
        .count_at_least("#incident-chart path.flow-line", 4)
        .await;
    let depth = browser
        .attribute("#incident-chart path.depth-line", "d")
        .await
        .unwrap_or_default();
    assert!(depth.matches('L').count() > 100, "a depth line: {depth}");
    browser.count_at_least("#incident-chart rect.band", 2).await;
    let suspect = browser
        .text_where(".suspect[data-change='CHG-FW-1']", |t| {
            t.contains("same User")
        })
        .await;
    for reason in incident["suspects"][0]["reasons"].as_array().unwrap() {
        // `code` in a reason shows as code, without its backticks.
        let reason = reason.as_str().unwrap().replace('`', "");
        assert!(suspect.contains(&reason), "reason `{reason}` in: {suspect}");
    }
    let nearby = browser
        .text_where(".part-nearby", |t| t.contains("CHG-NEIGHBOUR-1"))
        .await;
    for expected in [
        "no known way",
        "CHG-CERT-OLD",
        "CHG-DCC-LATER",
        "contact lb-team@example.invalid",
    ] {
        assert!(nearby.contains(expected), "`{expected}` in: {nearby}");
    }
    // Verdicts in the glossary's words, never their API names.
    let timeline = browser
        .text_where(".part-timeline", |t| {
            t.contains("Opened with verdict “Unregistered change suspected”")
                && t.contains("→ “Registered change”")
        })
        .await;
    assert!(!timeline.contains("registered_change"), "{timeline}");

    // Triage: acknowledge, note, confirm the suspect; each is stored and shows in the API with its actor.
    browser.click("#acknowledge").await;
    browser
        .text_where(".triage .ack", |t| t.contains("Acknowledged by ops"))
        .await;
    browser
        .fill("#note-text", "Firewall team rolling back rule 42")
        .await;
    browser.click(".note-form button[type=submit]").await;
    browser
        .text_where(".triage .notes", |t| t.contains("rolling back rule 42"))
        .await;
    browser.click("button[data-key='confirmed-CHG-FW-1']").await;
    browser
        .text_where(".suspect[data-change='CHG-FW-1'] .judged", |t| {
            t.contains("Confirmed by ops")
        })
        .await;
    let triage = service.json(&format!("/api/v1/incidents/{id}/triage"), ops);
    assert_eq!(triage["acknowledged"]["actor"], "ops");
    assert_eq!(
        triage["notes"][0]["text"],
        "Firewall team rolling back rule 42"
    );
    assert_eq!(triage["judgements"][0]["change"], "CHG-FW-1");
    assert_eq!(triage["judgements"][0]["judgement"], "confirmed");
    assert_eq!(triage["log"].as_array().map(Vec::len), Some(3));
    browser
        .text_where(".part-timeline", |t| {
            t.contains("CHG-FW-1 confirmed by ops")
        })
        .await;
    browser.run("window.scrollTo(0, 0)").await;
    browser
        .text_where("#view h1", |t| t.contains("Acme Energy (supplier)"))
        .await;
    // A known defect: the no-wrap verdict badge ran over the User fact beside it in the summary grid.
    let overlap = browser
        .run(
            "const facts = [...document.querySelectorAll('.part-summary .facts > div')];
             const badge = facts[0].querySelector('.badge').getBoundingClientRect();
             const cell = facts[0].getBoundingClientRect();
             const next = facts[1].getBoundingClientRect();
             return [badge.right, cell.right, next.left, next.top === cell.top];",
        )
        .await;
    let [badge, cell, next, same_row] = [&overlap[0], &overlap[1], &overlap[2], &overlap[3]];
    assert!(
        badge.as_f64() <= cell.as_f64() && (same_row == false || badge.as_f64() <= next.as_f64()),
        "the verdict badge stays inside its own cell: {overlap}"
    );
    let shot = browser.screenshot("incident.png").await;
    browser.screenshot_whole_page("incident-full.png").await;
    if std::env::var("STORMWATCH_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&shot, docs.join("console-incident.png")).unwrap();
        eprintln!("updated docs/console-incident.png");
    }

    // The User page: state against baseline, the incident, the User's changes.
    browser.click(".part-summary a[href^='#/user/']").await;
    browser
        .text_where("main", |t| {
            t.contains("Requests (User → DSP)") && t.contains(id) && t.contains("CHG-CERT-OLD")
        })
        .await;
    browser.screenshot("user.png").await;
}

async fn change_register_flow(browser: &Browser, service: &Service, ops: &str) {
    browser.click("a[data-nav='changes']").await;
    browser
        .text_where(".changes", |t| t.contains("CHG-FW-1"))
        .await;
    browser.fill("#f-id", "CHG-UI-1").await;
    browser.fill("#f-user", FIREWALLED).await;
    browser
        .fill("#f-title", "Endpoint certificate renewal")
        .await;
    browser.select("#f-category", "certificate").await;
    browser.fill("#f-start", "2026-03-10T10:00:00Z").await;
    browser.fill("#f-end", "2026-03-10T09:00:00Z").await;
    browser.click(".register button[type=submit]").await;
    let error = browser.text_where("#f-end-error", |t| !t.is_empty()).await;
    assert!(error.contains("before start"), "{error}");
    assert_eq!(
        browser.attribute("#f-end", "aria-invalid").await.as_deref(),
        Some("true")
    );
    assert_eq!(
        service.get("/api/v1/changes/CHG-UI-1", Some(ops)).0,
        404,
        "nothing registered"
    );
    browser.screenshot("changes-invalid.png").await;

    browser.fill("#f-end", "2026-03-10T11:00:00Z").await;
    browser.click(".register button[type=submit]").await;
    browser
        .text_where(".register .form-done", |t| {
            t.contains("Registered CHG-UI-1")
        })
        .await;
    browser
        .text_where("tr[data-change='CHG-UI-1']", |t| {
            t.contains("Endpoint certificate renewal")
        })
        .await;
    let stored = service.json("/api/v1/changes/CHG-UI-1", ops);
    assert_eq!(stored["change"]["category"], "certificate");
    assert_eq!(stored["audit"][0]["actor"], "ops");
    browser.screenshot("changes.png").await;
}

/// 100 Users at 20 messages a second each. 50 of them lose their endpoint one after another, 11 s apart from
/// 300 s: independent outages, one incident each. Then 25 lose theirs in the same second at 1000 s: under the 30 %
/// share, but far too many to start together by chance, so one network-wide incident that lists them.
fn crowd_lines(seconds: i64) -> Vec<u8> {
    let users: Vec<String> = (0..100)
        .map(|n| format!("90-B3-D5-1F-30-02-{:02X}-{:02X}", n / 256, n % 256))
        .collect();
    let mut out = Vec::new();
    for second in 0..seconds {
        let ts = T0 + second * 1000;
        for (n, user) in users.iter().enumerate() {
            let down_from = match n {
                0..50 => 300 + n as i64 * 11,
                50..75 => 1_000,
                _ => i64::MAX,
            };
            let delivery = if second >= down_from {
                r#""event":"delivery_failed","reason":"timeout","count":20"#
            } else {
                r#""event":"delivered","count":20"#
            };
            out.extend(
                format!(
                    "{{\"ts\":{ts},\"user\":\"{user}\",\"event\":\"request\",\"count\":20}}\n\
                     {{\"ts\":{},\"user\":\"{user}\",\"event\":\"queued\",\"count\":20}}\n\
                     {{\"ts\":{},\"user\":\"{user}\",{delivery}}}\n",
                    ts + 200,
                    ts + 400
                )
                .as_bytes(),
            );
        }
    }
    out
}

#[test]
#[ignore = "needs chromium, chromedriver (scripts/test-all)"]
fn the_overview_lists_fifty_one_open_incidents_among_a_hundred_users_and_keeps_focus_across_polls()
{
    let tools = tools();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    service.send_tcp(&crowd_lines(1_150));
    let open = service.wait_for("/api/v1/incidents?open=true", &ops, 120, |v| {
        v.as_array().is_some_and(|a| a.len() >= 51)
    });
    let open = open.as_array().unwrap();
    assert_eq!(
        open.len(),
        51,
        "one backlog per independent outage, and one for the 25 that failed together"
    );
    let folded: Vec<_> = open.iter().filter(|i| i["user"] == "*").collect();
    assert_eq!(folded.len(), 1, "only the coincident 25 are folded");
    assert_eq!(folded[0]["users"].as_array().map(Vec::len), Some(25));

    runtime().block_on(async {
        let browser = check_crowd(&tools, &service, &ops).await;
        browser.close().await;
    });
}

async fn check_crowd(tools: &Tools, service: &Service, ops: &str) -> Browser {
    let browser = Browser::start(tools, 1440, 1000).await;
    sign_in(&browser, service, ops).await;
    assert_eq!(browser.count_at_least("tr[data-incident]", 51).await, 51);
    browser
        .text_where("[data-metric='users'] dd", |t| t == "100")
        .await;
    browser
        .text_where("[data-metric='users-in-trouble'] dd", |t| t.ends_with("75"))
        .await;
    browser
        .text_where("[data-metric='open-incidents'] dd", |t| t == "51")
        .await;
    // Newest first: the coincident 25 (one `*` incident) lead the list.
    let first = browser
        .text_where("tr[data-incident] td:nth-of-type(3)", |t| !t.is_empty())
        .await;
    let last_onset = browser
        .run("const rows = document.querySelectorAll('tr[data-incident]'); return rows[rows.length - 1].cells[3].textContent")
        .await;
    assert!(
        first.as_str() > last_onset.as_str().unwrap_or_default(),
        "onset {first} first, then {last_onset}"
    );
    // A keyboard user on row 10 stays there while the page refreshes under them.
    let key = browser
        .run("const link = document.querySelectorAll('tr[data-incident] a[data-key]')[9]; link.focus(); return link.dataset.key")
        .await;
    let status = browser.text_where("#status", |t| !t.is_empty()).await;
    browser.text_where("#status", |t| t != status).await;
    let focused = browser
        .run("return document.activeElement && document.activeElement.dataset.key")
        .await;
    assert_eq!(focused, key, "focus kept across a poll");
    browser.screenshot("overview-crowd.png").await;
    browser
}

/// The whole HTTP response to a GET, head included (the support client keeps only the body).
fn raw_get(service: &Service, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(service.http).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        service.http
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn the_page_and_every_asset_it_names_are_served_with_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let page = raw_get(&service, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let head = page.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{page}");
    assert!(head.contains("content-security-policy: default-src 'none'"));
    let names: Vec<&str> = page
        .split("/console/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(names.contains(&"app.js") && names.contains(&"console.css"));
    // app.js imports the other modules by relative path; each must be served too.
    let (_, app) = service.get("/console/app.js", None);
    let imports: Vec<String> = app
        .split("from './")
        .skip(1)
        .filter_map(|rest| rest.split('\'').next().map(str::to_owned))
        .collect();
    assert!(imports.len() >= 5, "{imports:?}");
    for name in names
        .iter()
        .copied()
        .chain(imports.iter().map(String::as_str))
    {
        let (status, body) = service.get(&format!("/console/{name}"), None);
        assert_eq!(status, 200, "/console/{name}");
        assert!(!body.is_empty(), "/console/{name}");
    }
    assert_eq!(service.get("/console/nope.js", None).0, 404);
}

#[test]
fn triage_is_stored_audited_and_gated_by_role() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let own = token(dir.path(), "supplier", "user", Some(FIREWALLED));
    let other = token(dir.path(), "neighbour", "user", Some(HEALTHY));
    let ingest = token(dir.path(), "exporter", "ingest", None);
    let service = Service::start(dir.path(), &[]);
    service.send_tcp(&firewall_lines(0..500, (300, 2_000)));
    let id = open_backlog_id(&service, &ops);
    register(&service, &ops, &firewall_change("CHG-FW-1", 280, 3_600));
    service.wait_for(&format!("/api/v1/incidents/{id}"), &ops, 30, |v| {
        v["suspects"][0]["change"] == "CHG-FW-1"
    });
    let post = |path: &str, token: &str, body: &str| {
        let (status, answer) = service.post(
            &format!("/api/v1/incidents/{id}/{path}"),
            Some(token),
            body.as_bytes(),
            &[("Content-Type", "application/json")],
        );
        let answer = serde_json::from_str(&answer).unwrap_or(serde_json::Value::Null);
        (status, answer)
    };

    assert_eq!(post("acknowledge", &own, "{}").0, 403, "triage is for ops");
    assert_eq!(post("acknowledge", &ops, "").0, 201);
    assert_eq!(
        post("acknowledge", &ops, "{}").0,
        200,
        "already acknowledged"
    );
    let (status, empty) = post("notes", &ops, r#"{"text": "  "}"#);
    assert_eq!((status, &empty["field"]), (400, &"text".into()), "{empty}");
    assert_eq!(post("notes", &ops, r#"{"text": "paged"}"#).0, 201);
    assert_eq!(
        post("suspects/CHG-NOPE", &ops, r#"{"judgement": "confirmed"}"#).0,
        404
    );
    let (status, bad) = post("suspects/CHG-FW-1", &ops, r#"{"judgement": "maybe"}"#);
    assert_eq!((status, &bad["field"]), (400, &"judgement".into()), "{bad}");
    let (status, judged) = post(
        "suspects/CHG-FW-1",
        &ops,
        r#"{"judgement": "rejected", "text": "rule 42 never applied"}"#,
    );
    assert_eq!(status, 201, "{judged}");
    assert_eq!(judged["judgements"][0]["judgement"], "rejected");

    let triage = service.json(&format!("/api/v1/incidents/{id}/triage"), &own);
    let trail: Vec<(&str, &str)> = triage["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        trail,
        [("acknowledge", "ops"), ("note", "ops"), ("suspect", "ops")]
    );
    assert!(triage["log"][2]["at_ms"].as_i64().is_some_and(|t| t > 0));
    assert_eq!(triage["history"][0]["state"], "opened");
    let path = format!("/api/v1/incidents/{id}/triage");
    assert_eq!(service.get(&path, Some(&other)).0, 403);
    assert_eq!(service.get(&path, None).0, 401);
    assert_eq!(
        service
            .get("/api/v1/incidents/INC-NOPE/triage", Some(&ops))
            .0,
        404
    );

    let nearby = service.json(&format!("/api/v1/incidents/{id}/nearby-changes"), &ops);
    assert_eq!(nearby["changes"][0]["change"]["id"], "CHG-FW-1");
    assert_eq!(nearby["changes"][0]["rank"], 1);

    let mine = service.json("/api/v1/console/overview", &own);
    assert_eq!(mine["who"]["role"], "user");
    assert_eq!(mine["incidents"][0]["id"], id.as_str());
    assert_eq!(mine["incidents"][0]["acknowledged"]["actor"], "ops");
    assert_eq!(mine["incidents"][0]["judgements"]["CHG-FW-1"], "rejected");
    assert_eq!(
        mine["network"]["users"], 1,
        "a User token sees its own User"
    );
    let theirs = service.json("/api/v1/console/overview", &other);
    assert_eq!(theirs["incidents"].as_array().map(Vec::len), Some(0));
    let all = service.json("/api/v1/console/overview", &ops);
    assert_eq!(all["network"]["users"], 2);
    assert_eq!(all["network"]["users_in_trouble"], 1);
    assert!(
        all["incidents"][0]["depth_now"]
            .as_u64()
            .is_some_and(|d| d > 1_000)
    );
    assert_eq!(
        service.get("/api/v1/console/overview", Some(&ingest)).0,
        403
    );
}

/// (id, owner, title, category, day, start hour, minutes long, declares impact)
type PlannedChange = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i64,
    i64,
    i64,
    bool,
);

/// A week of changes from today (UTC), as a change team would see it: DCC maintenance and a BCDR test on top,
/// five Users' changes below, several with warnings; two changes of yesterday already decided.
fn coordinated_week() -> String {
    let today = time::OffsetDateTime::now_utc().unix_timestamp() / 86_400 * 86_400;
    let at = |day: i64, hour: i64, minute: i64| {
        time::OffsetDateTime::from_unix_timestamp(today + day * 86_400 + hour * 3_600 + minute * 60)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    };
    let users = [
        "90-B3-D5-1F-30-01-00-01",
        "90-B3-D5-1F-30-01-00-02",
        "90-B3-D5-1F-30-01-00-03",
        "90-B3-D5-1F-30-02-00-01",
        "90-B3-D5-1F-30-03-00-01",
    ];
    let plan: [PlannedChange; 16] = [
        (
            "DCC-PM-01",
            "DCC",
            "DSP release 26.4",
            "dcc_maintenance",
            1,
            20,
            240,
            false,
        ),
        (
            "DCC-BCDR-1",
            "DCC",
            "BCDR failover test (Sheffield)",
            "dcc_maintenance",
            3,
            21,
            180,
            false,
        ),
        (
            "CHG-101",
            users[0],
            "Firewall rules for new DCC CIDR",
            "network",
            1,
            21,
            90,
            false,
        ),
        (
            "CHG-102",
            users[0],
            "Firmware 2.1 activation wave 3",
            "device",
            2,
            10,
            300,
            false,
        ),
        (
            "CHG-103",
            users[0],
            "Head-end adapter 5.4",
            "application",
            4,
            7,
            150,
            false,
        ),
        (
            "CHG-201",
            users[1],
            "DCCKI certificate rotation",
            "certificate",
            1,
            22,
            10,
            false,
        ),
        (
            "CHG-202",
            users[1],
            "Tariff mass update",
            "campaign",
            3,
            12,
            480,
            true,
        ),
        (
            "CHG-301",
            users[2],
            "Receive-response endpoint move",
            "endpoint",
            1,
            21,
            120,
            false,
        ),
        (
            "CHG-302",
            users[2],
            "Proxy upgrade",
            "network",
            5,
            13,
            90,
            false,
        ),
        (
            "CHG-401",
            users[3],
            "Outage-alert routing change",
            "network",
            1,
            21,
            60,
            false,
        ),
        (
            "CHG-402",
            users[3],
            "ALCS configuration wave",
            "device",
            4,
            13,
            360,
            true,
        ),
        (
            "CHG-501",
            users[4],
            "CRM integration release",
            "application",
            2,
            14,
            180,
            false,
        ),
        (
            "CHG-502",
            users[4],
            "Load balancer swap",
            "network",
            3,
            22,
            60,
            false,
        ),
        (
            "CHG-503",
            users[4],
            "Smart PPM reminder campaign",
            "campaign",
            6,
            11,
            480,
            true,
        ),
        (
            "CHG-090",
            users[0],
            "Yesterday's certificate renewal",
            "certificate",
            -1,
            13,
            60,
            false,
        ),
        (
            "CHG-091",
            users[2],
            "Yesterday's MDM patch",
            "application",
            -1,
            14,
            120,
            false,
        ),
    ];
    let notices: Vec<serde_json::Value> = plan
        .iter()
        .map(
            |&(id, owner, title, category, day, hour, minutes, declares)| {
                let mut notice = serde_json::json!({
                    "id": id, "user": owner, "title": title, "category": category,
                    "start": at(day, hour, 0), "end": at(day, hour, minutes),
                    "status": if day < 0 { "completed" } else { "planned" },
                });
                if declares {
                    notice["expected"] =
                        serde_json::json!({"direction": "to_dsp", "rate_factor": 2.5});
                }
                notice
            },
        )
        .collect();
    serde_json::Value::Array(notices).to_string()
}

#[test]
#[ignore = "needs chromium, chromedriver (scripts/test-all)"]
fn the_schedule_outcomes_and_registration_warnings_in_the_console() {
    let tools = tools();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let config = dir.path().join("serve.toml");
    // Four overlapping high-risk changes on day 1 exceed a limit of 3.
    std::fs::write(&config, "[coordination]\nmax_concurrent_high_risk = 3\n").unwrap();
    let service = Service::start(dir.path(), &["--config", config.to_str().unwrap()]);
    register(&service, &ops, &coordinated_week());
    runtime().block_on(async {
        let browser = Browser::start(&tools, 1440, 1000).await;
        sign_in(&browser, &service, &ops).await;
        browser.text_where("#strip", |t| t.contains("Users")).await;
        // No telemetry yet: the network's rates are nought, never "-0.0/s".
        let requests = browser
            .text_where("[data-metric='requests'] dd", |t| !t.is_empty())
            .await;
        assert_eq!(requests, "0.0/s");
        browser.click("a[data-nav='schedule']").await;
        // DCC first, then the Users; the DCC release and the BCDR test overlap User changes, which are marked.
        let rows = browser
            .text_where(".sched", |t| t.contains("CHG-503"))
            .await;
        assert!(
            rows.find("DCC") < rows.find("90-B3-D5-1F-30-01-00-01"),
            "{rows}"
        );
        let first_owner = browser
            .run("return document.querySelector('.sched-row:not(.sched-head)').dataset.owner")
            .await;
        assert_eq!(first_owner, "DCC");
        let warned = browser
            .run("return document.querySelectorAll('.sched-bar.warned').length")
            .await;
        assert!(warned.as_u64() >= Some(5), "{warned}");
        let row = browser
            .text_where("tr[data-change='CHG-101']", |t| {
                t.contains("overlaps DCC maintenance")
            })
            .await;
        assert!(row.contains("high-risk pile-up"), "{row}");
        browser
            .text_where("tr[data-change='DCC-BCDR-1']", |t| t.contains("planned"))
            .await;
        browser
            .text_where("tr[data-change='CHG-502']", |t| {
                t.contains("overlaps a BCDR test")
            })
            .await;
        browser
            .text_where("tr[data-change='CHG-102']", |t| {
                t.contains("no declared impact")
            })
            .await;
        let shot = browser.screenshot("schedule.png").await;
        if std::env::var("STORMWATCH_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
            let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
            std::fs::copy(&shot, docs.join("console-schedule.png")).unwrap();
            eprintln!("updated docs/console-schedule.png");
        }
        // Cancelling the DCC release leaves CHG-101's recorded overlap listed, marked as no longer current.
        let (status, _) = service.post(
            "/api/v1/changes/DCC-PM-01/status",
            Some(&ops),
            br#"{"status":"cancelled"}"#,
            &[("Content-Type", "application/json")],
        );
        assert_eq!(status, 200);
        browser.click(".filters button[type=submit]").await;
        browser
            .text_where("tr[data-change='CHG-101']", |t| {
                t.contains("at registration, no longer") && t.contains("overlaps DCC maintenance")
            })
            .await;
        let (status, _) = service.post(
            "/api/v1/changes/DCC-PM-01/status",
            Some(&ops),
            br#"{"status":"planned"}"#,
            &[("Content-Type", "application/json")],
        );
        assert_eq!(status, 200);
        // Filters: one category, one day.
        browser.select("#s-category", "dcc_maintenance").await;
        browser.click(".filters button[type=submit]").await;
        browser
            .text_where(".schedule-list", |t| {
                t.contains("DCC-PM-01") && !t.contains("CHG-101")
            })
            .await;

        // The network-wide outcomes, sorted by a column; yesterday's two changes are decided and clean.
        browser.click("a[data-nav='outcomes']").await;
        let table = browser
            .text_where("table.outcomes", |t| t.contains("90-B3-D5-1F-30-01-00-03"))
            .await;
        assert!(table.contains("0 %"), "{table}");
        browser
            .click("button[data-sort='changes_registered']")
            .await;
        browser
            .text_where("th[aria-sort='descending']", |t| {
                t.contains("Changes registered")
            })
            .await;
        let first = browser
            .run("return document.querySelector('table.outcomes tbody tr').dataset.owner")
            .await;
        // Only windows already begun count: one change each for two Users, ties in owner order.
        assert_eq!(first, "90-B3-D5-1F-30-01-00-01");
        browser.screenshot("outcomes.png").await;

        // The User page carries the same figures.
        browser
            .client
            .goto(&format!(
                "http://{}/#/user/90-B3-D5-1F-30-01-00-01",
                service.http
            ))
            .await
            .expect("open the User page");
        let facts = browser
            .text_where(".outcome-facts", |t| t.contains("Decided (window over)"))
            .await;
        assert!(facts.contains("Change failure rate\n0 %"), "{facts}");

        // Registering through the form shows the warnings; the change is stored all the same.
        browser.click("a[data-nav='changes']").await;
        let day1 =
            serde_json::from_str::<serde_json::Value>(&coordinated_week()).unwrap()[0]["start"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        browser.fill("#f-id", "CHG-UI-9").await;
        browser.fill("#f-user", "90-B3-D5-1F-30-01-00-02").await;
        browser.fill("#f-title", "Firmware hotfix").await;
        browser.select("#f-category", "device").await;
        browser.fill("#f-start", &day1).await;
        let end =
            time::OffsetDateTime::parse(&day1, &time::format_description::well_known::Rfc3339)
                .map(|t| t + time::Duration::minutes(30))
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
        browser.fill("#f-end", &end).await;
        browser.click(".register button[type=submit]").await;
        let warnings = browser
            .text_where(".form-warnings", |t| t.contains("warning"))
            .await;
        assert!(warnings.contains("DCC planned maintenance"), "{warnings}");
        assert!(
            warnings.contains("without a declared expected impact"),
            "{warnings}"
        );
        assert_eq!(
            service.json("/api/v1/changes/CHG-UI-9", &ops)["change"]["id"],
            "CHG-UI-9"
        );
        browser.screenshot("changes-warnings.png").await;
        browser.close().await;
    });
}

/// Issue 13: two hours into a backlog the chart was empty (the engine's ring holds 512 s), and a link could not
/// land on the incident page. Now a link to the page asks for the token, then shows the whole incident's chart,
/// and again after a restart.
#[test]
#[ignore = "needs chromium, chromedriver (scripts/test-all)"]
fn a_link_lands_on_a_two_hour_incidents_chart_before_and_after_a_restart() {
    let tools = tools();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let mut service = Service::start(dir.path(), &["--snapshot-every", "1"]);
    service.send_tcp(&firewall_lines(0..7_500, (300, 9_000)));
    let incidents = service.wait_for("/api/v1/incidents?open=true", &ops, 120, |v| {
        v.as_array().is_some_and(|a| {
            a.iter().any(|i| {
                i["user"] == FIREWALLED && i["peak_depth"].as_u64() >= Some((7_490 - 300) * 50)
            })
        })
    });
    let id = incidents
        .as_array()
        .and_then(|a| a.iter().find(|i| i["user"] == FIREWALLED))
        .and_then(|i| i["id"].as_str())
        .unwrap()
        .to_owned();

    let look = |service: &Service, shot: &'static str| {
        let (url, ops) = (
            format!("http://{}/#/incident/{id}", service.http),
            ops.clone(),
        );
        let tools = &tools;
        runtime().block_on(async move {
            let browser = Browser::start(tools, 1440, 1000).await;
            browser.client.goto(&url).await.expect("open the link");
            browser.fill("#token", &ops).await;
            browser.click("#sign-in button[type=submit]").await;
            browser
                .text_where("#view h1", |t| {
                    t.contains("Backlog") && t.contains(FIREWALLED)
                })
                .await;
            browser
                .count_at_least("#incident-chart path.flow-line", 4)
                .await;
            // Just after the restart the page may draw before the engine has caught up on its journal.
            let depth = browser
                .attribute_where("#incident-chart path.depth-line", "d", |d| {
                    d.matches('L').count() > 500
                })
                .await;
            let points = depth.matches('L').count();
            assert!(
                points > 500,
                "{shot}: a depth line over the whole incident: {points} points"
            );
            // Two hours in, onset and detection are pixels apart: their labels printed over each other, and the
            // last hour tick over the `UTC` axis label.
            let overlaps = browser
                .run(
                    "const boxes = (css) => [...document.querySelectorAll(css)]
                       .map((e) => [e.textContent, e.getBoundingClientRect()]);
                     const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
                     const found = [];
                     for (const css of ['#incident-chart text.marker-label', '#incident-chart text.tick']) {
                       const all = boxes(css);
                       all.forEach(([t, a], i) => all.slice(i + 1).forEach(([u, b]) => {
                         if (hit(a, b)) found.push(`${t} / ${u}`);
                       }));
                     }
                     return found;",
                )
                .await;
            assert_eq!(overlaps, serde_json::json!([]), "{shot}: labels over each other");
            browser.screenshot(shot).await;
            browser.close().await;
            points
        })
    };
    let before = look(&service, "incident-2h.png");
    service.stop();
    let service = Service::start(dir.path(), &["--snapshot-every", "1"]);
    let after = look(&service, "incident-2h-after-restart.png");
    eprintln!("depth line points: {before} before the restart, {after} after");
}

/// Changes of the scenario's week for the schedule: short windows close together (a week's bar of an hour is a
/// sliver, and two an hour apart would cover each other), and titles as long as real ones.
fn crowded_week() -> String {
    let day = |d: i64, hour: i64, minutes: i64| {
        (
            at(d * 86_400 + hour * 3_600),
            at(d * 86_400 + hour * 3_600 + minutes * 60),
        )
    };
    let mut notices = Vec::new();
    for (n, (d, hour, minutes)) in [
        (0, 11, 60),
        (0, 12, 45),
        (0, 13, 30),
        (1, 10, 90),
        (2, 14, 30),
        (2, 15, 30),
    ]
    .into_iter()
    .enumerate()
    {
        let (start, end) = day(d, hour, minutes);
        notices.push(serde_json::json!({
            "id": format!("CHG-2026-{:04}", 100 + n), "user": HEALTHY, "category": "application",
            "title": "Head-end system adapter release with the new response-handling rules for SRV 4.1.1",
            "start": start, "end": end,
        }));
    }
    let (start, end) = day(1, 1, 120);
    notices.push(serde_json::json!({
        "id": "DCC-PM-2026-11", "user": "DCC", "category": "dcc_maintenance", "title": "DSP release R7.3",
        "start": start, "end": end,
    }));
    serde_json::Value::Array(notices).to_string()
}

/// Lays out the checks every page shares: nothing wider than the window, the header on one line, no raw API names
/// or markdown backticks in the text. Returns what failed, empty when all holds.
const PAGE_CHECKS: &str = "
    const failed = [];
    const width = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth > width + 1) failed.push(`page ${document.documentElement.scrollWidth} px wide in ${width}`);
    const tops = [...document.querySelectorAll('.top nav li')].map((li) => Math.round(li.getBoundingClientRect().top));
    if (new Set(tops).size !== 1) failed.push(`navigation on ${new Set(tops).size} lines`);
    const header = document.querySelector('.top').getBoundingClientRect();
    if (header.height > 60) failed.push(`header ${header.height} px tall`);
    for (const wrap of document.querySelectorAll('main .table-wrap')) {
      if (wrap.scrollWidth > wrap.clientWidth + 1) failed.push(`a table scrolls: ${wrap.scrollWidth} in ${wrap.clientWidth} (${wrap.querySelector('th') && wrap.querySelector('th').textContent})`);
    }
    const text = document.querySelector('main').innerText;
    for (const raw of ['`', 'registered_change', 'unregistered_change_suspected', 'dcc_maintenance', 'in_progress', '-0.0']) {
      const at = text.indexOf(raw);
      if (at >= 0) failed.push(`raw ${raw} on the page: ${text.slice(Math.max(0, at - 60), at + 40)}`);
    }
    const heading = document.querySelector('#view h1');
    if (heading && document.activeElement === heading) {
      const style = getComputedStyle(heading);
      if (style.outlineStyle !== 'none' || style.boxShadow !== 'none') failed.push('a focus ring around the heading');
    }
    return failed;";

/// The right edges of the cells of row `row` named by column heading, against the table's visible box.
fn cells_visible(headings: &[&str]) -> String {
    format!(
        "const names = {headings:?};
         const table = document.querySelector('main table');
         const wrap = table.closest('.table-wrap') || table;
         const box = wrap.getBoundingClientRect();
         const heads = [...table.querySelectorAll('thead th')];
         return names.filter((name) => {{
           const th = heads.find((h) => h.textContent.startsWith(name));
           if (!th) return true;
           const r = th.getBoundingClientRect();
           return r.width < 20 || r.left < box.left - 1 || r.right > box.right + 1 || r.right > window.innerWidth;
         }});"
    )
}

async fn no_layout_faults(browser: &Browser, page: &str) {
    let failed = browser.run(PAGE_CHECKS).await;
    assert_eq!(failed, serde_json::json!([]), "{page}");
}

/// Issue 23: at 1024 px the overview's Top suspect and Triage columns were behind a horizontal scroll and the
/// navigation wrapped; at 1400 px the change register's Status was scrolled off and titles ran to five lines; the
/// week's bars were slivers; and a handful of small things (a focus ring round every heading, Sign out on the sign-in
/// page, raw API names and backticks, "-0.0/s"). Each page at 1024, 1400 and 1920 px, with screenshots.
#[test]
#[ignore = "needs chromium, chromedriver (scripts/test-all)"]
fn the_console_fits_a_1024_px_laptop_and_a_1920_px_wall_screen() {
    let tools = tools();
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (service, ops, id, _) = triage_scenario(dir.path());
    register(&service, &ops, &crowded_week());
    runtime().block_on(async {
        // 1400 px too: there the change register's Status column was scrolled off.
        for width in [1024, 1400, 1920] {
            let browser = Browser::start(&tools, width, 900).await;
            browser
                .client
                .goto(&format!("http://{}/", service.http))
                .await
                .expect("load the console");
            browser.text_where("#sign-in h1", |t| t == "Sign in").await;
            let session = browser
                .run("return getComputedStyle(document.getElementById('session')).display")
                .await;
            assert_eq!(session, "none", "{width}: no Sign out before signing in");
            // Signed in from the keyboard (Enter), as people do: the heading then takes focus the way that showed
            // a thick focus ring round every title.
            browser.fill("#token", &format!("{ops}\u{E007}")).await;
            browser.text_where("#view h1", |t| t == "Open incidents").await;
            let focus = browser
                .run(
                    "const h1 = document.querySelector('#view h1'); const style = getComputedStyle(h1);
                     return [document.activeElement === h1, style.outlineStyle, style.boxShadow];",
                )
                .await;
            assert_eq!(
                focus,
                serde_json::json!([true, "none", "none"]),
                "{width}: the focused heading shows no ring"
            );

            // Overview: the key columns of the incident's row in view, without a scroll.
            let row = format!("tr[data-incident='{id}']");
            browser.text_where(&row, |t| t.contains("CHG-FW-1") && t.contains("Acme Energy")).await;
            browser.text_where("main", |t| t.contains("Stalled (STALL)")).await;
            let hidden = browser
                .run(&cells_visible(&["Incident", "User", "Verdict", "Top suspect", "Triage"]))
                .await;
            assert_eq!(hidden, serde_json::json!([]), "{width}: overview columns out of view");
            no_layout_faults(&browser, &format!("overview at {width}")).await;
            browser.screenshot(&format!("overview-{width}.png")).await;

            // The incident page.
            browser.click(&format!("{row} a[href^='#/incident/']")).await;
            browser.count_at_least("#incident-chart path.flow-line", 4).await;
            browser.text_where(".part-timeline", |t| t.contains("“Registered change”")).await;
            no_layout_faults(&browser, &format!("incident at {width}")).await;
            browser.screenshot(&format!("incident-{width}.png")).await;

            // The change register: every column in view, titles in at most two lines, errors without backticks.
            browser.click("a[data-nav='changes']").await;
            browser.text_where(".changes", |t| t.contains("CHG-2026-0105")).await;
            let hidden = browser
                .run(&cells_visible(&["Change", "User", "Title", "Window", "Status"]))
                .await;
            assert_eq!(hidden, serde_json::json!([]), "{width}: change register columns out of view");
            let lines = browser
                .run(
                    "const range = document.createRange();
                     return Math.max(...[...document.querySelectorAll('.changes td.title')].map((cell) => {
                       range.selectNodeContents(cell.firstChild);
                       return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
                     }));",
                )
                .await;
            assert!(lines.as_u64() <= Some(2), "{width}: a title runs to {lines} lines");
            browser.screenshot(&format!("changes-{width}.png")).await;
            browser.fill("#f-id", "CHG-LAYOUT").await;
            browser.click(".register button[type=submit]").await;
            let error = browser.text_where("#f-user-error", |t| !t.is_empty()).await;
            assert!(!error.contains('`'), "{width}: {error}");
            no_layout_faults(&browser, &format!("change register at {width}")).await;
            browser.screenshot(&format!("changes-form-{width}.png")).await;

            // The schedule opens on the event-time day; every bar shows its whole id and none covers another.
            browser.click("a[data-nav='schedule']").await;
            browser.text_where(".sched", |t| t.contains("CHG-2026-0105") && t.contains("DCC-PM-2026-11")).await;
            let day = browser.run("return document.getElementById('s-day').value").await;
            assert_eq!(day, "2026-03-10", "{width}: the schedule opens on the data's day");
            browser.screenshot(&format!("schedule-{width}.png")).await;
            let bars = browser
                .run(
                    "const faults = [];
                     for (const row of document.querySelectorAll('.sched-row[data-owner]')) {
                       const bars = [...row.querySelectorAll('.sched-bar')];
                       for (const bar of bars) {
                         if (bar.scrollWidth > bar.clientWidth + 1) faults.push(`${bar.dataset.change} clipped`);
                         if (!bar.textContent.includes(bar.dataset.change)) faults.push(`${bar.dataset.change} unnamed`);
                       }
                       bars.forEach((a, i) => bars.slice(i + 1).forEach((b) => {
                         const [x, y] = [a.getBoundingClientRect(), b.getBoundingClientRect()];
                         if (x.left < y.right && y.left < x.right && x.top < y.bottom && y.top < x.bottom) {
                           faults.push(`${a.dataset.change} covers ${b.dataset.change}`);
                         }
                       }));
                     }
                     return faults;",
                )
                .await;
            assert_eq!(bars, serde_json::json!([]), "{width}: schedule bars");
            no_layout_faults(&browser, &format!("schedule at {width}")).await;

            // Outcomes: a compact period control, the period ending at the data's event time.
            browser.click("a[data-nav='outcomes']").await;
            let caption = browser.text_where("table.outcomes caption", |t| t.contains("as of event time")).await;
            assert!(caption.contains("2026-03-10"), "{width}: {caption}");
            let select = browser.run("return document.getElementById('o-days').getBoundingClientRect().width").await;
            assert!(select.as_f64() < Some(240.0), "{width}: the period select is {select} px wide");
            no_layout_faults(&browser, &format!("outcomes at {width}")).await;
            browser.screenshot(&format!("outcomes-{width}.png")).await;

            // The User page's outcomes count its open incident, in the same event time.
            browser
                .client
                .goto(&format!("http://{}/#/user/{FIREWALLED}", service.http))
                .await
                .expect("open the User page");
            let facts = browser.text_where(".outcome-facts", |t| t.contains("Incidents")).await;
            assert!(!facts.contains("Incidents\n0"), "{width}: {facts}");
            no_layout_faults(&browser, &format!("User page at {width}")).await;
            browser.close().await;
        }
    });
}
