//! Tests of change-file loading: the contract's examples, each format's rules, file-level errors, and no panics.

use proptest::prelude::*;

use super::*;
use crate::changes::notice::{Category, ChangeNotice, ChangeOwner, ChangeStatus, Expected};
use crate::changes::records::{ChangeFileError, ChangeFormat, LoadedChanges};
use crate::incident::TrafficDirection;
use crate::telemetry::{Eui64, Srv};

/// Copies of `examples/changes.{json,csv}`, so the crate's tests do not depend on files outside it.
const EXAMPLE_JSON: &str = r#"[
  {"id": "CHG-2026-0042", "user": "90-B3-D5-1F-30-01-00-07", "title": "Firewall rule migration to new DMZ",
   "category": "network", "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T10:00:00Z",
   "status": "in_progress", "contact": "netops@example.invalid"},
  {"id": "CHG-2026-0043", "user": "90-B3-D5-1F-30-01-00-07", "title": "Bulk tariff update",
   "category": "campaign", "start": "2026-03-10T08:55:00Z", "end": "2026-03-10T09:15:00Z",
   "srvs": ["1.1.1"], "expected": {"direction": "to_dsp", "rate_factor": 1.5}},
  {"id": "DCC-PM-2026-03", "user": "DCC", "title": "DSP release R7.2", "category": "dcc_maintenance",
   "start": "2026-03-12T01:00:00Z", "end": "2026-03-12T03:00:00Z"}
]
"#;

const EXAMPLE_CSV: &str = "\
id,user,title,category,start,end,status,srvs,expected_direction,expected_rate_factor,contact
CHG-2026-0042,90-B3-D5-1F-30-01-00-07,Firewall rule migration to new DMZ,network,2026-03-10T09:00:00Z,2026-03-10T10:00:00Z,in_progress,,,,netops@example.invalid
CHG-2026-0043,90-B3-D5-1F-30-01-00-07,Bulk tariff update,campaign,2026-03-10T08:55:00Z,2026-03-10T09:15:00Z,,1.1.1,to_dsp,1.5,
DCC-PM-2026-03,DCC,DSP release R7.2,dcc_maintenance,2026-03-12T01:00:00Z,2026-03-12T03:00:00Z,,,,,
";

const HEADER: &str = "id,user,title,category,start,end,status,srvs,expected_direction,expected_rate_factor,contact\n";

fn parse(text: &str, format: ChangeFormat, source: &str) -> LoadedChanges {
    match parse_changes(text.as_bytes(), format, source) {
        Ok(loaded) => loaded,
        Err(error) => panic!("{error}"),
    }
}

/// The rejections as (record, field) pairs, which is what each test is about.
fn rejections(loaded: &LoadedChanges) -> Vec<(usize, String)> {
    loaded
        .rejected
        .iter()
        .map(|r| (r.record, r.field.clone()))
        .collect()
}

#[test]
fn the_contract_examples_load_fully_and_agree() {
    let json = parse(EXAMPLE_JSON, ChangeFormat::Json, "changes.json");
    let csv = parse(EXAMPLE_CSV, ChangeFormat::Csv, "changes.csv");
    assert_eq!(json.rejected, vec![]);
    assert_eq!(csv.rejected, vec![]);
    assert_eq!(json.notices.len(), 3);
    assert_eq!(json.notices, csv.notices);

    let campaign = &json.notices[1];
    assert_eq!(
        campaign.owner,
        ChangeOwner::User(Eui64(0x90B3_D51F_3001_0007))
    );
    assert_eq!(campaign.category, Category::Campaign);
    assert_eq!(campaign.status, ChangeStatus::Planned);
    assert_eq!(campaign.srvs, vec![Srv::parse("1.1.1").unwrap()]);
    let expected = Expected {
        direction: TrafficDirection::ToDsp,
        rate_factor: 1.5,
    };
    assert_eq!(campaign.expected, Some(expected));
    assert_eq!(json.notices[2].owner, ChangeOwner::Dcc);
    assert_eq!(
        json.notices[0].contact.as_deref(),
        Some("netops@example.invalid")
    );
}

#[test]
fn ndjson_skips_blank_lines_and_rejects_only_the_broken_ones() {
    let array: Vec<serde_json::Value> = serde_json::from_str(EXAMPLE_JSON).unwrap();
    let lines: Vec<String> = array.iter().map(|object| object.to_string()).collect();
    let text = format!(
        "{}\n\n  \r\n{{\"id\": \"CHG-9\", broken\n{}\r\n{}\n",
        lines[0], lines[1], lines[2]
    );
    let loaded = parse(&text, ChangeFormat::Ndjson, "changes.ndjson");
    let example = parse(EXAMPLE_JSON, ChangeFormat::Json, "changes.json");
    assert_eq!(loaded.notices, example.notices);
    assert_eq!(rejections(&loaded), [(4, String::new())]);
    let display = loaded.rejected[0].to_string();
    assert!(
        display.starts_with("changes.ndjson line 4: not valid JSON at column"),
        "{display}"
    );
    let mislabelled = parse(&text, ChangeFormat::Json, "changes.json");
    assert_eq!(mislabelled.notices, example.notices);
    assert!(
        mislabelled.rejected[0]
            .to_string()
            .starts_with("changes.json line 4: ")
    );
}

