//! The User directory: which Users exist (the allow-list that refuses lines from unknown Users) and each one's
//! party name and role, loaded from a CSV or JSON file and overlaid by the edits made through the API.
//!
//! File formats: CSV lines `EUI-64[,name[,role]]` (`#` starts a comment, an optional `user,name,role` header), or
//! a JSON array of `{"user": ..., "name": ..., "role": ...}`. A bare EUI-64 line lists the User without a name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use stormwatch_core::telemetry::Eui64;

/// The cause is in the message, so it is not also a `source()` (a printed chain would repeat it).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot read the User directory {}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("User directory {} line {line}: `{text}` is not an EUI-64", path.display())]
    BadLine {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("User directory {} line {line}: {why}", path.display())]
    BadEntry {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

/// A party's role in the smart-metering network.
#[derive(Copy, Clone, Eq, PartialEq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyRole {
    Supplier,
    NetworkOperator,
    OtherUser,
}

impl PartyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyRole::Supplier => "supplier",
            PartyRole::NetworkOperator => "network_operator",
            PartyRole::OtherUser => "other_user",
        }
    }

    /// Accepts the API's spelling and the words a person types in a spreadsheet (`Network operator`, `other`).
    pub fn parse(text: &str) -> Option<PartyRole> {
        let word = text.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        match word.as_str() {
            "supplier" => Some(PartyRole::Supplier),
            "network_operator" | "dno" | "gas_transporter" => Some(PartyRole::NetworkOperator),
            "other_user" | "other" => Some(PartyRole::OtherUser),
            _ => None,
        }
    }
}

/// One User's listing. `name` is empty for a User listed only to be allowed in.
#[derive(Clone, Eq, PartialEq, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub user: Eui64,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<PartyRole>,
}

impl Entry {
    /// `Acme Energy (supplier)`, or `None` when the entry has no name.
    pub fn label(&self) -> Option<String> {
        if self.name.is_empty() {
            return None;
        }
        Some(match self.role {
            Some(role) => format!("{} ({})", self.name, role.as_str().replace('_', " ")),
            None => self.name.clone(),
        })
    }
}

/// Longest party name kept (a name is a label, not a document).
pub const MAX_NAME_CHARS: usize = 200;

/// Reads a directory file (CSV or JSON, by its first character).
pub fn read(path: &Path) -> Result<Vec<Entry>, DirectoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Read {
        path: path.to_owned(),
        cause: source,
    })?;
    parse(&text).map_err(|problem| match problem {
        Problem::NotUser(line, text) => DirectoryError::BadLine {
            path: path.to_owned(),
            line,
            text,
        },
        Problem::Entry(line, why) => DirectoryError::BadEntry {
            path: path.to_owned(),
            line,
            why,
        },
    })
}

/// The listed Users only (the engine's allow-list).
pub fn load(path: &Path) -> Result<FxHashSet<Eui64>, DirectoryError> {
    Ok(read(path)?.into_iter().map(|entry| entry.user).collect())
}

#[derive(Debug, PartialEq)]
enum Problem {
    NotUser(usize, String),
    Entry(usize, String),
}

fn parse(text: &str) -> Result<Vec<Entry>, Problem> {
    if text.trim_start().starts_with('[') {
        return parse_json(text);
    }
    // Comments go before the CSV reader sees the text: the csv crate only knows whole-line comments, and the
    // file format has always allowed `EUI # note`. Line breaks stay, so record lines are file lines.
    let stripped: String = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(stripped.as_bytes());
    let mut entries = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|error| {
            let line = error.position().map_or(index + 1, |p| p.line() as usize);
            Problem::Entry(line, error.to_string())
        })?;
        let line = record.position().map_or(index + 1, |p| p.line() as usize);
        let first = record.get(0).unwrap_or_default();
        if first.is_empty() && record.iter().all(str::is_empty) {
            continue;
        }
        if index == 0 && first.eq_ignore_ascii_case("user") {
            continue;
        }
        let user = Eui64::parse(first).ok_or_else(|| Problem::NotUser(line, first.to_owned()))?;
        let name = record.get(1).unwrap_or_default();
        let role = match record.get(2).filter(|r| !r.is_empty()) {
            None => None,
            Some(text) => {
                Some(PartyRole::parse(text).ok_or_else(|| Problem::Entry(line, bad_role(text)))?)
            }
        };
        entries.push(checked(user, name, role).map_err(|why| Problem::Entry(line, why))?);
    }
    Ok(entries)
}

