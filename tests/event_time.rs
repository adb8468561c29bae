//! Event time per source through the real binary (issue 21): two live senders at different lags, held lines across
//! kill -9, one exporter's clock stepping back 45 minutes, and a 20-minute gap backfilled beside the live stream.
//! Each compares the incidents (User, kind, verdict, onset within 60 s) with those `stormwatch replay` finds in
//! the unshifted file, and counts lines refused, late and counted.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// Onsets of the same incident may differ by this much between two runs (the issue's criterion).
const ONSET_TOLERANCE_MS: i64 = 60_000;
const MINUTE_MS: i64 = 60_000;

/// One telemetry line of a generated file.
#[derive(Clone, Debug)]
struct Line {
    ts: i64,
    /// The User's EUI-64 as 16 upper-case hex digits (files spell it several ways).
    user: String,
    event: String,
    raw: String,
}

impl Line {
    fn parse(raw: &str) -> Line {
        let value: Value = serde_json::from_str(raw).expect("generated line is JSON");
        let ts = match &value["ts"] {
            Value::Number(n) => n.as_i64().expect("ts in ms"),
            Value::String(s) => {
                let at =
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .expect("RFC 3339 ts");
                (at.unix_timestamp_nanos() / 1_000_000) as i64
            }
            other => panic!("ts {other}"),
        };
        Line {
            ts,
            user: hex_user(value["user"].as_str().expect("user")),
            event: value["event"].as_str().expect("event").to_owned(),
            raw: raw.to_owned(),
        }
    }

    /// The same line stamped `ts`.
    fn stamped(&self, ts: i64) -> Line {
        let mut value: Value = serde_json::from_str(&self.raw).expect("JSON");
        value["ts"] = ts.into();
        Line {
            ts,
            raw: value.to_string(),
            ..self.clone()
        }
    }

    /// Stamped by the DSP's outbound node (queued, delivered, delivery_failed, expired).
    fn is_queue_line(&self) -> bool {
        matches!(
            self.event.as_str(),
            "queued" | "delivered" | "delivery_failed" | "expired"
        )
    }
}

