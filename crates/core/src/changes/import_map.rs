//! Import from change-management tools: a field mapping (loaded from TOML by the binary) turns each record of a
//! ServiceNow `change_request` export (Table API JSON, `{"result": [...]}`) or of a CSV with its own column names
//! into a contract notice, through the same validation as any notice. Pure: the caller reads the files.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use time::PrimitiveDateTime;
use time::macros::format_description;

use super::notice::ChangeNotice;

/// Which source field feeds each contract field. `id`, `title`, `start` and `end` are required; `user`,
/// `category` and `status` fall back to `[defaults]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappedFields {
    pub id: String,
    pub title: String,
    pub start: String,
    pub end: String,
    pub user: Option<String>,
    pub category: Option<String>,
    pub status: Option<String>,
    pub contact: Option<String>,
    /// SRVs, separated by `;`, `,` or spaces.
    pub srvs: Option<String>,
}

/// Values used when a record has no value for the field (or the mapping names no field).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappedDefaults {
    /// The User an export belongs to, when the tool has no field for it (each User imports its own).
    pub user: Option<String>,
    pub category: Option<String>,
    pub status: Option<String>,
}

/// For Table API fields exported as objects (`sysparm_display_value=all`, or reference fields such as `cmdb_ci`):
/// which member to read.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectValue {
    #[default]
    Value,
    DisplayValue,
}

/// A whole mapping. Source values are translated through `status` and `category` (exact match, then
/// case-insensitive); a value in neither table must already be the contract's name.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    pub fields: MappedFields,
    #[serde(default)]
    pub defaults: MappedDefaults,
    #[serde(default)]
    pub status: BTreeMap<String, String>,
    #[serde(default)]
    pub category: BTreeMap<String, String>,
    #[serde(default)]
    pub object_value: ObjectValue,
}

/// What an import gave: notices, and each refused record with where it was and why.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MappedImport {
    pub notices: Vec<ChangeNotice>,
    pub rejected: Vec<String>,
}

/// A ServiceNow Table API export: `{"result": [records]}` (a bare array of records is taken too).
pub fn map_servicenow(text: &str, mapping: &FieldMapping) -> Result<MappedImport, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let records = match &value {
        Value::Object(object) => object
            .get("result")
            .and_then(Value::as_array)
            .ok_or("no `result` array: is this a Table API export of change_request?")?,
        Value::Array(records) => records,
        _ => return Err("neither `{\"result\": [...]}` nor an array of records".into()),
    };
    let mut import = MappedImport::default();
    for (index, record) in records.iter().enumerate() {
        let lookup = |field: &str| {
            record
                .get(field)
                .and_then(|v| scalar(v, mapping.object_value))
        };
        let place = format!("record {}", index + 1);
        import.push(
            map_one(&lookup, mapping),
            &place,
            &lookup(&mapping.fields.id),
        );
    }
    Ok(import)
}

