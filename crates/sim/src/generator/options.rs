//! What a generator run is asked for: the options, the scenario catalogue, and the canonical argument string that
//! reproduces a run.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::GenError;

/// `large_network` needs at least this many Users (here, not beside its recipe, so the catalogue does not import
/// the recipes that build on it).
pub const LARGE_NETWORK_USERS: usize = 120;

/// 2026-03-10T00:00:00Z: a Tuesday, so the run starts with the after-midnight scheduled reads.
pub const DEFAULT_START_MS: i64 = 1_773_100_800_000;
pub const DEFAULT_USERS: usize = 40;

/// One injectable situation. Each writes its own change notices, decoys and truth entries.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, PartialOrd, Ord)]
pub enum Scenario {
    Hiccups,
    Bursts,
    SmallCampaign,
    MdmStorm,
    FirmwareAlertStorm,
    RegisteredCampaign,
    CertificateFailure,
    UnregisteredBacklog,
    DccMaintenance,
    ClockSkew,
    Flapping,
    SlowLeak,
    PartialSrv,
    Ramp,
    SmallUsers,
    FirewallBacklog,
    Decoys,
    OverranWindow,
    ReregisteredNotice,
    DeviceDecoys,
    SharedCapacity,
    DuplicateLines,
    LargeNetwork,
}

impl Scenario {
    /// Every scenario, in the order they are laid out in time (the firewall backlog last, so its long drain may
    /// run past the end of the input).
    pub const ALL: [Scenario; 17] = [
        Scenario::Hiccups,
        Scenario::SmallCampaign,
        Scenario::MdmStorm,
        Scenario::FirmwareAlertStorm,
        Scenario::RegisteredCampaign,
        Scenario::CertificateFailure,
        Scenario::UnregisteredBacklog,
        Scenario::DccMaintenance,
        Scenario::ClockSkew,
        Scenario::Flapping,
        Scenario::SlowLeak,
        Scenario::PartialSrv,
        Scenario::Ramp,
        Scenario::SmallUsers,
        Scenario::Bursts,
        Scenario::FirewallBacklog,
        Scenario::Decoys,
    ];

    /// Scenarios that try to fool the engine, each run on its own (they need Users or a population of their own,
    /// so `all` leaves them out): named one by one, and all in the sweep.
    pub const ADVERSARIAL: [Scenario; 6] = [
        Scenario::OverranWindow,
        Scenario::ReregisteredNotice,
        Scenario::DeviceDecoys,
        Scenario::SharedCapacity,
        Scenario::DuplicateLines,
        Scenario::LargeNetwork,
    ];

    /// Every scenario there is: `all`, then the adversarial ones. What `evaluate --sweep` runs by default.
    pub fn every() -> impl Iterator<Item = Scenario> {
        Scenario::ALL.into_iter().chain(Scenario::ADVERSARIAL)
    }

    /// Users a run of this scenario needs at least (a sweep raises `--users` to it).
    pub fn min_users(self) -> usize {
        match self {
            Scenario::LargeNetwork => LARGE_NETWORK_USERS,
            _ => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Hiccups => "hiccups",
            Scenario::Bursts => "bursts",
            Scenario::SmallCampaign => "small_campaign",
            Scenario::MdmStorm => "mdm_storm",
            Scenario::FirmwareAlertStorm => "firmware_alert_storm",
            Scenario::RegisteredCampaign => "registered_campaign",
            Scenario::CertificateFailure => "certificate_failure",
            Scenario::UnregisteredBacklog => "unregistered_backlog",
            Scenario::DccMaintenance => "dcc_maintenance",
            Scenario::ClockSkew => "clock_skew",
            Scenario::Flapping => "flapping",
            Scenario::SlowLeak => "slow_leak",
            Scenario::PartialSrv => "partial_srv",
            Scenario::Ramp => "ramp",
            Scenario::SmallUsers => "small_users",
            Scenario::FirewallBacklog => "firewall_backlog",
            Scenario::Decoys => "decoys",
            Scenario::OverranWindow => "overran_window",
            Scenario::ReregisteredNotice => "reregistered_notice",
            Scenario::DeviceDecoys => "device_decoys",
            Scenario::SharedCapacity => "shared_capacity",
            Scenario::DuplicateLines => "duplicate_lines",
            Scenario::LargeNetwork => "large_network",
        }
    }

