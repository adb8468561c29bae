//! What a generated run must be found to contain: `truth.json`, the incidents injected. (Its change notices
//! are `stormwatch_core::changes::ChangeNotice`, written as the contract's JSON.)

use serde::{Deserialize, Serialize};

use stormwatch_core::incident::{IncidentKind, Verdict};

/// The content of `truth.json` (and of a fixture's `expected.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub generator: GeneratorInfo,
    /// Exact number of valid lines in the events file.
    pub events: u64,
    /// Exact number of malformed lines in it.
    pub malformed: u64,
    pub incidents: Vec<TruthIncident>,
}

/// How the run was made; `args` is enough to make it again, byte for byte.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratorInfo {
    pub seed: u64,
    pub scenarios: Vec<String>,
    /// The `stormwatch` arguments (without `--out` and `--compress`, which do not change the content).
    pub args: String,
}

/// One incident the engine has to find.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthIncident {
    /// Upper-case hyphenated EUI-64, or `*` for one incident spanning many Users.
    pub user: String,
    pub kind: IncidentKind,
    /// Milliseconds since the Unix epoch: when the anomaly really began.
    pub onset: i64,
    pub verdict: Verdict,
    /// The change the correlator must rank first; `null` when no change may be named.
    #[serde(default)]
    pub top_suspect: Option<String>,
    /// For backlogs: the report's `peak_depth` must reach at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_peak_depth: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_round_trips_and_writes_null_top_suspect() {
        let text = r#"{"generator": {"seed": 7, "scenarios": ["firewall_backlog"], "args": "gen --seed 7"},
            "events": 10, "malformed": 1,
            "incidents": [{"user": "90-B3-D5-1F-30-01-00-07", "kind": "backlog", "onset": 5,
                           "verdict": "unregistered_change_suspected", "top_suspect": null}]}"#;
        let truth: Truth = serde_json::from_str(text).unwrap();
        assert_eq!(truth.incidents[0].top_suspect, None);
        let written = serde_json::to_string(&truth).unwrap();
        assert!(written.contains(r#""top_suspect":null"#), "{written}");
        assert!(!written.contains("min_peak_depth"), "{written}");
        assert_eq!(serde_json::from_str::<Truth>(&written).unwrap(), truth);
    }
}
