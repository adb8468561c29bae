//! Reading the operations kit in `dashboards/`: its YAML as JSON values, the metric names its PromQL uses, and
//! the metric names a `/metrics` page exports. No PromQL parser exists as a crate worth the dependency; the
//! extractor below is a tokenizer that knows where PromQL puts names that are not metrics.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// The kit's root directory.
pub fn kit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

/// Every file under `dir` whose name ends with one of `extensions`, sorted.
pub fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries.map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if extensions
                .iter()
                .any(|e| path.to_string_lossy().ends_with(e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The single YAML document in `path`, as JSON (anchors resolved, keys as strings).
pub fn load_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let documents = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    assert_eq!(
        documents.len(),
        1,
        "{}: expected one YAML document",
        path.display()
    );
    to_json(&documents[0])
}

pub fn load_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(text.clone()), Value::Number),
        Yaml::Integer(n) => Value::from(*n),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(hash) => Value::Object(
            hash.iter()
                .map(|(k, v)| (scalar_text(k), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Yaml::Null => Value::Null,
        Yaml::Alias(_) | Yaml::BadValue => panic!("unresolved YAML node {yaml:?}"),
    }
}

fn scalar_text(yaml: &Yaml) -> String {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(n) => n.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("unsupported YAML key {other:?}"),
    }
}

/// PromQL words that are not metric names even when no `(` follows them.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Keywords whose parenthesised list holds label names, not expressions.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression reads. Label matchers (`{...}`), ranges (`[...]`), strings, comments,
/// numbers, durations, functions, keywords, label lists and Grafana variables (`$x`, `${x}`) are skipped.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '{' => i = skip_until(&chars, i, '}'),
            '[' => i = skip_until(&chars, i, ']'),
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    i = skip_until(&chars, i, '}');
                } else {
                    while i < chars.len() && is_word(chars[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers and durations: 0.05, 1e3, 5m, 1h30m.
                while i < chars.len() && (is_word(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && is_word(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let called = chars.get(next) == Some(&'(');
                if called && LABEL_LISTS.contains(&word.as_str()) {
                    i = skip_until(&chars, next, ')');
                } else if !called && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Index after the string literal opening at `start` (backslash escapes honoured, except in raw backticks).
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    i
}

/// Index after the `close` matching the opener at `start`, passing over strings inside.
fn skip_until(chars: &[char], start: usize, close: char) -> usize {
    let open = chars[start];
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The PromQL inside a Grafana variable query: `label_values(EXPR, label)` and `query_result(EXPR)` read
/// metrics; `label_values(label)`, `label_names()` and `metrics(regex)` do not.
pub fn variable_promql(query: &str) -> Option<String> {
    let query = query.trim();
    if let Some(inner) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return inner
            .rsplit_once(',')
            .map(|(selector, _label)| selector.trim().to_owned());
    }
    query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
        .map(str::to_owned)
}

/// Metric names on a Prometheus text page: every sample's name, plus the `_bucket`, `_sum` and `_count`
/// series a histogram or summary family stands for.
pub fn exported_names(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut words = declared.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            names.insert(name.to_owned());
            let suffixes: &[&str] = match kind {
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["_sum", "_count"],
                _ => &[],
            };
            for suffix in suffixes {
                names.insert(format!("{name}{suffix}"));
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// Every PromQL expression in the kit with where it is: rule `expr`s and the series and `expr`s of the rule
/// tests (a misspelt series there would make a must-not-fire case pass for nothing), Grafana targets' `expr`
/// and variable queries.
pub fn kit_expressions() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let prometheus = kit().join("prometheus");
    for path in files(&prometheus, &[".yml", ".yaml"]) {
        let document = load_yaml(&path);
        let at = path
            .strip_prefix(kit())
            .unwrap_or(&path)
            .display()
            .to_string();
        for group in document["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                let name = rule["alert"].as_str().or(rule["record"].as_str());
                if let Some(expr) = rule["expr"].as_str() {
                    found.push((format!("{at}: {}", name.unwrap_or("?")), expr.to_owned()));
                }
            }
        }
        for test in document["tests"].as_array().into_iter().flatten() {
            let name = test["name"].as_str().unwrap_or("?");
            for series in test["input_series"].as_array().into_iter().flatten() {
                if let Some(series) = series["series"].as_str() {
                    found.push((format!("{at}: test `{name}`"), series.to_owned()));
                }
            }
            for check in test["promql_expr_test"].as_array().into_iter().flatten() {
                if let Some(expr) = check["expr"].as_str() {
                    found.push((format!("{at}: test `{name}`"), expr.to_owned()));
                }
            }
        }
    }
    for path in files(&kit().join("grafana"), &[".json"]) {
        let dashboard = load_json(&path);
        let at = path
            .strip_prefix(kit())
            .unwrap_or(&path)
            .display()
            .to_string();
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    found.push((format!("{at}: panel `{title}`"), expr.to_owned()));
                }
            }
        }
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let query = variable["query"]["query"]
                .as_str()
                .or(variable["query"].as_str());
            if variable["type"] == "query"
                && let Some(expr) = query.and_then(variable_promql)
            {
                let name = variable["name"].as_str().unwrap_or("?");
                found.push((format!("{at}: variable `{name}`"), expr));
            }
        }
    }
    found
}