    /// One line for help text.
    pub fn about(self) -> &'static str {
        match self {
            Scenario::Hiccups => "brief endpoint outages of 15-45 s: normal life, no incident",
            Scenario::Bursts => {
                "request bursts of 3x for 30 s on three Users, again and again: no incident"
            }
            Scenario::SmallCampaign => {
                "a declared campaign at 2x, under the storm threshold: no incident"
            }
            Scenario::MdmStorm => {
                "a new MDM floods requests, half rejected: request and reject storm, registered"
            }
            Scenario::FirmwareAlertStorm => {
                "a supplier's firmware activation floods a network operator with AD1 alerts"
            }
            Scenario::RegisteredCampaign => {
                "a declared campaign runs requests at about 5x: expected impact"
            }
            Scenario::CertificateFailure => {
                "TLS failures after a certificate rotation: backlog, registered"
            }
            Scenario::UnregisteredBacklog => {
                "an endpoint dies with no notice, decoys nearby: unregistered"
            }
            Scenario::DccMaintenance => {
                "DSP maintenance pauses delivery for every User: one `*` backlog"
            }
            Scenario::ClockSkew => {
                "clocks off by 35 s, 10 min and -1 h; TLS failures on the 10-min-fast User: one backlog"
            }
            Scenario::Flapping => {
                "after a load-balancer change an endpoint refuses 40 s in every 2 min for 45 min: one backlog"
            }
            Scenario::SlowLeak => {
                "after a registered handler upgrade 3-5 % of a User's messages are never acknowledged for an hour: one backlog"
            }
            Scenario::PartialSrv => {
                "after an endpoint change one SRV family (15-30 % of a User's traffic) is refused with 4xx: one backlog"
            }
            Scenario::Ramp => {
                "after an application rollout a supplier's requests climb to 8-10x over 10 min: one request storm"
            }
            Scenario::SmallUsers => {
                "a User sending about 1 message/s loses its endpoint after a registered change: one backlog"
            }
            Scenario::FirewallBacklog => {
                "a firewall change blocks a large supplier: backlog of ~1.5 M"
            }
            Scenario::Decoys => "changes near the other incidents that must not be blamed",
            Scenario::OverranWindow => {
                "TLS failures minutes after a certificate rotation's window closed (it overran), an older change beside it"
            }
            Scenario::ReregisteredNotice => {
                "a notice registered again with the times it really ran, beside a cancelled and a just-closed change"
            }
            Scenario::DeviceDecoys => {
                "the firmware alert storm beside other suppliers' device changes: cancelled, long closed, not yet open"
            }
            Scenario::SharedCapacity => {
                "an MDM storm saturates shared delivery capacity: every bulk User's queue grows, no failures; one `*` backlog"
            }
            Scenario::DuplicateLines => {
                "at-least-once export: 2 % of lines written twice, around a certificate failure"
            }
            Scenario::LargeNetwork => {
                "120 Users: a small User's certificate backlog and a mid-sized User's unregistered outage"
            }
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::every().find(|s| s.name() == name)
    }

    /// Names and `all` expanded, duplicates dropped, in layout order.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Scenario>, GenError> {
        let mut chosen = Vec::new();
        for name in names {
            let name = name.as_ref();
            if name == "all" {
                chosen.extend(Scenario::ALL);
            } else {
                chosen.push(
                    Scenario::parse(name)
                        .ok_or_else(|| GenError::UnknownScenario(name.to_owned()))?,
                );
            }
        }
        chosen.sort();
        chosen.dedup();
        Ok(chosen)
    }
}

/// How the events file is compressed.
#[derive(Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn parse(text: &str) -> Option<Compression> {
        match text {
            "none" => Some(Compression::None),
            "gz" | "gzip" => Some(Compression::Gzip),
            "zst" | "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The events file's name.
    pub fn file_name(self) -> &'static str {
        match self {
            Compression::None => "events.ndjson",
            Compression::Gzip => "events.ndjson.gz",
            Compression::Zstd => "events.ndjson.zst",
        }
    }
}

/// Everything a run depends on. Equal options give byte-identical output.
#[derive(Clone, Debug, PartialEq)]
pub struct GenOptions {
    pub seed: u64,
    /// Start of the first second, ms since the Unix epoch (truncated to whole seconds).
    pub start_ms: i64,
    /// Seconds of traffic; `None` for just long enough for the scenarios (at least 90 minutes).
    pub duration_s: Option<u64>,
    pub users: usize,
    /// 1 = about 1,000 messages/s over the default population.
    pub scale: f64,
    /// Fraction of all lines that are malformed.
    pub malformed_rate: f64,
    pub scenarios: Vec<Scenario>,
    pub out: PathBuf,
    pub compression: Compression,
    /// gzip 0-9 or zstd 1-22; `None` for a fast default.
    pub level: Option<i32>,
}

