//! What the documents API answers with: a document, its pages and where it is in its life; and the
//! pure decisions about an upload (its stored name, its hash).

use flashcards_contracts::ocr::{PageSource, Word};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

const MAX_FILE_NAME_CHARS: usize = 255;

/// Where a document is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// OCR is running.
    Processing,
    /// Pages are stored.
    Done,
    /// The OCR service was unreachable or overloaded; `POST /api/documents/{id}/ocr` retries.
    FailedRetryable,
    /// The OCR service cannot read this file (corrupt, encrypted, too large, ...).
    Failed,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Done => "done",
            Self::FailedRetryable => "failed_retryable",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Document {
    pub id: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// SHA-256 of the file, hex: the same file uploaded twice is one document.
    pub sha256: String,
    pub status: DocumentStatus,
    /// Why OCR failed, for `failed` and `failed_retryable`.
    pub error: Option<String>,
    pub page_count: i64,
    #[serde(skip_deserializing)]
    pub created_at: String,
    #[serde(skip_deserializing)]
    pub updated_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentPage {
    pub page: i64,
    /// Recognised, or read directly from a PDF's text layer.
    pub source: PageSource,
    pub width: i64,
    pub height: i64,
    pub text: String,
    pub mean_confidence: Option<f64>,
    /// Words kept in `text`, as the OCR service reported them.
    pub words: Vec<Word>,
    /// Words under the OCR confidence threshold, left out of `text`.
    pub filtered_words: Vec<Word>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentDetail {
    #[serde(flatten)]
    pub document: Document,
    pub pages: Vec<DocumentPage>,
}

/// The file name without any folder, control characters or excess length.
pub fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILE_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "upload".to_owned()
    } else {
        cleaned.to_owned()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_folders_and_control_characters() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\notes\\bio.pdf"), "bio.pdf");
        assert_eq!(clean_file_name("a\u{0}b\nc.png"), "abc.png");
        assert_eq!(clean_file_name(""), "upload");
        assert_eq!(clean_file_name(".."), "upload");
        assert_eq!(clean_file_name(&"x".repeat(400)).len(), MAX_FILE_NAME_CHARS);
    }

    #[test]
    fn hashes_are_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
