//! Validation of one notice in its JSON form against `docs/changes.md`: every rule, and the field it names when broken.

use serde_json::{Map, Value};

use super::notice::{Category, ChangeNotice, ChangeOwner, ChangeStatus, Expected, parse_direction};
use crate::telemetry::Srv;

/// Why one notice was refused: the field (a JSON path such as `expected.rate_factor`, or empty when the record as a
/// whole is wrong) and a reason a person can act on.
#[derive(Clone, Eq, PartialEq, Debug, thiserror::Error)]
#[error("{}{reason}", field_prefix(field))]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("field `{field}`: ")
    }
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Checks one notice object and builds the notice. Unknown fields are ignored; `null` counts as absent.
impl TryFrom<&Value> for ChangeNotice {
    type Error = FieldError;

    fn try_from(value: &Value) -> Result<ChangeNotice, FieldError> {
        notice_from_json(value)
    }
}

impl<'de> serde::Deserialize<'de> for ChangeNotice {
    /// Validates as `TryFrom<&Value>` does, so a bad notice fails naming the field.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        ChangeNotice::try_from(&value).map_err(serde::de::Error::custom)
    }
}

fn notice_from_json(value: &Value) -> Result<ChangeNotice, FieldError> {
    let Value::Object(object) = value else {
        return Err(FieldError::new(
            "",
            format!("expected a JSON object, got {}", describe(value)),
        ));
    };
    let id = required_text(object, "id")?.trim().to_owned();
    let user = required_text(object, "user")?;
    let owner = ChangeOwner::parse(user.trim()).ok_or_else(|| {
        FieldError::new(
            "user",
            format!("`{user}` is neither an EUI-64 (16 hex digits) nor `DCC`"),
        )
    })?;
    let title = required_text(object, "title")?.to_owned();
    let category = required_text(object, "category")?;
    let category = Category::parse(category).ok_or_else(|| {
        FieldError::new(
            "category",
            format!("`{category}` is not one of {}", Category::names()),
        )
    })?;
    let start_ms = time_field(object, "start")?;
    let end_ms = time_field(object, "end")?;
    if end_ms < start_ms {
        let end = optional_text(object, "end")?.unwrap_or_default();
        let start = optional_text(object, "start")?.unwrap_or_default();
        return Err(FieldError::new(
            "end",
            format!("`{end}` is before start `{start}`"),
        ));
    }
    let status = match optional_text(object, "status")? {
        None => ChangeStatus::default(),
        Some(text) => ChangeStatus::parse(text).ok_or_else(|| {
            FieldError::new(
                "status",
                format!("`{text}` is not one of {}", ChangeStatus::names()),
            )
        })?,
    };
    let srvs = srvs_field(object)?;
    let expected = expected_field(object)?;
    let contact = optional_text(object, "contact")?
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned);
    Ok(ChangeNotice {
        id,
        owner,
        title,
        category,
        start_ms,
        end_ms,
        status,
        srvs,
        expected,
        contact,
    })
}

fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

fn optional_text<'a>(
    object: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, FieldError> {
    match present(object, key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(FieldError::new(
            key,
            format!("expected a string, got {}", describe(other)),
        )),
    }
}

/// A required string; blank counts as missing, since an empty id or title identifies nothing.
fn required_text<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a str, FieldError> {
    match optional_text(object, key)? {
        Some(text) if !text.trim().is_empty() => Ok(text),
        Some(_) => Err(FieldError::new(key, "is empty")),
        None => Err(FieldError::new(key, "missing")),
    }
}

fn time_field(object: &Map<String, Value>, key: &str) -> Result<i64, FieldError> {
    let text = required_text(object, key)?;
    crate::rfc3339::parse_ms(text.trim())
        .ok_or_else(|| FieldError::new(key, format!("`{text}` is not an RFC 3339 time")))
}

fn srvs_field(object: &Map<String, Value>) -> Result<Vec<Srv>, FieldError> {
    let items = match present(object, "srvs") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            let reason = format!("expected an array of strings, got {}", describe(other));
            return Err(FieldError::new("srvs", reason));
        }
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(text) => Srv::parse(text.trim()).ok_or_else(|| {
                FieldError::new(
                    "srvs",
                    format!("`{text}` is not an SRV (dotted numbers such as 4.1.1)"),
                )
            }),
            other => Err(FieldError::new(
                "srvs",
                format!("expected an SRV string, got {}", describe(other)),
            )),
        })
        .collect()
}