impl GenOptions {
    pub fn new(out: impl Into<PathBuf>) -> GenOptions {
        GenOptions {
            seed: 1,
            start_ms: DEFAULT_START_MS,
            duration_s: None,
            users: DEFAULT_USERS,
            scale: 1.0,
            malformed_rate: 0.0,
            scenarios: Vec::new(),
            out: out.into(),
            compression: Compression::None,
            level: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), GenError> {
        let bad = |what: &str| Err(GenError::Option(what.to_owned()));
        if self.users < 3 {
            return bad("--users must be at least 3");
        }
        if self.users > 5000 {
            return bad("--users must be at most 5000");
        }
        if !(self.scale.is_finite() && self.scale > 0.0 && self.scale <= 100.0) {
            return bad("--scale must be above 0 and at most 100");
        }
        if !(0.0..0.5).contains(&self.malformed_rate) {
            return bad("--malformed-rate must be in 0..0.5");
        }
        if self.duration_s == Some(0) {
            return bad("--duration must be positive");
        }
        Ok(())
    }

    /// The `gen` arguments that reproduce this run's content (everything except `--out`, `--compress` and
    /// `--level`), with the duration as actually laid out.
    pub fn canonical_args(&self, duration_s: u64) -> String {
        let mut args = format!("gen --seed {}", self.seed);
        if self.start_ms != DEFAULT_START_MS {
            let _ = write!(
                args,
                " --start {}",
                stormwatch_core::rfc3339::format_seconds(self.start_ms).unwrap_or_default()
            );
        }
        let _ = write!(args, " --duration {}", format_duration(duration_s));
        let _ = write!(args, " --users {}", self.users);
        if self.scale != 1.0 {
            let _ = write!(args, " --scale {}", self.scale);
        }
        if self.malformed_rate != 0.0 {
            let _ = write!(args, " --malformed-rate {}", self.malformed_rate);
        }
        for scenario in &self.scenarios {
            let _ = write!(args, " --scenario {}", scenario.name());
        }
        args
    }
}

/// `90m`, `3h`, `2d`, `45s`, `1h30m` or plain seconds.
pub fn parse_duration(text: &str) -> Result<u64, GenError> {
    let bad = || {
        GenError::Option(format!(
            "`{text}` is not a duration like 90m, 3h, 2d or 1h30m"
        ))
    };
    // A bare number once meant seconds, which surprised people who meant hours: ask for the unit.
    if text.parse::<u64>().is_ok() {
        return Err(GenError::Option(format!(
            "`{text}` has no unit: write {text}s, {text}m, {text}h or {text}d"
        )));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

/// The shortest exact form: `3h`, `90m`, `1h30m`, `45s`.
pub fn format_duration(seconds: u64) -> String {
    let mut out = String::new();
    let mut rest = seconds;
    for (unit, label) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if rest >= unit {
            let _ = write!(out, "{}{label}", rest / unit);
            rest %= unit;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// An RFC 3339 time, to ms since the Unix epoch.
pub fn parse_start(text: &str) -> Result<i64, GenError> {
    stormwatch_core::rfc3339::parse(text)
        .map_err(|e| GenError::Option(format!("`{text}` is not an RFC 3339 time: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m").unwrap(), 5400);
        assert_eq!(parse_duration("3h").unwrap(), 10_800);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("600s").unwrap(), 600);
        let bare = parse_duration("3").unwrap_err().to_string();
        assert!(
            bare.contains("`3` has no unit: write 3s, 3m, 3h or 3d"),
            "{bare}"
        );
        for bad in ["", "h", "3x", "1h30", "-3h", "0m", "600"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for seconds in [45, 5400, 10_800, 86_400 + 3600 + 61] {
            assert_eq!(parse_duration(&format_duration(seconds)).unwrap(), seconds);
        }
        assert_eq!(format_duration(5400), "1h30m");
    }

    #[test]
    fn scenario_lists_expand_and_sort() {
        let list = Scenario::parse_list(&["firewall_backlog", "mdm_storm", "mdm_storm"]).unwrap();
        assert_eq!(list, vec![Scenario::MdmStorm, Scenario::FirewallBacklog]);
        assert_eq!(Scenario::parse_list(&["all"]).unwrap().len(), 17);
        assert!(Scenario::parse_list(&["nope"]).is_err());
    }

    #[test]
    fn start_parses_any_offset() {
        assert_eq!(
            parse_start("2026-03-10T00:00:00Z").unwrap(),
            DEFAULT_START_MS
        );
        assert_eq!(
            parse_start("2026-03-10T01:00:00+01:00").unwrap(),
            DEFAULT_START_MS
        );
        assert!(parse_start("yesterday").is_err());
    }

    #[test]
    fn canonical_args_leave_out_defaults_and_the_output() {
        let mut options = GenOptions::new("/tmp/x");
        options.seed = 7;
        options.users = 12;
        options.scenarios = vec![Scenario::FirewallBacklog];
        assert_eq!(
            options.canonical_args(10_800),
            "gen --seed 7 --duration 3h --users 12 --scenario firewall_backlog"
        );
    }
}
