//! The change-notice model of `docs/changes.md`, its enum names, and its JSON form for the API and the generator.

use std::fmt;

use serde::ser::{Error as _, SerializeMap};

use crate::incident::TrafficDirection;
use crate::telemetry::{Eui64, Srv};

/// Who makes a change: a User, or the DCC itself (`DCC` in files).
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum ChangeOwner {
    User(Eui64),
    Dcc,
}

impl ChangeOwner {
    /// Any EUI-64 spelling the telemetry contract allows, or `DCC` in any case.
    pub fn parse(text: &str) -> Option<ChangeOwner> {
        if text.eq_ignore_ascii_case("DCC") {
            return Some(ChangeOwner::Dcc);
        }
        Eui64::parse(text).map(ChangeOwner::User)
    }
}

impl fmt::Display for ChangeOwner {
    /// The file form: upper-case hyphenated EUI-64, or `DCC`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeOwner::User(user) => user.fmt(f),
            ChangeOwner::Dcc => f.write_str("DCC"),
        }
    }
}

/// Generates `ALL`, `as_str`, `parse`, `Display` and `Serialize` for a field-less enum named as in the contract.
macro_rules! contract_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The contract's name.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }

            /// The contract's name, exactly (names are lower-case snake_case).
            pub fn parse(text: &str) -> Option<$ty> {
                match text { $($name => Some($ty::$variant),)+ _ => None }
            }

            /// Every name, comma-separated, for error messages.
            pub fn names() -> String {
                [$($name),+].join(", ")
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

/// What a change touches; decides which anomalies it can plausibly cause.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, PartialOrd, Ord)]
pub enum Category {
    Network,
    Certificate,
    Endpoint,
    Application,
    Device,
    Campaign,
    DccMaintenance,
    Other,
}

contract_names!(Category {
    Network => "network",
    Certificate => "certificate",
    Endpoint => "endpoint",
    Application => "application",
    Device => "device",
    Campaign => "campaign",
    DccMaintenance => "dcc_maintenance",
    Other => "other",
});

impl Category {
    /// How a person would name it in a sentence ("... change fits ...").
    pub fn label(self) -> &'static str {
        match self {
            Category::DccMaintenance => "DCC maintenance",
            Category::Other => "uncategorised",
            other => other.as_str(),
        }
    }
}

#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Default, PartialOrd, Ord)]
pub enum ChangeStatus {
    #[default]
    Planned,
    InProgress,
    Completed,
    Cancelled,
    RolledBack,
}

contract_names!(ChangeStatus {
    Planned => "planned",
    InProgress => "in_progress",
    Completed => "completed",
    Cancelled => "cancelled",
    RolledBack => "rolled_back",
});

/// A traffic change declared in advance: traffic in `direction` may run at up to `rate_factor` times normal.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct Expected {
    pub direction: TrafficDirection,
    pub rate_factor: f64,
}

/// One notice of the change register. Times are milliseconds since the Unix epoch.
#[derive(Clone, PartialEq, Debug)]
pub struct ChangeNotice {
    pub id: String,
    pub owner: ChangeOwner,
    pub title: String,
    pub category: Category,
    pub start_ms: i64,
    pub end_ms: i64,
    pub status: ChangeStatus,
    pub srvs: Vec<Srv>,
    pub expected: Option<Expected>,
    pub contact: Option<String>,
}

impl ChangeNotice {
    /// A planned notice with only the contract's required fields: no SRVs, expected traffic or contact, and a
    /// title made of the category and id. Tests and tools start from it and set what they need.
    pub fn planned(
        id: &str,
        owner: ChangeOwner,
        category: Category,
        start_ms: i64,
        end_ms: i64,
    ) -> ChangeNotice {
        ChangeNotice {
            id: id.to_owned(),
            owner,
            title: format!("{} change {id}", category.label()),
            category,
            start_ms,
            end_ms,
            status: ChangeStatus::Planned,
            srvs: Vec::new(),
            expected: None,
            contact: None,
        }
    }

    /// Whether `t_ms` lies in the planned window, both ends included.
    pub fn window_contains(&self, t_ms: i64) -> bool {
        self.start_ms <= t_ms && t_ms <= self.end_ms
    }