fn expected_field(object: &Map<String, Value>) -> Result<Option<Expected>, FieldError> {
    let expected = match present(object, "expected") {
        None => return Ok(None),
        Some(Value::Object(expected)) => expected,
        Some(other) => {
            let reason = format!(
                "expected an object with direction and rate_factor, got {}",
                describe(other)
            );
            return Err(FieldError::new("expected", reason));
        }
    };
    let direction = match present(expected, "direction") {
        None => return Err(FieldError::new("expected.direction", "missing")),
        Some(Value::String(text)) => parse_direction(text).ok_or_else(|| {
            FieldError::new(
                "expected.direction",
                format!("`{text}` is not one of to_dsp, to_user"),
            )
        })?,
        Some(other) => {
            let reason = format!("expected a string, got {}", describe(other));
            return Err(FieldError::new("expected.direction", reason));
        }
    };
    let rate_factor = match present(expected, "rate_factor") {
        None => return Err(FieldError::new("expected.rate_factor", "missing")),
        Some(Value::Number(number)) => number.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(text)) => {
            let reason = format!("`{text}` is a string, expected a number such as 2.5");
            return Err(FieldError::new("expected.rate_factor", reason));
        }
        Some(other) => {
            let reason = format!("expected a number, got {}", describe(other));
            return Err(FieldError::new("expected.rate_factor", reason));
        }
    };
    // Below 1 is allowed: a change may declare that traffic will drop.
    if !(rate_factor.is_finite() && rate_factor > 0.0) {
        let reason = format!("{rate_factor} is not a finite number greater than 0");
        return Err(FieldError::new("expected.rate_factor", reason));
    }
    Ok(Some(Expected {
        direction,
        rate_factor,
    }))
}

