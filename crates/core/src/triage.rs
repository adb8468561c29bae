//! The triage summary a person reads on stdout: one block per incident with User, kind, onset, duration, peak,
//! verdict and the top suspect with its reasons.

use std::fmt::Write;

use time::OffsetDateTime;

use crate::incident::IncidentKind;
use crate::report::{IncidentRecord, Report};

/// Formats event-time milliseconds as `2026-03-10 09:15:02Z`.
pub fn utc(ms: i64) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `1h 23m`, `4m 10s`, `12s`.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// `1,500,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn peak(incident: &IncidentRecord) -> String {
    match incident.kind {
        IncidentKind::Backlog => {
            let age = incident
                .evidence
                .peak_backlog_age_s
                .map(|a| format!(", oldest {}", duration(a as i64 * 1000)));
            format!(
                "{} waiting{}",
                thousands(incident.peak_depth),
                age.unwrap_or_default()
            )
        }
        IncidentKind::RejectStorm => format!(
            "{:.0}% rejected (normal {:.0}%)",
            incident.peak_rate * 100.0,
            incident.baseline_rate * 100.0
        ),
        _ => format!(
            "{:.0}/s, {:.1}x normal",
            incident.peak_rate, incident.peak_ratio
        ),
    }
}

/// Renders the whole triage summary.
pub fn render(report: &Report) -> String {
    render_named(report, &|_| None)
}

/// `CHG-1 "Firewall rule migration" (contact netops@example.invalid)`: the ID with what a person needs beside it.
pub fn change_label(suspect: &crate::incident::Suspect) -> String {
    let mut label = suspect.change.clone();
    if !suspect.title.is_empty() {
        let _ = write!(label, " \"{}\"", suspect.title);
    }
    if !suspect.contact.is_empty() {
        let _ = write!(label, " (contact {})", suspect.contact);
    }
    label
}

/// The triage summary with each User's party name (`name_of` answers from a User directory, `None` for a User
/// it does not name).
pub fn render_named(report: &Report, name_of: &dyn Fn(&str) -> Option<String>) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} events from {} Users, {} malformed, {} late{}",
        thousands(s.events),
        s.users,
        thousands(s.malformed),
        thousands(s.late),
        match (s.first_ts, s.last_ts) {
            (Some(first), Some(last)) => format!(", {} to {}", utc(first), utc(last)),
            _ => String::new(),
        }
    );
    if s.out_of_range > 0 {
        let _ = writeln!(
            out,
            "{} of the malformed lines were out of range: event time far ahead of the network's",
            thousands(s.out_of_range)
        );
    }
    for offset in &s.clock_offsets {
        let _ = writeln!(
            out,
            "User {} has a clock {} s {} network time: its lines were placed {} s {}",
            offset.user,
            offset.offset_s.abs(),
            if offset.offset_s > 0 {
                "ahead of"
            } else {
                "behind"
            },
            offset.offset_s.abs(),
            if offset.offset_s > 0 {
                "earlier"
            } else {
                "later"
            },
        );
    }
    if let Some(path) = &s.quarantine {
        let _ = writeln!(out, "malformed lines kept in {path}");
    }
    if !s.changes_rejected.is_empty() {
        let _ = writeln!(out, "{} change notices rejected:", s.changes_rejected.len());
        for reason in &s.changes_rejected {
            let _ = writeln!(out, "  {reason}");
        }
    }
    if report.incidents.is_empty() {
        let _ = writeln!(out, "\nNo incidents.");
        if let Some(note) = too_short_to_detect(s) {
            let _ = writeln!(out, "{note}");
        }
        return out;
    }
    let _ = writeln!(out, "\n{} incident(s):", report.incidents.len());
    for incident in &report.incidents {
        let until = incident
            .resolved
            .map_or("still open".to_owned(), |r| format!("resolved {}", utc(r)));
        let lasted = incident
            .resolved
            .unwrap_or(s.last_ts.unwrap_or(incident.onset))
            - incident.onset;
        let _ = writeln!(
            out,
            "\n{}  {}  {}\n  since {} ({} before detection), lasted {}, {}\n  peak: {}\n  verdict: {}",
            incident.id,
            incident.kind.as_str(),
            match name_of(&incident.user) {
                Some(name) => format!("{} {name}", incident.user),
                None => incident.user.clone(),
            },
            utc(incident.onset),
            duration(incident.detected - incident.onset),
            duration(lasted),
            until,
            peak(incident),
            incident.verdict.as_str()
        );
        if let Some(state) = &incident.evidence.delivery_state {
            let reason = incident
                .evidence
                .failure_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  deliveries: {state}, {} failed attempts{reason}; {} waiting when detected",
                thousands(incident.evidence.failed_deliveries),
                thousands(incident.evidence.depth_at_detection)
            );
        }
        if incident.user == "*" {
            let users: Vec<String> = incident
                .users
                .iter()
                .map(|user| match name_of(user) {
                    Some(name) => format!("{user} {name}"),
                    None => user.clone(),
                })
                .collect();
            let _ = writeln!(out, "  Users: {}", users.join(", "));
        }
        // Under `unregistered_change_suspected` no candidate explains the incident: each is ruled out, and
        // calling the first a "top suspect" would send a person after the wrong change.
        let ruled_out = incident.verdict == crate::incident::Verdict::UnregisteredChangeSuspected;
        match incident.suspects.first() {
            Some(_) if ruled_out => {
                let _ = writeln!(
                    out,
                    "  no registered change fits: an unregistered change is suspected"
                );
                for other in &incident.suspects {
                    let _ = writeln!(
                        out,
                        "  ruled out: {} (score {:.2}): {}",
                        change_label(other),
                        other.score,
                        other.reasons.join("; ")
                    );
                }
            }
            Some(top) => {
                let _ = writeln!(
                    out,
                    "  top suspect: {} (score {:.2})",
                    change_label(top),
                    top.score
                );
                for reason in &top.reasons {
                    let _ = writeln!(out, "    - {reason}");
                }
                for other in incident.suspects.iter().skip(1) {
                    let _ = writeln!(
                        out,
                        "  also: {} (score {:.2})",
                        change_label(other),
                        other.score
                    );
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "  no registered change fits: an unregistered change is suspected"
                );
            }
        }
    }
    out
}

