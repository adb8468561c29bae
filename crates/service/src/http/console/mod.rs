//! The triage console: a small web page served by `stormwatch serve` at `/` (static files embedded in the binary,
//! no build step) and the API only it needs (the overview it polls, incident triage, changes near an incident).
//! Everything else the page shows comes from the public API with the caller's own bearer token.

mod api;
mod assets;
pub mod nearby;

use axum::Router;

use crate::http::state::AppState;

/// The page, its assets and the console API, for merging into the service's router.
pub fn routes() -> Router<AppState> {
    assets::routes().merge(api::routes())
}