fn hex_user(user: &str) -> String {
    user.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// `gen --seed 5 --users 20 --scenario firewall_backlog` for `duration`: a backlog of one User opening half an
/// hour in, with its firewall change registered.
fn generate(dir: &Path, duration: &str) -> (Vec<Line>, PathBuf) {
    run_ok(
        binary()
            .args([
                "gen",
                "--seed",
                "5",
                "--duration",
                duration,
                "--users",
                "20",
            ])
            .args(["--scenario", "firewall_backlog", "-q", "--out"])
            .arg(dir),
    );
    let text = std::fs::read_to_string(dir.join("events.ndjson")).expect("events");
    let lines = text.lines().map(Line::parse).collect();
    (lines, dir.join("changes.json"))
}

fn write_lines(path: &Path, lines: &[Line]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for line in lines {
        writeln!(out, "{}", line.raw).expect("write");
    }
    out.flush().expect("flush");
}

fn body(lines: &[&Line]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend(line.raw.as_bytes());
        out.push(b'\n');
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
struct Found {
    user: String,
    kind: String,
    verdict: String,
    onset: i64,
}

fn found(incidents: &Value) -> Vec<Found> {
    incidents
        .as_array()
        .expect("incident list")
        .iter()
        .map(|i| Found {
            user: hex_user(i["user"].as_str().expect("user")),
            kind: i["kind"].as_str().expect("kind").to_owned(),
            verdict: i["verdict"].as_str().expect("verdict").to_owned(),
            onset: i["onset"].as_i64().expect("onset"),
        })
        .collect()
}

/// The incidents of `expected` that `got` lacks, and those `got` has beyond them: each expected incident matches
/// one of `got` with the same User, kind and verdict and an onset within [`ONSET_TOLERANCE_MS`].
fn differences(expected: &[Found], got: &[Found]) -> (Vec<Found>, Vec<Found>) {
    let mut extra = got.to_vec();
    let mut missing = Vec::new();
    for want in expected {
        let at = extra.iter().position(|g| {
            (&g.user, &g.kind, &g.verdict) == (&want.user, &want.kind, &want.verdict)
                && (g.onset - want.onset).abs() <= ONSET_TOLERANCE_MS
        });
        match at {
            Some(at) => {
                extra.remove(at);
            }
            None => missing.push(want.clone()),
        }
    }
    (missing, extra)
}

fn assert_same_incidents(what: &str, expected: &[Found], got: &[Found]) {
    let (missing, extra) = differences(expected, got);
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:#?}\nextra (false) {extra:#?}\nexpected {expected:#?}"
    );
}

/// What `stormwatch replay` made of a file.
struct Replayed {
    events: u64,
    late: u64,
    malformed: u64,
    incidents: Vec<Found>,
}

fn replay(events: &Path, changes: &Path) -> Replayed {
    let report = replay_report(events, changes, &events.with_extension("report.json"));
    let count = |field: &str| report["summary"][field].as_u64().unwrap_or(0);
    Replayed {
        events: count("events"),
        late: count("late"),
        malformed: count("malformed"),
        incidents: found(&report["incidents"]),
    }
}

/// `lines` written to a file in `dir` and replayed; the summary printed as `what`.
fn replay_lines(dir: &Path, what: &str, lines: &[Line], changes: &Path) -> Replayed {
    let file = dir.join(format!("{}.ndjson", what.replace(' ', "-")));
    write_lines(&file, lines);
    let replayed = replay(&file, changes);
    eprintln!(
        "{what}, replay: {} events, {} late, {} malformed of {} lines",
        replayed.events,
        replayed.late,
        replayed.malformed,
        lines.len()
    );
    replayed
}

/// A service on `dir` with the generated change register imported, and its ops and ingest tokens.
fn serve(dir: &Path, changes: &Path, extra: &[&str]) -> (Service, String, String) {
    run_ok(
        binary()
            .args(["changes", "import"])
            .arg(changes)
            .arg("--data-dir")
            .arg(dir),
    );
    let ops = token(dir, "ops", "ops", None);
    let ingest = token(dir, "exporter", "ingest", None);
    (Service::start(dir, extra), ops, ingest)
}

/// The sum of every sample of `name` (any labels) in Prometheus text; 0 when there is none.
fn total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The service's counts once it has applied `lines` lines, holds none and its watermark has passed `last_ts`.
#[derive(Debug, PartialEq)]
struct Counted {
    accepted: u64,
    events: u64,
    late: u64,
    refused: u64,
    malformed: u64,
}

fn settled(service: &Service, lines: u64, last_ts: i64) -> Counted {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, metrics) = service.get("/metrics", None);
        assert_eq!(status, 200);
        let read = |name| total(&metrics, name) as u64;
        let counted = Counted {
            accepted: read("stormwatch_ingest_lines_total"),
            events: read("stormwatch_ingest_events_total"),
            late: read("stormwatch_ingest_late_total"),
            refused: read("stormwatch_ingest_refused_total"),
            malformed: read("stormwatch_ingest_malformed_total"),
        };
        let held = read("stormwatch_ingest_held_lines");
        let watermark = total(&metrics, "stormwatch_watermark_timestamp_seconds") * 1000.0;
        let all_in = counted.accepted + counted.refused + counted.malformed >= lines;
        if all_in && held == 0 && watermark > last_ts as f64 {
            return counted;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {counted:?}, {held} held, watermark {watermark} (last line {last_ts}), {lines} sent"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Incidents the service found with onsets up to `last_ts` (replay stops at the last line; the service's
/// wall clock closes a few seconds more).
fn served_incidents(service: &Service, ops: &str, last_ts: i64) -> Vec<Found> {
    found(&service.json("/api/v1/incidents", ops))
        .into_iter()
        .filter(|i| i.onset <= last_ts)
        .collect()
}

/// Where a sender sends.
enum Channel {
    Tcp(TcpStream),
    Http { address: SocketAddr, token: String },
}

/// One sender's lines.
struct Sender {
    channel: Channel,
    due: Due,
}

/// What the HTTP answers said, summed (a TCP sender is not answered).
#[derive(Debug, Default)]
struct Answered {
    accepted: u64,
    refused: u64,
    malformed: u64,
}

/// Runs the senders at once, each on its own thread, as live exporters do: a shared clock runs from `start` at
/// `speed` milliseconds of event time per millisecond, and each sender sends its lines as they fall due, in its
/// own order. No sender waits for another, so one held back by the service (watermark alignment) never holds up
/// the others.
fn send_live(senders: Vec<Sender>, start: i64, speed: i64) -> Answered {
    let began = Instant::now();
    let failed = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            let failed = failed.clone();
            std::thread::spawn(move || {
                let mut answered = Answered::default();
                let Sender { mut channel, due } = sender;
                let mut next = 0;
                while next < due.len() && !failed.load(Ordering::Relaxed) {
                    let now = start + began.elapsed().as_millis() as i64 * speed;
                    let end = next + due[next..].partition_point(|(at, _)| *at <= now);
                    if end == next {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    let chunk: Vec<&Line> = due[next..end].iter().map(|(_, l)| l).collect();
                    match &mut channel {
                        Channel::Tcp(stream) => stream.write_all(&body(&chunk)).expect("send"),
                        Channel::Http { address, token } => {
                            let (status, answer) = request(
                                *address,
                                "POST",
                                "/api/v1/events",
                                Some(token),
                                &[],
                                &body(&chunk),
                            );
                            if status != 200 {
                                failed.store(true, Ordering::Relaxed);
                                panic!("POST /api/v1/events: {status} {answer}");
                            }
                            let answer: Value = serde_json::from_str(&answer).expect("JSON");
                            let count = |f: &str| answer[f].as_u64().unwrap_or(0);
                            answered.accepted += count("accepted");
                            answered.refused += count("refused");
                            answered.malformed += count("malformed");
                        }
                    }
                    next = end;
                    std::thread::sleep(Duration::from_millis(20));
                }
                answered
            })
        })
        .collect();
    let mut all = Answered::default();
    for thread in threads {
        let answered = thread.join().expect("sender thread");
        all.accepted += answered.accepted;
        all.refused += answered.refused;
        all.malformed += answered.malformed;
    }
    all
}

fn tcp(service: &Service) -> Channel {
    Channel::Tcp(TcpStream::connect(service.ingest).expect("connect to ingest"))
}

/// Lines, each with the time (ms on the senders' shared clock) at which it is due.
type Due = Vec<(i64, Line)>;

/// Lines due at their own time plus `delay_ms`.
fn due_at(lines: &[&Line], delay_ms: i64) -> Due {
    lines
        .iter()
        .map(|l| (l.ts + delay_ms, (*l).clone()))
        .collect()
}

/// Event-time milliseconds per wall millisecond of the live senders: the hour in 10 s.
const SPEED: i64 = 360;

/// How set B of [`two_senders`] is sent.
#[derive(Clone, Copy, PartialEq)]
enum SenderB {
    /// Over TCP, connected with A before either sends (a connection is a source from the moment it is accepted).
    Tcp,
    /// Over HTTP; with `known_first`, B's first second of lines is posted before A sends anything, so the service
    /// knows both sources from the start (an HTTP sender is known from its first post: one that first appears
    /// `lag_s` behind the others cannot be waited for before that, and its first `lag_s` seconds are late).
    Http { known_first: bool },
}

/// Two live senders, set A over TCP and set B (Users alternately), B's event time `lag_s` behind A's as they are
/// sent. Returns the service's counts and incidents.
fn two_senders(
    lines: &[Line],
    changes: &Path,
    lag_s: i64,
    sender_b: SenderB,
    dir: &Path,
) -> (Counted, Vec<Found>) {
    std::fs::create_dir_all(dir).unwrap();
    let (service, ops, ingest) = serve(dir, changes, &[]);
    let users: std::collections::BTreeSet<&str> = lines.iter().map(|l| l.user.as_str()).collect();
    let set_a: Vec<&str> = users.iter().copied().step_by(2).collect();
    let (a, mut b): (Vec<&Line>, Vec<&Line>) =
        lines.iter().partition(|l| set_a.contains(&l.user.as_str()));
    assert!(!a.is_empty() && !b.is_empty());
    let first = lines.iter().map(|l| l.ts).min().unwrap();
    let last = lines.iter().map(|l| l.ts).max().unwrap();
    let http = |token: &str| Channel::Http {
        address: service.http,
        token: token.to_owned(),
    };
    let mut answered = Answered::default();
    let mut start = first;
    if sender_b == (SenderB::Http { known_first: true }) {
        let (early, later): (Vec<&Line>, Vec<&Line>) = b.iter().partition(|l| l.ts < first + 1_000);
        answered = send_live(
            vec![Sender {
                channel: http(&ingest),
                due: due_at(&early, 0),
            }],
            first,
            SPEED,
        );
        b = later;
        start = first + lag_s * 1000 + 1_000;
    }
    let rest = send_live(
        vec![
            Sender {
                channel: tcp(&service),
                due: due_at(&a, 0),
            },
            Sender {
                channel: match sender_b {
                    SenderB::Tcp => tcp(&service),
                    SenderB::Http { .. } => http(&ingest),
                },
                due: due_at(&b, lag_s * 1000),
            },
        ],
        start,
        SPEED,
    );
    answered.accepted += rest.accepted;
    answered.refused += rest.refused;
    answered.malformed += rest.malformed;
    let posted = match sender_b {
        SenderB::Tcp => 0,
        SenderB::Http { .. } => lines.len() - a.len(),
    };
    assert_eq!(answered.accepted, posted as u64, "{answered:?}");
    assert_eq!(answered.refused + answered.malformed, 0, "{answered:?}");
    let counted = settled(&service, lines.len() as u64, last);
    (counted, served_incidents(&service, &ops, last))
}

/// 0 refused, every line counted, at most 0.5 % late, and the incidents replay finds in the merged file.
fn assert_like_replay(
    what: &str,
    lines: usize,
    expected: &Replayed,
    counted: &Counted,
    got: &[Found],
) {
    eprintln!("{what}: {counted:?} of {lines} lines");
    assert_eq!(counted.refused, 0, "{what}: {counted:?}");
    assert_eq!(
        counted.events, lines as u64,
        "{what}: every line counted: {counted:?}"
    );
    assert!(
        counted.late * 200 <= lines as u64,
        "{what}: at most 0.5 % late: {counted:?} of {lines}"
    );
    assert_same_incidents(what, &expected.incidents, got);
}

fn generated_1h(root: &Path) -> (Vec<Line>, PathBuf, Replayed) {
    let (lines, changes) = generate(&root.join("gen"), "1h");
    let expected = replay(&root.join("gen/events.ndjson"), &changes);
    assert_eq!(expected.events, lines.len() as u64);
    assert_eq!(expected.late, 0, "the generated file has no late line");
    assert!(!expected.incidents.is_empty(), "the file has an incident");
    (lines, changes, expected)
}

/// The issue's two live senders: TCP and HTTP at once, the HTTP sender 30 s behind, give the incidents replay finds
/// in the merged file, refuse nothing and make at most 0.5 % of lines late. (A sender that first appears 30 s behind
/// one already sending makes its first 30 s late, about 0.3-0.45 % of this file at this pace: it cannot be waited for
/// before it is known. So both are known from the start here.)
#[test]
fn two_live_senders_30_s_apart_find_what_replay_finds() {
    let root = tempfile::tempdir().unwrap();
    let (lines, changes, expected) = generated_1h(root.path());
    let known_first = SenderB::Http { known_first: true };
    let (counted, incidents) = two_senders(
        &lines,
        &changes,
        30,
        known_first,
        &root.path().join("serve"),
    );
    assert_like_replay("lag 30 s", lines.len(), &expected, &counted, &incidents);
}

/// The issue's two TCP senders, one 30 s behind the other, give the incidents replay finds in the merged file. No
/// line is sent early to make the second known: a connection is waited for from the moment it is accepted.
#[test]
fn two_tcp_senders_30_s_apart_find_what_replay_finds() {
    let root = tempfile::tempdir().unwrap();
    let (lines, changes, expected) = generated_1h(root.path());
    let (counted, incidents) = two_senders(
        &lines,
        &changes,
        30,
        SenderB::Tcp,
        &root.path().join("serve"),
    );
    assert_like_replay("TCP lag 30 s", lines.len(), &expected, &counted, &incidents);
}

/// The lag swept: both senders known from the start, the HTTP one 0, 10 and 55 s behind (a minute is as far as the
/// watermark waits for an exporter clock).
#[test]
#[ignore = "slow: three live runs of the hour (scripts/test-all runs it)"]
fn two_live_senders_at_lags_up_to_55_s_find_what_replay_finds() {
    let root = tempfile::tempdir().unwrap();
    let (lines, changes, expected) = generated_1h(root.path());
    for lag in [0, 10, 55] {
        let dir = root.path().join(format!("serve-{lag}"));
        let (counted, incidents) = two_senders(
            &lines,
            &changes,
            lag,
            SenderB::Http { known_first: true },
            &dir,
        );
        assert_like_replay(
            &format!("lag {lag} s"),
            lines.len(),
            &expected,
            &counted,
            &incidents,
        );
    }
}

/// Sends `lines` over one TCP connection, flat out, and waits for the service to settle.
fn serve_over_tcp(lines: &[Line], changes: &Path, dir: &Path) -> (Counted, Vec<Found>) {
    std::fs::create_dir_all(dir).unwrap();
    let (service, ops, _) = serve(dir, changes, &[]);
    let all: Vec<&Line> = lines.iter().collect();
    service.send_tcp(&body(&all));
    let last = lines.iter().map(|l| l.ts).max().unwrap();
    let counted = settled(&service, lines.len() as u64, last);
    (counted, served_incidents(&service, &ops, last))
}

/// The issue's stepped exporter: the outbound node of one User (the backlog's) steps its clock back 45 minutes
/// for 40 minutes, so that User's queue lines are stamped 45 minutes early while its requests and depth samples,
/// and every other User's lines, are right. Replay refuses nothing, the only lines that may be late are the
/// stepped exporter's, and the incidents are those of the unshifted file (no false page, the backlog still
/// found); `serve` over TCP counts the same lines, the same late lines and finds the same incidents.
#[test]
fn one_exporter_stepping_back_45_minutes_pages_nothing_false_in_replay_or_serve() {
    let root = tempfile::tempdir().unwrap();
    let (lines, changes, expected) = generated_1h(root.path());
    let user = expected.incidents[0].user.clone();
    let first = lines.iter().map(|l| l.ts).min().unwrap();
    let stretch = first + 10 * MINUTE_MS..first + 50 * MINUTE_MS;
    let mut stepped = 0u64;
    let shifted: Vec<Line> = lines
        .iter()
        .map(|l| {
            if l.user == user && l.is_queue_line() && stretch.contains(&l.ts) {
                stepped += 1;
                l.stamped(l.ts - 45 * MINUTE_MS)
            } else {
                l.clone()
            }
        })
        .collect();
    assert!(stepped > 1_000, "{stepped} lines stepped");
    let replayed = replay_lines(root.path(), "stepped exporter", &shifted, &changes);
    assert_eq!(replayed.events, lines.len() as u64, "none refused");
    assert_eq!(replayed.malformed, 0);
    assert!(
        replayed.late <= stepped && replayed.late * 200 <= lines.len() as u64,
        "late lines can only be the stepped exporter's, and few: {} late, {stepped} stepped",
        replayed.late
    );
    assert_same_incidents("replay, stepped", &expected.incidents, &replayed.incidents);

    let (counted, incidents) = serve_over_tcp(&shifted, &changes, &root.path().join("serve"));
    eprintln!("stepped exporter, serve: {counted:?}");
    assert_eq!(counted.refused, 0, "{counted:?}");
    assert_eq!(
        (counted.events, counted.late),
        (replayed.events, replayed.late),
        "serve counts what replay counts"
    );
    assert_same_incidents("serve, stepped", &expected.incidents, &incidents);
}

/// The live stream of the hour with 20 minutes missing (an export gap), and after the gap those 20 minutes sent
/// again ten times as fast (the backfill), interleaved with the live lines that follow: each line with the time
/// it is sent at, in sending order.
fn gap_and_backfill(lines: &[Line], gap: std::ops::Range<i64>) -> (Due, Due) {
    let (backfill, live): (Vec<&Line>, Vec<&Line>) =
        lines.iter().partition(|l| gap.contains(&l.ts));
    let backfill = backfill
        .into_iter()
        .map(|l| (gap.end + (l.ts - gap.start) / 10, l.clone()))
        .collect();
    (due_at(&live, 0), backfill)
}

/// The issue's backfill: a 20-minute export gap, then the gap's lines sent fast beside the live stream. Replay of
/// the merged file refuses nothing, counts every line and raises no incident the unshifted file does not; `serve`
/// with the backfill on a second TCP connection does the same.
#[test]
fn a_20_minute_gap_backfilled_beside_the_live_stream_loses_nothing_and_pages_nothing_false() {
    let root = tempfile::tempdir().unwrap();
    let (lines, changes, expected) = generated_1h(root.path());
    let first = lines.iter().map(|l| l.ts).min().unwrap();
    let gap = first + 5 * MINUTE_MS..first + 25 * MINUTE_MS;
    let (mut live, backfill) = gap_and_backfill(&lines, gap.clone());
    let mut merged: Vec<&(i64, Line)> = live.iter().chain(&backfill).collect();
    merged.sort_by_key(|(due, _)| *due);
    let merged: Vec<Line> = merged.into_iter().map(|(_, l)| l.clone()).collect();
    let replayed = replay_lines(root.path(), "gap and backfill", &merged, &changes);
    assert_eq!(
        replayed.events,
        lines.len() as u64,
        "every line counted, none refused"
    );
    assert_eq!(replayed.malformed, 0);
    let (_, extra) = differences(&expected.incidents, &replayed.incidents);
    assert!(extra.is_empty(), "replay: false incidents {extra:#?}");
    eprintln!(
        "replay: {:?} (unshifted {:?})",
        replayed.incidents, expected.incidents
    );

    let dir = root.path().join("serve");
    std::fs::create_dir_all(&dir).unwrap();
    let (service, ops, _) = serve(&dir, &changes, &[]);
    // The live stream resumes first: the backfill starts once the service has the live stream's first ten seconds
    // after the gap.
    let resumed = gap.end + 10_000;
    let later = live.split_off(live.partition_point(|(due, _)| *due < resumed));
    let stream = TcpStream::connect(service.ingest).expect("connect to ingest");
    let again = stream.try_clone().expect("the same connection");
    send_live(
        vec![Sender {
            channel: Channel::Tcp(stream),
            due: live.clone(),
        }],
        first,
        SPEED,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while total(
        &service.get("/metrics", None).1,
        "stormwatch_ingest_lines_total",
    ) < live.len() as f64
    {
        assert!(
            Instant::now() < deadline,
            "the live stream's start not applied"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let backfill = backfill
        .into_iter()
        .map(|(due, l)| (due + 10_000, l))
        .collect();
    send_live(
        vec![
            Sender {
                channel: Channel::Tcp(again),
                due: later,
            },
            Sender {
                channel: tcp(&service),
                due: backfill,
            },
        ],
        resumed,
        SPEED,
    );
    let last = lines.iter().map(|l| l.ts).max().unwrap();
    let counted = settled(&service, lines.len() as u64, last);
    let incidents = served_incidents(&service, &ops, last);
    eprintln!("gap and backfill, serve: {counted:?}; {incidents:?}");
    assert_eq!(counted.refused, 0, "{counted:?}");
    assert_eq!(
        counted.events,
        lines.len() as u64,
        "every line counted: {counted:?}"
    );
    let (_, extra) = differences(&expected.incidents, &incidents);
    assert!(extra.is_empty(), "serve: false incidents {extra:#?}");
}

const AHEAD_USER: &str = "90-B3-D5-1F-30-01-00-0D";

/// Two Users' healthy traffic for `seconds` (seconds after T0), and a third User's queue exporter, ten minutes
/// ahead, sending one line every 5 s from second 110 on. Lines, and how many.
fn traffic_with_an_exporter_ahead(seconds: std::ops::Range<i64>) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    for second in seconds {
        out.extend(firewall_lines(second..second + 1, (i64::MAX, i64::MAX)));
        if second >= 110 && second % 5 == 0 {
            let ts = T0 + second * 1000 + 600_000 + 300;
            out.extend(
                format!(r#"{{"ts":{ts},"user":"{AHEAD_USER}","event":"queued","count":7}}"#)
                    .as_bytes(),
            );
            out.push(b'\n');
        }
    }
    let lines = out.iter().filter(|&&b| b == b'\n').count() as u64;
    (out, lines)
}

/// Waits until `check` holds for the service's metrics page; the page.
fn wait_metrics(service: &Service, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, page) = service.get("/metrics", None);
        if status == 200 && check(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "{what}: last {status}\n{page}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn journal_inode(data_dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(data_dir.join("journal.bin")).map_or(0, |m| m.ino())
}

/// The issue's crash: held lines were reported as accepted but were neither in the snapshot nor in the journal
/// (cut at each snapshot), so kill -9 right after a snapshot lost them. Here an exporter ten minutes ahead has sent
/// two lines (too few to learn its offset: they wait for more), a snapshot is taken while they are held, the service
/// is killed at once and restarted on the same data, and more traffic settles them: the engine's count of lines is
/// every line the service accepted before the kill and after.
#[test]
fn kill_9_right_after_a_snapshot_with_lines_held_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--snapshot-every", "1"];
    let mut service = Service::start(dir.path(), &args);
    let (before, sent_before) = traffic_with_an_exporter_ahead(0..120);
    service.send_tcp(&before);
    let page = wait_metrics(&service, "two lines held", |m| {
        total(m, "stormwatch_ingest_lines_total") as u64 == sent_before
            && total(m, "stormwatch_ingest_held_lines") == 2.0
            && total(m, "stormwatch_ingest_events_total") as u64 == sent_before - 2
    });
    let accepted_before = total(&page, "stormwatch_ingest_lines_total") as u64;
    // A snapshot after the lines were held: the journal starts a new file (renamed over the old) once it is saved.
    let journal = journal_inode(dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    while journal_inode(dir.path()) == journal {
        assert!(Instant::now() < deadline, "no snapshot taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    service.kill_hard();

    let service = Service::start(dir.path(), &args);
    service.wait_status("/readyz", 200, 60, |_| true);
    let (after, sent_after) = traffic_with_an_exporter_ahead(120..300);
    service.send_tcp(&after);
    // Settled: every line in, none held, and a tick since the watermark passed the last line (the idle clock closes
    // the last seconds), so the engine's count is published.
    let page = wait_metrics(&service, "every line settled", |m| {
        total(m, "stormwatch_ingest_lines_total") as u64 == sent_after
            && total(m, "stormwatch_ingest_held_lines") == 0.0
            && total(m, "stormwatch_watermark_timestamp_seconds") * 1000.0 >= (T0 + 300_000) as f64
    });
    assert_eq!(total(&page, "stormwatch_ingest_refused_total"), 0.0);
    assert_eq!(
        total(&page, "stormwatch_ingest_events_total") as u64,
        accepted_before + sent_after,
        "lines counted after kill -9 and restart: {accepted_before} accepted before, {sent_after} after"
    );
}
