//! Stylesheets and scripts embedded in the binary, served under names carrying a hash of their
//! content (`/assets/app.<hash>.css`): a browser may keep one for a year, since a changed file
//! gets a new name. Pages link to them through [`href`]. Text is sent gzip-compressed to browsers
//! that take it (KaTeX's script shrinks from 267 to 74 KiB), compressed once per file.

use std::{
    io::Write,
    sync::{LazyLock, OnceLock},
};

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use flate2::{Compression, write::GzEncoder};
use sha2::{Digest, Sha256};

/// One embedded file: the name pages ask for (its path under `assets/`), its media type and its
/// bytes.
struct Source {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

/// The [`Source`] of `assets/<name>`.
macro_rules! embed {
    ($name:literal, $media_type:expr) => {
        Source {
            name: $name,
            media_type: $media_type,
            bytes: include_bytes!(concat!("../assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const WOFF2: &str = "font/woff2";
const TEXT: &str = "text/plain; charset=utf-8";

const SOURCES: [Source; 6] = [
    embed!("watch.js", JS),
    embed!("cloze.js", JS),
    embed!("icon.svg", "image/svg+xml"),
    embed!("app.css", CSS),
    embed!("study.js", JS),
    embed!("math.js", JS),
];

/// The folder of [`KATEX`]'s files.
const KATEX_FOLDER: &str = "katex";

/// KaTeX as its npm package has it (pinned in `services/web/vendor`, copied by `cargo xtask
/// vendor`, compared with the package by `tests/vendored.rs`), with its licence. Served as one
/// folder whose name carries a hash of all its files (`/assets/katex.<hash>/katex.min.css`),
/// since the stylesheet names its fonts by paths relative to itself. Only the WOFF2 fonts: the
/// browsers the app supports all read them, so the older formats the stylesheet lists after
/// them are never asked for.
const KATEX: [Source; 24] = [
    embed!("katex/katex.min.js", JS),
    embed!("katex/contrib/auto-render.min.js", JS),
    embed!("katex/katex.min.css", CSS),
    embed!("katex/LICENSE", TEXT),
    embed!("katex/fonts/KaTeX_AMS-Regular.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Caligraphic-Bold.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Caligraphic-Regular.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Fraktur-Bold.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Fraktur-Regular.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Main-Bold.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Main-BoldItalic.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Main-Italic.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Main-Regular.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Math-BoldItalic.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Math-Italic.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_SansSerif-Bold.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_SansSerif-Italic.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_SansSerif-Regular.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Script-Regular.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Size1-Regular.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Size2-Regular.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Size3-Regular.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Size4-Regular.woff2", WOFF2),
    embed!("katex/fonts/KaTeX_Typewriter-Regular.woff2", WOFF2),
];

/// Long enough to count as forever; the name changes with the content.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

/// An embedded file under its hashed name.
struct Asset {
    hashed: String,
    source: &'static Source,
    /// Its bytes gzip-compressed, made for the first request that takes them; `None` for a file
    /// that is compressed already (images, fonts).
    gzipped: OnceLock<Option<Vec<u8>>>,
}

impl Asset {
    fn new(hashed: String, source: &'static Source) -> Self {
        Self {
            hashed,
            source,
            gzipped: OnceLock::new(),
        }
    }

    fn gzipped(&self) -> Option<&[u8]> {
        let media_type = self.source.media_type;
        let text = media_type.starts_with("text/") || media_type == "image/svg+xml";
        self.gzipped
            .get_or_init(|| text.then(|| gzip(self.source.bytes)).flatten())
            .as_deref()
    }
}

/// `bytes` gzip-compressed; `None` only if the encoder fails, which writing to memory does not.
fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .ok()
}

/// Whether `Accept-Encoding` takes gzip (named, and not with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts
                .next()
                .is_some_and(|name| name.eq_ignore_ascii_case("gzip"))
                && parts.all(|parameter| {
                    parameter
                        .strip_prefix("q=")
                        .and_then(|weight| weight.parse::<f32>().ok())
                        .is_none_or(|weight| weight > 0.0)
                })
        })
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    let katex_folder = with_hash(KATEX_FOLDER, &folder_digest(&KATEX));
    let files = SOURCES
        .iter()
        .map(|source| Asset::new(hashed_name(source.name, source.bytes), source));
    let katex = KATEX.iter().map(|source| {
        // `katex/fonts/…` → `katex.<hash>/fonts/…`
        let hashed = format!("{katex_folder}{}", &source.name[KATEX_FOLDER.len()..]);
        Asset::new(hashed, source)
    });
    files.chain(katex).collect()
});

/// `app.css` with `bytes` → `app.<first 16 hex digits of their SHA-256>.css`.
pub fn hashed_name(name: &str, bytes: &[u8]) -> String {
    with_hash(name, &Sha256::digest(bytes))
}

/// One digest of a folder's files: each one's name, length and bytes, so that no change to any
/// of them keeps the folder's name.
fn folder_digest(files: &[Source]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.name.as_bytes());
        hasher.update((file.bytes.len() as u64).to_le_bytes());
        hasher.update(file.bytes);
    }
    hasher.finalize().into()
}

