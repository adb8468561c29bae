//! The CSV form of change notices: header checks, and each row turned into the JSON form so one validator judges both.

use csv::{ByteRecord, ReaderBuilder, Trim};
use serde_json::{Map, Number, Value};

use super::notice::ChangeNotice;
use super::records::{ChangeFileError, Sink};
use super::validate::FieldError;

const REQUIRED: [&str; 6] = ["id", "user", "title", "category", "start", "end"];
const OPTIONAL: [&str; 5] = [
    "status",
    "srvs",
    "expected_direction",
    "expected_rate_factor",
    "contact",
];

/// Where each contract column sits in the file (`None`: the file has no such column).
struct Columns {
    width: usize,
    positions: Vec<(&'static str, Option<usize>)>,
}

impl Columns {
    fn from_header(header: &ByteRecord, sink: &Sink<'_>) -> Result<Columns, ChangeFileError> {
        let names: Vec<String> = header
            .iter()
            .map(|cell| String::from_utf8_lossy(cell).trim().to_ascii_lowercase())
            .collect();
        let find = |name: &str| names.iter().position(|column| column == name);
        let positions: Vec<_> = REQUIRED
            .iter()
            .chain(&OPTIONAL)
            .map(|&name| (name, find(name)))
            .collect();
        let missing: Vec<_> = REQUIRED
            .iter()
            .filter(|name| find(name).is_none())
            .map(|name| format!("`{name}`"))
            .collect();
        // Without a required column every row would be refused for the same reason: say it once, about the file.
        if !missing.is_empty() {
            let reason = format!(
                "the CSV header lacks required column(s) {} (it has: {})",
                missing.join(", "),
                names.join(", ")
            );
            return Err(sink.malformed(Some(1), None, reason));
        }
        Ok(Columns {
            width: header.len(),
            positions,
        })
    }

    fn cell<'r>(&self, row: &'r ByteRecord, name: &str) -> Result<&'r str, FieldError> {
        let position = self
            .positions
            .iter()
            .find(|(column, _)| *column == name)
            .and_then(|(_, at)| *at);
        let Some(bytes) = position.and_then(|at| row.get(at)) else {
            return Ok("");
        };
        std::str::from_utf8(bytes).map_err(|_| FieldError::new(name, "is not valid UTF-8"))
    }
}

pub(super) fn parse_csv(bytes: &[u8], sink: &mut Sink<'_>) -> Result<(), ChangeFileError> {
    // Flexible, so that a row of the wrong width is one rejected notice rather than the end of the file.
    let mut reader = ReaderBuilder::new()
        .trim(Trim::All)
        .flexible(true)
        .from_reader(bytes);
    let header = reader
        .byte_headers()
        .map_err(|error| sink.malformed(Some(1), None, format!("unreadable CSV header: {error}")))?
        .clone();
    let columns = Columns::from_header(&header, sink)?;
    let mut row = ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                let line = error.position().map(|at| at.line());
                return Err(sink.malformed(line, None, format!("unreadable CSV: {error}")));
            }
        }
        let line = row.position().map_or(0, |at| at.line());
        let record = usize::try_from(line).unwrap_or(usize::MAX);
        let id = columns.cell(&row, "id").ok();
        if row.len() != columns.width {
            let reason = format!("has {} cells, the header has {}", row.len(), columns.width);
            sink.accept(record, Err(FieldError::new("", reason)), id);
            continue;
        }
        let result = row_to_json(&columns, &row)
            .and_then(|value| ChangeNotice::try_from(&value).map_err(csv_field_names));
        sink.accept(record, result, id);
    }
    Ok(())
}

/// The row as the contract's JSON object; empty cells are left out, meaning absent.
fn row_to_json(columns: &Columns, row: &ByteRecord) -> Result<Value, FieldError> {
    let mut object = Map::new();
    for name in [
        "id", "user", "title", "category", "start", "end", "status", "contact",
    ] {
        put_text(&mut object, name, columns.cell(row, name)?);
    }
    let srvs: Vec<Value> = columns
        .cell(row, "srvs")?
        .split(';')
        .map(str::trim)
        .filter(|srv| !srv.is_empty())
        .map(|srv| Value::String(srv.to_owned()))
        .collect();
    if !srvs.is_empty() {
        object.insert("srvs".to_owned(), Value::Array(srvs));
    }
    let direction = columns.cell(row, "expected_direction")?;
    let rate_factor = columns.cell(row, "expected_rate_factor")?;
    if !direction.is_empty() || !rate_factor.is_empty() {
        let mut expected = Map::new();
        put_text(&mut expected, "direction", direction);
        if !rate_factor.is_empty() {
            // CSV cells are all text, so the number check that JSON's type gives for free happens here.
            let number = json_number(rate_factor).ok_or_else(|| {
                let reason = format!("`{rate_factor}` is not a finite number");
                FieldError::new("expected_rate_factor", reason)
            })?;
            expected.insert("rate_factor".to_owned(), number);
        }
        object.insert("expected".to_owned(), Value::Object(expected));
    }
    Ok(Value::Object(object))
}

/// Names the CSV column rather than the JSON path, since that is what the person sees in the file.
fn csv_field_names(error: FieldError) -> FieldError {
    let field = match error.field.as_str() {
        "expected.direction" | "expected" => "expected_direction".to_owned(),
        "expected.rate_factor" => "expected_rate_factor".to_owned(),
        other => other.to_owned(),
    };
    FieldError { field, ..error }
}

/// A JSON number for a CSV cell, or `None` when the text is not a finite number.
fn json_number(text: &str) -> Option<Value> {
    let value: f64 = text.parse().ok()?;
    Number::from_f64(value).map(Value::Number)
}

/// Adds `key: text` to a notice object under construction, unless the cell is empty (absent).
fn put_text(object: &mut Map<String, Value>, key: &str, text: &str) {
    if !text.is_empty() {
        object.insert(key.to_owned(), Value::String(text.to_owned()));
    }
}
