//! Where each `serve` setting comes from: the TOML file, then `STORMWATCH_*` variables, then flags, every setting
//! under one name in all three (`data_dir`, `STORMWATCH_DATA_DIR`, `--data-dir`). A setting given where it cannot be
//! set (an `[engine]` threshold as a variable or flag, a one-off flag in a variable, Kafka on a build without it) is
//! refused with where it can be set.

use std::path::PathBuf;

use crate::config::{
    ConfigError, NOT_IN_THE_FILE, SETTINGS, ServeConfig, Setting, WITHOUT_KAFKA, file_only_tables,
    file_table,
};

/// The shape of a setting's value, which says how a variable's or a flag's text becomes a TOML value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string: addresses, paths, URLs, words.
    Text,
    /// A whole number.
    Whole,
    /// A number that may have a fraction.
    Number,
    /// `true` or `false`; a flag alone means `true`.
    Switch,
    /// Several paths: the flag repeated, `:` between them in the variable.
    List,
}

/// The shape of `key`'s value, read from the defaults (settings without a default are text).
pub fn kind(key: &str) -> Kind {
    match defaults().get(key) {
        Some(toml::Value::Integer(_)) => Kind::Whole,
        Some(toml::Value::Float(_)) => Kind::Number,
        Some(toml::Value::Boolean(_)) => Kind::Switch,
        Some(toml::Value::Array(_)) => Kind::List,
        _ => Kind::Text,
    }
}

/// The default of `key` as `--help` shows it; `None` for settings unset by default.
pub fn default_text(key: &str) -> Option<String> {
    match defaults().get(key)? {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Array(values) if values.is_empty() => None,
        other => Some(other.to_string()),
    }
}

/// The defaults as a table, built once: every command line asks for each setting's kind and default while clap
/// builds its flags, and serializing the whole configuration per question cost more than a 400 k-line replay's
/// reading.
fn defaults() -> &'static toml::Table {
    static DEFAULTS: std::sync::LazyLock<toml::Table> = std::sync::LazyLock::new(|| {
        toml::Table::try_from(ServeConfig::default()).unwrap_or_default()
    });
    &DEFAULTS
}

/// Where a value came from, to name it in an error.
#[derive(Clone, Debug)]
enum Origin {
    Variable(String),
    Flag(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Variable(name) => f.write_str(name),
            Origin::Flag(flag) => f.write_str(flag),
        }
    }
}