    /// The contract's JSON object for this notice. Fails only on a time RFC 3339 cannot write (year past 9999).
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

/// `TrafficDirection` as the contract spells it (`incident.rs` gives it no name of its own).
pub fn direction_name(direction: TrafficDirection) -> &'static str {
    match direction {
        TrafficDirection::ToDsp => "to_dsp",
        TrafficDirection::ToUser => "to_user",
    }
}

pub fn parse_direction(text: &str) -> Option<TrafficDirection> {
    match text {
        "to_dsp" => Some(TrafficDirection::ToDsp),
        "to_user" => Some(TrafficDirection::ToUser),
        _ => None,
    }
}

impl serde::Serialize for ChangeNotice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let time = |ms: i64| {
            crate::rfc3339::format_ms(ms).ok_or_else(|| {
                S::Error::custom(format!("time {ms} ms is outside RFC 3339's years"))
            })
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("user", &self.owner.to_string())?;
        map.serialize_entry("title", &self.title)?;
        map.serialize_entry("category", &self.category)?;
        map.serialize_entry("start", &time(self.start_ms)?)?;
        map.serialize_entry("end", &time(self.end_ms)?)?;
        // Always written, though optional in the contract: the reader then never has to know the default.
        map.serialize_entry("status", &self.status)?;
        if !self.srvs.is_empty() {
            map.serialize_entry("srvs", &self.srvs)?;
        }
        if let Some(expected) = &self.expected {
            let object = serde_json::json!({
                "direction": direction_name(expected.direction),
                "rate_factor": expected.rate_factor,
            });
            map.serialize_entry("expected", &object)?;
        }
        if let Some(contact) = &self.contact {
            map.serialize_entry("contact", contact)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_round_trip() {
        for &category in Category::ALL {
            assert_eq!(Category::parse(category.as_str()), Some(category));
        }
        for &status in ChangeStatus::ALL {
            assert_eq!(ChangeStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(Category::parse("Network"), None);
        assert_eq!(ChangeStatus::default(), ChangeStatus::Planned);
        assert_eq!(Category::DccMaintenance.to_string(), "dcc_maintenance");
        for direction in [TrafficDirection::ToDsp, TrafficDirection::ToUser] {
            assert_eq!(parse_direction(direction_name(direction)), Some(direction));
        }
    }

    #[test]
    fn owners_parse_and_print_in_file_form() {
        assert_eq!(ChangeOwner::parse("DCC"), Some(ChangeOwner::Dcc));
        assert_eq!(ChangeOwner::parse("dcc"), Some(ChangeOwner::Dcc));
        let user = ChangeOwner::parse("90b3d51f30010007");
        assert_eq!(
            user.map(|u| u.to_string()).as_deref(),
            Some("90-B3-D5-1F-30-01-00-07")
        );
        assert_eq!(ChangeOwner::parse("ACME"), None);
    }

    #[test]
    fn serializes_to_the_contract_form_omitting_absent_fields() {
        let notice = ChangeNotice {
            id: "CHG-1".into(),
            owner: ChangeOwner::Dcc,
            title: "DSP release".into(),
            category: Category::DccMaintenance,
            start_ms: 1_773_133_200_000,
            end_ms: 1_773_136_800_000,
            status: ChangeStatus::Planned,
            srvs: vec![],
            expected: None,
            contact: None,
        };
        let expected = serde_json::json!({
            "id": "CHG-1", "user": "DCC", "title": "DSP release", "category": "dcc_maintenance",
            "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T10:00:00Z", "status": "planned",
        });
        assert_eq!(notice.to_json().unwrap(), expected);

        let full = ChangeNotice {
            owner: ChangeOwner::User(Eui64(0x90B3_D51F_3001_0007)),
            srvs: vec![Srv::parse("4.1.1").unwrap_or_default()],
            expected: Some(Expected {
                direction: TrafficDirection::ToDsp,
                rate_factor: 2.5,
            }),
            contact: Some("ops@example.invalid".into()),
            ..notice
        };
        let json = full.to_json().unwrap();
        assert_eq!(json["user"], "90-B3-D5-1F-30-01-00-07");
        assert_eq!(json["srvs"], serde_json::json!(["4.1.1"]));
        assert_eq!(
            json["expected"],
            serde_json::json!({"direction": "to_dsp", "rate_factor": 2.5})
        );
        assert_eq!(json["contact"], "ops@example.invalid");
    }
}
