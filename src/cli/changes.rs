//! `stormwatch changes`: registering, importing, listing, showing and cancelling change notices in the store, and
//! the `--data-dir` option that `tokens` shares.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Map, Value};
use stormwatch_core::changes::{ChangeNotice, ChangeOwner, ChangeStatus, FieldError};
use stormwatch_replay::load_change_file;

use super::table::{table, time};
use stormwatch_service::store::{
    CHUNK, ChangeFilter, Progress, Registration, Store, StoreError, StoredChange, Upsert,
    UpsertOutcome,
};

/// Where the store lives; every `changes` and `tokens` command takes it.
#[derive(clap::Args, Debug)]
pub struct DataDir {
    /// Directory of the Stormwatch store (the database is `stormwatch.db` inside it).
    #[arg(
        long = "data-dir",
        value_name = "DIR",
        env = "STORMWATCH_DATA_DIR",
        default_value = "./stormwatch-data",
        global = true
    )]
    pub path: PathBuf,
}

impl DataDir {
    /// For commands that write: creates the directory and the database when missing.
    pub fn create(&self) -> anyhow::Result<Store> {
        Ok(Store::open(&self.path)?)
    }

    /// For commands that only read or change what exists: a missing store is most likely a wrong `--data-dir`.
    pub fn existing(&self) -> anyhow::Result<Store> {
        Store::open_existing(&self.path).map_err(|error| match error {
            StoreError::Missing { .. } => anyhow::anyhow!(
                "{error}: check --data-dir or STORMWATCH_DATA_DIR \
                 (`changes add`, `changes import` and `tokens add` create a store)"
            ),
            other => other.into(),
        })
    }
}

/// The person or system recorded in the audit trail.
#[derive(clap::Args, Debug)]
pub struct Actor {
    /// Who is making this change, for the audit trail.
    #[arg(
        long = "actor",
        value_name = "NAME",
        env = "USER",
        default_value = "cli"
    )]
    pub name: String,
}

