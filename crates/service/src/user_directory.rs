//! The User directory: the file listing every User that exists (one EUI-64 per line, `#` comments and blank
//! lines ignored). With one loaded, lines for other Users are refused as *unknown User* and never take a slot
//! of the engine's User table.

use std::path::{Path, PathBuf};

use rustc_hash::FxHashSet;
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
}

pub fn load(path: &Path) -> Result<FxHashSet<Eui64>, DirectoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Read {
        path: path.to_owned(),
        cause: source,
    })?;
    parse(&text).map_err(|(line, text)| DirectoryError::BadLine {
        path: path.to_owned(),
        line,
        text,
    })
}

/// The listed Users, or the first bad line (1-based) and its text.
fn parse(text: &str) -> Result<FxHashSet<Eui64>, (usize, String)> {
    let mut users = FxHashSet::default();
    for (index, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        let user = Eui64::parse(entry).ok_or_else(|| (index + 1, entry.to_owned()))?;
        users.insert(user);
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids_skips_comments_and_names_a_bad_line() {
        let users =
            parse("# Users of the pilot\n90-B3-D5-1F-30-01-00-07\n\n4CE1730000001101 # lab\n")
                .unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(
            parse("90-B3-D5-1F-30-01-00-07\nnot-a-user\n"),
            Err((2, "not-a-user".to_owned()))
        );
    }
}
