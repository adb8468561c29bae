//! Parsing the bytes of a change file (JSON array, NDJSON, CSV) into accepted notices and rejected records.

use serde_json::Value;

use super::records::{ChangeFileError, ChangeFormat, LoadedChanges, Sink, strip_bom};
use super::validate::FieldError;

/// Parses a file's bytes. `source` names the file in messages. A blank file holds no notices.
pub fn parse_changes(
    bytes: &[u8],
    format: ChangeFormat,
    source: &str,
) -> Result<LoadedChanges, ChangeFileError> {
    let bytes = strip_bom(bytes);
    let mut sink = Sink::new(source, format);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(sink.into_loaded());
    }
    match format {
        ChangeFormat::Json => parse_json_array(bytes, &mut sink)?,
        ChangeFormat::Ndjson => parse_ndjson(bytes, &mut sink),
        ChangeFormat::Csv => super::csv_rows::parse_csv(bytes, &mut sink)?,
    }
    Ok(sink.into_loaded())
}

fn parse_json_array(bytes: &[u8], sink: &mut Sink<'_>) -> Result<(), ChangeFileError> {
    let document: Value = match serde_json::from_slice(bytes) {
        Ok(document) => document,
        // Many tools write NDJSON under `.json`: objects one after another rather than an array.
        Err(_) if ChangeFormat::sniff(bytes) == ChangeFormat::Ndjson => {
            sink.set_format(ChangeFormat::Ndjson);
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

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
