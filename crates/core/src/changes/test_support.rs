//! Builders of notices and incident facts for the correlator's tests, with the contract's times spelled out.

use super::notice::{Category, ChangeNotice, ChangeOwner};
use crate::incident::{Affected, IncidentFacts, IncidentKind};
use crate::telemetry::{Eui64, Srv};

pub const SUPPLIER_A: Eui64 = Eui64(0x90B3_D51F_3001_0007);
pub const SUPPLIER_C: Eui64 = Eui64(0x90B3_D51F_3001_0009);
pub const NETWORK_OPERATOR_B: Eui64 = Eui64(0x90B3_D51F_3002_0001);

pub const MINUTE: i64 = 60_000;
/// 2026-03-10T09:00:00Z.
pub const NINE: i64 = 1_773_133_200_000;

pub fn srv(text: &str) -> Srv {
    Srv::parse(text).unwrap_or_default()
}

/// A planned notice with no SRVs or expected traffic, window [start, end].
pub fn notice(
    id: &str,
    owner: ChangeOwner,
    category: Category,
    start_ms: i64,
    end_ms: i64,
) -> ChangeNotice {
    ChangeNotice::planned(id, owner, category, start_ms, end_ms)
}

/// A single-User incident with nothing but its kind and onset known.
pub fn facts(user: Eui64, kind: IncidentKind, onset_ms: i64) -> IncidentFacts {
    IncidentFacts {
        affected: Affected::User(user),
        users: vec![user],
        kind,
        onset_ms,
        concurrent_users: 1,
        peak_ratio: 10.0,
        srvs: vec![],
        failure_reason: None,
        alert_code: None,
        delivering: false,
        storms: vec![],
    }
}

/// A network-wide incident over `users`.
pub fn network_facts(users: &[Eui64], kind: IncidentKind, onset_ms: i64) -> IncidentFacts {
    IncidentFacts {
        affected: Affected::Network,
        users: users.to_vec(),
        concurrent_users: u32::try_from(users.len()).unwrap_or(u32::MAX),
        ..facts(users.first().copied().unwrap_or_default(), kind, onset_ms)
    }
}
