//! Reading a truth file of either format, told apart by its fields: ours (`stormwatch gen`'s `truth.json`, a
//! fixture's `expected.json`: `generator`, `events`) or the independent corpus' (`valid_lines`, `incidents[].kinds`),
//! and scoring a report against it by that format's rules. [`TruthError`] says why a file cannot be read.

use serde_json::Value;

use crate::corpus_score;
use crate::corpus_truth::CorpusTruth;
use crate::evaluate::{self, RunScore};
use crate::generator::Truth;
use stormwatch_core::report::Report;

/// A truth file's content, in the format it was written in.
#[derive(Clone, Debug, PartialEq)]
pub enum TruthFile {
    /// Written by `stormwatch gen`; scored by [`evaluate::score`].
    Generated(Truth),
    /// Written by the independent corpus' `gen.py`; scored by [`corpus_score::score`], the rules of its `score.py`.
    Corpus(CorpusTruth),
}

/// Why a truth file's text is not a truth. The parser's own message is part of each (not a separate source), so a
/// chain such as anyhow's `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error(
        "neither truth format: expected `generator` and `events` (stormwatch gen) or `valid_lines` and \
         `incidents` with `kinds` (the independent corpus); found {found}"
    )]
    UnknownFormat { found: String },
    #[error("a stormwatch gen truth, but {0}")]
    Generated(serde_json::Error),
    #[error("a corpus truth, but {0}")]
    Corpus(serde_json::Error),
    #[error("a corpus truth, but incident {index} (user {user}) lists no kinds")]
    NoKinds { index: usize, user: String },
}

