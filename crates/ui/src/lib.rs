//! The built-in web UI, served from the query port under `/ui/` (issue 13; design in
//! `docs/design/ui.md`). The browser code lives in `web/` and is built into `dist/`, which is
//! committed and compiled into the binary, so `cargo build` alone gives a server that serves the
//! UI with nothing to install and no network use at run time. CI rebuilds `dist/` from `web/`
//! and fails when the two differ.
//!
//! Routing: `/` and `/ui` redirect to `/ui/`; `/ui/<path>` is the file `dist/<path>` when there
//! is one, and otherwise `index.html`, so every page's URL (which carries the page's whole state)
//! can be shared and reloaded. A missing file with an extension stays a 404 rather than turning
//! into HTML a script tag would choke on.
//!
//! Embedded files are gzip-compressed once at start-up and revalidated by ETag (`no-cache`), so a
//! reload after an upgrade never mixes old and new assets. `ui.dir` serves a directory from disk
//! instead, read on every request: that is for working on the UI without rebuilding Rust.

mod assets;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

pub use assets::{Asset, Assets};

/// Where the UI's files come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The `dist/` compiled into this binary.
    Embedded,
    /// A directory read on each request (`ui.dir`), for UI development.
    Directory(PathBuf),
}

/// The UI's routes; merge them into the query router. They hold no tenant data, so they sit
/// behind the same authentication as the API and nothing else.
pub fn router<S: Clone + Send + Sync + 'static>(source: Source) -> Router<S> {
    let files = Arc::new(match source {
        Source::Embedded => Files::Embedded(Assets::embedded()),
        Source::Directory(root) => Files::Directory(root),
    });
    with_files(files)
}

/// The routes over a given set of files (tests build their own).
pub fn router_with<S: Clone + Send + Sync + 'static>(assets: Assets) -> Router<S> {
    with_files(Arc::new(Files::Embedded(assets)))
}

fn with_files<S: Clone + Send + Sync + 'static>(files: Arc<Files>) -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/{*path}", get(file))
        .with_state(files)
}

enum Files {
    Embedded(Assets),
    Directory(PathBuf),
}

async fn index(State(files): State<Arc<Files>>, headers: HeaderMap) -> Response {
    serve(&files, "index.html", &headers).await
}

async fn file(
    State(files): State<Arc<Files>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(&files, &path, &headers).await
}

async fn serve(files: &Files, path: &str, headers: &HeaderMap) -> Response {
    let Some(path) = assets::clean_path(path) else {
        return (StatusCode::BAD_REQUEST, "invalid UI path").into_response();
    };
    let asset = match files {
        Files::Embedded(assets) => assets.page(&path).cloned(),
        Files::Directory(root) => assets::read_page(root, &path).await,
    };
    match asset {
        Some(asset) => asset.respond(headers),
        None => (StatusCode::NOT_FOUND, "404 page not found").into_response(),
    }
}

/// The page's policy: everything from this origin, so a stray CDN reference fails loudly in a
/// browser test instead of quietly needing the network. CodeMirror writes its styles into
/// `<style>` elements, hence inline styles.
pub(crate) const CONTENT_SECURITY_POLICY: HeaderValue = HeaderValue::from_static(
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'self'; base-uri 'self'; object-src 'none'",
);

pub(crate) fn set_common_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
}

#[cfg(test)]
mod tests;
