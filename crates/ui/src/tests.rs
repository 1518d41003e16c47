//! The UI routes over a small file set: redirects, the page fallback for client routes, 404 for
//! missing assets, gzip, ETag revalidation, path escapes, and the directory source.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{router, router_with, Assets, Source};

const PAGE: &str = "<!doctype html><script src=\"/ui/assets/app.js\"></script>";

fn script() -> String {
    // Long enough to be compressed.
    "console.log('andante');\n".repeat(200)
}

fn app() -> Router {
    router_with(Assets::from_files([
        ("index.html".to_owned(), Bytes::from_static(PAGE.as_bytes())),
        ("assets/app.js".to_owned(), Bytes::from(script())),
    ]))
}

async fn get(
    app: Router,
    uri: &str,
    headers: &[(header::HeaderName, &str)],
) -> (StatusCode, http::HeaderMap, Bytes) {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = app
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, body)
}

#[tokio::test]
async fn the_root_redirects_to_the_ui() {
    for uri in ["/", "/ui"] {
        let (status, headers, _) = get(app(), uri, &[]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(headers[header::LOCATION], "/ui/");
    }
}

#[tokio::test]
async fn client_routes_get_the_page_and_missing_assets_do_not() {
    for uri in [
        "/ui/",
        "/ui/explore?q=%7B%7D",
        "/ui/trace/4bf92f3577b34da6a3ce929d0e0e4736",
    ] {
        let (status, headers, body) = get(app(), uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
        assert_eq!(body, PAGE.as_bytes());
    }
    let (status, _, _) = get(app(), "/ui/assets/missing.js", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(app(), "/ui/../Cargo.toml", &[]).await;
    assert_ne!(status, StatusCode::OK);
}

#[tokio::test]
async fn assets_are_gzipped_when_accepted_and_revalidated_by_etag() {
    let (status, headers, body) = get(
        app(),
        "/ui/assets/app.js",
        &[(header::ACCEPT_ENCODING, "gzip")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let mut inflated = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut inflated)
        .expect("valid gzip");
    assert_eq!(inflated, script());

    let (_, plain_headers, plain) = get(app(), "/ui/assets/app.js", &[]).await;
    assert!(!plain_headers.contains_key(header::CONTENT_ENCODING));
    assert_eq!(plain, script().as_bytes());

    let etag = headers[header::ETAG].to_str().expect("text").to_owned();
    let (status, _, body) = get(
        app(),
        "/ui/assets/app.js",
        &[(header::IF_NONE_MATCH, &etag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
}

#[tokio::test]
async fn a_directory_source_is_read_on_each_request() {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::write(root.path().join("index.html"), "first").expect("write");
    let app: Router = router(Source::Directory(root.path().to_owned()));
    let (_, headers, body) = get(app.clone(), "/ui/explore", &[]).await;
    assert_eq!(body, "first");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    std::fs::write(root.path().join("index.html"), "second").expect("write");
    let (_, _, body) = get(app.clone(), "/ui/", &[]).await;
    assert_eq!(body, "second");
    let (status, _, _) = get(app, "/ui/assets/none.css", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn the_embedded_ui_has_its_page() {
    let assets = Assets::embedded();
    assert!(assets.page("index.html").is_some());
    assert!(assets.page("explore").is_some());
}
