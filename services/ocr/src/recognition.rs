//! The recognition pipeline: a request's validated parameters and a file's bytes in, its pages'
//! words and text out. Images are decoded and prepared, PDF pages are taken from their text layer
//! or rasterised, and every page needing OCR is recognised on one engine in order. What is decided
//! here is pure ([`Job::validate`], [`page_result`], [`has_text`]); the route around it does the
//! limits, metrics and MLflow.

use std::time::Instant as StdInstant;

use bytes::Bytes;
use flashcards_bootstrap::ApiError;
use image::{GrayImage, ImageFormat};
use tokio::time::Instant;

use crate::{
    Settings,
    engine::{DEFAULT_PAGE_SEG_MODE, EngineError, PAGE_SEG_MODES, Threshold},
    file_type::{self, FileKind},
    metrics::Outcome,
    pdf::{self, PdfError, RENDER_DPI, TextLayerPage},
    pool::{Admission, PoolError},
    preprocess::{self, DecodeError, Options, Prepared},
    words::{Word, mean_confidence, split_by_confidence, text_of},
};
pub use flashcards_contracts::ocr::{PageResult, PageSource, PageTimings};

/// What a request asks for, before it is checked (`None`: the service's default).
#[derive(Debug, Clone, Default)]
pub struct Parameters {
    pub lang: Option<String>,
    pub min_confidence: Option<f32>,
    pub filter: Option<bool>,
    pub psm: Option<u8>,
    pub binarize: Option<bool>,
}

/// A request's parameters, checked and with the service's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub language: String,
    pub min_confidence: f32,
    pub filter: bool,
    pub page_seg_mode: u8,
    pub options: Options,
}

impl Job {
    /// The job `requested` describes, or a 422 naming the parameter that cannot be honoured.
    pub fn validate(
        requested: &Parameters,
        installed: &[String],
        settings: &Settings,
    ) -> Result<Self, ApiError> {
        let language = requested
            .lang
            .clone()
            .unwrap_or_else(|| settings.default_language.clone());
        if let Some(unknown) = language
            .split('+')
            .find(|part| !installed.iter().any(|known| known == part))
        {
            return Err(ApiError::invalid(
                "lang",
                format!(
                    "{unknown:?} is not installed (installed: {})",
                    installed.join(", ")
                ),
            ));
        }
        let min_confidence = requested.min_confidence.unwrap_or(settings.min_confidence);
        if !(0.0..=100.0).contains(&min_confidence) {
            return Err(ApiError::invalid(
                "min_confidence",
                "must be between 0 and 100",
            ));
        }
        let page_seg_mode = requested.psm.unwrap_or(DEFAULT_PAGE_SEG_MODE);
        if !PAGE_SEG_MODES.contains(&page_seg_mode) {
            return Err(ApiError::invalid(
                "psm",
                format!("must be one of {PAGE_SEG_MODES:?}"),
            ));
        }
        Ok(Self {
            language,
            min_confidence,
            filter: requested
                .filter
                .unwrap_or(requested.min_confidence.is_some()),
            page_seg_mode,
            options: Options {
                binarize: requested.binarize.unwrap_or(false),
            },
        })
    }
}

/// A file's pages, and how long they waited for an engine.
#[derive(Debug)]
pub struct Recognised {
    pub pages: Vec<PageResult>,
    pub queued_ms: f64,
}

/// An error answer and how it counts in `ocr_operations_total`.
#[derive(Debug)]
pub struct Failure {
    pub outcome: Outcome,
    pub error: ApiError,
}

impl Failure {
    pub fn invalid(error: ApiError) -> Self {
        Self {
            outcome: Outcome::Invalid,
            error,
        }
    }

    pub fn overloaded(err: &PoolError) -> Self {
        Self {
            outcome: Outcome::Overloaded,
            error: unavailable(err, 1),
        }
    }

    pub fn timeout(what: &str) -> Self {
        Self {
            outcome: Outcome::Timeout,
            error: ApiError::Unavailable {
                detail: format!("{what} ran past the request's deadline"),
                retry_after_secs: Some(5),
            },
        }
    }

    fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        Self {
            outcome: Outcome::Error,
            error: ApiError::internal(context, err),
        }
    }
}

impl From<DecodeError> for Failure {
    fn from(err: DecodeError) -> Self {
        Self::invalid(err.into())
    }
}

impl From<PdfError> for Failure {
    fn from(err: PdfError) -> Self {
        match err {
            PdfError::TooManyPages { .. } => {
                Self::invalid(ApiError::PayloadTooLarge(err.to_string()))
            }
            PdfError::Encrypted | PdfError::Corrupt(_) | PdfError::NoPages => {
                Self::invalid(ApiError::Unprocessable(err.to_string()))
            }
            PdfError::DeadlineExceeded => Self::timeout("reading the PDF"),
            PdfError::Tool { .. } => Self::internal("reading a PDF", err),
        }
    }
}

