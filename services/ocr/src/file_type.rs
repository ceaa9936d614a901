//! What kind of file an upload is, decided from its first bytes; the declared content type only has
//! to agree with them.

use flashcards_bootstrap::ApiError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    Png,
    Jpeg,
    Tiff,
    Webp,
    Bmp,
    Pdf,
}

impl FileType {
    /// The `file_type` label of `ocr_operations_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Tiff => "tiff",
            Self::Webp => "webp",
            Self::Bmp => "bmp",
            Self::Pdf => "pdf",
        }
    }

    pub fn image_format(self) -> Option<image::ImageFormat> {
        match self {
            Self::Png => Some(image::ImageFormat::Png),
            Self::Jpeg => Some(image::ImageFormat::Jpeg),
            Self::Tiff => Some(image::ImageFormat::Tiff),
            Self::Webp => Some(image::ImageFormat::WebP),
            Self::Bmp => Some(image::ImageFormat::Bmp),
            Self::Pdf => None,
        }
    }

    fn media_types(self) -> &'static [&'static str] {
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

/// Content types that say nothing about the format, so the bytes decide.
const GENERIC_TYPES: [&str; 2] = ["application/octet-stream", "binary/octet-stream"];

const SUPPORTED: &str = "PNG, JPEG, TIFF, WebP, BMP or PDF";

/// The file's type from its magic bytes, checked against the declared content type (if any).
pub fn detect(bytes: &[u8], declared: Option<&str>) -> Result<FileType, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("the file is empty".to_owned()));
    }
    let declared = declared
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|value| !value.is_empty());
    let sniffed = sniff(bytes);
    match (sniffed, declared) {
        (Some(kind), None) => Ok(kind),
        (Some(kind), Some(declared))
            if GENERIC_TYPES.contains(&declared.as_str())
                || kind.media_types().contains(&declared.as_str()) =>
        {
            Ok(kind)
        }
        (Some(kind), Some(declared)) => Err(ApiError::UnsupportedMediaType(format!(
            "the file is {} but was sent as {declared}; send it as {} or application/octet-stream",
            kind.label().to_uppercase(),
            kind.media_types()[0]
        ))),
        (None, Some(declared)) if is_supported_type(&declared) => Err(ApiError::Unprocessable(
            format!("the file is not a readable {declared}: its first bytes match no {SUPPORTED}"),
        )),
        (None, Some(declared)) => Err(ApiError::UnsupportedMediaType(format!(
            "{declared} is not supported; send {SUPPORTED}"
        ))),
        (None, None) => Err(ApiError::UnsupportedMediaType(format!(
            "the file is not a {SUPPORTED}"
        ))),
    }
}

fn is_supported_type(declared: &str) -> bool {
    [
        FileType::Png,
        FileType::Jpeg,
        FileType::Tiff,
        FileType::Webp,
        FileType::Bmp,
        FileType::Pdf,
    ]
    .iter()
    .any(|kind| kind.media_types().contains(&declared))
}

fn sniff(bytes: &[u8]) -> Option<FileType> {
    // PDF readers accept the header anywhere in the first KiB; so do we.
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|window| window == b"%PDF-") {
        return Some(FileType::Pdf);
    }
    match image::guess_format(bytes).ok()? {
        image::ImageFormat::Png => Some(FileType::Png),
        image::ImageFormat::Jpeg => Some(FileType::Jpeg),
        image::ImageFormat::Tiff => Some(FileType::Tiff),
        image::ImageFormat::WebP => Some(FileType::Webp),
        image::ImageFormat::Bmp => Some(FileType::Bmp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n rest";

    fn status(result: Result<FileType, ApiError>) -> u16 {
        result.map_or_else(|err| err.status().as_u16(), |_| 200)
    }

    #[test]
    fn magic_bytes_decide_and_generic_types_defer_to_them() {
        assert_eq!(detect(PNG, None).ok(), Some(FileType::Png));
        assert_eq!(
            detect(PNG, Some("application/octet-stream")).ok(),
            Some(FileType::Png)
        );
        assert_eq!(
            detect(PNG, Some("image/png; charset=binary")).ok(),
            Some(FileType::Png)
        );
        assert_eq!(detect(b"%PDF-1.7\n", None).ok(), Some(FileType::Pdf));
        assert_eq!(detect(b"\xff\xd8\xff\xe0", None).ok(), Some(FileType::Jpeg));
    }

    #[test]
    fn wrong_or_unknown_types_are_415_and_corrupt_claims_422() {
        assert_eq!(status(detect(PNG, Some("image/jpeg"))), 415);
        assert_eq!(status(detect(b"hello", Some("text/plain"))), 415);
        assert_eq!(status(detect(b"GIF89a....", None)), 415);
        assert_eq!(status(detect(b"garbage", Some("image/png"))), 422);
        assert_eq!(status(detect(b"", Some("image/png"))), 400);
    }
}
