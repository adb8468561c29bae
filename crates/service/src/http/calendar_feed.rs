//! The schedule as an RFC 5545 calendar, written with the `icalendar` crate: one VEVENT per change, stable UIDs so
//! a subscribed client updates events in place, and DTSTAMP from the change's last write so the feed is
//! reproducible.

use icalendar::{Calendar, Component, Event, EventLike, EventStatus};

use crate::http::coordination::ScheduledChange;

/// The calendar for these changes.
pub fn render(changes: &[ScheduledChange]) -> String {
    let mut calendar = Calendar::new();
    calendar
        .name("Stormwatch forward schedule of change")
        .description("User and DCC changes registered with Stormwatch (DP083 change coordination)");
    for change in changes {
        if let Some(event) = event(change) {
            calendar.push(event);
        }
    }
    calendar.done().to_string()
}

fn utc(ms: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms - ms.rem_euclid(1000))
}

fn text<'a>(change: &'a ScheduledChange, key: &str) -> &'a str {
    change.notice[key].as_str().unwrap_or_default()
}

fn event(change: &ScheduledChange) -> Option<Event> {
    let start = stormwatch_core::rfc3339::parse_ms(text(change, "start"))?;
    let end = stormwatch_core::rfc3339::parse_ms(text(change, "end"))?;
    let (id, owner, status) = (
        text(change, "id"),
        text(change, "user"),
        text(change, "status"),
    );
    let mut lines = vec![
        format!("Owner: {owner}"),
        format!("Category: {}", text(change, "category")),
        format!("Status: {status}"),
    ];
    if let Some(expected) = change.notice.get("expected") {
        lines.push(format!(
            "Expected impact: {} up to {}x normal",
            expected["direction"].as_str().unwrap_or("?"),
            expected["rate_factor"]
        ));
    }
    if let Some(contact) = change.notice["contact"].as_str() {
        lines.push(format!("Contact: {contact}"));
    }
    // What a subscriber needs is the situation now: the current warnings, not those of the registration.
    for warning in &change.current_warnings {
        lines.push(format!(
            "Warning ({}): {}",
            warning.kind.as_str(),
            warning.message
        ));
    }
    let mut event = Event::new();
    event
        .uid(&format!("{id}@stormwatch"))
        .summary(&format!("[{owner}] {id}: {}", text(change, "title")))
        .description(&lines.join("\n"))
        .starts(utc(start)?)
        .ends(utc(end)?)
        .timestamp(utc(change.updated_ms)?)
        .last_modified(utc(change.updated_ms)?)
        .add_property("CATEGORIES", text(change, "category"))
        .status(match status {
            "cancelled" => EventStatus::Cancelled,
            "planned" => EventStatus::Tentative,
            _ => EventStatus::Confirmed,
        });
    Some(event.done())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(title: &str, start: &str) -> ScheduledChange {
        ScheduledChange {
            notice: serde_json::json!({"id": "CHG-1", "user": "DCC", "title": title, "category": "other",
                "start": start, "end": "2030-03-12T18:00:00Z", "status": "planned"}),
            owner: "dcc",
            warnings: vec![],
            warnings_recorded: true,
            current_warnings: vec![],
            outcome: stormwatch_core::changes::ChangeOutcome {
                change: "CHG-1".into(),
                owner: "DCC".into(),
                outcome: stormwatch_core::changes::Outcome::Pending,
                attributed: vec![],
                expected: vec![],
                suspected: vec![],
            },
            updated_ms: 1_900_000_000_000,
        }
    }

    #[test]
    fn long_lines_fold_within_75_octets_and_an_unreadable_window_is_left_out() {
        let long = "x".repeat(300);
        let feed = render(&[
            change(&long, "2030-03-12T13:00:00Z"),
            change("bad", "not a time"),
        ]);
        assert!(feed.split("\r\n").all(|line| line.len() <= 75), "{feed}");
        assert_eq!(feed.matches("BEGIN:VEVENT").count(), 1, "{feed}");
        assert!(feed.contains("DTSTAMP:20300317T"), "{feed}");
    }
}
