//! `stormwatch tokens`: adding (the secret is shown once), listing (never a secret) and revoking API tokens.

use std::process::ExitCode;

use stormwatch_core::telemetry::Eui64;
use stormwatch_service::store::{Role, Store, TokenInfo};

use super::changes::DataDir;
use super::table::{table, time};

#[derive(clap::Args, Debug)]
pub struct TokensArgs {
    #[command(flatten)]
    pub data_dir: DataDir,
    #[command(subcommand)]
    pub command: TokensCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum TokensCommand {
    /// Create a token and print its secret, once: only a hash of it is kept.
    Add(AddArgs),
    /// List tokens (ids, names, roles, Users, dates); secrets are never shown.
    List(ListArgs),
    /// Revoke a token by id or name; it stops working at once.
    Revoke(RevokeArgs),
}

/// `Role` as the command line spells it, with clap's listing of the choices.
#[derive(Copy, Clone, Debug, clap::ValueEnum)]
pub enum RoleArg {
    /// Everything.
    Ops,
    /// One User (give --user): registers and sees only that User's changes and incidents.
    User,
    /// Posts telemetry.
    Ingest,
    /// A calendar feed key: reads /api/v1/schedule.ics (as `?key=`) and nothing else. With --user, that User's
    /// changes and the DCC's; without, every change.
    Calendar,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Ops => Role::Ops,
            RoleArg::User => Role::User,
            RoleArg::Ingest => Role::Ingest,
            RoleArg::Calendar => Role::Calendar,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// A name to recognise the token by (unique among active tokens; not all digits).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// What the token may do.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The User's EUI-64 a `user` token is bound to (required for that role, optional for `calendar`, refused for
    /// the others).
    #[arg(long, value_name = "EUI", value_parser = parse_eui)]
    pub user: Option<Eui64>,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    /// The token's id (as listed) or the name of an active token.
    #[arg(value_name = "ID|NAME")]
    pub token: String,
}

pub fn run(args: TokensArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TokensCommand::Add(add) => run_add(&args.data_dir.create()?, add),
        TokensCommand::List(list) => run_list(&args.data_dir.existing()?, &list),
        TokensCommand::Revoke(revoke) => run_revoke(&args.data_dir.existing()?, revoke),
    }
}

fn run_add(store: &Store, args: AddArgs) -> anyhow::Result<ExitCode> {
    let role = Role::from(args.role);
    let (id, secret) = store.add_token(args.name.clone(), role, args.user)?;
    let bound = args
        .user
        .map(|user| format!(" for User {user}"))
        .unwrap_or_default();
    eprintln!("created token {id} `{}` with role {role}{bound}", args.name);
    eprintln!(
        "Its secret follows. Store it now: it cannot be shown again (only its hash is kept)."
    );
    // Alone on stdout, so `SECRET=$(stormwatch tokens add ...)` captures exactly the secret.
    println!("{secret}");
    Ok(ExitCode::SUCCESS)
}

fn run_list(store: &Store, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let tokens = store.list_tokens()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&tokens)?);
        return Ok(ExitCode::SUCCESS);
    }
    if tokens.is_empty() {
        println!("no tokens");
        return Ok(ExitCode::SUCCESS);
    }
    let header = ["ID", "NAME", "ROLE", "USER", "CREATED", "REVOKED"];
    print!("{}", table(&header, tokens.iter().map(row)));
    Ok(ExitCode::SUCCESS)
}

fn row(token: &TokenInfo) -> Vec<String> {
    vec![
        token.id.to_string(),
        token.name.clone(),
        token.role.to_string(),
        token
            .user
            .map_or_else(|| "-".into(), |user| user.to_string()),
        time(token.created_ms),
        token.revoked_ms.map_or_else(|| "-".into(), time),
    ]
}

fn run_revoke(store: &Store, args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let token = store.revoke_token(args.token)?;
    println!(
        "revoked token {} `{}` ({})",
        token.id, token.name, token.role
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_eui(text: &str) -> Result<Eui64, String> {
    Eui64::parse(text.trim()).ok_or_else(|| format!("`{text}` is not an EUI-64 (16 hex digits)"))
}
