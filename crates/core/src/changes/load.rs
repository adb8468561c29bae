//! Loading files of change notices (JSON array, NDJSON, CSV): format detection, per-record rejection, file-level errors.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Number, Value};

use super::notice::ChangeNotice;
use super::validate::{FieldError, validate_notice_json};

/// The three file forms of `contract/changes.md`.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum ChangeFormat {
    /// A JSON array of notice objects (a single object is accepted too).
    Json,
    /// One notice object per line; blank lines are skipped.
    Ndjson,
    /// A header row with the contract's field names, `srvs` split by `;`, `expected` as two columns.
    Csv,
}

impl ChangeFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeFormat::Json => "json",
            ChangeFormat::Ndjson => "ndjson",
            ChangeFormat::Csv => "csv",
        }
    }

    /// From the file's extension (case-insensitive); `None` when it says nothing.
    pub fn from_extension(path: &Path) -> Option<ChangeFormat> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "json" => Some(ChangeFormat::Json),
            "ndjson" | "jsonl" => Some(ChangeFormat::Ndjson),
            "csv" => Some(ChangeFormat::Csv),
            _ => None,
        }
    }

    /// From the first non-blank byte: `[` is a JSON array, `{` NDJSON, anything else CSV.
    pub fn sniff(bytes: &[u8]) -> ChangeFormat {
        match strip_bom(bytes)
            .iter()
            .find(|byte| !byte.is_ascii_whitespace())
        {
            Some(b'[') => ChangeFormat::Json,
            Some(b'{') => ChangeFormat::Ndjson,
            _ => ChangeFormat::Csv,
        }
    }

    /// What one record is called in messages: a line of the file, or an element of the array.
    fn record_unit(self) -> &'static str {
        match self {
            ChangeFormat::Json => "element",
            ChangeFormat::Ndjson | ChangeFormat::Csv => "line",
        }
    }
}

/// A change file that could not be used at all. Single bad notices are [`RejectedNotice`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum ChangeFileError {
    /// The cause is in the message, so it is not also a `source()` (a printed chain would repeat it).
    #[error("cannot read change file `{}`: {cause}", path.display())]
    Read { path: PathBuf, cause: io::Error },
    #[error("change file {file}{}: {reason}", location(*line, *column))]
    Malformed {
        file: String,
        line: Option<u64>,
        column: Option<u64>,
        reason: String,
    },
}

fn location(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" line {line} column {column}"),
        (Some(line), None) => format!(" line {line}"),
        _ => String::new(),
    }
}

/// The notices of one file that passed validation, in file order, and those that did not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadedChanges {
    pub notices: Vec<ChangeNotice>,
    pub rejected: Vec<RejectedNotice>,
}

/// One notice refused, with where it was and why.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct RejectedNotice {
    /// The file as named to the loader.
    pub source: String,
    /// Tells whether `record` is a line number or an array element number.
    pub format: ChangeFormat,
    /// 1-based: the line in the file (NDJSON, CSV) or the element of the array (JSON).
    pub record: usize,
    /// The notice's `id`, when it had a readable one.
    pub id: Option<String>,
    /// The field at fault (CSV: its column name), or empty when the record as a whole is.
    pub field: String,
    pub reason: String,
}

impl fmt::Display for RejectedNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.source,
            self.format.record_unit(),
            self.record
        )?;
        if let Some(id) = &self.id {
            write!(f, " ({id})")?;
        }
        let error = FieldError::new(self.field.as_str(), self.reason.as_str());
        write!(f, ": {error}")
    }
}

/// Parses a file's bytes. `source` names the file in messages. A blank file holds no notices.
pub fn parse_changes(
    bytes: &[u8],
    format: ChangeFormat,
    source: &str,
) -> Result<LoadedChanges, ChangeFileError> {
    let bytes = strip_bom(bytes);
    let mut sink = Sink {
        source,
        format,
        loaded: LoadedChanges::default(),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(sink.loaded);
    }
    match format {
        ChangeFormat::Json => parse_json_array(bytes, &mut sink)?,
        ChangeFormat::Ndjson => parse_ndjson(bytes, &mut sink),
        ChangeFormat::Csv => super::csv_rows::parse_csv(bytes, &mut sink)?,
    }
    Ok(sink.loaded)
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Collects the outcome of each record of one file.
pub(super) struct Sink<'a> {
    source: &'a str,
    format: ChangeFormat,
    loaded: LoadedChanges,
}

