//! Malformed lines kept byte for byte, with source and line number, as NDJSON records an operator can read.

use std::io::{self, Write};

use serde::Serialize;

/// One malformed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedLine {
    /// Index of the input in the order given (see [`QuarantineWriter::new`] for the names).
    pub source: u32,
    /// 1-based line number within that input.
    pub line: u64,
    pub error: String,
    /// The line's bytes (for an oversized line, only its first 64 KiB).
    pub bytes: Vec<u8>,
    /// The line's full length in bytes.
    pub length: u64,
}

/// The record written for each malformed line. `raw` holds the exact bytes when they are UTF-8; otherwise `raw_hex`
/// holds them as hex, so nothing is lost either way.
#[derive(Serialize)]
struct Record<'a> {
    source: &'a str,
    line: u64,
    error: &'a str,
    length: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_hex: Option<String>,
}

/// Renders one malformed line as its quarantine record (without the newline).
pub fn render_record(source_name: &str, malformed: &MalformedLine) -> String {
    let text = std::str::from_utf8(&malformed.bytes).ok();
    let record = Record {
        source: source_name,
        line: malformed.line,
        error: &malformed.error,
        length: malformed.length,
        truncated: (malformed.bytes.len() as u64) < malformed.length,
        raw: text,
        raw_hex: text
            .is_none()
            .then(|| malformed.bytes.iter().map(|b| format!("{b:02x}")).collect()),
    };
    serde_json::to_string(&record)
        .unwrap_or_else(|e| format!("{{\"error\":\"unrenderable record: {e}\"}}"))
}

/// Appends quarantine records to any writer.
pub struct QuarantineWriter<W: Write> {
    out: W,
    source_names: Vec<String>,
    written: u64,
}

impl<W: Write> QuarantineWriter<W> {
    pub fn new(out: W, source_names: Vec<String>) -> Self {
        QuarantineWriter {
            out,
            source_names,
            written: 0,
        }
    }

    pub fn write(&mut self, malformed: &MalformedLine) -> io::Result<()> {
        let name = self
            .source_names
            .get(malformed.source as usize)
            .map_or("?", String::as_str);
        writeln!(self.out, "{}", render_record(name, malformed))?;
        self.written += 1;
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_and_binary_lines_round_trip() {
        let mut writer = QuarantineWriter::new(Vec::new(), vec!["events.ndjson".into()]);
        let text = MalformedLine {
            source: 0,
            line: 13,
            error: "unknown event".into(),
            bytes: b"{\"e\":\"x\"}".to_vec(),
            length: 9,
        };
        let binary = MalformedLine {
            source: 0,
            line: 14,
            error: "not UTF-8".into(),
            bytes: vec![0xff, 0x00, b'a'],
            length: 3,
        };
        writer.write(&text).unwrap();
        writer.write(&binary).unwrap();
        let out = String::from_utf8(writer.finish().unwrap()).unwrap();
        let records: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records[0]["raw"], "{\"e\":\"x\"}");
        assert_eq!(records[0]["line"], 13);
        assert_eq!(records[0]["source"], "events.ndjson");
        assert_eq!(records[1]["raw_hex"], "ff0061");
    }
}
