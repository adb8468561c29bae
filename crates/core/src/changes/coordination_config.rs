//! The change-coordination settings: the daily windows to keep clear, the high-risk pile-up limit, how a BCDR test
//! is recognised, each category's typical duration, and the outcome window. Loaded from `[coordination]`.

use std::fmt;

use time::{Date, Month, OffsetDateTime, Weekday};

use super::notice::Category;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Which clock the daily windows are read on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// GB civil time: UTC in winter, UTC+1 (BST) from the last Sunday of March to the last Sunday of October,
    /// switching at 01:00 UTC. Meter reads and peaks follow it.
    #[default]
    EuropeLondon,
    Utc,
}

impl Clock {
    pub fn label(self) -> &'static str {
        match self {
            Clock::EuropeLondon => "London",
            Clock::Utc => "UTC",
        }
    }

    /// The offset from UTC at `t_ms`, in milliseconds.
    pub fn offset_ms(self, t_ms: i64) -> i64 {
        match self {
            Clock::Utc => 0,
            Clock::EuropeLondon => {
                let Ok(at) = OffsetDateTime::from_unix_timestamp(t_ms.div_euclid(1000)) else {
                    return 0;
                };
                let year = at.year();
                match (
                    last_sunday_1am(year, Month::March),
                    last_sunday_1am(year, Month::October),
                ) {
                    (Some(start), Some(end)) if start <= t_ms && t_ms < end => 3_600_000,
                    _ => 0,
                }
            }
        }
    }
}

/// 01:00 UTC on the last Sunday of `month` (March or October: both have 31 days), in ms.
fn last_sunday_1am(year: i32, month: Month) -> Option<i64> {
    let last = Date::from_calendar_date(year, month, 31).ok()?;
    let back = i64::from(last.weekday().number_days_from_sunday());
    debug_assert!(Weekday::Sunday.number_days_from_sunday() == 0);
    let sunday = last.midnight().assume_utc().unix_timestamp() * 1000 - back * DAY_MS;
    Some(sunday + 3_600_000)
}

/// A time of day, `HH:MM` in files.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TimeOfDay(pub u16);

impl TimeOfDay {
    pub fn parse(text: &str) -> Option<TimeOfDay> {
        let (h, m) = text.split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && text.len() == 5).then_some(TimeOfDay(h * 60 + m))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl serde::Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TimeOfDay::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a time of day HH:MM")))
    }
}

/// A window that comes back every day, `[start, end)` on the configured clock; it wraps past midnight when `end`
/// is before `start`. Equal ends make it empty (the check is off).
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyWindow {
    pub start: TimeOfDay,
    pub end: TimeOfDay,
}

impl DailyWindow {
    /// Whether `[start_ms, end_ms]` meets any day's occurrence of the window.
    pub fn overlaps(&self, clock: Clock, start_ms: i64, end_ms: i64) -> bool {
        if self.start == self.end {
            return false;
        }
        // Saturating: a notice's times come from outside; RFC 3339 bounds them, but this must not rely on it.
        let from = start_ms.saturating_add(clock.offset_ms(start_ms));
        let to = end_ms.saturating_add(clock.offset_ms(end_ms));
        if to.saturating_sub(from) >= DAY_MS {
            return true;
        }
        let open = i64::from(self.start.0) * MINUTE_MS;
        let mut close = i64::from(self.end.0) * MINUTE_MS;
        if close < open {
            close += DAY_MS;
        }
        // The day before `from` too: a window wrapping past midnight starts the evening before.
        (from.div_euclid(DAY_MS) - 1..=to.div_euclid(DAY_MS)).any(|day| {
            let midnight = day.saturating_mul(DAY_MS);
            let (a, b) = (
                midnight.saturating_add(open),
                midnight.saturating_add(close),
            );
            from < b && a <= to
        })
    }
}

impl fmt::Display for DailyWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// Typical minutes a change of each category takes; a shorter window is likely too optimistic.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypicalMinutes {
    pub network: u32,
    pub certificate: u32,
    pub endpoint: u32,
    pub application: u32,
    pub device: u32,
    pub campaign: u32,
    pub dcc_maintenance: u32,
    pub other: u32,
}

impl Default for TypicalMinutes {
    fn default() -> Self {
        TypicalMinutes {
            network: 60,
            certificate: 30,
            endpoint: 60,
            application: 120,
            device: 240,
            campaign: 480,
            dcc_maintenance: 120,
            other: 0,
        }
    }
}

