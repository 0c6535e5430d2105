//! The embedded web client and admin console (WEB-3): the files under `web/` are compiled into
//! the binary and served here — `/` (chat client), `/admin` (admin console), `/assets/*`, and
//! `/widget.js`, the support widget other sites embed (WEB-4).
//! Pages and assets revalidate on every load (`no-cache` with an `ETag`), so an upgraded binary
//! never mixes old scripts with new pages, and an unchanged file costs a `304`. The widget is
//! loaded by every page view of the sites embedding it: browsers may keep it for five minutes
//! before they revalidate, and `Cross-Origin-Resource-Policy: cross-origin` lets those sites
//! load it (also under `Cross-Origin-Embedder-Policy`).

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;

/// `web/*.html` and `web/assets/**`; the browser tests and their `node_modules` stay out.
#[derive(rust_embed::Embed)]
#[folder = "../../web/"]
#[include = "*.html"]
#[include = "widget.js"]
#[include = "assets/**"]
#[exclude = "tests/**"]
struct WebFiles;

/// How long a browser may keep a file before it revalidates it.
#[derive(Clone, Copy)]
enum Caching {
    /// Pages and the client's own assets: revalidate every time.
    Revalidate,
    /// `/widget.js`, loaded on other sites' pages: five minutes, then revalidate.
    Embedded,
}

/// The routes of the web client; merged next to the API routes.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { serve("index.html", &h, Caching::Revalidate) }),
        )
        .route(
            "/admin",
            get(|h: HeaderMap| async move { serve("admin.html", &h, Caching::Revalidate) }),
        )
        .route(
            "/widget.js",
            get(|h: HeaderMap| async move { serve("widget.js", &h, Caching::Embedded) }),
        )
        .route(
            "/assets/{*path}",
            get(|Path(path): Path<String>, h: HeaderMap| async move {
                serve(&format!("assets/{path}"), &h, Caching::Revalidate)
            }),
        )
}

/// The content type of a served file, by its extension; unknown kinds are served as bytes.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str, request: &HeaderMap, caching: Caching) -> Response {
    let Some(file) = WebFiles::get(path) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response();
    };
    let etag = format!(
        "\"{}\"",
        conclave_core::audit::hex(&file.metadata.sha256_hash()[..16])
    );
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut res = file.data.into_owned().into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        res
    };
    let h = res.headers_mut();
    match caching {
        Caching::Revalidate => {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
        Caching::Embedded => {
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            h.insert(
                header::HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("cross-origin"),
            );
        }
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    res
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_types() {
        for (path, expected) in [
            ("assets/app.js", "text/javascript; charset=utf-8"),
            ("assets/app.css", "text/css; charset=utf-8"),
            ("index.html", "text/html; charset=utf-8"),
            ("assets/LICENSE", "application/octet-stream"),
        ] {
            assert_eq!(super::content_type(path), expected, "{path}");
        }
    }

    #[test]
    fn pages_and_vendored_files_are_embedded() {
        for path in [
            "index.html",
            "admin.html",
            "widget.js",
            "assets/vendor/dompurify/purify.es.mjs",
            "assets/vendor/dompurify/LICENSE",
            "assets/vendor/qrcode-generator/qrcode.mjs",
            "assets/vendor/qrcode-generator/LICENSE",
            "assets/qr.js",
        ] {
            assert!(super::WebFiles::get(path).is_some(), "{path} is missing");
        }
        for test_file in [
            "tests/harness.mjs",
            "tests/chat.test.mjs",
            "tests/package.json",
        ] {
            assert!(
                super::WebFiles::get(test_file).is_none(),
                "{test_file} is served"
            );
        }
    }
}
