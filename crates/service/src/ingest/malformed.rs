//! Malformed lines in the live service: counted by source, appended to the quarantine file, and the most recent
//! ones kept in a bounded list for `GET /api/v1/malformed`, so no flood of bad input can grow memory. Valid
//! lines the engine refused (unknown User, User table full) are kept apart in their own bounded list and with
//! their own budget in the quarantine file, so a flood of made-up Users can neither push real malformed lines
//! out of view nor grow the file without bound.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use metrics::counter;

use crate::log_limit::LogLimit;
use crate::metrics::QUARANTINE_WRITE_ERRORS;
use stormwatch_core::telemetry::MalformedLine;
use stormwatch_core::telemetry::quarantine::render_record;

/// How many recent malformed records the API can list.
pub const RECENT_MALFORMED: usize = 1_000;
/// How many recent refused records the API can list.
pub const RECENT_REFUSED: usize = 1_000;
/// Refused records written to the quarantine file per minute; beyond that they are only counted, and one
/// summary record a minute says how many were left out.
const REFUSED_WRITTEN_PER_MINUTE: u64 = 1_000;

pub struct MalformedLog {
    recent: VecDeque<String>,
    file: Option<BufWriter<File>>,
    path: PathBuf,
    pub total: u64,
    refused: VecDeque<String>,
    /// Valid lines refused by the engine, since start.
    pub refused_total: u64,
    /// Start of the current minute of the refused budget, what was written in it, and what was left out.
    refused_minute: (std::time::Instant, u64, u64),
    /// A failing quarantine file fails for every line: one ERROR a minute, with the count.
    write_errors: LogLimit,
}

impl MalformedLog {
    /// Appends to `path` (created if missing); if it cannot be opened, records stay in memory and an error is
    /// logged once, rather than stopping ingest.
    pub fn open(path: PathBuf) -> MalformedLog {
        let file = OpenOptions::new().create(true).append(true).open(&path);
        let file = match file {
            Ok(file) => Some(BufWriter::new(file)),
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot open the quarantine file; malformed lines are only listed in memory");
                None
            }
        };
        MalformedLog {
            recent: VecDeque::with_capacity(RECENT_MALFORMED),
            file,
            path,
            total: 0,
            refused: VecDeque::with_capacity(RECENT_REFUSED),
            refused_total: 0,
            refused_minute: (std::time::Instant::now(), 0, 0),
            write_errors: LogLimit::new(std::time::Duration::from_secs(60)),
        }
    }

    pub fn keep(&mut self, source: &str, line: &MalformedLine) {
        self.total += 1;
        let record = render_record(source, line);
        if let Some(file) = &mut self.file
            && let Err(error) = writeln!(file, "{record}")
        {
            self.write_failed(&error);
        }
        if self.recent.len() == RECENT_MALFORMED {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
    }

    /// Keeps a valid line the engine refused: counted, listed apart, and written to the quarantine file within
    /// the per-minute budget.
    pub fn refuse(&mut self, source: &str, line: &MalformedLine) {
        self.refused_total += 1;
        let record = render_record(source, line);
        let (started, _, left_out) = &mut self.refused_minute;
        if started.elapsed() >= std::time::Duration::from_secs(60) {
            if *left_out > 0 {
                let note = serde_json::json!({
                    "source": source,
                    "error": format!("{left_out} more refused lines in the last minute, counted but not written"),
                });
                if let Some(file) = &mut self.file
                    && let Err(error) = writeln!(file, "{note}")
                {
                    self.write_failed(&error);
                }
            }
            self.refused_minute = (std::time::Instant::now(), 0, 0);
        }
        let (_, written, left_out) = &mut self.refused_minute;
        if *written < REFUSED_WRITTEN_PER_MINUTE {
            *written += 1;
            if let Some(file) = &mut self.file
                && let Err(error) = writeln!(file, "{record}")
            {
                self.write_failed(&error);
            }
        } else {
            *left_out += 1;
        }
        if self.refused.len() == RECENT_REFUSED {
            self.refused.pop_front();
        }
        self.refused.push_back(record);
    }

    /// The newest `limit` refused records, newest first, as JSON values.
    pub fn recent_refused(&self, limit: usize) -> Vec<serde_json::Value> {
        self.refused
            .iter()
            .rev()
            .take(limit)
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect()
    }

    pub fn flush(&mut self) {
        if let Some(file) = &mut self.file
            && let Err(error) = file.flush()
        {
            self.write_failed(&error);
        }
    }

    fn write_failed(&mut self, error: &std::io::Error) {
        counter!(QUARANTINE_WRITE_ERRORS).increment(1);
        if let Some(suppressed) = self.write_errors.allow() {
            tracing::error!(
                path = %self.path.display(),
                %error,
                suppressed,
                "quarantine write failed (malformed lines stay counted and listed in memory)"
            );
        }
    }

    /// The newest `limit` records, newest first, as JSON values.
    pub fn recent(&self, limit: usize) -> Vec<serde_json::Value> {
        self.recent
            .iter()
            .rev()
            .take(limit)
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect()
    }
}