/// A JSON value's type and, for scalars, the value itself, as error messages show it.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("boolean {flag}"),
        Value::Number(number) => format!("number {number}"),
        Value::String(text) => format!("string `{text}`"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::incident::TrafficDirection;
    use crate::telemetry::Eui64;

    fn valid() -> Value {
        json!({
            "id": "CHG-2026-0042", "user": "90-B3-D5-1F-30-01-00-07", "title": "Firewall rule migration",
            "category": "network", "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T10:00:00Z",
        })
    }

    fn with(key: &str, value: Value) -> Value {
        let mut notice = valid();
        notice[key] = value;
        notice
    }

    fn without(key: &str) -> Value {
        let mut notice = valid();
        if let Some(object) = notice.as_object_mut() {
            object.remove(key);
        }
        notice
    }

    fn rejected_field(value: &Value) -> String {
        match ChangeNotice::try_from(value) {
            Ok(notice) => panic!("accepted {notice:?}"),
            Err(error) => error.field,
        }
    }

    #[test]
    fn a_minimal_notice_takes_the_defaults() {
        let notice = ChangeNotice::try_from(&valid()).unwrap();
        assert_eq!(notice.id, "CHG-2026-0042");
        assert_eq!(
            notice.owner,
            ChangeOwner::User(Eui64(0x90B3_D51F_3001_0007))
        );
        assert_eq!(notice.category, Category::Network);
        assert_eq!(notice.end_ms - notice.start_ms, 3_600_000);
        assert_eq!(notice.status, ChangeStatus::Planned);
        assert!(notice.srvs.is_empty() && notice.expected.is_none() && notice.contact.is_none());
    }

    #[test]
    fn every_required_field_must_be_present_and_a_non_blank_string() {
        for key in ["id", "user", "title", "category", "start", "end"] {
            assert_eq!(rejected_field(&without(key)), key);
            assert_eq!(rejected_field(&with(key, Value::Null)), key);
            assert_eq!(rejected_field(&with(key, json!(" "))), key);
            assert_eq!(rejected_field(&with(key, json!(42))), key);
        }
    }

    #[test]
    fn user_is_an_eui64_or_dcc() {
        assert_eq!(rejected_field(&with("user", json!("ACME Energy"))), "user");
        assert_eq!(
            rejected_field(&with("user", json!("90-B3-D5-1F-30-01-00"))),
            "user"
        );
        let dcc = ChangeNotice::try_from(&with("user", json!("DCC"))).unwrap();
        assert_eq!(dcc.owner, ChangeOwner::Dcc);
        let colons =
            ChangeNotice::try_from(&with("user", json!("90:b3:d5:1f:30:01:00:07"))).unwrap();
        assert_eq!(
            colons.owner,
            ChangeOwner::User(Eui64(0x90B3_D51F_3001_0007))
        );
    }

    #[test]
    fn category_and_status_must_be_known() {
        assert_eq!(
            rejected_field(&with("category", json!("firewall"))),
            "category"
        );
        assert_eq!(rejected_field(&with("status", json!("done"))), "status");
        assert_eq!(rejected_field(&with("status", json!(1))), "status");
        let status = ChangeNotice::try_from(&with("status", json!("rolled_back")))
            .unwrap()
            .status;
        assert_eq!(status, ChangeStatus::RolledBack);
    }

    #[test]
    fn times_are_rfc3339_and_end_is_not_before_start() {
        let error = ChangeNotice::try_from(&with("start", json!("2026-13-01"))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "field `start`: `2026-13-01` is not an RFC 3339 time"
        );
        assert_eq!(
            rejected_field(&with("end", json!("2026-03-10 10:00"))),
            "end"
        );
        assert_eq!(
            rejected_field(&with("start", json!(1_773_133_200_000_i64))),
            "start"
        );
        assert_eq!(
            rejected_field(&with("end", json!("2026-03-10T08:59:59Z"))),
            "end"
        );
        let offset =
            ChangeNotice::try_from(&with("end", json!("2026-03-10T10:00:00+01:00"))).unwrap();
        assert_eq!(offset.end_ms, offset.start_ms, "an empty window is allowed");
    }

    #[test]
    fn srvs_are_an_array_of_srv_strings() {
        let notice = ChangeNotice::try_from(&with("srvs", json!(["4.1.1", "11.3"]))).unwrap();
        assert_eq!(
            notice.srvs,
            vec![Srv::parse("4.1.1").unwrap(), Srv::parse("11.3").unwrap()]
        );
        for bad in [json!("4.1.1"), json!(["4.1.x"]), json!([4.1]), json!([""])] {
            assert_eq!(rejected_field(&with("srvs", bad)), "srvs");
        }
    }

    #[test]
    fn expected_needs_a_direction_and_a_positive_finite_rate_factor() {
        let ok = with(
            "expected",
            json!({"direction": "to_user", "rate_factor": 0.5}),
        );
        let expected = ChangeNotice::try_from(&ok).unwrap().expected;
        assert_eq!(
            expected,
            Some(Expected {
                direction: TrafficDirection::ToUser,
                rate_factor: 0.5
            })
        );
        let cases = [
            (json!("8x"), "expected"),
            (json!({"rate_factor": 2}), "expected.direction"),
            (
                json!({"direction": "inbound", "rate_factor": 2}),
                "expected.direction",
            ),
            (
                json!({"direction": 1, "rate_factor": 2}),
                "expected.direction",
            ),
            (json!({"direction": "to_dsp"}), "expected.rate_factor"),
            (
                json!({"direction": "to_dsp", "rate_factor": 0}),
                "expected.rate_factor",
            ),
            (
                json!({"direction": "to_dsp", "rate_factor": -2}),
                "expected.rate_factor",
            ),
            (
                json!({"direction": "to_dsp", "rate_factor": "2.5"}),
                "expected.rate_factor",
            ),
        ];
        for (bad, field) in cases {
            assert_eq!(rejected_field(&with("expected", bad)), field);
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_optional_nulls_are_absent() {
        let mut notice = with("ticket", json!({"system": "ServiceNow"}));
        notice["contact"] = Value::Null;
        notice["expected"] = Value::Null;
        notice["srvs"] = Value::Null;
        assert!(ChangeNotice::try_from(&notice).is_ok());
        assert_eq!(rejected_field(&with("contact", json!(["a"]))), "contact");
    }

    #[test]
    fn a_record_that_is_not_an_object_is_refused_as_a_whole() {
        let error = ChangeNotice::try_from(&json!(["CHG-1"])).unwrap_err();
        assert_eq!(error.field, "");
        assert_eq!(error.to_string(), "expected a JSON object, got an array");
    }
}