/// What was given, before layering.
#[derive(Clone, Debug, Default)]
pub struct Given {
    pub file: Option<PathBuf>,
    /// Every `STORMWATCH_*` variable of the environment, by name.
    pub variables: Vec<(String, String)>,
    /// Each setting given as a flag, by key, with its values in order (several only for a list).
    pub flags: Vec<(&'static str, Vec<String>)>,
}

/// The effective settings, and the `STORMWATCH_*` variables that name no setting (a typo, most likely), to warn of.
#[derive(Clone, Debug)]
pub struct Layered {
    pub config: ServeConfig,
    pub unknown_variables: Vec<String>,
}

/// `STORMWATCH_*` variables that are not settings of `serve`, each read elsewhere: the config file's name,
/// librdkafka's debug contexts (the Kafka source), and the tests' own (scripts/test-all exports one for every
/// service the tests start, so a warning about it would be a line in every test's log).
const NOT_SETTINGS: &[&str] = &[
    "STORMWATCH_CONFIG",
    "STORMWATCH_KAFKA_DEBUG",
    "STORMWATCH_OVERLOAD_SECONDS",
    "STORMWATCH_UPDATE_SCREENSHOT",
    "STORMWATCH_CHROMIUM",
    "STORMWATCH_CHROMEDRIVER",
];

fn not_a_setting(name: &str) -> bool {
    NOT_SETTINGS.contains(&name) || name.starts_with("STORMWATCH_TEST_")
}

/// Defaults, then the file, then the variables, then the flags; validated.
pub fn layer(given: &Given) -> Result<Layered, ConfigError> {
    let base = match &given.file {
        Some(path) => file_table(path)?.0,
        None => ServeConfig::default(),
    };
    let mut table = toml::Table::try_from(&base)
        .map_err(|error| ConfigError::Invalid(format!("cannot lay settings out: {error}")))?;
    let mut unknown_variables = Vec::new();
    let mut variables = given.variables.clone();
    variables.sort();
    for (name, text) in &variables {
        if text.is_empty() || not_a_setting(name) {
            continue;
        }
        let Some(key) = name
            .strip_prefix("STORMWATCH_")
            .map(str::to_ascii_lowercase)
        else {
            continue;
        };
        let origin = Origin::Variable(name.clone());
        match SETTINGS.iter().find(|s| s.key == key) {
            Some(setting) => {
                let texts: Vec<String> = if kind(setting.key) == Kind::List {
                    std::env::split_paths(text)
                        .map(|path| path.display().to_string())
                        .collect()
                } else {
                    vec![text.clone()]
                };
                set(&mut table, setting, &texts, &origin)?;
            }
            None => match refusal(&key, &origin) {
                Some(error) => return Err(error),
                None => unknown_variables.push(name.clone()),
            },
        }
    }
    for (key, values) in &given.flags {
        let setting = SETTINGS
            .iter()
            .find(|s| s.key == *key)
            .ok_or_else(|| ConfigError::Invalid(format!("no setting `{key}`")))?;
        set(&mut table, setting, values, &Origin::Flag(setting.flag()))?;
    }
    let config: ServeConfig = table
        .try_into()
        .map_err(|error| ConfigError::Invalid(format!("settings: {error}")))?;
    config.validate()?;
    Ok(Layered {
        config,
        unknown_variables,
    })
}

/// Why `key`, given as a variable or flag, is refused, if it is something only the file or only a flag sets.
fn refusal(key: &str, origin: &Origin) -> Option<ConfigError> {
    if let Some((_, instead)) = NOT_IN_THE_FILE.iter().find(|(name, _)| *name == key) {
        return Some(ConfigError::Invalid(format!("{origin}: {instead}")));
    }
    let tables = file_only_tables(key);
    let prefixed = ["engine_", "coordination_"]
        .iter()
        .any(|prefix| key.starts_with(prefix));
    if tables.is_empty() && !prefixed {
        return None;
    }
    let place = if tables.is_empty() {
        "the config file's [engine] and [coordination] tables".to_owned()
    } else {
        format!("the config file, as `{key}` in {}", tables.join(" or "))
    };
    Some(ConfigError::Invalid(format!(
        "{origin}: this is set only in {place} (give the file with --config or STORMWATCH_CONFIG; \
         `stormwatch serve --print-config` prints every table)"
    )))
}

/// Refuses a flag that names a setting only the file sets, saying where it goes: for the binary, when its argument
/// parser meets an unknown `--flag`.
pub fn file_only_flag(flag: &str) -> Option<String> {
    let key = flag
        .trim_start_matches('-')
        .split('=')
        .next()?
        .replace('-', "_");
    refusal(&key, &Origin::Flag(flag.to_owned())).map(|error| error.to_string())
}

/// Puts `texts` as `setting`'s value, after checking the value alone so an error names where it came from.
fn set(
    table: &mut toml::Table,
    setting: &Setting,
    texts: &[String],
    origin: &Origin,
) -> Result<(), ConfigError> {
    if !setting.built() {
        return Err(ConfigError::Invalid(format!("{origin}: {WITHOUT_KAFKA}")));
    }
    let Some(last) = texts.last() else {
        return Ok(());
    };
    let invalid =
        |why: String| ConfigError::Invalid(format!("{origin}={last:?} is not valid: {why}"));
    let value = match kind(setting.key) {
        Kind::Text => toml::Value::String(last.clone()),
        Kind::Whole => last
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| invalid("give a whole number".into()))?,
        Kind::Number => last
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| invalid("give a number".into()))?,
        Kind::Switch => match last.trim() {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            _ => return Err(invalid("give true or false".into())),
        },
        Kind::List => toml::Value::Array(
            texts
                .iter()
                .map(|text| toml::Value::String(text.clone()))
                .collect(),
        ),
    };
    // The value alone over the defaults: a bad address or an unknown word is blamed on where it came from.
    let alone = toml::Table::from_iter([(setting.key.to_owned(), value.clone())]);
    alone
        .try_into::<ServeConfig>()
        .map_err(|error| invalid(error.to_string().trim().to_owned()))?;
    table.insert(setting.key.to_owned(), value);
    Ok(())
}

#[cfg(test)]
#[path = "config_layers_tests.rs"]
mod tests;
