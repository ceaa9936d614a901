//! The OCR service's command line; every flag also reads an environment variable.

use std::path::PathBuf;

use clap::Parser;
use flashcards_bootstrap::{CommonArgs, config::MlflowArgs};
use flashcards_contracts::flags::ocr as flags;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "flashcards-ocr",
    version,
    about = "The flashcards OCR service: images and PDFs to text with per-word confidence"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub mlflow: MlflowArgs,

    /// Folder of Tesseract language data (`<lang>.traineddata`).
    #[arg(
        long,
        env = "TESSDATA_DIR",
        default_value = "/usr/share/tesseract-ocr/5/tessdata"
    )]
    pub tessdata_dir: PathBuf,

    /// Language used when a request names none; engines start with it loaded.
    #[arg(long = flags::DEFAULT_LANGUAGE.long, env = flags::DEFAULT_LANGUAGE.env, default_value = "eng")]
    pub default_language: String,

    /// Tesseract engines, each recognising one page at a time [default: one per core].
    #[arg(long, env = "OCR_ENGINES")]
    pub engines: Option<usize>,

    /// Requests that may wait for an engine; beyond engines + queue the service answers 503 at once
    /// [default: twice the engines].
    #[arg(long, env = "OCR_QUEUE")]
    pub queue: Option<usize>,

    /// Longest a request may take, waiting included, before it is answered 503.
    #[arg(long, env = "OCR_DEADLINE_SECS", default_value_t = 60)]
    pub deadline_secs: u64,

    /// Word confidence (0-100) under which words are marked `low_confidence`, when a request
    /// names none; they leave the text only when the request asks for filtering.
    #[arg(long = flags::MIN_CONFIDENCE.long, env = flags::MIN_CONFIDENCE.env, default_value_t = 60.0)]
    pub min_confidence: f32,

    /// Largest upload accepted by `POST /v1/ocr`, in bytes.
    #[arg(long, env = "OCR_MAX_UPLOAD_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_upload_bytes: usize,

    /// Most pixels an image (or a rendered PDF page) may have; protects against decompression bombs.
    #[arg(long, env = "OCR_MAX_IMAGE_PIXELS", default_value_t = 40_000_000)]
    pub max_image_pixels: u64,

    /// Most pages a PDF may have.
    #[arg(long, env = "OCR_MAX_PDF_PAGES", default_value_t = 50)]
    pub max_pdf_pages: u32,
}
