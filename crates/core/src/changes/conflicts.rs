//! Conflict and risk warnings for a change being registered, judged against the rest of the register: pure rules,
//! never a refusal. The service returns them on registration, lists them on the change and counts upcoming ones.

use serde::{Deserialize, Serialize};

use super::coordination_config::CoordinationConfig;
use super::notice::{Category, ChangeNotice, ChangeOwner, ChangeStatus};
use super::register::ChangeRegister;

/// The most other changes one warning names (in `related` and in its message): a change overlapping thousands
/// stays one bounded warning, and its message says how many there were in all.
pub const MAX_RELATED: usize = 25;

/// What a warning is about; the API's `kind`.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    DccMaintenanceOverlap,
    BcdrTestOverlap,
    HighRiskPileUp,
    MorningPeak,
    ScheduledReads,
    UndeclaredImpact,
    ShortWindow,
}

impl WarningKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::DccMaintenanceOverlap => "dcc_maintenance_overlap",
            WarningKind::BcdrTestOverlap => "bcdr_test_overlap",
            WarningKind::HighRiskPileUp => "high_risk_pile_up",
            WarningKind::MorningPeak => "morning_peak",
            WarningKind::ScheduledReads => "scheduled_reads",
            WarningKind::UndeclaredImpact => "undeclared_impact",
            WarningKind::ShortWindow => "short_window",
        }
    }
}

/// One warning: what, a sentence for people, and the other changes it is about (ids, window order).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
}

/// Network, certificate and endpoint changes: the ones that cut a User off from the DSP when they go wrong.
pub fn is_high_risk(category: Category) -> bool {
    matches!(
        category,
        Category::Network | Category::Certificate | Category::Endpoint
    )
}

/// Whether a DCC change is a declared BCDR test rather than ordinary planned maintenance.
pub fn is_bcdr_test(notice: &ChangeNotice, config: &CoordinationConfig) -> bool {
    notice.owner == ChangeOwner::Dcc
        && config.bcdr_keywords.iter().any(|keyword| {
            let keyword = keyword.to_lowercase();
            !keyword.is_empty()
                && (notice.title.to_lowercase().contains(&keyword)
                    || notice.id.to_lowercase().contains(&keyword))
        })
}

fn live(notice: &ChangeNotice) -> bool {
    notice.status != ChangeStatus::Cancelled
}

fn overlap(a: &ChangeNotice, b: &ChangeNotice) -> bool {
    a.start_ms <= b.end_ms && b.start_ms <= a.end_ms
}

/// Every warning for `notice` against `register` (which may hold `notice` itself, under its id: it is skipped). A
/// cancelled change has none, and cancelled changes in the register count for nothing. Reads every notice given:
/// for a whole register use [`register_warnings`], which reads only the overlapping ones.
pub fn warnings<'a>(
    notice: &ChangeNotice,
    register: impl IntoIterator<Item = &'a ChangeNotice>,
    config: &CoordinationConfig,
) -> Vec<Warning> {
    if !live(notice) {
        return Vec::new();
    }
    let others: Vec<&ChangeNotice> = register
        .into_iter()
        .filter(|other| other.id != notice.id && live(other) && overlap(notice, other))
        .collect();
    judge(notice, &others, config)
}

/// [`warnings`] against a register through its time index: the cost grows with the changes overlapping
/// `notice` (k log k), not with the register.
pub fn register_warnings(
    notice: &ChangeNotice,
    register: &ChangeRegister,
    config: &CoordinationConfig,
) -> Vec<Warning> {
    if !live(notice) {
        return Vec::new();
    }
    let others: Vec<&ChangeNotice> = register
        .overlapping(notice.start_ms, notice.end_ms)
        .into_iter()
        .filter(|other| other.id != notice.id && live(other))
        .collect();
    judge(notice, &others, config)
}

/// The warnings of a live `notice` given the live changes overlapping it, in window order.
fn judge(
    notice: &ChangeNotice,
    others: &[&ChangeNotice],
    config: &CoordinationConfig,
) -> Vec<Warning> {
    let mut found = Vec::new();
    if let ChangeOwner::User(_) = notice.owner {
        dcc_overlaps(others, config, &mut found);
    }
    if is_high_risk(notice.category) {
        pile_up(notice, others, config, &mut found);
    }
    daily_windows(notice, config, &mut found);
    if matches!(notice.category, Category::Device | Category::Campaign) && notice.expected.is_none()
    {
        found.push(Warning {
            kind: WarningKind::UndeclaredImpact,
            message: format!(
                "{} change without a declared expected impact: a traffic rise it causes will look like a storm \
                 (declare `expected` direction and rate factor)",
                notice.category.label()
            ),
            related: Vec::new(),
        });
    }
    let typical = i64::from(config.typical_minutes.of(notice.category));
    let minutes = notice.end_ms.saturating_sub(notice.start_ms) / 60_000;
    if minutes < typical {
        found.push(Warning {
            kind: WarningKind::ShortWindow,
            message: format!(
                "window of {minutes} min is shorter than the {typical} min {} {} change typically takes",
                if notice.category.label().starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" },
                notice.category.label()
            ),
            related: Vec::new(),
        });
    }
    found
}

