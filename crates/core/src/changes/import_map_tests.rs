//! Unit tests of mapping imported change records onto notices.
use super::*;
use crate::changes::notice::{Category, ChangeOwner, ChangeStatus};

const SUPPLIER: &str = "90-B3-D5-1F-30-01-00-07";

fn mapping() -> FieldMapping {
    serde_json::from_value(serde_json::json!({
        "fields": {"id": "number", "title": "short_description", "start": "start_date", "end": "end_date",
                   "status": "state", "category": "category", "contact": "assigned_to"},
        "defaults": {"user": SUPPLIER, "category": "other"},
        "status": {"-2": "planned", "3": "completed", "4": "cancelled", "Scheduled": "planned"},
        "category": {"Network": "network", "Hardware": "device"},
    }))
    .unwrap()
}

#[test]
fn a_table_api_export_maps_through_the_tables_with_objects_and_utc_times() {
    let export = r#"{"result": [
        {"number": "CHG0030001", "short_description": "Firewall change", "start_date": "2026-03-16 22:00:00",
         "end_date": "2026-03-16 23:30:00", "state": "-2", "category": "Network", "type": "normal",
         "assigned_to": {"link": "https://instance.example.invalid/api/now/table/sys_user/abc", "value": "abc",
                         "display_value": "Net Ops Lead"}},
        {"number": "CHG0030002", "short_description": "Firmware", "start_date": "2026-03-17T09:00:00+01:00",
         "end_date": "2026-03-17 17:00:00", "state": "scheduled", "category": "hardware"},
        {"number": "CHG0030003", "short_description": "No category", "start_date": "2026-03-18 09:00:00",
         "end_date": "2026-03-18 10:00:00", "state": 4, "category": ""}
    ]}"#;
    let import = map_servicenow(export, &mapping()).unwrap();
    assert_eq!(import.rejected, Vec::<String>::new());
    let [first, second, third] = &import.notices[..] else {
        panic!("three notices: {:?}", import.notices);
    };
    assert_eq!(first.id, "CHG0030001");
    assert_eq!(first.owner, ChangeOwner::parse(SUPPLIER).unwrap());
    assert_eq!(first.category, Category::Network);
    assert_eq!(first.status, ChangeStatus::Planned);
    assert_eq!(
        first.start_ms,
        crate::rfc3339::parse_ms("2026-03-16T22:00:00Z").unwrap()
    );
    assert_eq!(first.contact.as_deref(), Some("abc"));
    // Labels match case-insensitively; RFC 3339 with an offset is taken as well.
    assert_eq!(
        (second.category, second.status),
        (Category::Device, ChangeStatus::Planned)
    );
    assert_eq!(
        second.start_ms,
        crate::rfc3339::parse_ms("2026-03-17T08:00:00Z").unwrap()
    );
    // A number where a string was expected is read as its text; an empty category takes the default.
    assert_eq!(
        (third.category, third.status),
        (Category::Other, ChangeStatus::Cancelled)
    );
    let display = FieldMapping {
        object_value: ObjectValue::DisplayValue,
        ..mapping()
    };
    let import = map_servicenow(export, &display).unwrap();
    assert_eq!(import.notices[0].contact.as_deref(), Some("Net Ops Lead"));
}

#[test]
fn bad_records_are_refused_one_by_one_naming_the_source_field() {
    let export = r#"{"result": [
        {"number": "CHG1", "short_description": "ok", "start_date": "2026-03-16 22:00:00", "end_date": "2026-03-16 23:00:00", "state": "-2", "category": "Network"},
        {"number": "CHG2", "short_description": "bad state", "start_date": "2026-03-16 22:00:00", "end_date": "2026-03-16 23:00:00", "state": "-1", "category": "Network"},
        {"number": "CHG3", "short_description": "bad category", "start_date": "2026-03-16 22:00:00", "end_date": "2026-03-16 23:00:00", "state": "-2", "category": "Inquiry / Help"},
        {"number": "CHG4", "short_description": "no end", "start_date": "2026-03-16 22:00:00", "state": "-2"},
        {"number": "CHG5", "short_description": "odd time", "start_date": "16/03/2026 22:00", "end_date": "2026-03-16 23:00:00"},
        {"number": "CHG6", "short_description": "backwards", "start_date": "2026-03-16 23:00:00", "end_date": "2026-03-16 22:00:00"},
        {"short_description": "no number", "start_date": "2026-03-16 22:00:00", "end_date": "2026-03-16 23:00:00"},
        "not a record"
    ]}"#;
    let import = map_servicenow(export, &mapping()).unwrap();
    assert_eq!(import.notices.len(), 1);
    let rejected = import.rejected.join("\n");
    for expected in [
        "record 2 (CHG2): field `status`: ",
        "(from `state`; add the value to the mapping's [status] table)",
        "record 3 (CHG3): field `category`: ",
        "record 4 (CHG4): no value in `end_date` (mapped to `end`)",
        "record 5 (CHG5): `start_date` = `16/03/2026 22:00` is neither RFC 3339",
        "record 6 (CHG6): field `end`",
        "record 7: no value in `number` (mapped to `id`)",
        "record 8: no value in `number`",
    ] {
        assert!(
            rejected.contains(expected),
            "missing `{expected}` in:\n{rejected}"
        );
    }
    for broken in ["", "[1", "{\"results\": []}", "42"] {
        assert!(map_servicenow(broken, &mapping()).is_err(), "{broken}");
    }
}

#[test]
fn a_csv_maps_by_its_own_column_names() {
    let mapping: FieldMapping = serde_json::from_value(serde_json::json!({
        "fields": {"id": "Change ID", "title": "Summary", "start": "Planned start", "end": "Planned end",
                   "user": "DCC User", "category": "Type", "srvs": "SRVs"},
        "category": {"Infrastructure": "network"},
    }))
    .unwrap();
    let csv = "\u{feff}Change ID,Summary,Planned start,Planned end,DCC User,Type,SRVs\n\
               RFC-1,ACL,2026-03-16T21:00:00Z,2026-03-16T22:00:00Z,90b3d51f30010009,Infrastructure,4.1.1;11.2\n\
               RFC-2,Bad user,2026-03-16T21:00:00Z,2026-03-16T22:00:00Z,ACME,Infrastructure,\n\
               RFC-3,short row\n";
    let import = map_csv(csv, &mapping).unwrap();
    assert_eq!(import.notices.len(), 1, "{:?}", import.rejected);
    assert_eq!(import.notices[0].srvs.len(), 2);
    assert_eq!(
        import.notices[0].owner.to_string(),
        "90-B3-D5-1F-30-01-00-09"
    );
    assert!(
        import.rejected[0].starts_with("line 3 (RFC-2): field `user`"),
        "{:?}",
        import.rejected
    );
    assert!(
        import.rejected[0].contains("(from `DCC User`)"),
        "{:?}",
        import.rejected
    );
    assert!(
        import.rejected[1].starts_with("line 4 (RFC-3): no value in `Planned start`"),
        "{:?}",
        import.rejected
    );
    let missing = map_csv("id,title\nA,B\n", &mapping).unwrap_err();
    assert!(missing.contains("no column `Change ID`"), "{missing}");
}