/// A CSV whose header row has the tool's column names.
pub fn map_csv(text: &str, mapping: &FieldMapping) -> Result<MappedImport, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("header row: {e}"))?
        .clone();
    for field in [
        &mapping.fields.id,
        &mapping.fields.title,
        &mapping.fields.start,
        &mapping.fields.end,
    ] {
        if !headers.iter().any(|h| h.trim() == field) {
            return Err(format!(
                "no column `{field}` (the mapping needs it); columns: {}",
                headers.iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let mut import = MappedImport::default();
    for row in reader.records() {
        let row = match row {
            Ok(row) => row,
            Err(error) => {
                let line = error.position().map_or(0, |p| p.line());
                import.rejected.push(format!("line {line}: {error}"));
                continue;
            }
        };
        let line = row.position().map_or(0, |p| p.line());
        let lookup = |field: &str| {
            headers
                .iter()
                .position(|h| h.trim() == field)
                .and_then(|i| row.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        import.push(
            map_one(&lookup, mapping),
            &format!("line {line}"),
            &lookup(&mapping.fields.id),
        );
    }
    Ok(import)
}

impl MappedImport {
    fn push(&mut self, result: Result<ChangeNotice, String>, place: &str, id: &Option<String>) {
        match result {
            Ok(notice) => self.notices.push(notice),
            Err(reason) => {
                let id = id
                    .as_deref()
                    .map(|id| format!(" ({id})"))
                    .unwrap_or_default();
                self.rejected.push(format!("{place}{id}: {reason}"));
            }
        }
    }
}

/// A field's text: strings as they are, numbers and booleans printed, objects through `object_value`.
fn scalar(value: &Value, pick: ObjectValue) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Object(object) => {
            let key = match pick {
                ObjectValue::Value => "value",
                ObjectValue::DisplayValue => "display_value",
            };
            return object.get(key).and_then(|v| scalar(v, pick));
        }
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

fn translate(table: &BTreeMap<String, String>, value: String) -> String {
    table
        .get(&value)
        .or_else(|| {
            table
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&value))
                .map(|(_, v)| v)
        })
        .cloned()
        .unwrap_or(value)
}

/// RFC 3339, or the Table API's `YYYY-MM-DD HH:MM:SS` (UTC when exported with `sysparm_display_value=false`).
fn time(text: &str) -> Option<String> {
    if crate::rfc3339::parse_ms(text).is_some() {
        return Some(text.to_owned());
    }
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let at = PrimitiveDateTime::parse(text, format).ok()?.assume_utc();
    crate::rfc3339::format_ms(at.unix_timestamp().checked_mul(1000)?)
}

fn map_one(
    lookup: &dyn Fn(&str) -> Option<String>,
    mapping: &FieldMapping,
) -> Result<ChangeNotice, String> {
    let fields = &mapping.fields;
    let defaults = &mapping.defaults;
    let source = |field: &Option<String>| field.as_deref().and_then(lookup);
    let required = |contract: &str, field: &str| {
        lookup(field).ok_or_else(|| format!("no value in `{field}` (mapped to `{contract}`)"))
    };
    let mut object = Map::new();
    object.insert("id".into(), required("id", &fields.id)?.into());
    object.insert("title".into(), required("title", &fields.title)?.into());
    for (contract, field) in [("start", &fields.start), ("end", &fields.end)] {
        let text = required(contract, field)?;
        let at = time(&text).ok_or_else(|| {
            format!("`{field}` = `{text}` is neither RFC 3339 nor YYYY-MM-DD HH:MM:SS (mapped to `{contract}`)")
        })?;
        object.insert(contract.into(), at.into());
    }
    let user = source(&fields.user)
        .or_else(|| defaults.user.clone())
        .ok_or("no User: map `fields.user` or set `defaults.user`")?;
    object.insert("user".into(), user.into());
    let category = source(&fields.category)
        .map(|c| translate(&mapping.category, c))
        .or_else(|| defaults.category.clone())
        .ok_or("no category: map `fields.category` or set `defaults.category`")?;
    object.insert("category".into(), category.into());
    if let Some(status) = source(&fields.status)
        .map(|s| translate(&mapping.status, s))
        .or_else(|| defaults.status.clone())
    {
        object.insert("status".into(), status.into());
    }
    if let Some(contact) = source(&fields.contact) {
        object.insert("contact".into(), contact.into());
    }
    if let Some(srvs) = source(&fields.srvs) {
        let list: Vec<Value> = srvs
            .split([';', ',', ' '])
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_owned()))
            .collect();
        object.insert("srvs".into(), Value::Array(list));
    }
    ChangeNotice::try_from(&Value::Object(object)).map_err(|error| {
        // Name the source field too, so the person fixes the export or the mapping, not the contract.
        let mapped = match error.field.as_str() {
            "user" => fields.user.as_deref(),
            "category" => fields.category.as_deref(),
            "status" => fields.status.as_deref(),
            "contact" => fields.contact.as_deref(),
            "srvs" => fields.srvs.as_deref(),
            _ => None,
        };
        match (mapped, error.field.as_str()) {
            (Some(source), table @ ("status" | "category")) => {
                format!("{error} (from `{source}`; add the value to the mapping's [{table}] table)")
            }
            (Some(source), _) => format!("{error} (from `{source}`)"),
            (None, _) => error.to_string(),
        }
    })
}

#[cfg(test)]
#[path = "import_map_tests.rs"]
mod tests;