fn parse_json(text: &str) -> Result<Vec<Entry>, Problem> {
    #[derive(Deserialize)]
    struct Raw {
        user: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        role: Option<String>,
    }
    let raw: Vec<Raw> = serde_json::from_str(text)
        .map_err(|error| Problem::Entry(error.line(), error.to_string()))?;
    raw.into_iter()
        .enumerate()
        .map(|(index, raw)| {
            // JSON has no useful line per element: the message names the entry's place instead.
            let at = index + 1;
            let user = Eui64::parse(raw.user.trim()).ok_or_else(|| {
                Problem::Entry(0, format!("entry {at}: `{}` is not an EUI-64", raw.user))
            })?;
            let role =
                match raw.role.as_deref() {
                    None | Some("") => None,
                    Some(text) => Some(PartyRole::parse(text).ok_or_else(|| {
                        Problem::Entry(0, format!("entry {at}: {}", bad_role(text)))
                    })?),
                };
            checked(user, raw.name.trim(), role)
                .map_err(|why| Problem::Entry(0, format!("entry {at}: {why}")))
        })
        .collect()
}

fn bad_role(text: &str) -> String {
    format!("role `{text}` is not supplier, network_operator or other_user")
}

/// An entry with a name within bounds and free of control characters (it ends up in labels and headers).
pub fn checked(user: Eui64, name: &str, role: Option<PartyRole>) -> Result<Entry, String> {
    let name = name.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("name longer than {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("name contains a control character".to_owned());
    }
    Ok(Entry {
        user,
        name: name.to_owned(),
        role,
    })
}

/// The directory as the service sees it: the file's entries overlaid by the API's edits (`None` = deleted).
#[derive(Debug, Default)]
pub struct Directory {
    file: BTreeMap<Eui64, Entry>,
    edits: BTreeMap<Eui64, Option<Entry>>,
    /// Whether a file was loaded: only then is the directory also an allow-list.
    from_file: bool,
}

impl Directory {
    pub fn new(file: Option<Vec<Entry>>, edits: Vec<(Eui64, Option<Entry>)>) -> Directory {
        let from_file = file.is_some();
        Directory {
            file: file
                .unwrap_or_default()
                .into_iter()
                .map(|entry| (entry.user, entry))
                .collect(),
            edits: edits.into_iter().collect(),
            from_file,
        }
    }

    pub fn get(&self, user: &Eui64) -> Option<&Entry> {
        match self.edits.get(user) {
            Some(edit) => edit.as_ref(),
            None => self.file.get(user),
        }
    }

    /// Every listed User, by EUI-64.
    pub fn entries(&self) -> Vec<&Entry> {
        let mut users: Vec<&Eui64> = self.file.keys().chain(self.edits.keys()).collect();
        users.sort_unstable();
        users.dedup();
        users
            .into_iter()
            .filter_map(|user| self.get(user))
            .collect()
    }

    pub fn set(&mut self, user: Eui64, entry: Option<Entry>) {
        self.edits.insert(user, entry);
    }

    /// The allow-list for the engine: `None` (everyone) unless a file was loaded.
    pub fn allow_list(&self) -> Option<FxHashSet<Eui64>> {
        self.from_file
            .then(|| self.entries().into_iter().map(|entry| entry.user).collect())
    }
}

/// The shared directory handle: the API edits it, alerts, metrics and views read names from it.
#[derive(Clone, Debug, Default)]
pub struct Names(Arc<RwLock<Directory>>);

impl Names {
    pub fn new(directory: Directory) -> Names {
        Names(Arc::new(RwLock::new(directory)))
    }

    /// A poisoned lock still holds a whole map (writers only insert): reading on is safe.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, user: &Eui64) -> Option<Entry> {
        self.read().get(user).cloned()
    }

    /// The entry for a User as the API and reports spell it (`*` and unparseable text have none).
    pub fn lookup(&self, user: &str) -> Option<Entry> {
        Eui64::parse(user).and_then(|user| self.get(&user))
    }

    /// `Name (role)` for a User with a named entry.
    pub fn label(&self, user: &str) -> Option<String> {
        self.lookup(user).and_then(|entry| entry.label())
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.read().entries().into_iter().cloned().collect()
    }

    /// Applies an edit and returns the new allow-list.
    pub fn set(&self, user: Eui64, entry: Option<Entry>) -> Option<FxHashSet<Eui64>> {
        let mut directory = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        directory.set(user, entry);
        directory.allow_list()
    }

    pub fn allow_list(&self) -> Option<FxHashSet<Eui64>> {
        self.read().allow_list()
    }

    /// `stormwatch_user_info{user,name,role} 1` for each named User, in the Prometheus text format, so dashboards
    /// and rules can join names onto per-User series. Rendered at scrape time: a renamed or deleted User leaves
    /// no stale series behind.
    pub fn info_metric(&self) -> String {
        let mut out = String::from(
            "# HELP stormwatch_user_info The User directory's party name and role of each User (always 1; join on `user`).\n# TYPE stormwatch_user_info gauge\n",
        );
        for entry in self.entries().iter().filter(|e| !e.name.is_empty()) {
            out.push_str(&format!(
                "stormwatch_user_info{{user=\"{}\",name=\"{}\",role=\"{}\"}} 1\n",
                entry.user,
                escape_label(&entry.name),
                entry.role.map_or("", PartyRole::as_str)
            ));
        }
        out
    }
}

/// Prometheus label-value escaping: backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
#[path = "user_directory_tests.rs"]
mod tests;
