//! Opening telemetry inputs: files, `-` for standard input, and `.gz` / `.zst` decompression by file name.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// An input that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot read telemetry input {}: {cause}", path.display())]
pub struct OpenError {
    pub path: PathBuf,
    pub cause: io::Error,
}

/// How an input's bytes are encoded, judged by its name.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn from_path(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst") => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// The display name of an input in reports and quarantine records.
pub fn source_name(path: &Path) -> String {
    if path == Path::new("-") {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Opens `path` (or standard input for `-`) and wraps it in the decompressor its name asks for.
pub fn open_input(path: &Path) -> Result<Box<dyn Read + Send>, OpenError> {
    let wrap = |source| OpenError {
        path: path.to_owned(),
        cause: source,
    };
    let raw: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path).map_err(wrap)?)
    };
    decompress(raw, Compression::from_path(path)).map_err(wrap)
}

/// Wraps a byte stream in a decompressor.
pub fn decompress(
    raw: Box<dyn Read + Send>,
    compression: Compression,
) -> io::Result<Box<dyn Read + Send>> {
    Ok(match compression {
        Compression::None => raw,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            raw,
        ))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_and_zstd_decompress_to_the_same_bytes() {
        let text = b"{\"a\":1}\n{\"b\":2}\n".repeat(100);
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("t.ndjson.gz");
        let mut encoder =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        encoder.write_all(&text).unwrap();
        encoder.finish().unwrap();
        let zst = dir.path().join("t.ndjson.zst");
        std::fs::write(&zst, zstd::encode_all(&text[..], 3).unwrap()).unwrap();
        for path in [gz, zst] {
            let mut out = Vec::new();
            open_input(&path).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, text, "{}", path.display());
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let error = open_input(Path::new("/nonexistent/events.ndjson"))
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("/nonexistent/events.ndjson"),
            "{error}"
        );
    }
}