/// Below this much event time no detector can have fired: a storm needs a warmed-up baseline (5 minutes) and
/// 15 s of anomaly, a backlog over a minute of waiting. Kept in step with `BaselineConfig::default().warmup_s`.
const SHORTEST_DETECTABLE_MS: i64 = 300_000;

/// Why "No incidents." is the expected outcome for an input too short to detect anything in, so a newcomer
/// replaying a small sample does not take it for a failure.
fn too_short_to_detect(summary: &crate::report::Summary) -> Option<String> {
    let (Some(first), Some(last)) = (summary.first_ts, summary.last_ts) else {
        return None;
    };
    let span = last - first;
    (span < SHORTEST_DETECTABLE_MS).then(|| {
        format!(
            "That is expected: the input spans {} of event time, and detection needs minutes of traffic\n\
             (baselines warm up over 5 minutes; a storm opens after 15 s of anomaly, a backlog once its oldest message has waited 60 s).",
            duration(span)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(utc(1_773_133_200_000), "2026-03-10 09:00:00Z");
        assert_eq!(duration(75_000), "1m 15s");
        assert_eq!(duration(6_000_000), "1h 40m");
        assert_eq!(thousands(1_500_000), "1,500,000");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn a_short_input_without_incidents_says_that_is_expected_and_a_long_one_does_not() {
        let mut report = Report {
            summary: crate::report::Summary {
                events: 11,
                malformed: 0,
                late: 0,
                users: 2,
                first_ts: Some(1_773_133_200_000),
                last_ts: Some(1_773_133_202_000),
                elapsed_s: 0.0,
                quarantine: None,
                changes_loaded: 0,
                changes_rejected: Vec::new(),
                out_of_range: 0,
                clock_offsets: Vec::new(),
            },
            incidents: Vec::new(),
        };
        assert!(render(&report).contains("That is expected: the input spans 2s of event time"));
        report.summary.last_ts = Some(1_773_133_200_000 + SHORTEST_DETECTABLE_MS);
        assert!(!render(&report).contains("expected"));
        report.summary.first_ts = None;
        assert!(!render(&report).contains("expected"));
    }

    fn one_incident(verdict: &str) -> Report {
        let incident: IncidentRecord = serde_json::from_value(serde_json::json!({
            "id": "INC-000001", "user": "90-B3-D5-1F-30-01-00-07", "kind": "backlog",
            "onset": 1_773_137_000_000_i64, "detected": 1_773_137_030_000_i64, "resolved": null,
            "peak_depth": 1_500, "verdict": verdict, "peak_rate": 0.0, "baseline_rate": 0.0, "peak_ratio": 0.0, "evidence": {},
            "suspects": [{"change": "CHG-1", "title": "Firewall rule migration", "contact": "netops@example.invalid",
                          "score": 0.91, "reasons": ["same User"]}]
        }))
        .unwrap();
        Report {
            summary: crate::report::Summary {
                events: 1,
                malformed: 0,
                late: 0,
                users: 1,
                first_ts: None,
                last_ts: None,
                elapsed_s: 0.0,
                quarantine: None,
                changes_loaded: 1,
                changes_rejected: Vec::new(),
                out_of_range: 0,
                clock_offsets: Vec::new(),
            },
            incidents: vec![incident],
        }
    }

    #[test]
    fn names_the_user_and_gives_each_change_its_title_and_contact() {
        let text = render_named(&one_incident("registered_change"), &|user| {
            (user == "90-B3-D5-1F-30-01-00-07").then(|| "Acme Energy (supplier)".to_owned())
        });
        assert!(
            text.contains("90-B3-D5-1F-30-01-00-07 Acme Energy (supplier)"),
            "{text}"
        );
        assert!(
            text.contains(
                "top suspect: CHG-1 \"Firewall rule migration\" (contact netops@example.invalid) (score 0.91)"
            ),
            "{text}"
        );
    }

    #[test]
    fn under_an_unregistered_verdict_candidates_are_ruled_out_never_a_top_suspect() {
        let text = render(&one_incident("unregistered_change_suspected"));
        assert!(!text.contains("top suspect"), "{text}");
        assert!(text.contains("ruled out: CHG-1"), "{text}");
    }
}
