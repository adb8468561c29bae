//! Reading change files from disk: the format from the extension, else from the content, then the core's parser.

use std::path::Path;

use stormwatch_core::changes::{ChangeFileError, ChangeFormat, LoadedChanges, parse_changes};

/// Reads and parses one change file; the format comes from the extension, else from the content.
pub fn load_change_file(path: &Path) -> Result<LoadedChanges, ChangeFileError> {
    let bytes = std::fs::read(path).map_err(|source| ChangeFileError::Read {
        path: path.to_owned(),
        cause: source,
    })?;
    let format = ChangeFormat::from_extension(path).unwrap_or_else(|| ChangeFormat::sniff(&bytes));
    parse_changes(&bytes, format, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    #[test]
    fn the_example_files_load_fully_and_agree() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let json = load_change_file(&dir.join("changes.json")).unwrap();
        let csv = load_change_file(&dir.join("changes.csv")).unwrap();
        assert_eq!(json.rejected, vec![]);
        assert_eq!(csv.rejected, vec![]);
        assert_eq!(json.notices.len(), 3);
        assert_eq!(json.notices, csv.notices);
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let missing = Path::new("/nonexistent/changes.json");
        let error = load_change_file(missing).unwrap_err();
        assert!(matches!(error, ChangeFileError::Read { .. }));
        assert!(error.to_string().contains("/nonexistent/changes.json"));
    }

    #[test]
    fn the_format_comes_from_the_extension_then_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let ndjson_line = r#"{"id": "C1", "user": "DCC", "title": "t", "category": "other", "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T09:00:00Z"}"#;
        let cases = [
            ("a.JSON", example("changes.json"), 3),
            ("b.json", format!("{ndjson_line}\n{ndjson_line}\n"), 2),
            ("c.jsonl", format!("{ndjson_line}\n"), 1),
            ("d.txt", example("changes.csv"), 3),
            ("e", example("changes.json"), 3),
            ("f.changes", format!("\n{ndjson_line}\n"), 1),
            ("g.json", ndjson_line.replace(", ", ",\n  "), 1),
            ("h", ndjson_line.replace(", ", ",\n  "), 1),
        ];
        for (name, text, count) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let loaded = load_change_file(&path).unwrap();
            assert_eq!(
                (loaded.notices.len(), loaded.rejected.len()),
                (count, 0),
                "{name}"
            );
        }
        assert_eq!(
            ChangeFormat::from_extension(Path::new("x.ndjson")),
            Some(ChangeFormat::Ndjson)
        );
        assert_eq!(ChangeFormat::sniff(b"  [ ]"), ChangeFormat::Json);
        assert_eq!(ChangeFormat::sniff(b"id,user"), ChangeFormat::Csv);
    }
}
