//! The console's static files, embedded at compile time, and the routes serving them: `/` is the page, everything
//! else lives under `/console/`. The page needs no token; every call it makes to the API does.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::state::AppState;

/// Name, media type and bytes of each file under `/console/`.
const FILES: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("static/console.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("static/favicon.svg"),
    ),
    ("app.js", JS, include_str!("static/app.js")),
    ("api.js", JS, include_str!("static/api.js")),
    ("dom.js", JS, include_str!("static/dom.js")),
    ("overview.js", JS, include_str!("static/overview.js")),
    ("incident.js", JS, include_str!("static/incident.js")),
    ("triage.js", JS, include_str!("static/triage.js")),
    ("chart.js", JS, include_str!("static/chart.js")),
    ("user.js", JS, include_str!("static/user.js")),
    ("changes.js", JS, include_str!("static/changes.js")),
    ("schedule.js", JS, include_str!("static/schedule.js")),
    ("outcomes.js", JS, include_str!("static/outcomes.js")),
];

const JS: &str = "text/javascript; charset=utf-8";
const INDEX: &str = include_str!("static/index.html");

/// Only this origin's own files and API: no inline script or style, nothing from elsewhere, no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route("/console/{name}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, media, body)) => file(media, body),
        None => (StatusCode::NOT_FOUND, "no such console file\n").into_response(),
    }
}

fn file(media: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    // Files change only with the binary; revalidating each load keeps an upgraded service's page current.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