/// `name` with the first 16 hex digits of `digest` before its extension.
fn with_hash(name: &str, digest: &[u8]) -> String {
    let hex: String = digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    match name.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}.{hex}.{extension}"),
        None => format!("{name}.{hex}"),
    }
}

/// The URL of embedded file `name` (`app.css`, `katex/katex.min.css`); an unknown name is a bug
/// caught by the tests, and links to a path that answers 404.
pub fn href(name: &str) -> String {
    let hashed = ASSETS
        .iter()
        .find(|asset| asset.source.name == name)
        .map_or(name, |asset| asset.hashed.as_str());
    format!("/assets/{hashed}")
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/assets/{*path}", get(serve))
}

async fn serve(Path(path): Path<String>, request: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.hashed == path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.source.media_type),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_FOREVER),
        ),
        // Caches in between keep the compressed and the plain answer apart.
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    match asset.gzipped() {
        Some(gzipped) if accepts_gzip(&request) => (
            headers,
            [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))],
            gzipped.to_vec(),
        )
            .into_response(),
        _ => (headers, asset.source.bytes).into_response(),
    }
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
        for source in SOURCES.iter().chain(&KATEX) {
            let link = href(source.name);
            assert_ne!(link, format!("/assets/{}", source.name));
        }
    }

    #[test]
    fn gzip_is_sent_only_where_it_is_taken() {
        let taking = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            accepts_gzip(&headers)
        };
        assert!(taking("gzip, deflate, br, zstd"));
        assert!(taking("br;q=1.0, GZIP;q=0.5"));
        assert!(!taking("gzip;q=0"));
        assert!(!taking("br, x-gzip-ish"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn text_is_compressed_and_fonts_are_not() {
        let asset = |name: &str| {
            ASSETS
                .iter()
                .find(|asset| asset.source.name == name)
                .expect("an embedded file")
        };
        let script = asset("katex/katex.min.js");
        let gzipped = script.gzipped().expect("a script is compressed");
        assert!(gzipped.len() * 3 < script.source.bytes.len());
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gzipped), &mut plain)
            .expect("valid gzip");
        assert_eq!(plain, script.source.bytes);
        assert!(
            asset("katex/fonts/KaTeX_Main-Regular.woff2")
                .gzipped()
                .is_none()
        );
    }

    #[test]
    fn katex_is_one_hashed_folder_whose_stylesheet_finds_its_fonts() {
        let stylesheet = href("katex/katex.min.css");
        let folder = stylesheet
            .strip_suffix("katex.min.css")
            .expect("the stylesheet in the folder");
        assert!(
            folder.starts_with("/assets/katex.") && folder.len() == "/assets/katex./".len() + 16
        );
        let css = KATEX
            .iter()
            .find(|source| source.name == "katex/katex.min.css")
            .map(|source| std::str::from_utf8(source.bytes).expect("the stylesheet is text"))
            .expect("the stylesheet is embedded");
        let fonts: Vec<&str> = css
            .split("url(")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
            .filter(|url| url.ends_with(".woff2"))
            .collect();
        let embedded_fonts = KATEX.iter().filter(|source| source.media_type == WOFF2);
        assert_eq!(
            fonts.len(),
            embedded_fonts.count(),
            "each embedded font is used"
        );
        for font in fonts {
            assert_eq!(href(&format!("katex/{font}")), format!("{folder}{font}"));
        }
    }

    #[test]
    fn the_katex_folder_is_embedded_whole() {
        fn files_under(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("listing assets/katex") {
                let path = entry.expect("listing assets/katex").path();
                if path.is_dir() {
                    files_under(&path, found);
                } else {
                    found.push(path.display().to_string());
                }
            }
        }
        let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut on_disk = Vec::new();
        files_under(&assets.join(KATEX_FOLDER), &mut on_disk);
        let mut embedded: Vec<String> = KATEX
            .iter()
            .map(|source| assets.join(source.name).display().to_string())
            .collect();
        on_disk.sort();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "every file of assets/katex, and only those, is in assets.rs's KATEX"
        );
    }
}
