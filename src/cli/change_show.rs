//! `stormwatch changes show`: one notice with the warnings it raised at registration and those it has now, its
//! outcome (clean, caused incidents, suspected, pending) and the incidents linked to it, then its audit trail.

use std::process::ExitCode;

use stormwatch_core::changes::{
    ChangeOutcome, Outcome, Warning, change_outcome, direction_name, register_warnings,
};
use stormwatch_service::http::outcomes_api::judge;
use stormwatch_service::store::{AuditEntry, IncidentFilter, Store, StoredChange, StoredIncident};
use stormwatch_service::view_clock::{Clock, ViewNow};

use super::table::{table, time};

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The change's id.
    pub id: String,
    /// Print `{"notice", "created_ms", "updated_ms", "warnings", "current_warnings", "outcome", "incidents",
    /// "audit"}` as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub coordination: super::change_warnings::CoordinationArgs,
}

/// What `show` gathers besides the stored change.
struct Shown {
    current: Vec<Warning>,
    outcome: ChangeOutcome,
    /// What the outcome is judged as of.
    now: ViewNow,
    /// The incidents the outcome names, with how each relates to the change.
    linked: Vec<(StoredIncident, &'static str)>,
    audit: Vec<AuditEntry>,
}

pub fn run(store: &Store, args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let coordination = args.coordination.settings()?;
    let change = store
        .get_change(args.id.clone())?
        .ok_or_else(|| anyhow::anyhow!("no change `{}` in {}", args.id, store.path().display()))?;
    let register = store.load_register()?;
    let current = register_warnings(&change.notice, &register, &coordination);
    let grace_ms = i64::from(coordination.outcome_grace_minutes) * 60_000;
    let incidents = store.list_incidents(IncidentFilter {
        from_ms: Some(change.notice.start_ms),
        to_ms: Some(change.notice.end_ms.saturating_add(grace_ms)),
        ..IncidentFilter::default()
    })?;
    let ids: Vec<String> = incidents.iter().map(|i| i.record.id.clone()).collect();
    let judged = judge(&incidents, store.incident_triages(ids)?);
    // As of the event time the service has reached, as the API judges (the wall clock before any telemetry).
    let now = ViewNow::of(store.event_time()?);
    let outcome = change_outcome(&change.notice, &judged, now.ms, grace_ms);
    let relation = |id: &str| -> Option<&'static str> {
        let has = |list: &[String]| list.iter().any(|i| i == id);
        if has(&outcome.attributed) {
            Some("caused by this change")
        } else if has(&outcome.expected) {
            Some("expected impact")
        } else if has(&outcome.suspected) {
            Some("suspected")
        } else {
            None
        }
    };
    let linked = incidents
        .into_iter()
        .filter_map(|incident| relation(&incident.record.id).map(|r| (incident, r)))
        .collect();
    let shown = Shown {
        current,
        outcome,
        now,
        linked,
        audit: store.change_audit(args.id.clone())?,
    };
    if args.json {
        let incidents: Vec<serde_json::Value> = shown
            .linked
            .iter()
            .map(|(incident, relation)| {
                serde_json::json!({ "incident": incident.record, "relation": relation })
            })
            .collect();
        let value = serde_json::json!({
            "notice": change.notice.to_json()?,
            "created_ms": change.created_ms,
            "updated_ms": change.updated_ms,
            "warnings": change.warnings,
            "current_warnings": shown.current,
            "outcome": shown.outcome,
            "judged_at": shown.now.json(),
            "incidents": incidents,
            "audit": shown.audit,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", describe(&change, &shown));
    Ok(ExitCode::SUCCESS)
}

/// What the outcome is judged as of, in words.
fn judged_at(now: ViewNow) -> String {
    match now.clock {
        Clock::EventTime => format!(
            "as of event time {}, the latest the service has seen",
            time(now.ms)
        ),
        Clock::WallClock => format!(
            "as of the wall clock, {} (the service has seen no telemetry yet)",
            time(now.ms)
        ),
    }
}

/// The outcome in a sentence, naming the incidents.
fn outcome_line(outcome: &ChangeOutcome) -> String {
    let list = |ids: &[String]| ids.join(", ");
    match outcome.outcome {
        Outcome::Pending => {
            "pending (its window and the grace for late incidents are not over)".into()
        }
        Outcome::Cancelled => "cancelled (never ran; counts for nothing)".into(),
        Outcome::Clean => "clean (no incident names it)".into(),
        Outcome::ExpectedImpact => format!(
            "expected impact only: {} (declared; not a failure)",
            list(&outcome.expected)
        ),
        Outcome::Suspected => format!(
            "suspected in {} (not the established cause)",
            list(&outcome.suspected)
        ),
        Outcome::Attributed => format!("caused incident(s) {}", list(&outcome.attributed)),
    }
}

fn warning_lines(lines: &mut Vec<String>, found: &[Warning]) {
    for warning in found {
        let related = if warning.related.is_empty() {
            String::new()
        } else {
            format!(" (with {})", warning.related.join(", "))
        };
        lines.push(format!(
            "    [{}] {}{related}",
            warning.kind.as_str(),
            warning.message
        ));
    }
}

fn describe(change: &StoredChange, shown: &Shown) -> String {
    let notice = &change.notice;
    let mut lines = vec![
        format!("{}  {}", notice.id, notice.title),
        format!("  user      {}", notice.owner),
        format!("  category  {}", notice.category),
        format!("  status    {}", notice.status),
        format!(
            "  window    {} .. {}",
            time(notice.start_ms),
            time(notice.end_ms)
        ),
    ];
    if !notice.srvs.is_empty() {
        let srvs: Vec<String> = notice.srvs.iter().map(ToString::to_string).collect();
        lines.push(format!("  srvs      {}", srvs.join(", ")));
    }
    if let Some(expected) = &notice.expected {
        let direction = direction_name(expected.direction);
        lines.push(format!(
            "  expected  {direction} up to {}x normal",
            expected.rate_factor
        ));
    }
    if let Some(contact) = &notice.contact {
        lines.push(format!("  contact   {contact}"));
    }
    lines.push(format!("  created   {}", time(change.created_ms)));
    lines.push(format!("  updated   {}", time(change.updated_ms)));
    lines.push(format!("  outcome   {}", outcome_line(&shown.outcome)));
    lines.push(format!("            {}", judged_at(shown.now)));
    match &change.warnings {
        None => lines.push(
            "  warnings at registration: not recorded (registered before this store kept them)"
                .into(),
        ),
        Some(found) if found.is_empty() => lines.push("  warnings at registration: none".into()),
        Some(found) => {
            lines.push(format!("  warnings at registration: {}", found.len()));
            warning_lines(&mut lines, found);
        }
    }
    if change.warnings.as_ref() == Some(&shown.current) {
        lines.push("  warnings now: the same".into());
    } else if shown.current.is_empty() {
        lines.push("  warnings now: none".into());
    } else {
        lines.push(format!("  warnings now: {}", shown.current.len()));
        warning_lines(&mut lines, &shown.current);
    }
    if shown.linked.is_empty() {
        lines.push("incidents linked: none".into());
    } else {
        lines.push("incidents linked:".into());
        let rows = shown.linked.iter().map(|(incident, relation)| {
            let record = &incident.record;
            vec![
                record.id.clone(),
                record.user.clone(),
                record.kind.as_str().to_owned(),
                record.verdict.as_str().to_owned(),
                time(record.onset),
                (*relation).to_owned(),
            ]
        });
        let header = ["ID", "USER", "KIND", "VERDICT", "ONSET", "RELATION"];
        for line in table(&header, rows).lines() {
            lines.push(format!("  {line}"));
        }
    }
    lines.push("audit trail:".into());
    let rows = shown.audit.iter().map(|entry| {
        vec![
            time(entry.at_ms),
            entry.action.as_str().to_owned(),
            entry.actor.clone(),
            entry.detail.clone(),
        ]
    });
    let trail = table(&["AT", "ACTION", "ACTOR", "WHAT"], rows);
    for line in trail.lines() {
        lines.push(format!("  {line}"));
    }
    lines.push(String::new());
    lines.join("\n")
}