#[derive(clap::Args, Debug)]
pub struct ChangesArgs {
    #[command(flatten)]
    pub data_dir: DataDir,
    #[command(subcommand)]
    pub command: ChangesCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ChangesCommand {
    /// Register one change notice, or change the fields given of the notice with the same id (--replace: replace
    /// it whole).
    Add(Box<AddArgs>),
    /// Register the notices of JSON-array, NDJSON or CSV files (docs/changes.md). Each file row is a whole notice:
    /// an id already registered is replaced by it. Valid notices are stored even when others are rejected;
    /// rejections are listed with file, line and field, and the exit code is 1.
    Import(ImportArgs),
    /// List registered notices, by window start.
    List(ListArgs),
    /// Show one notice and its audit trail.
    Show(super::change_show::ShowArgs),
    /// Mark a notice cancelled (it stays in the register, and in the audit trail).
    Cancel(CancelArgs),
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// Unique change reference, e.g. CHG-2026-0042. For an id already registered, only the fields given change
    /// (and the changes are printed); --replace replaces the whole notice.
    #[arg(long, value_name = "ID")]
    pub id: String,
    /// The User making the change (EUI-64), or DCC for a DCC-led change. Required for a new id.
    #[arg(long, value_name = "EUI|DCC")]
    pub user: Option<String>,
    /// Short description. Required for a new id.
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// network, certificate, endpoint, application, device, campaign, dcc_maintenance or other. Required for a
    /// new id.
    #[arg(long, value_name = "CATEGORY")]
    pub category: Option<String>,
    /// Planned window start, RFC 3339 (e.g. 2026-03-10T09:00:00Z). Required for a new id.
    #[arg(long, value_name = "RFC3339")]
    pub start: Option<String>,
    /// Planned window end, RFC 3339, not before --start. Required for a new id.
    #[arg(long, value_name = "RFC3339")]
    pub end: Option<String>,
    /// planned (a new notice's default), in_progress, completed, cancelled or rolled_back.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// An SRV the change touches, e.g. 4.1.1; repeat for several (they replace the stored list).
    #[arg(long = "srv", value_name = "SRV")]
    pub srvs: Vec<String>,
    /// Declared traffic change: the direction (to_dsp or to_user) expected to run above normal.
    #[arg(long, value_name = "DIRECTION", requires = "expected_rate_factor")]
    pub expected_direction: Option<String>,
    /// Declared traffic change: up to how many times the normal rate, e.g. 2.5.
    #[arg(long, value_name = "FACTOR", requires = "expected_direction")]
    pub expected_rate_factor: Option<String>,
    /// Who to call.
    #[arg(long, value_name = "TEXT")]
    pub contact: Option<String>,
    /// Replace the stored notice with the id whole, as registered before merging existed: every field not given
    /// here (contact, status, SRVs, declared impact) is cleared or reset to its default.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub actor: Actor,
    #[command(flatten)]
    pub coordination: super::change_warnings::CoordinationArgs,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Change files; the format comes from the extension (.json, .ndjson/.jsonl, .csv), else from the content.
    #[arg(required_unless_present = "print_mapping", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub actor: Actor,
    #[command(flatten)]
    pub coordination: super::change_warnings::CoordinationArgs,
    #[command(flatten)]
    pub mapped: super::change_import::MappedImportArgs,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only the notices of this owner: a User's EUI-64, or DCC.
    #[arg(long, value_name = "EUI|DCC", value_parser = parse_owner)]
    pub user: Option<ChangeOwner>,
    /// Only windows that end at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub from: Option<i64>,
    /// Only windows that start at or before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub to: Option<i64>,
    /// Only notices with this status.
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<ChangeStatus>,
    /// Print a JSON array of contract notices instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// The change's id.
    pub id: String,
    #[command(flatten)]
    pub actor: Actor,
}

pub fn run(args: ChangesArgs) -> anyhow::Result<ExitCode> {
    let data_dir = &args.data_dir;
    match args.command {
        ChangesCommand::Add(add) => run_add(&data_dir.create()?, *add),
        ChangesCommand::Import(import) if import.mapped.print_mapping => {
            print!("{}", super::change_import::SERVICENOW_MAPPING);
            Ok(ExitCode::SUCCESS)
        }
        ChangesCommand::Import(import) => {
            let coordination = import.coordination.settings()?;
            // Every file is read before the store is touched: an unusable file stops the import, as it stops
            // `replay`, rather than storing the other files' notices around a hole.
            let loaded = if import.mapped.active() {
                super::change_import::load(&import.files, &import.mapped)?
            } else {
                load_import_files(&import.files)?
            };
            run_import(&data_dir.create()?, loaded, import.actor, coordination)
        }
        ChangesCommand::List(list) => run_list(&data_dir.existing()?, &list),
        ChangesCommand::Show(show) => super::change_show::run(&data_dir.existing()?, &show),
        ChangesCommand::Cancel(cancel) => run_cancel(&data_dir.existing()?, cancel),
    }
}

fn run_add(store: &Store, args: AddArgs) -> anyhow::Result<ExitCode> {
    let actor = args.actor.name.clone();
    let coordination = args.coordination.settings()?;
    let replace = args.replace;
    let fields = fields_from_flags(args);
    let registration = if replace {
        Registration::Replace(ChangeNotice::try_from(&Value::Object(fields)).map_err(invalid_flag)?)
    } else {
        Registration::Merge(fields)
    };
    let outcomes = store
        .register_changes(
            vec![registration],
            actor,
            None,
            std::sync::Arc::new(coordination),
            Box::new(|_| Ok(())),
        )
        .map_err(|error| match error {
            StoreError::Invalid { field, reason, .. } => invalid_flag(FieldError { field, reason }),
            other => other.into(),
        })?;
    for outcome in &outcomes {
        println!("{}", outcome_line(outcome));
        for change in &outcome.changed {
            println!("  {}", change.line());
        }
    }
    super::change_warnings::print(&outcomes);
    Ok(ExitCode::SUCCESS)
}

/// `created X`, `updated X (N fields)`, `replaced X whole (...)` or `unchanged X`.
fn outcome_line(outcome: &UpsertOutcome) -> String {
    let fields = match outcome.changed.len() {
        1 => "1 field".to_owned(),
        n => format!("{n} fields"),
    };
    match outcome.outcome {
        Upsert::Created => format!("created {}", outcome.id),
        Upsert::Unchanged => format!("unchanged {} (the notice already said this)", outcome.id),
        Upsert::Updated if outcome.replaced => format!(
            "replaced {} whole (--replace: fields not given were cleared); {fields} changed:",
            outcome.id
        ),
        Upsert::Updated => format!("updated {}: {fields} changed, the others kept:", outcome.id),
    }
}

/// A notice's error, with the flag that sets the field at fault.
fn invalid_flag(error: FieldError) -> anyhow::Error {
    let flag = match error.field.as_str() {
        "srvs" => "--srv".to_owned(),
        field => format!("--{}", field.replace(['.', '_'], "-")),
    };
    anyhow::anyhow!("invalid change notice: {error} (check {flag})")
}

/// The notice's fields the flags give, in the contract's JSON, so the validator names the same fields as for a
/// file; a merge keeps every field not given.
fn fields_from_flags(args: AddArgs) -> Map<String, Value> {
    let mut object = Map::new();
    let text = |s: String| Value::String(s);
    object.insert("id".into(), text(args.id));
    for (key, value) in [
        ("user", args.user),
        ("title", args.title),
        ("category", args.category),
        ("start", args.start),
        ("end", args.end),
        ("status", args.status),
        ("contact", args.contact),
    ] {
        if let Some(value) = value {
            object.insert(key.into(), text(value));
        }
    }
    if !args.srvs.is_empty() {
        object.insert("srvs".into(), args.srvs.into_iter().map(text).collect());
    }
    if let (Some(direction), Some(factor)) = (args.expected_direction, args.expected_rate_factor) {
        // A number when it reads as one; otherwise the validator explains what is wrong with the text.
        let factor = factor
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| text(factor), Value::Number);
        let expected = serde_json::json!({"direction": direction, "rate_factor": factor});
        object.insert("expected".into(), expected);
    }
    object
}

