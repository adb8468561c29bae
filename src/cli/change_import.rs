//! `changes import --servicenow / --mapping`: change-management exports (a ServiceNow `change_request` Table API
//! export, or any CSV) read through a TOML field mapping; the built-in ServiceNow mapping is
//! `servicenow_mapping.toml` beside this file.

use std::path::PathBuf;

use anyhow::Context;
use stormwatch_core::changes::{ChangeNotice, FieldMapping, map_csv, map_servicenow};

/// The built-in mapping for ServiceNow `change_request` exports.
pub const SERVICENOW_MAPPING: &str = include_str!("servicenow_mapping.toml");

#[derive(clap::Args, Debug)]
pub struct MappedImportArgs {
    /// The files are ServiceNow `change_request` exports (Table API JSON, `{"result": [...]}`), read through the
    /// built-in mapping (or --mapping).
    #[arg(long)]
    pub servicenow: bool,
    /// A TOML field mapping (keys as in --print-mapping): JSON files are read as Table API exports, CSV files by
    /// the column names it gives.
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// The User (EUI-64) an export belongs to, when the mapping has no User field.
    #[arg(long = "user", value_name = "EUI")]
    pub user: Option<String>,
    /// Print the built-in ServiceNow mapping (a starting point for --mapping) and exit.
    #[arg(long)]
    pub print_mapping: bool,
}

impl MappedImportArgs {
    pub fn active(&self) -> bool {
        self.servicenow || self.mapping.is_some()
    }

    fn mapping(&self) -> anyhow::Result<FieldMapping> {
        let (text, origin) = match &self.mapping {
            Some(path) => (
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read mapping {}", path.display()))?,
                path.display().to_string(),
            ),
            None => (
                SERVICENOW_MAPPING.to_owned(),
                "the built-in ServiceNow mapping".into(),
            ),
        };
        let mut mapping: FieldMapping =
            toml::from_str(&text).with_context(|| format!("mapping {origin}"))?;
        if let Some(user) = &self.user {
            mapping.defaults.user = Some(user.clone());
        }
        if mapping.fields.user.is_none() && mapping.defaults.user.is_none() {
            anyhow::bail!(
                "{origin} has no User field: give --user EUI-64 (the User this export belongs to), or map \
                 `fields.user` in a mapping of your own"
            );
        }
        Ok(mapping)
    }
}

/// The notices of every file, and each refused record with where and why; a file that cannot be used at all
/// (unreadable, not an export, a CSV without a mapped column) stops the import before anything is stored.
pub fn load(
    files: &[PathBuf],
    args: &MappedImportArgs,
) -> anyhow::Result<(Vec<ChangeNotice>, Vec<String>)> {
    let mapping = args.mapping()?;
    let mut notices = Vec::new();
    let mut rejected = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}; nothing was imported", file.display()))?;
        let csv = !args.servicenow
            && file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let mapped = if csv {
            map_csv(&text, &mapping)
        } else {
            map_servicenow(&text, &mapping)
        };
        match mapped {
            Ok(import) => {
                notices.extend(import.notices);
                rejected.extend(
                    import
                        .rejected
                        .into_iter()
                        .map(|r| format!("{}: {r}", file.display())),
                );
            }
            Err(reason) => anyhow::bail!("{}: {reason}; nothing was imported", file.display()),
        }
    }
    Ok((notices, rejected))
}