impl TruthFile {
    /// Parses either format: an object with `generator` is ours; one with `valid_lines`, or whose incidents list
    /// `kinds`, is the corpus'.
    pub fn parse(text: &str) -> Result<Self, TruthError> {
        let value: Value = serde_json::from_str(text).map_err(TruthError::NotJson)?;
        let Some(object) = value.as_object() else {
            return Err(TruthError::UnknownFormat {
                found: format!("a JSON {}", kind_of(&value)),
            });
        };
        let corpus_incidents = object
            .get("incidents")
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|i| i.get("kinds").is_some()));
        if object.contains_key("generator") {
            serde_json::from_value(value)
                .map(TruthFile::Generated)
                .map_err(TruthError::Generated)
        } else if object.contains_key("valid_lines") || corpus_incidents {
            let truth: CorpusTruth = serde_json::from_value(value).map_err(TruthError::Corpus)?;
            if let Some((index, incident)) = truth
                .incidents
                .iter()
                .enumerate()
                .find(|(_, i)| i.kinds.is_empty())
            {
                return Err(TruthError::NoKinds {
                    index,
                    user: incident.user.clone(),
                });
            }
            Ok(TruthFile::Corpus(truth))
        } else {
            let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
            keys.truncate(8);
            Err(TruthError::UnknownFormat {
                found: if keys.is_empty() {
                    "an empty object".to_owned()
                } else {
                    format!("fields {}", keys.join(", "))
                },
            })
        }
    }

    /// Scores `report` against this truth by its format's rules.
    pub fn score(&self, report: &Report) -> RunScore {
        match self {
            TruthFile::Generated(truth) => evaluate::score(truth, report),
            TruthFile::Corpus(truth) => corpus_score::score(truth, report),
        }
    }

    /// How many incidents the truth expects.
    pub fn expected_incidents(&self) -> usize {
        match self {
            TruthFile::Generated(truth) => truth.incidents.len(),
            TruthFile::Corpus(truth) => truth.incidents.len(),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormwatch_core::incident::{IncidentKind, Verdict};

    const CORPUS: &str = r#"{"scenario": "tiny", "notes": "for people", "start": 1, "end": 2,
        "valid_lines": 120, "malformed": 2,
        "incidents": [
          {"user": "00-DB-12-FE-99-BD-9A-81", "kinds": ["request_storm", "reject_storm"], "onset": 5000,
           "change": "CHG-1", "verdict": "registered_change"},
          {"user": "90-B3-D5-AA-16-C6-27-41", "kinds": ["backlog"], "onset": 7000, "change": null,
           "verdict": "unregistered_change_suspected", "network_wide_ok": true, "onset_tolerance_ms": 900000,
           "peak_in_pause": 5556}],
        "allowed": [{"change": "CHG-2"}, {"user": "00-DB-12-FE-99-BD-9A-81", "verdict": "expected_impact"}],
        "depth_series": {"00-DB-12-FE-99-BD-9A-81": [[1, 0]]}, "names": {},
        "max_incidents_per_user": {"00-DB-12-FE-99-BD-9A-81": 1}}"#;

    #[test]
    fn the_corpus_format_is_told_by_its_fields() {
        let TruthFile::Corpus(truth) = TruthFile::parse(CORPUS).unwrap() else {
            panic!("not read as the corpus' format");
        };
        assert_eq!(truth.scenario, "tiny");
        assert_eq!((truth.valid_lines, truth.malformed), (120, 2));
        let [storm, backlog] = &truth.incidents[..] else {
            panic!("two incidents expected: {:?}", truth.incidents);
        };
        assert_eq!(
            storm.kinds,
            [IncidentKind::RequestStorm, IncidentKind::RejectStorm]
        );
        assert_eq!(storm.change.as_deref(), Some("CHG-1"));
        assert_eq!(storm.onset_tolerance_ms(), 180_000);
        assert!(!storm.network_wide_ok);
        assert_eq!(backlog.change, None);
        assert_eq!(backlog.verdict, Verdict::UnregisteredChangeSuspected);
        assert!(backlog.network_wide_ok);
        assert_eq!(backlog.onset_tolerance_ms(), 900_000);
        assert!(truth.allowed[0].allows("anyone", Verdict::DccChange, Some("CHG-2")));
        assert!(!truth.allowed[0].allows("anyone", Verdict::DccChange, None));
        assert!(truth.allowed[1].allows("00-DB-12-FE-99-BD-9A-81", Verdict::ExpectedImpact, None));
        assert!(!truth.allowed[1].allows(
            "00-DB-12-FE-99-BD-9A-81",
            Verdict::RegisteredChange,
            None
        ));
        assert_eq!(truth.max_incidents_per_user["00-DB-12-FE-99-BD-9A-81"], 1);
    }

    #[test]
    fn the_generated_format_is_still_read() {
        let text = r#"{"generator": {"seed": 7, "scenarios": [], "args": "gen --seed 7"},
            "events": 10, "malformed": 1, "incidents": []}"#;
        let TruthFile::Generated(truth) = TruthFile::parse(text).unwrap() else {
            panic!("not read as stormwatch gen's format");
        };
        assert_eq!((truth.events, truth.malformed), (10, 1));
    }

    #[test]
    fn unreadable_truths_say_why() {
        let message = |text: &str| TruthFile::parse(text).unwrap_err().to_string();
        assert!(
            message("not json").starts_with("not JSON"),
            "{}",
            message("not json")
        );
        assert_eq!(
            message("[]"),
            "neither truth format: expected `generator` and `events` (stormwatch gen) or `valid_lines` and \
             `incidents` with `kinds` (the independent corpus); found a JSON array"
        );
        assert!(message(r#"{"foo": 1}"#).ends_with("found fields foo"));
        let corpus_without_lines = r#"{"scenario": "x", "malformed": 0,
            "incidents": [{"user": "U", "kinds": ["backlog"], "onset": 1, "change": null,
                           "verdict": "registered_change"}]}"#;
        let error = message(corpus_without_lines);
        assert!(
            error.starts_with("a corpus truth, but missing field `valid_lines`"),
            "{error}"
        );
        let bad_kind = CORPUS.replace("\"backlog\"", "\"queue_growth\"");
        let error = message(&bad_kind);
        assert!(
            error.starts_with("a corpus truth, but unknown variant `queue_growth`"),
            "{error}"
        );
        let no_kinds = CORPUS.replace(r#"["backlog"]"#, "[]");
        assert_eq!(
            message(&no_kinds),
            "a corpus truth, but incident 1 (user 90-B3-D5-AA-16-C6-27-41) lists no kinds"
        );
        let generated_without_events = r#"{"generator": {"seed": 7, "scenarios": [], "args": ""},
            "malformed": 1, "incidents": []}"#;
        assert!(
            message(generated_without_events)
                .starts_with("a stormwatch gen truth, but missing field `events`"),
            "{}",
            message(generated_without_events)
        );
    }
}
