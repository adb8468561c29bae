//! Reads an iCalendar file with the `ical` crate, a parser independent of the `icalendar` crate that writes
//! Stormwatch's feed, and prints each VEVENT's properties as it understood them:
//! `cargo run --example ics_read -- FILE [MAX_EVENTS]` (scripts/coordination-week uses it).

use std::io::BufReader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: ics_read FILE [MAX_EVENTS]")?;
    let max: usize = args.next().map_or(Ok(usize::MAX), |n| n.parse())?;
    let file = std::fs::File::open(&path)?;
    let mut calendars = 0;
    for calendar in ical::IcalParser::new(BufReader::new(file)) {
        let calendar = calendar?;
        calendars += 1;
        println!("calendar {calendars}: {} events", calendar.events.len());
        for event in calendar.events.iter().take(max) {
            println!("BEGIN:VEVENT");
            for property in &event.properties {
                println!(
                    "  {}: {}",
                    property.name,
                    property.value.as_deref().unwrap_or("")
                );
            }
            println!("END:VEVENT");
        }
    }
    if calendars == 0 {
        return Err(format!("{path}: no VCALENDAR").into());
    }
    Ok(())
}