/// The notices and the rejected ones of every file; the first file that cannot be used at all (unreadable, not
/// JSON/NDJSON/CSV, a CSV header without a required column) is an error naming it.
fn load_import_files(files: &[PathBuf]) -> anyhow::Result<(Vec<ChangeNotice>, Vec<String>)> {
    let mut notices = Vec::new();
    let mut rejected = Vec::new();
    for file in files {
        let loaded = load_change_file(file)
            .map_err(|error| anyhow::anyhow!("{error}; nothing was imported"))?;
        notices.extend(loaded.notices);
        rejected.extend(loaded.rejected.iter().map(ToString::to_string));
    }
    Ok((notices, rejected))
}

fn run_import(
    store: &Store,
    (notices, rejected): (Vec<ChangeNotice>, Vec<String>),
    actor: Actor,
    coordination: stormwatch_core::changes::CoordinationConfig,
) -> anyhow::Result<ExitCode> {
    let valid = notices.len();
    let outcomes = if notices.is_empty() {
        Vec::new()
    } else {
        // One transaction, written then judged in chunks: progress on stderr for a long import, and still all
        // or nothing.
        let progress = Box::new(move |done: Progress| {
            if done.total > CHUNK {
                let (step, count) = if done.judged == 0 {
                    ("written", done.written)
                } else {
                    ("judged", done.judged)
                };
                eprintln!("import: {count} of {} notices {step}", done.total);
            }
        });
        store
            .upsert_changes_with_progress(
                notices,
                actor.name,
                std::sync::Arc::new(coordination),
                progress,
            )
            .context("storing the valid notices failed; nothing was stored")?
    };
    let count = |kind| outcomes.iter().filter(|o| o.outcome == kind).count();
    println!(
        "stored {valid} notice{} ({} created, {} updated, {} unchanged) in {}",
        plural(valid),
        count(Upsert::Created),
        count(Upsert::Updated),
        count(Upsert::Unchanged),
        store.path().display()
    );
    let warned = super::change_warnings::print(&outcomes);
    if warned > 0 {
        println!("{warned} of {valid} notices have warnings (advice: all were stored)");
    }
    if rejected.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for reason in &rejected {
        eprintln!("rejected: {reason}");
    }
    let stored = match valid {
        0 => "no notice was valid, so nothing was stored".to_owned(),
        1 => "the 1 valid notice was stored".to_owned(),
        n => format!("the {n} valid notices were stored"),
    };
    eprintln!(
        "stormwatch: {} rejection{} (listed above); {stored}. Fix the rejected ones and import them again.",
        rejected.len(),
        plural(rejected.len()),
    );
    Ok(ExitCode::from(1))
}

fn run_list(store: &Store, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let filter = ChangeFilter {
        user: args.user,
        from_ms: args.from,
        to_ms: args.to,
        status: args.status,
        ..ChangeFilter::default()
    };
    let changes = store.list_changes(filter)?;
    if args.json {
        let notices = changes
            .iter()
            .map(|change| change.notice.to_json())
            .collect::<Result<Vec<_>, _>>()?;
        println!("{}", serde_json::to_string_pretty(&notices)?);
        return Ok(ExitCode::SUCCESS);
    }
    if changes.is_empty() {
        println!("no change notices match");
        return Ok(ExitCode::SUCCESS);
    }
    let header = ["ID", "USER", "CATEGORY", "STATUS", "START", "END", "TITLE"];
    let rows = changes.iter().map(|StoredChange { notice, .. }| {
        vec![
            notice.id.clone(),
            notice.owner.to_string(),
            notice.category.to_string(),
            notice.status.to_string(),
            time(notice.start_ms),
            time(notice.end_ms),
            notice.title.clone(),
        ]
    });
    print!("{}", table(&header, rows));
    Ok(ExitCode::SUCCESS)
}

fn run_cancel(store: &Store, args: CancelArgs) -> anyhow::Result<ExitCode> {
    let change =
        store.set_change_status(args.id.clone(), ChangeStatus::Cancelled, args.actor.name)?;
    if change.previous == ChangeStatus::Cancelled {
        println!("{} was already cancelled", args.id);
    } else {
        println!("cancelled {} (was {})", args.id, change.previous);
    }
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn parse_owner(text: &str) -> Result<ChangeOwner, String> {
    ChangeOwner::parse(text.trim())
        .ok_or_else(|| format!("`{text}` is neither an EUI-64 (16 hex digits) nor DCC"))
}

fn parse_time(text: &str) -> Result<i64, String> {
    stormwatch_core::rfc3339::parse_ms(text.trim())
        .ok_or_else(|| format!("`{text}` is not an RFC 3339 time such as 2026-03-10T09:00:00Z"))
}

fn parse_status(text: &str) -> Result<ChangeStatus, String> {
    ChangeStatus::parse(text).ok_or_else(|| format!("not one of {}", ChangeStatus::names()))
}
