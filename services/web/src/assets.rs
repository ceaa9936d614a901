//! Stylesheets and scripts embedded in the binary, served under names carrying a hash of their
//! content (`/assets/app.<hash>.css`): a browser may keep one for a year, since a changed file
//! gets a new name. Pages link to them through [`href`].

use std::sync::LazyLock;

use axum::{
    Router,
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};

/// One embedded file: the name pages ask for, its media type and its bytes.
struct Source {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

const SOURCES: [Source; 5] = [
    Source {
        name: "watch.js",
        media_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/watch.js"),
    },
    Source {
        name: "cloze.js",
        media_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/cloze.js"),
    },
    Source {
        name: "icon.svg",
        media_type: "image/svg+xml",
        bytes: include_bytes!("../assets/icon.svg"),
    },
    Source {
        name: "app.css",
        media_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/app.css"),
    },
    Source {
        name: "study.js",
        media_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/study.js"),
    },
];

/// Long enough to count as forever; the name changes with the content.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

/// An embedded file under its hashed name.
struct Asset {
    hashed: String,
    source: &'static Source,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|source| Asset {
            hashed: hashed_name(source.name, source.bytes),
            source,
        })
        .collect()
});

/// `app.css` with `bytes` → `app.<first 16 hex digits of their SHA-256>.css`.
pub fn hashed_name(name: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    match name.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}.{hex}.{extension}"),
        None => format!("{name}.{hex}"),
    }
}

/// The URL of embedded file `name` (`app.css`); an unknown name is a bug caught by the tests,
/// and links to a path that answers 404.
pub fn href(name: &str) -> String {
    let hashed = ASSETS
        .iter()
        .find(|asset| asset.source.name == name)
        .map_or(name, |asset| asset.hashed.as_str());
    format!("/assets/{hashed}")
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/assets/{name}", get(serve))
}

async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.hashed == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.source.media_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(CACHE_FOREVER),
            ),
        ],
        asset.source.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_change_with_the_content() {
        let one = hashed_name("app.css", b"body{}");
        let other = hashed_name("app.css", b"body{color:red}");
        assert!(one.starts_with("app.") && one.ends_with(".css"), "{one}");
        assert_eq!(one.len(), "app..css".len() + 16);
        assert_ne!(one, other);
        assert_eq!(one, hashed_name("app.css", b"body{}"));
    }

    #[test]
    fn every_embedded_file_has_a_hashed_link() {
        for source in &SOURCES {
            let link = href(source.name);
            assert_ne!(link, format!("/assets/{}", source.name));
        }
    }
}
