//! What loading a change file yields: its format, the notices accepted, the records rejected with their place, and
//! the file-level errors; the `Sink` every format's parser fills.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::notice::ChangeNotice;
use super::validate::FieldError;

/// The three file forms of `docs/changes.md`.
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

/// Collects the outcome of each record of one file.
pub(super) struct Sink<'a> {
    source: &'a str,
    format: ChangeFormat,
    loaded: LoadedChanges,
}

impl<'a> Sink<'a> {
    pub(super) fn new(source: &'a str, format: ChangeFormat) -> Sink<'a> {
        Sink {
            source,
            format,
            loaded: LoadedChanges::default(),
        }
    }

    /// A `.json` file that turned out to be NDJSON: its records are lines from here on.
    pub(super) fn set_format(&mut self, format: ChangeFormat) {
        self.format = format;
    }

    pub(super) fn into_loaded(self) -> LoadedChanges {
        self.loaded
    }

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

    pub(super) fn accept_json(&mut self, record: usize, value: &Value) {
        let id = value.get("id").and_then(Value::as_str);
        self.accept(record, ChangeNotice::try_from(value), id);
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

pub(super) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}