fn dcc_overlaps(others: &[&ChangeNotice], config: &CoordinationConfig, found: &mut Vec<Warning>) {
    let dcc = others.iter().filter(|o| o.owner == ChangeOwner::Dcc);
    let (bcdr, maintenance): (Vec<&&ChangeNotice>, Vec<&&ChangeNotice>) =
        dcc.partition(|o| is_bcdr_test(o, config));
    for (kind, hits, what) in [
        (
            WarningKind::BcdrTestOverlap,
            bcdr,
            "a declared DCC BCDR test",
        ),
        (
            WarningKind::DccMaintenanceOverlap,
            maintenance,
            "DCC planned maintenance",
        ),
    ] {
        if hits.is_empty() {
            continue;
        }
        let named: Vec<String> = hits
            .iter()
            .take(MAX_RELATED)
            .map(|o| format!("{} ({})", o.id, o.title))
            .collect();
        found.push(Warning {
            kind,
            message: format!("overlaps {what}: {}{}", named.join(", "), more(hits.len())),
            related: hits
                .iter()
                .take(MAX_RELATED)
                .map(|o| o.id.clone())
                .collect(),
        });
    }
}

/// ", and N more (M in all)" when a warning names only the first [`MAX_RELATED`] of `total` changes.
fn more(total: usize) -> String {
    if total > MAX_RELATED {
        format!(", and {} more ({total} in all)", total - MAX_RELATED)
    } else {
        String::new()
    }
}

/// The high-risk changes among `others` running at the moment of `notice`'s window when most of them run
/// (the first such moment), in the order given. The count only rises at a start, so only `notice`'s start and
/// the starts inside its window are candidates; a sweep over sorted starts and ends counts each in O(log k).
pub fn peak_high_risk<'a>(
    notice: &ChangeNotice,
    others: &[&'a ChangeNotice],
) -> Vec<&'a ChangeNotice> {
    let risky: Vec<&ChangeNotice> = others
        .iter()
        .copied()
        .filter(|o| is_high_risk(o.category))
        .collect();
    let mut starts: Vec<i64> = risky.iter().map(|o| o.start_ms).collect();
    let mut ends: Vec<i64> = risky.iter().map(|o| o.end_ms).collect();
    starts.sort_unstable();
    ends.sort_unstable();
    let running_at = |t: i64| {
        // Started at or before t, minus those that ended before t (windows include both ends).
        starts.partition_point(|&s| s <= t) - ends.partition_point(|&e| e < t)
    };
    let mut candidates: Vec<i64> = std::iter::once(notice.start_ms)
        .chain(
            starts
                .iter()
                .copied()
                .filter(|&t| notice.window_contains(t)),
        )
        .collect();
    candidates.sort_unstable();
    let mut best: Option<(usize, i64)> = None;
    for t in candidates {
        let count = running_at(t);
        if count > 0 && best.is_none_or(|(most, _)| count > most) {
            best = Some((count, t));
        }
    }
    match best {
        Some((_, t)) => risky.into_iter().filter(|o| o.window_contains(t)).collect(),
        None => Vec::new(),
    }
}

/// Warns when more high-risk changes than allowed run at one moment of `notice`'s window, itself included.
fn pile_up(
    notice: &ChangeNotice,
    others: &[&ChangeNotice],
    config: &CoordinationConfig,
    found: &mut Vec<Warning>,
) {
    let peak = peak_high_risk(notice, others);
    let total = peak.len() + 1;
    if total > config.max_concurrent_high_risk as usize {
        // Owners counted by key, not by name: formatting thousands of EUI-64s per notice was most of the cost.
        let mut users: Vec<Option<u64>> = std::iter::once(notice)
            .chain(peak.iter().copied())
            .map(|o| match o.owner {
                ChangeOwner::User(user) => Some(user.0),
                ChangeOwner::Dcc => None,
            })
            .collect();
        users.sort_unstable();
        users.dedup();
        found.push(Warning {
            kind: WarningKind::HighRiskPileUp,
            message: format!(
                "{total} high-risk changes (network, certificate, endpoint) run at once across {} owners, more than \
                 the {} allowed{}",
                users.len(),
                config.max_concurrent_high_risk,
                if peak.len() > MAX_RELATED {
                    format!(" (the first {MAX_RELATED} named)")
                } else {
                    String::new()
                }
            ),
            related: peak.iter().take(MAX_RELATED).map(|o| o.id.clone()).collect(),
        });
    }
}

fn daily_windows(notice: &ChangeNotice, config: &CoordinationConfig, found: &mut Vec<Warning>) {
    for (kind, window, what) in [
        (
            WarningKind::MorningPeak,
            config.morning_peak,
            "the morning peak",
        ),
        (
            WarningKind::ScheduledReads,
            config.scheduled_reads,
            "the overnight scheduled reads",
        ),
    ] {
        if window.overlaps(config.clock, notice.start_ms, notice.end_ms) {
            found.push(Warning {
                kind,
                message: format!("falls in {what} ({window} {} time)", config.clock.label()),
                related: Vec::new(),
            });
        }
    }
}

#[cfg(test)]
#[path = "conflicts_tests.rs"]
mod tests;