#[test]
fn a_bad_notice_is_rejected_with_its_place_id_and_field_and_the_others_load() {
    let text = format!(
        "{HEADER}{}\nCHG-2026-0044,DCC,Bad start,network,2026-13-01,2026-03-10T10:00:00Z,,,,,\n",
        EXAMPLE_CSV
            .lines()
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let loaded = parse(&text, ChangeFormat::Csv, "changes.csv");
    assert_eq!(loaded.notices.len(), 2);
    assert_eq!(
        loaded.rejected[0].to_string(),
        "changes.csv line 4 (CHG-2026-0044): field `start`: `2026-13-01` is not an RFC 3339 time"
    );

    let json = r#"[{"id": "A"}, 7, {"id": "CHG-1", "user": "DCC", "title": "t", "category": "other",
        "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T09:00:00Z"}]"#;
    let loaded = parse(json, ChangeFormat::Json, "changes.json");
    assert_eq!(loaded.notices.len(), 1);
    assert_eq!(
        rejections(&loaded),
        [(1, "user".to_owned()), (2, String::new())]
    );
    assert_eq!(
        loaded.rejected[0].to_string(),
        "changes.json element 1 (A): field `user`: missing"
    );
}

#[test]
fn the_same_id_later_in_a_file_updates_the_earlier_notice_in_the_register() {
    let text = format!(
        "{HEADER}C1,DCC,first,network,2026-03-10T09:00:00Z,2026-03-10T10:00:00Z,,,,,\n\
         C2,DCC,other,network,2026-03-10T09:30:00Z,2026-03-10T10:00:00Z,,,,,\n\
         C1,DCC,second,network,2026-03-10T11:00:00Z,2026-03-10T12:00:00Z,cancelled,,,,\n"
    );
    let loaded = parse(&text, ChangeFormat::Csv, "c.csv");
    assert_eq!(
        loaded.notices.len(),
        3,
        "the file's records are all kept, in order"
    );
    let register: crate::changes::ChangeRegister = loaded.notices.into_iter().collect();
    assert_eq!(register.len(), 2);
    let c1 = register.get("C1").unwrap();
    assert_eq!(
        (c1.title.as_str(), c1.status),
        ("second", ChangeStatus::Cancelled)
    );
    let order: Vec<&str> = register.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(order, ["C2", "C1"]);
}

#[test]
fn csv_cells_follow_the_contract_columns() {
    let rows = [
        // srvs split by `;`, spaces trimmed, empty items ignored.
        "C1,DCC,t,network,2026-03-10T09:00:00Z,2026-03-10T10:00:00Z,completed, 4.1.1 ;8.1.1;,,,",
        "C2,DCC,t,network,2026-03-10T09:00:00Z,2026-03-10T10:00:00Z,,4.1.x,,,",
        "C3,DCC,t,network,2026-03-10T09:00:00Z,2026-03-10T10:00:00Z,,,to_dsp,,",
        "C4,DCC,t,network,2026-03-10T09:00:00Z,2026-03-10T10:00:00Z,,,,2,",
        "C5,DCC,t,network,2026-03-10T09:00:00Z,2026-03-10T10:00:00Z,,,to_dsp,lots,",
        "C6,DCC,t,network,2026-03-10T09:00:00Z,2026-03-10T10:00:00Z,,,up,2,",
        "C7,DCC,t,network,2026-03-10T09:00:00Z,2026-03-10T10:00:00Z,,,to_dsp,-1,",
        "C8,DCC,t,network,2026-03-10T09:00:00Z",
        ",DCC,t,network,2026-03-10T09:00:00Z,2026-03-10T10:00:00Z,,,,,",
    ];
    let loaded = parse(
        &format!("{HEADER}{}\n", rows.join("\n")),
        ChangeFormat::Csv,
        "c.csv",
    );
    assert_eq!(loaded.notices.len(), 1);
    let srvs: Vec<String> = loaded.notices[0].srvs.iter().map(Srv::to_string).collect();
    assert_eq!(srvs, ["4.1.1", "8.1.1"]);
    let expected: Vec<(usize, String)> = [
        (3, "srvs"),
        (4, "expected_rate_factor"),
        (5, "expected_direction"),
        (6, "expected_rate_factor"),
        (7, "expected_direction"),
        (8, "expected_rate_factor"),
        (9, ""),
        (10, "id"),
    ]
    .into_iter()
    .map(|(line, field)| (line, field.to_owned()))
    .collect();
    assert_eq!(rejections(&loaded), expected);
    assert_eq!(loaded.rejected[6].id.as_deref(), Some("C8"));
}