impl From<PoolError> for Failure {
    fn from(err: PoolError) -> Self {
        Self {
            outcome: Outcome::Timeout,
            error: unavailable(&err, 5),
        }
    }
}

impl From<EngineError> for Failure {
    fn from(err: EngineError) -> Self {
        Self::internal("running Tesseract", err)
    }
}

fn unavailable(err: &PoolError, retry_after_secs: u64) -> ApiError {
    ApiError::Unavailable {
        detail: err.to_string(),
        retry_after_secs: Some(retry_after_secs),
    }
}

/// Reads every page of a file whose kind is known, within `deadline`, on an engine `admission`
/// lends.
pub async fn recognise_file(
    settings: &Settings,
    job: &Job,
    admission: &Admission,
    bytes: Bytes,
    kind: FileKind,
    deadline: Instant,
) -> Result<Recognised, Failure> {
    match file_type::image_format(kind) {
        Some(format) => image_pages(settings, job, admission, bytes, format, deadline).await,
        None => pdf_pages(settings, job, admission, &bytes, deadline).await,
    }
}

/// An image decoded and prepared for Tesseract, with what each took.
pub struct Decoded {
    pub prepared: Prepared,
    pub decode_ms: f64,
    pub preprocess_ms: f64,
}

/// Decodes an uploaded image within the pixel budget, turns it upright and prepares it: the path
/// every image upload takes, hostile bytes included (the fuzz test drives it).
pub fn decode_image(
    bytes: &[u8],
    format: ImageFormat,
    options: Options,
    max_pixels: u64,
) -> Result<Decoded, DecodeError> {
    let started = StdInstant::now();
    let (image, orientation) = preprocess::decode(bytes, format, max_pixels)?;
    let decode_ms = millis(started);
    let started = StdInstant::now();
    let prepared = preprocess::prepare(image, orientation, options, max_pixels);
    Ok(Decoded {
        prepared,
        decode_ms,
        preprocess_ms: millis(started),
    })
}

/// A PDF's pages as its text layer has them, refusing more than `max_pages` pages: the path every
/// PDF upload takes first (the fuzz test drives it).
pub async fn pdf_layers(
    path: &std::path::Path,
    max_pages: u32,
    deadline: Instant,
) -> Result<Vec<TextLayerPage>, PdfError> {
    pdf::page_count(path, max_pages, deadline).await?;
    pdf::text_layers(path, deadline).await
}

/// Runs CPU-bound work off the async threads, giving up on it (not stopping it) at the deadline.
async fn blocking<T: Send + 'static>(
    what: &str,
    deadline: Instant,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Failure> {
    match tokio::time::timeout_at(deadline, tokio::task::spawn_blocking(work)).await {
        Err(_) => Err(Failure::timeout(what)),
        Ok(Err(err)) => Err(Failure::internal(what, err)),
        Ok(Ok(value)) => Ok(value),
    }
}

async fn image_pages(
    settings: &Settings,
    job: &Job,
    admission: &Admission,
    bytes: Bytes,
    format: ImageFormat,
    deadline: Instant,
) -> Result<Recognised, Failure> {
    let max_pixels = settings.max_image_pixels;
    let options = job.options;
    let Decoded {
        prepared: Prepared {
            page,
            steps,
            threshold,
        },
        decode_ms,
        preprocess_ms,
    } = blocking("decoding the image", deadline, move || {
        decode_image(&bytes, format, options, max_pixels)
    })
    .await??;
    let size = page.dimensions();
    let Engined {
        mut pages,
        queued_ms,
    } = recognise(job, admission, vec![(page, threshold)], deadline).await?;
    let (words, recognize_ms) = pages.pop().unwrap_or_default();
    let page = page_result(
        1,
        PageSource::Ocr,
        size,
        words,
        job,
        steps,
        PageTimings {
            decode_ms: Some(decode_ms),
            preprocess_ms: Some(preprocess_ms),
            recognize_ms: Some(recognize_ms),
            render_ms: None,
        },
    );
    Ok(Recognised {
        pages: vec![page],
        queued_ms,
    })
}

