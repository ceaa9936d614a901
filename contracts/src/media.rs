//! The kinds of file an upload may be and the media types that name them. The backend refuses an
//! upload whose declared type is not one of these before storing it; the OCR service reads the
//! kind from the file's first bytes and only requires the declared type to agree. Both use this
//! list, so the two can never accept different types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Png,
    Jpeg,
    Tiff,
    Webp,
    Bmp,
    Pdf,
}

impl FileKind {
    pub const ALL: [Self; 6] = [
        Self::Png,
        Self::Jpeg,
        Self::Tiff,
        Self::Webp,
        Self::Bmp,
        Self::Pdf,
    ];

    /// The name on the wire and in metric labels (`png`, `pdf`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Tiff => "tiff",
            Self::Webp => "webp",
            Self::Bmp => "bmp",
            Self::Pdf => "pdf",
        }
    }

    /// The media types that name this kind, the registered one first, then the aliases browsers
    /// and scanners still send.
    pub fn media_types(self) -> &'static [&'static str] {
        match self {
            Self::Png => &["image/png"],
            Self::Jpeg => &["image/jpeg", "image/jpg", "image/pjpeg"],
            Self::Tiff => &["image/tiff"],
            Self::Webp => &["image/webp"],
            Self::Bmp => &["image/bmp", "image/x-bmp", "image/x-ms-bmp"],
            Self::Pdf => &["application/pdf", "application/x-pdf"],
        }
    }
}

/// Media types that say nothing about the format, so the file's bytes decide.
pub const GENERIC: [&str; 2] = ["application/octet-stream", "binary/octet-stream"];

/// The formats in words, for error messages.
pub const SUPPORTED: &str = "PNG, JPEG, TIFF, WebP, BMP or PDF";

/// What a declared media type (parameters and case ignored) says about an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// A type naming one of the kinds.
    Kind(FileKind),
    /// A type that names no format: the bytes decide.
    Generic,
    /// A type no kind has: refused.
    Unsupported,
}

/// `image/JPG; charset=x` → `image/jpg`.
pub fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

pub fn declared(media_type: &str) -> Declared {
    let essence = essence(media_type);
    if GENERIC.contains(&essence.as_str()) {
        return Declared::Generic;
    }
    FileKind::ALL
        .into_iter()
        .find(|kind| kind.media_types().contains(&essence.as_str()))
        .map_or(Declared::Unsupported, Declared::Kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_name_their_kind_and_parameters_do_not_matter() {
        assert_eq!(declared("image/JPG"), Declared::Kind(FileKind::Jpeg));
        assert_eq!(
            declared("application/x-pdf; charset=binary"),
            Declared::Kind(FileKind::Pdf)
        );
        assert_eq!(declared("application/octet-stream"), Declared::Generic);
        assert_eq!(declared("text/plain"), Declared::Unsupported);
        assert_eq!(declared(""), Declared::Unsupported);
    }

    #[test]
    fn the_wire_name_is_the_serde_name() {
        for kind in FileKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).expect("serializes"),
                kind.as_str()
            );
        }
    }
}