impl TypicalMinutes {
    pub fn of(&self, category: Category) -> u32 {
        match category {
            Category::Network => self.network,
            Category::Certificate => self.certificate,
            Category::Endpoint => self.endpoint,
            Category::Application => self.application,
            Category::Device => self.device,
            Category::Campaign => self.campaign,
            Category::DccMaintenance => self.dcc_maintenance,
            Category::Other => self.other,
        }
    }
}

/// Every threshold the registration warnings and the outcome figures use.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinationConfig {
    /// The clock `morning_peak` and `scheduled_reads` are read on.
    pub clock: Clock,
    /// Consumers wake and top up: request traffic climbs to its daily high.
    pub morning_peak: DailyWindow,
    /// The DCC's overnight scheduled reads: the heaviest response traffic of the day.
    pub scheduled_reads: DailyWindow,
    /// Warn when more than this many high-risk changes (network, certificate, endpoint) run at one moment.
    pub max_concurrent_high_risk: u32,
    /// A DCC change whose title or id contains one of these (any case) is a declared BCDR test.
    pub bcdr_keywords: Vec<String>,
    pub typical_minutes: TypicalMinutes,
    /// Days of history the per-User outcome figures cover by default.
    pub outcome_window_days: u32,
    /// Minutes after a change's window in which an incident opening still counts towards its outcome; until then
    /// a change with nothing attributed is `pending`.
    pub outcome_grace_minutes: u32,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        CoordinationConfig {
            clock: Clock::EuropeLondon,
            morning_peak: DailyWindow {
                start: TimeOfDay(7 * 60),
                end: TimeOfDay(9 * 60 + 30),
            },
            scheduled_reads: DailyWindow {
                start: TimeOfDay(0),
                end: TimeOfDay(5 * 60),
            },
            max_concurrent_high_risk: 5,
            bcdr_keywords: vec!["BCDR".into(), "disaster recovery".into()],
            typical_minutes: TypicalMinutes::default(),
            outcome_window_days: 90,
            outcome_grace_minutes: 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc3339::parse_ms;

    fn at(text: &str) -> i64 {
        parse_ms(text).unwrap_or(i64::MIN)
    }

    #[test]
    fn london_clock_switches_on_the_last_sundays_at_one_utc() {
        let london = Clock::EuropeLondon;
        assert_eq!(london.offset_ms(at("2026-03-29T00:59:59Z")), 0);
        assert_eq!(london.offset_ms(at("2026-03-29T01:00:00Z")), 3_600_000);
        assert_eq!(london.offset_ms(at("2026-10-25T00:59:59Z")), 3_600_000);
        assert_eq!(london.offset_ms(at("2026-10-25T01:00:00Z")), 0);
        assert_eq!(london.offset_ms(at("2026-01-10T12:00:00Z")), 0);
        assert_eq!(Clock::Utc.offset_ms(at("2026-07-01T12:00:00Z")), 0);
    }

    #[test]
    fn daily_windows_wrap_midnight_and_follow_the_clock() {
        let reads = DailyWindow {
            start: TimeOfDay(23 * 60 + 30),
            end: TimeOfDay(60),
        };
        let utc = Clock::Utc;
        assert!(reads.overlaps(utc, at("2026-01-10T00:10:00Z"), at("2026-01-10T00:20:00Z")));
        assert!(reads.overlaps(utc, at("2026-01-10T23:00:00Z"), at("2026-01-10T23:45:00Z")));
        assert!(!reads.overlaps(utc, at("2026-01-10T01:00:00Z"), at("2026-01-10T23:29:00Z")));
        let peak = CoordinationConfig::default().morning_peak;
        // 06:30 UTC in July is 07:30 in London: in the peak; in January it is not.
        let london = Clock::EuropeLondon;
        assert!(peak.overlaps(
            london,
            at("2026-07-10T06:15:00Z"),
            at("2026-07-10T06:30:00Z")
        ));
        assert!(!peak.overlaps(
            london,
            at("2026-01-10T06:15:00Z"),
            at("2026-01-10T06:30:00Z")
        ));
        assert!(peak.overlaps(utc, at("2026-01-10T10:00:00Z"), at("2026-01-12T06:00:00Z")));
        let off = DailyWindow {
            start: TimeOfDay(60),
            end: TimeOfDay(60),
        };
        assert!(!off.overlaps(utc, 0, 10 * DAY_MS));
    }

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(TimeOfDay::parse("07:30"), Some(TimeOfDay(450)));
        for bad in ["7:30", "24:00", "07:60", "0730", "07:30:00", ""] {
            assert_eq!(TimeOfDay::parse(bad), None, "{bad}");
        }
        assert_eq!(TimeOfDay(450).to_string(), "07:30");
    }
}
