//! The OCR service's answer to `POST /v1/ocr`: a file's pages, each with its text and its words
//! with their boxes and confidence.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::media::FileKind;

/// Where the OCR service reads a file: the raw body, or a multipart form's `file` field.
pub const RECOGNISE_PATH: &str = "/v1/ocr";

/// Where a page's words came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PageSource {
    /// Recognised by Tesseract.
    Ocr,
    /// Read from the PDF's text layer (confidence 100).
    TextLayer,
}

impl PageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ocr => "ocr",
            Self::TextLayer => "text_layer",
        }
    }
}

/// A rectangle in the page's pixel space (origin top left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BoundingBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Word {
    pub text: String,
    /// 0–100; words from a PDF's text layer are 100.
    pub confidence: f32,
    pub bbox: BoundingBox,
    /// 1-based block of the page the word belongs to.
    pub block: u32,
    /// 1-based line of the page, counted across blocks.
    pub line: u32,
    /// Under the request's `min_confidence`: likely misread. The word stays in the page's text
    /// unless the request asked for filtering.
    #[serde(default)]
    pub low_confidence: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PageTimings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recognize_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PageResult {
    /// 1-based.
    pub page: u32,
    pub source: PageSource,
    /// Size of the page in pixels; every box is in this space (PDF pages at 300 dpi).
    pub width: u32,
    pub height: u32,
    /// The kept words: lines separated by `\n`, blocks by a blank line.
    pub text: String,
    /// Mean confidence of every word of the page, filtered ones included; `null` without words.
    pub mean_confidence: Option<f32>,
    /// The words in `text`: every word read, or with filtering those at or above
    /// `min_confidence`.
    pub words: Vec<Word>,
    /// With filtering, the words under `min_confidence`, left out of `text`; else empty.
    pub filtered_words: Vec<Word>,
    /// Preprocessing steps that ran, in order (`grayscale`, `upscale:2.00x`, ...).
    pub preprocessing: Vec<String>,
    pub timings: PageTimings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OcrResponse {
    pub file_type: FileKind,
    pub language: String,
    /// Words under it are marked `low_confidence`.
    pub min_confidence: f32,
    /// Whether the low-confidence words were taken out of the text.
    pub filtered: bool,
    pub page_seg_mode: u8,
    pub pages: Vec<PageResult>,
    /// Time spent waiting for an engine.
    pub queued_ms: f64,
    pub total_ms: f64,
}