async fn pdf_pages(
    settings: &Settings,
    job: &Job,
    admission: &Admission,
    bytes: &[u8],
    deadline: Instant,
) -> Result<Recognised, Failure> {
    let directory =
        tempfile::tempdir().map_err(|err| Failure::internal("making a scratch folder", err))?;
    let path = directory.path().join("upload.pdf");
    tokio::fs::write(&path, bytes)
        .await
        .map_err(|err| Failure::internal("writing the PDF to its scratch folder", err))?;
    let layers = pdf_layers(&path, settings.max_pdf_pages, deadline).await?;

    let mut pages: Vec<Option<PageResult>> = Vec::with_capacity(layers.len());
    let mut scanned: Vec<(usize, Prepared, f64)> = Vec::new();
    for (index, layer) in layers.into_iter().enumerate() {
        let number = page_number(index);
        let size = (
            scaled_points(layer.width_pt),
            scaled_points(layer.height_pt),
        );
        if has_text(&layer.words) {
            pages.push(Some(page_result(
                number,
                PageSource::TextLayer,
                size,
                layer.words,
                job,
                Vec::new(),
                PageTimings::default(),
            )));
            continue;
        }
        let started = StdInstant::now();
        let dpi = pdf::raster_dpi(layer.width_pt, layer.height_pt, settings.max_image_pixels);
        let image = pdf::rasterize(&path, number, dpi, deadline).await?;
        let render_ms = millis(started);
        preprocess::check_pixels(image.width(), image.height(), settings.max_image_pixels)?;
        let options = job.options;
        let max_pixels = settings.max_image_pixels;
        let mut prepared = blocking("preparing a page", deadline, move || {
            preprocess::prepare(image.into(), None, options, max_pixels)
        })
        .await?;
        prepared.steps.insert(0, format!("render:{dpi}dpi"));
        scanned.push((index, prepared, render_ms));
        pages.push(None);
    }

    let mut queued_ms = 0.0;
    if !scanned.is_empty() {
        let images = scanned
            .iter()
            .map(|(_, prepared, _)| (prepared.page.clone(), prepared.threshold))
            .collect();
        let engined = recognise(job, admission, images, deadline).await?;
        queued_ms = engined.queued_ms;
        for ((index, prepared, render_ms), (words, recognize_ms)) in
            scanned.into_iter().zip(engined.pages)
        {
            pages[index] = Some(page_result(
                page_number(index),
                PageSource::Ocr,
                prepared.page.dimensions(),
                words,
                job,
                prepared.steps,
                PageTimings {
                    render_ms: Some(render_ms),
                    recognize_ms: Some(recognize_ms),
                    ..PageTimings::default()
                },
            ));
        }
    }
    Ok(Recognised {
        pages: pages.into_iter().flatten().collect(),
        queued_ms,
    })
}

fn page_number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// A text layer worth trusting has at least one word with a letter or digit; scans often carry an
/// empty or invisible one.
pub fn has_text(words: &[Word]) -> bool {
    words
        .iter()
        .any(|word| word.text.chars().any(char::is_alphanumeric))
}

/// PDF points as pixels at the resolution pages are rendered at, so that text-layer boxes and
/// OCR boxes share one scale.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn scaled_points(points: f32) -> u32 {
    (points * RENDER_DPI as f32 / 72.0).round().max(0.0) as u32
}

/// Each page's words and milliseconds, and the wait for the engine.
struct Engined {
    pages: Vec<(Vec<Word>, f64)>,
    queued_ms: f64,
}

/// Recognises the pages in order on one engine.
async fn recognise(
    job: &Job,
    admission: &Admission,
    pages: Vec<(GrayImage, Threshold)>,
    deadline: Instant,
) -> Result<Engined, Failure> {
    let waiting = StdInstant::now();
    let mut lease = admission.engine(&job.language, deadline).await?;
    let queued_ms = millis(waiting);
    let language = job.language.clone();
    let page_seg_mode = job.page_seg_mode;
    let stop_at = deadline.into_std();
    let pages = blocking("recognising the pages", deadline, move || {
        let Some(engine) = lease.engine() else {
            return Err(Failure::internal("taking an engine", "the lease was empty"));
        };
        let mut results = Vec::with_capacity(pages.len());
        for (page, threshold) in &pages {
            if StdInstant::now() >= stop_at {
                return Err(Failure::timeout("recognising the pages"));
            }
            let started = StdInstant::now();
            let words = engine.recognize(page, *threshold, &language, page_seg_mode, RENDER_DPI)?;
            results.push((words, millis(started)));
        }
        Ok(results)
    })
    .await??;
    Ok(Engined { pages, queued_ms })
}

/// One page's answer: the words kept and filtered by the job's confidence, and its text.
pub fn page_result(
    number: u32,
    source: PageSource,
    (width, height): (u32, u32),
    words: Vec<Word>,
    job: &Job,
    preprocessing: Vec<String>,
    timings: PageTimings,
) -> PageResult {
    let mean = mean_confidence(&words);
    let (kept, filtered) = split_by_confidence(words, job.min_confidence, job.filter);
    PageResult {
        page: number,
        source,
        width,
        height,
        text: text_of(&kept),
        mean_confidence: mean,
        words: kept,
        filtered_words: filtered,
        preprocessing,
        timings,
    }
}

