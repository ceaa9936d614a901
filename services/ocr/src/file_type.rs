//! What kind of file an upload is, decided from its first bytes; the declared content type only has
//! to agree with them.

use flashcards_bootstrap::ApiError;
pub use flashcards_contracts::media::FileKind;
use flashcards_contracts::media::{self, Declared, SUPPORTED};

/// The `image` crate's format for an image kind; `None` for PDF, which is rendered instead.
pub fn image_format(kind: FileKind) -> Option<image::ImageFormat> {
    match kind {
        FileKind::Png => Some(image::ImageFormat::Png),
        FileKind::Jpeg => Some(image::ImageFormat::Jpeg),
        FileKind::Tiff => Some(image::ImageFormat::Tiff),
        FileKind::Webp => Some(image::ImageFormat::WebP),
        FileKind::Bmp => Some(image::ImageFormat::Bmp),
        FileKind::Pdf => None,
    }
}

/// The file's type from its magic bytes, checked against the declared content type (if any).
pub fn detect(bytes: &[u8], declared: Option<&str>) -> Result<FileKind, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("the file is empty".to_owned()));
    }
    let declared = declared
        .map(media::essence)
        .filter(|value| !value.is_empty());
    let sniffed = sniff(bytes);
    match (sniffed, declared) {
        (Some(kind), None) => Ok(kind),
        (Some(kind), Some(declared)) => match media::declared(&declared) {
            Declared::Generic => Ok(kind),
            Declared::Kind(named) if named == kind => Ok(kind),
            _ => Err(ApiError::UnsupportedMediaType(format!(
                "the file is {} but was sent as {declared}; send it as {} or application/octet-stream",
                kind.as_str().to_uppercase(),
                kind.media_types()[0]
            ))),
        },
        (None, Some(declared)) if matches!(media::declared(&declared), Declared::Kind(_)) => {
            Err(ApiError::Unprocessable(format!(
                "the file is not a readable {declared}: its first bytes match no {SUPPORTED}"
            )))
        }
        (None, Some(declared)) => Err(ApiError::UnsupportedMediaType(format!(
            "{declared} is not supported; send {SUPPORTED}"
        ))),
        (None, None) => Err(ApiError::UnsupportedMediaType(format!(
            "the file is not a {SUPPORTED}"
        ))),
    }
}

fn sniff(bytes: &[u8]) -> Option<FileKind> {
    // PDF readers accept the header anywhere in the first KiB; so do we.
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|window| window == b"%PDF-") {
        return Some(FileKind::Pdf);
    }
    match image::guess_format(bytes).ok()? {
        image::ImageFormat::Png => Some(FileKind::Png),
        image::ImageFormat::Jpeg => Some(FileKind::Jpeg),
        image::ImageFormat::Tiff => Some(FileKind::Tiff),
        image::ImageFormat::WebP => Some(FileKind::Webp),
        image::ImageFormat::Bmp => Some(FileKind::Bmp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n rest";

    fn status(result: Result<FileKind, ApiError>) -> u16 {
        result.map_or_else(|err| err.status().as_u16(), |_| 200)
    }

    #[test]
    fn magic_bytes_decide_and_generic_types_defer_to_them() {
        assert_eq!(detect(PNG, None).ok(), Some(FileKind::Png));
        assert_eq!(
            detect(PNG, Some("application/octet-stream")).ok(),
            Some(FileKind::Png)
        );
        assert_eq!(
            detect(PNG, Some("image/png; charset=binary")).ok(),
            Some(FileKind::Png)
        );
        assert_eq!(detect(b"%PDF-1.7\n", None).ok(), Some(FileKind::Pdf));
        assert_eq!(detect(b"\xff\xd8\xff\xe0", None).ok(), Some(FileKind::Jpeg));
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
