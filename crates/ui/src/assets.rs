//! The UI's files and how one is answered: content type by extension, a gzip copy made once for
//! text files, an ETag from the content so unchanged files cost a 304, and the page fallback that
//! lets client-side routes reload.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use include_dir::{include_dir, Dir};

use crate::{set_common_headers, CONTENT_SECURITY_POLICY};

static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/dist");

/// Below this a gzip copy saves less than its header and the client's inflate cost.
const MIN_GZIP_BYTES: usize = 1024;

/// One file ready to answer.
#[derive(Debug, Clone)]
pub struct Asset {
    content_type: &'static str,
    body: Bytes,
    gzip: Option<Bytes>,
    etag: Option<HeaderValue>,
}

/// Every file by its path below the root (`index.html`, `assets/app.js`).
#[derive(Debug, Clone, Default)]
pub struct Assets {
    files: HashMap<String, Asset>,
}

impl Assets {
    /// The `dist/` compiled into the binary, compressed now so requests never wait on it.
    pub fn embedded() -> Assets {
        let mut files = Vec::new();
        collect(&DIST, &mut files);
        Assets::from_files(files)
    }

    pub fn from_files(files: impl IntoIterator<Item = (String, Bytes)>) -> Assets {
        let files = files
            .into_iter()
            .map(|(path, body)| {
                let asset = Asset::cached(&path, body);
                (path, asset)
            })
            .collect();
        Assets { files }
    }

    /// The file at `path`, or the page for a client-side route.
    pub fn page(&self, path: &str) -> Option<&Asset> {
        if let Some(asset) = self.files.get(path) {
            return Some(asset);
        }
        if looks_like_file(path) {
            return None;
        }
        self.files.get("index.html")
    }
}

fn collect(dir: &Dir<'static>, out: &mut Vec<(String, Bytes)>) {
    for file in dir.files() {
        let path = file.path().to_string_lossy().replace('\\', "/");
        out.push((path, Bytes::from_static(file.contents())));
    }
    for sub in dir.dirs() {
        collect(sub, out);
    }
}

/// The same lookup as `Assets::page` on a directory, read now; no ETag or gzip, since the files
/// change under a developer's hands.
pub(crate) async fn read_page(root: &Path, path: &str) -> Option<Asset> {
    match tokio::fs::read(root.join(path)).await {
        Ok(body) => return Some(Asset::uncached(path, Bytes::from(body))),
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(%error, path, "ui.dir: cannot read a UI file");
            return None;
        }
        Err(_) => {}
    }
    if looks_like_file(path) {
        return None;
    }
    let body = tokio::fs::read(root.join("index.html")).await.ok()?;
    Some(Asset::uncached("index.html", Bytes::from(body)))
}

/// A route path of the UI as a relative file path, or `None` when it tries to leave the root.
pub(crate) fn clean_path(path: &str) -> Option<String> {
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        return Some("index.html".to_owned());
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        if part.is_empty() {
            continue;
        }
        if part == "." || part == ".." || part.contains('\\') || part.contains('\0') {
            return None;
        }
        parts.push(part);
    }
    if parts.is_empty() {
        return Some("index.html".to_owned());
    }
    Some(parts.join("/"))
}

/// `assets/app.js` is a file; `trace/0af7…` and `explore` are pages.
fn looks_like_file(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or(path);
    match last.rsplit_once('.') {
        Some((stem, extension)) => {
            !stem.is_empty()
                && !extension.is_empty()
                && extension.len() <= 5
                && extension.bytes().all(|byte| byte.is_ascii_alphanumeric())
                && content_type(last) != "application/octet-stream"
        }
        None => false,
    }
}

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, ext)| ext).unwrap_or("");
    match extension.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn is_text(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type == "application/json"
        || content_type == "image/svg+xml"
}

fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() < body.len()).then(|| Bytes::from(compressed))
}

/// Whether the client takes gzip: named in `Accept-Encoding` (or `*`) without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|param| {
                let weight = param.trim().strip_prefix("q=").map(str::trim);
                weight.and_then(|q| q.parse::<f32>().ok()) == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

impl Asset {
    fn cached(path: &str, body: Bytes) -> Asset {
        let content_type = content_type(path);
        let gzip = if is_text(content_type) && body.len() >= MIN_GZIP_BYTES {
            gzip(&body)
        } else {
            None
        };
        let etag = HeaderValue::from_str(&format!(
            "\"{:08x}-{:x}\"",
            crc32c::crc32c(&body),
            body.len()
        ))
        .ok();
        Asset {
            content_type,
            body,
            gzip,
            etag,
        }
    }

    fn uncached(path: &str, body: Bytes) -> Asset {
        Asset {
            content_type: content_type(path),
            body,
            gzip: None,
            etag: None,
        }
    }

    pub(crate) fn respond(self, request: &HeaderMap) -> Response {
        let mut headers = HeaderMap::new();
        set_common_headers(&mut headers);
        if let Some(etag) = &self.etag {
            headers.insert(header::ETAG, etag.clone());
            let unchanged = request
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .any(|tag| tag.trim() == etag.to_str().unwrap_or("") || tag.trim() == "*");
            if unchanged {
                return (StatusCode::NOT_MODIFIED, headers).into_response();
            }
        } else {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        if self.content_type.starts_with("text/html") {
            headers.insert(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
        }
        match self.gzip {
            Some(compressed) if accepts_gzip(request) => {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                (headers, compressed).into_response()
            }
            _ => (headers, self.body).into_response(),
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn paths_stay_below_the_root() {
        assert_eq!(clean_path("").as_deref(), Some("index.html"));
        assert_eq!(
            clean_path("assets/app.js").as_deref(),
            Some("assets/app.js")
        );
        assert_eq!(clean_path("/trace//abc").as_deref(), Some("trace/abc"));
        assert_eq!(clean_path("../secret"), None);
        assert_eq!(clean_path("assets/../../etc/passwd"), None);
        assert_eq!(clean_path("a\\..\\b"), None);
    }

    #[test]
    fn files_are_told_from_pages() {
        assert!(looks_like_file("assets/app.js"));
        assert!(looks_like_file("favicon.ico"));
        assert!(!looks_like_file("explore"));
        assert!(!looks_like_file("trace/4bf92f3577b34da6a3ce929d0e0e4736"));
        // A trace ID page whose last segment happens to hold a dot is still a page.
        assert!(!looks_like_file("service/checkout.v2"));
    }

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("valid header"),
        );
        headers
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        assert!(accepts_gzip(&with("gzip, deflate, br")));
        assert!(accepts_gzip(&with("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("gzip; q=0.000")));
        assert!(!accepts_gzip(&with("br, identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
