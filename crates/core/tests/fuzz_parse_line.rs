//! Fuzzing of the line parser: byte-level mutations and splices of the seed corpus in `tests/corpus/parse_line/`
//! (one line per file; add a file for every input that once broke the parser). The parser must never panic, and
//! must give the same answer on its fast path as on the serde reference path.
//!
//! CI runs the default number of cases; a long run is `PROPTEST_CASES=2000000 cargo test --release -p
//! stormwatch-core --test fuzz_parse_line`.

use proptest::prelude::*;
use stormwatch_core::telemetry::{MAX_LINE_BYTES, parse_line};

fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(read_corpus)
}

fn read_corpus() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/parse_line");
    let mut lines: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let mut line = std::fs::read(entry.unwrap().path()).unwrap();
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            line
        })
        .collect();
    lines.sort();
    assert!(lines.len() >= 20, "corpus too small: {}", lines.len());
    lines
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    /// Replace a range by a token JSON often carries.
    Token(usize, usize),
    /// The head of one line and the tail of another.
    Splice(usize, usize, usize),
}

const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"18446744073709551616",
    b"4294967297",
    b"\"ts\"",
    b"\"count\"",
    b"\"depth\"",
    b"\"user\"",
    b"\"event\"",
    b"\xff",
    b"\xc3\xa9",
    b"\r",
    b"\t",
    b" ",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip(at, byte)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(at, token)| Mutation::Token(at, token)),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(other, cut, at)| Mutation::Splice(other, cut, at)),
    ]
}

fn apply(line: &mut Vec<u8>, mutation: &Mutation, corpus: &[Vec<u8>]) {
    let len = line.len().max(1);
    match *mutation {
        Mutation::Flip(at, byte) if !line.is_empty() => line[at % len] ^= byte,
        Mutation::Insert(at, byte) => line.insert(at % (line.len() + 1), byte),
        Mutation::Delete(at) if !line.is_empty() => {
            line.remove(at % len);
        }
        Mutation::Truncate(at) => line.truncate(at % (line.len() + 1)),
        Mutation::Token(at, token) => {
            let at = at % (line.len() + 1);
            let token = TOKENS[token % TOKENS.len()];
            let end = (at + token.len()).min(line.len());
            line.splice(at..end, token.iter().copied());
        }
        Mutation::Splice(other, cut, at) => {
            let other = &corpus[other % corpus.len()];
            let at = at % (line.len() + 1);
            let cut = cut % (other.len() + 1);
            line.truncate(at);
            line.extend_from_slice(&other[cut..]);
        }
        _ => {}
    }
}

/// The line with a field the fast path does not take (an escaped string) put first, so that it goes to serde.
fn via_serde(line: &[u8]) -> Option<Vec<u8>> {
    let rest = line.strip_prefix(b"{")?;
    let mut out = br#"{"zz_fuzz":"\u0041","#.to_vec();
    if rest.starts_with(b"}") {
        return None;
    }
    out.extend_from_slice(rest);
    Some(out)
}

fn check(line: &[u8]) {
    let first = parse_line(line);
    assert_eq!(parse_line(line), first, "deterministic");
    if let Ok(event) = &first {
        assert!(line.len() <= MAX_LINE_BYTES + 1);
        assert!(
            std::str::from_utf8(line.strip_suffix(b"\r").unwrap_or(line)).is_ok(),
            "accepted bad UTF-8"
        );
        assert!(event.value <= 1 << 32, "count or depth over the limit");
        if let Some(other) = via_serde(line) {
            assert_eq!(
                parse_line(&other).as_ref().ok(),
                Some(event),
                "fast path and serde disagree on {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

#[test]
fn every_corpus_line_parses_without_panic() {
    for line in corpus() {
        check(line);
    }
}

proptest! {
    // PROPTEST_CASES sets a long run's length.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(4_000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_corpus_lines_never_break_the_parser(
        seed in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let corpus = corpus();
        let mut line = corpus[seed % corpus.len()].clone();
        for mutation in &mutations {
            apply(&mut line, mutation, corpus);
        }
        check(&line);
    }

    #[test]
    fn arbitrary_bytes_never_break_the_parser(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        check(&line);
    }
}