#[test]
fn csv_columns_may_come_in_any_order_and_optional_ones_may_be_left_out() {
    let text = "Title , ID,user,category,start,end,ticket\n\
                \"Move, then restart\",C1,DCC,endpoint,2026-03-10T09:00:00Z,2026-03-10T10:00:00Z,T-77\n";
    let loaded = parse(text, ChangeFormat::Csv, "c.csv");
    assert_eq!(loaded.rejected, vec![]);
    assert_eq!(loaded.notices[0].title, "Move, then restart");
    assert_eq!(loaded.notices[0].category, Category::Endpoint);
}

#[test]
fn files_that_are_not_json_or_csv_of_notices_are_errors_naming_the_place() {
    let broken = "[\n  {\"id\": \"CHG-1\",\n  \"user\" \"DCC\"}\n]";
    let error = parse_changes(broken.as_bytes(), ChangeFormat::Json, "changes.json").unwrap_err();
    assert!(
        matches!(
            error,
            ChangeFileError::Malformed {
                line: Some(3),
                column: Some(10),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("change file changes.json line 3 column 10: not valid JSON: ")
    );

    let error = parse_changes(b"42", ChangeFormat::Json, "x.json").unwrap_err();
    assert_eq!(
        error.to_string(),
        "change file x.json: the top level is a number, expected an array of notice objects"
    );

    let error = parse_changes(b"id,title\nC1,t\n", ChangeFormat::Csv, "x.csv").unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(
            "change file x.csv line 1: the CSV header lacks required column(s) `user`, `category`"
        ),
        "{text}"
    );
}

#[test]
fn blank_files_hold_no_notices_and_a_bom_is_ignored() {
    for format in [ChangeFormat::Json, ChangeFormat::Ndjson, ChangeFormat::Csv] {
        assert_eq!(parse(" \n", format, "empty"), LoadedChanges::default());
    }
    let with_bom = format!("\u{feff}{EXAMPLE_CSV}");
    assert_eq!(
        parse(&with_bom, ChangeFormat::Csv, "bom.csv").notices.len(),
        3
    );
    assert_eq!(
        parse(
            &format!("\u{feff}{EXAMPLE_JSON}"),
            ChangeFormat::Json,
            "bom.json"
        )
        .notices
        .len(),
        3
    );
}

fn arb_notice() -> impl Strategy<Value = ChangeNotice> {
    let owner = prop_oneof![
        Just(ChangeOwner::Dcc),
        any::<u64>().prop_map(|v| ChangeOwner::User(Eui64(v)))
    ];
    let srv = prop::collection::vec(0u8..=254, 1..=4).prop_map(|parts| {
        let text: Vec<String> = parts.iter().map(u8::to_string).collect();
        Srv::parse(&text.join(".")).unwrap_or_default()
    });
    let expected = prop::option::of((any::<bool>(), 1u32..100_000).prop_map(
        |(to_dsp, hundredths)| Expected {
            direction: if to_dsp {
                TrafficDirection::ToDsp
            } else {
                TrafficDirection::ToUser
            },
            rate_factor: f64::from(hundredths) / 100.0,
        },
    ));
    (
        ("[A-Z]{3}-[0-9]{1,6}", owner, "[a-zA-Z0-9][ -~]{0,40}"),
        (
            prop::sample::select(Category::ALL),
            prop::sample::select(ChangeStatus::ALL),
        ),
        (0i64..4_102_444_800_000, 0i64..10_000_000_000),
        (
            prop::collection::vec(srv, 0..4),
            expected,
            prop::option::of("[a-z]{1,10}@example\\.invalid"),
        ),
    )
        .prop_map(
            |(
                (id, owner, title),
                (category, status),
                (start_ms, length),
                (srvs, expected, contact),
            )| {
                ChangeNotice {
                    id,
                    owner,
                    title,
                    category,
                    start_ms,
                    end_ms: start_ms + length,
                    status,
                    srvs,
                    expected,
                    contact,
                }
            },
        )
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for format in [ChangeFormat::Json, ChangeFormat::Ndjson, ChangeFormat::Csv] {
            let _ = parse_changes(&bytes, format, "fuzz");
        }
    }

    #[test]
    fn notice_like_text_never_panics(text in "[\\[\\]{}\",:;\\n a-z0-9_.-]{0,300}") {
        for format in [ChangeFormat::Json, ChangeFormat::Ndjson, ChangeFormat::Csv] {
            let _ = parse_changes(text.as_bytes(), format, "fuzz");
        }
    }

    #[test]
    fn a_notice_survives_its_json_form(notice in arb_notice()) {
        let text = serde_json::to_string(&notice).unwrap();
        let back: ChangeNotice = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &notice);
        let loaded = parse_changes(format!("[{text}]").as_bytes(), ChangeFormat::Json, "rt").unwrap();
        prop_assert_eq!(loaded.notices, vec![notice]);
    }
}