impl Sink<'_> {
    pub(super) fn accept(
        &mut self,
        record: usize,
        result: Result<ChangeNotice, FieldError>,
        id: Option<&str>,
    ) {
        match result {
            Ok(notice) => self.loaded.notices.push(notice),
            Err(error) => self.loaded.rejected.push(RejectedNotice {
                source: self.source.to_owned(),
                format: self.format,
                record,
                id: id
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned),
                field: error.field,
                reason: error.reason,
            }),
        }
    }

    fn accept_json(&mut self, record: usize, value: &Value) {
        let id = value.get("id").and_then(Value::as_str);
        self.accept(record, validate_notice_json(value), id);
    }

    pub(super) fn malformed(
        &self,
        line: Option<u64>,
        column: Option<u64>,
        reason: String,
    ) -> ChangeFileError {
        ChangeFileError::Malformed {
            file: self.source.to_owned(),
            line,
            column,
            reason,
        }
    }
}

fn parse_json_array(bytes: &[u8], sink: &mut Sink<'_>) -> Result<(), ChangeFileError> {
    let document: Value = match serde_json::from_slice(bytes) {
        Ok(document) => document,
        // Many tools write NDJSON under `.json`: objects one after another rather than an array.
        Err(_) if ChangeFormat::sniff(bytes) == ChangeFormat::Ndjson => {
            sink.format = ChangeFormat::Ndjson;
            parse_ndjson(bytes, sink);
            return Ok(());
        }
        Err(error) => {
            let (line, column) = json_position(&error);
            let reason = format!("not valid JSON: {}", json_message(&error));
            return Err(sink.malformed(line, column, reason));
        }
    };
    match document {
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                sink.accept_json(index + 1, item);
            }
        }
        object @ Value::Object(_) => sink.accept_json(1, &object),
        other => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                _ => "a string",
            };
            let reason = format!("the top level is {kind}, expected an array of notice objects");
            return Err(sink.malformed(None, None, reason));
        }
    }
    Ok(())
}

/// A broken line rejects only that line: one bad notice must not hide the others.
fn parse_ndjson(bytes: &[u8], sink: &mut Sink<'_>) {
    // One notice pretty-printed over several lines is not NDJSON, but it is plainly what its author meant.
    if let Ok(object @ Value::Object(_)) = serde_json::from_slice::<Value>(bytes) {
        let first = bytes
            .iter()
            .position(|byte| !byte.is_ascii_whitespace())
            .unwrap_or(0);
        let line = bytes[..first].iter().filter(|&&byte| byte == b'\n').count() + 1;
        sink.accept_json(line, &object);
        return;
    }
    for (index, line) in bytes.split(|&byte| byte == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(value) => sink.accept_json(index + 1, &value),
            Err(error) => {
                let reason = match json_position(&error) {
                    (_, Some(column)) => format!(
                        "not valid JSON at column {column}: {}",
                        json_message(&error)
                    ),
                    _ => format!("not valid JSON: {}", json_message(&error)),
                };
                sink.accept(index + 1, Err(FieldError::new("", reason)), None);
            }
        }
    }
}

fn json_position(error: &serde_json::Error) -> (Option<u64>, Option<u64>) {
    let known = |n: usize| (n > 0).then(|| u64::try_from(n).unwrap_or(u64::MAX));
    (known(error.line()), known(error.column()))
}

/// serde_json's message without its own " at line L column C" tail, which the caller places itself.
fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// A JSON number for a CSV cell, or `None` when the text is not a finite number.
pub(super) fn json_number(text: &str) -> Option<Value> {
    let value: f64 = text.parse().ok()?;
    Number::from_f64(value).map(Value::Number)
}

/// Adds `key: text` to a notice object under construction, unless the cell is empty (absent).
pub(super) fn put_text(object: &mut Map<String, Value>, key: &str, text: &str) {
    if !text.is_empty() {
        object.insert(key.to_owned(), Value::String(text.to_owned()));
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