pub fn millis(since: StdInstant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use std::{path::PathBuf, time::Duration};

    use flashcards_contracts::ocr::BoundingBox;

    use super::*;

    fn settings() -> Settings {
        Settings {
            tessdata_dir: PathBuf::from("/usr/share/tesseract-ocr/5/tessdata"),
            default_language: "eng".to_owned(),
            engines: 1,
            queue: 2,
            deadline: Duration::from_secs(30),
            min_confidence: 60.0,
            max_upload_bytes: 1 << 20,
            max_image_pixels: 1 << 20,
            max_pdf_pages: 10,
            mlflow: None,
        }
    }

    fn installed() -> Vec<String> {
        vec!["eng".to_owned(), "deu".to_owned()]
    }

    fn word(text: &str, confidence: f32) -> Word {
        Word {
            text: text.to_owned(),
            confidence,
            bbox: BoundingBox {
                x: 0,
                y: 0,
                width: 10,
                height: 10,
            },
            block: 1,
            line: 1,
            low_confidence: false,
        }
    }

    fn invalid_field(parameters: &Parameters) -> String {
        match Job::validate(parameters, &installed(), &settings()) {
            Err(ApiError::Unprocessable(detail)) => detail,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_bare_request_takes_the_services_defaults_and_keeps_every_word() {
        let job = Job::validate(&Parameters::default(), &installed(), &settings());
        assert_eq!(
            job.ok(),
            Some(Job {
                language: "eng".to_owned(),
                min_confidence: 60.0,
                filter: false,
                page_seg_mode: DEFAULT_PAGE_SEG_MODE,
                options: Options { binarize: false },
            })
        );
    }

    #[test]
    fn naming_a_confidence_asks_for_filtering_unless_told_not_to() {
        let asked = |filter| Parameters {
            lang: Some("eng+deu".to_owned()),
            min_confidence: Some(80.0),
            filter,
            ..Parameters::default()
        };
        let job = Job::validate(&asked(None), &installed(), &settings()).ok();
        assert_eq!(job.as_ref().map(|job| job.filter), Some(true));
        assert_eq!(job.map(|job| job.language), Some("eng+deu".to_owned()));
        let job = Job::validate(&asked(Some(false)), &installed(), &settings()).ok();
        assert_eq!(job.map(|job| job.filter), Some(false));
    }

    #[test]
    fn parameters_that_cannot_be_honoured_name_themselves() {
        let detail = invalid_field(&Parameters {
            lang: Some("eng+fra".to_owned()),
            ..Parameters::default()
        });
        assert!(
            detail.starts_with("lang:") && detail.contains("\"fra\""),
            "{detail}"
        );
        let detail = invalid_field(&Parameters {
            min_confidence: Some(101.0),
            ..Parameters::default()
        });
        assert!(detail.starts_with("min_confidence:"), "{detail}");
        let detail = invalid_field(&Parameters {
            psm: Some(2),
            ..Parameters::default()
        });
        assert!(detail.starts_with("psm:"), "{detail}");
    }

    #[test]
    fn a_page_keeps_or_filters_its_unsure_words_as_the_job_says() {
        let words = || {
            vec![
                word("Mitochondria", 95.0),
                word("rnake", 30.0),
                word("ATP", 90.0),
            ]
        };
        let mut job = Job::validate(&Parameters::default(), &installed(), &settings())
            .ok()
            .unwrap_or_else(|| panic!("defaults validate"));
        let page = |number, job: &Job| {
            page_result(
                number,
                PageSource::Ocr,
                (100, 50),
                words(),
                job,
                Vec::new(),
                PageTimings::default(),
            )
        };
        let kept = page(1, &job);
        assert_eq!(kept.text, "Mitochondria rnake ATP");
        assert!(kept.filtered_words.is_empty());
        assert!(kept.words[1].low_confidence, "marked, not dropped");
        assert_eq!(kept.mean_confidence.map(f32::round), Some(72.0));

        job.filter = true;
        let filtered = page(2, &job);
        assert_eq!(filtered.text, "Mitochondria ATP");
        assert_eq!(filtered.filtered_words.len(), 1);
        assert_eq!(
            (filtered.page, filtered.width, filtered.height),
            (2, 100, 50)
        );
    }

    #[test]
    fn only_a_text_layer_with_letters_or_digits_is_trusted() {
        assert!(!has_text(&[]));
        assert!(!has_text(&[word(" ", 100.0), word("·—", 100.0)]));
        assert!(has_text(&[word("·", 100.0), word("7", 100.0)]));
    }

    #[test]
    fn pdf_points_scale_to_the_rendering_resolution() {
        assert_eq!(scaled_points(72.0), RENDER_DPI);
        assert_eq!(scaled_points(0.0), 0);
        assert_eq!(scaled_points(-3.0), 0);
    }
}
