//! `POST /v1/ocr` and `GET /v1/languages`.

use std::time::Instant as StdInstant;

use axum::{
    extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State},
    http::header::CONTENT_TYPE,
};
use bytes::Bytes;
use flashcards_bootstrap::{
    ApiError,
    error::ErrorBody,
    extract::{Json, Query},
};
use image::{GrayImage, ImageFormat};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    OcrState,
    engine::{DEFAULT_PAGE_SEG_MODE, EngineError, PAGE_SEG_MODES, Threshold},
    file_type::{self, FileType},
    metrics::Outcome,
    pdf::{self, PdfError, RENDER_DPI},
    pool::{Admission, PoolError},
    preprocess::{self, DecodeError, Options, Prepared},
    tracking,
    words::{Word, mean_confidence, split_by_confidence, text_of},
};

pub fn router(max_upload_bytes: usize) -> OpenApiRouter<OcrState> {
    let upload = OpenApiRouter::new()
        .routes(routes!(recognize))
        .layer(DefaultBodyLimit::max(max_upload_bytes));
    OpenApiRouter::new()
        .merge(upload)
        .routes(routes!(languages))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Languages {
    /// Languages installed; combine with `+` (`eng+deu`).
    pub languages: Vec<String>,
    pub default: String,
}

#[utoipa::path(get, path = "/v1/languages", tag = "ocr",
    responses((status = 200, body = Languages)))]
async fn languages(State(state): State<OcrState>) -> Json<Languages> {
    Json(Languages {
        languages: state.languages.to_vec(),
        default: state.settings.default_language.clone(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OcrParams {
    /// Language, or languages joined by `+` (see `/v1/languages`); default the service's.
    pub lang: Option<String>,
    /// 0–100: words under it are marked `low_confidence` (default the service's
    /// `--min-confidence`). Naming it asks for filtering, unless `filter=false`.
    pub min_confidence: Option<f32>,
    /// Take the low-confidence words out of the text and list them in `filtered_words` (default:
    /// true when `min_confidence` is given, else false: every word read stays in the text).
    pub filter: Option<bool>,
    /// Tesseract page segmentation mode: 1 or 3–13 (default 3, fully automatic).
    pub psm: Option<u8>,
    /// Turn pages pure black and white (Otsu) before recognition.
    pub binarize: Option<bool>,
}

/// Where a page's words came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PageSource {
    /// Recognised by Tesseract.
    Ocr,
    /// Read from the PDF's text layer (confidence 100).
    TextLayer,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct PageTimings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub render_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preprocess_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recognize_ms: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct OcrResponse {
    pub file_type: FileType,
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

#[utoipa::path(post, path = "/v1/ocr", tag = "ocr", params(OcrParams),
    request_body(content = Vec<u8>, description = "The file: a raw body (PNG, JPEG, TIFF, WebP, BMP or PDF) \
        or multipart/form-data with a `file` field",
        content_type = "application/octet-stream"),
    responses((status = 200, body = OcrResponse),
        (status = 400, body = ErrorBody, description = "empty or malformed upload"),
        (status = 413, body = ErrorBody, description = "body, pixel count or page count over the limit"),
        (status = 415, body = ErrorBody, description = "not a supported file type"),
        (status = 422, body = ErrorBody, description = "corrupt file, encrypted PDF or bad parameter"),
        (status = 503, body = ErrorBody, description = "overloaded or past the deadline; see Retry-After")))]
async fn recognize(
    State(state): State<OcrState>,
    Query(params): Query<OcrParams>,
    request: Request,
) -> Result<Json<OcrResponse>, ApiError> {
    let received = StdInstant::now();
    let job = match Job::validate(&state, &params) {
        Ok(job) => job,
        Err(err) => {
            state.metrics.operation(Outcome::Invalid, "unknown");
            log_run(&state, &params, None, Outcome::Invalid, received, Err(&err));
            return Err(err);
        }
    };
    let admission = match state.pool.admit() {
        Ok(admission) => admission,
        Err(err) => {
            state.metrics.operation(Outcome::Overloaded, "unknown");
            let err = unavailable(&err, 1);
            log_run(
                &state,
                &params,
                None,
                Outcome::Overloaded,
                received,
                Err(&err),
            );
            return Err(err);
        }
    };
    let _active = state.metrics.active();
    let started = StdInstant::now();
    let deadline = Instant::now() + state.settings.deadline;
    let mut file_type = None;
    let result = process(&state, &job, &admission, request, deadline, &mut file_type).await;
    let label = file_type.map_or("unknown", FileType::label);
    state.metrics.processed(started.elapsed().as_secs_f64());
    match result {
        Ok(mut response) => {
            state.metrics.operation(Outcome::Success, label);
            record_words(&state, &response.pages);
            response.total_ms = millis(started);
            log_run(
                &state,
                &params,
                file_type,
                Outcome::Success,
                received,
                Ok(&response),
            );
            Ok(Json(response))
        }
        Err(Failure { outcome, error }) => {
            state.metrics.operation(outcome, label);
            log_run(&state, &params, file_type, outcome, received, Err(&error));
            Err(error)
        }
    }
}

/// Queues the request's MLflow run; builds nothing when logging is off.
fn log_run(
    state: &OcrState,
    params: &OcrParams,
    file_type: Option<FileType>,
    outcome: Outcome,
    received: StdInstant,
    result: Result<&OcrResponse, &ApiError>,
) {
    state.mlflow.log(|| {
        let settings = &state.settings;
        let requested = tracking::Requested {
            language: params.lang.as_deref().unwrap_or(&settings.default_language),
            min_confidence: params.min_confidence.unwrap_or(settings.min_confidence),
            filter: params.filter.unwrap_or(params.min_confidence.is_some()),
            psm: params.psm.unwrap_or(DEFAULT_PAGE_SEG_MODE),
            binarize: params.binarize.unwrap_or(false),
        };
        tracking::record(
            &requested,
            file_type.map_or("unknown", FileType::label),
            outcome,
            received.elapsed(),
            result,
        )
    });
}

/// A request's validated parameters.
struct Job {
    language: String,
    min_confidence: f32,
    filter: bool,
    page_seg_mode: u8,
    options: Options,
}

impl Job {
    fn validate(state: &OcrState, params: &OcrParams) -> Result<Self, ApiError> {
        let language = params
            .lang
            .clone()
            .unwrap_or_else(|| state.settings.default_language.clone());
        if let Some(unknown) = language
            .split('+')
            .find(|part| !state.languages.iter().any(|known| known == part))
        {
            return Err(ApiError::invalid(
                "lang",
                format!(
                    "{unknown:?} is not installed (installed: {})",
                    state.languages.join(", ")
                ),
            ));
        }
        let min_confidence = params
            .min_confidence
            .unwrap_or(state.settings.min_confidence);
        if !(0.0..=100.0).contains(&min_confidence) {
            return Err(ApiError::invalid(
                "min_confidence",
                "must be between 0 and 100",
            ));
        }
        let page_seg_mode = params.psm.unwrap_or(DEFAULT_PAGE_SEG_MODE);
        if !PAGE_SEG_MODES.contains(&page_seg_mode) {
            return Err(ApiError::invalid(
                "psm",
                format!("must be one of {PAGE_SEG_MODES:?}"),
            ));
        }
        Ok(Self {
            language,
            min_confidence,
            filter: params.filter.unwrap_or(params.min_confidence.is_some()),
            page_seg_mode,
            options: Options {
                binarize: params.binarize.unwrap_or(false),
            },
        })
    }
}

/// An error answer and how it counts in `ocr_operations_total`.
struct Failure {
    outcome: Outcome,
    error: ApiError,
}

impl Failure {
    fn invalid(error: ApiError) -> Self {
        Self {
            outcome: Outcome::Invalid,
            error,
        }
    }

    fn timeout(what: &str) -> Self {
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

async fn process(
    state: &OcrState,
    job: &Job,
    admission: &Admission,
    request: Request,
    deadline: Instant,
    file_type: &mut Option<FileType>,
) -> Result<OcrResponse, Failure> {
    let (bytes, declared) = tokio::time::timeout_at(deadline, read_upload(request))
        .await
        .map_err(|_| Failure::timeout("receiving the upload"))?
        .map_err(Failure::invalid)?;
    let kind = file_type::detect(&bytes, declared.as_deref()).map_err(Failure::invalid)?;
    *file_type = Some(kind);
    let mut queued_ms = 0.0;
    let pages = match kind.image_format() {
        Some(format) => {
            image_pages(
                state,
                job,
                admission,
                bytes,
                format,
                deadline,
                &mut queued_ms,
            )
            .await?
        }
        None => pdf_pages(state, job, admission, &bytes, deadline, &mut queued_ms).await?,
    };
    Ok(OcrResponse {
        file_type: kind,
        language: job.language.clone(),
        min_confidence: job.min_confidence,
        filtered: job.filter,
        page_seg_mode: job.page_seg_mode,
        pages,
        queued_ms,
        total_ms: 0.0,
    })
}

/// The file of a raw body, or of a multipart form's `file` field, with its declared content type.
async fn read_upload(request: Request) -> Result<(Bytes, Option<String>), ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let is_form = content_type.as_deref().is_some_and(|value| {
        value
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    });
    if !is_form {
        let bytes = Bytes::from_request(request, &()).await?;
        return Ok((bytes, content_type));
    }
    let mut form = Multipart::from_request(request, &()).await?;
    while let Some(field) = form.next_field().await? {
        if field.name() == Some("file") {
            let declared = field.content_type().map(str::to_owned);
            return Ok((field.bytes().await?, declared));
        }
    }
    Err(ApiError::invalid(
        "file",
        "the multipart form has no `file` field",
    ))
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

struct Decoded {
    prepared: Prepared,
    decode_ms: f64,
    preprocess_ms: f64,
}

async fn image_pages(
    state: &OcrState,
    job: &Job,
    admission: &Admission,
    bytes: Bytes,
    format: ImageFormat,
    deadline: Instant,
    queued_ms: &mut f64,
) -> Result<Vec<PageResult>, Failure> {
    let max_pixels = state.settings.max_image_pixels;
    let options = job.options;
    let prepared = blocking("decoding the image", deadline, move || {
        let started = StdInstant::now();
        let (image, orientation) = preprocess::decode(&bytes, format, max_pixels)?;
        let decode_ms = millis(started);
        let started = StdInstant::now();
        let prepared = preprocess::prepare(image, orientation, options, max_pixels);
        Ok::<_, DecodeError>(Decoded {
            prepared,
            decode_ms,
            preprocess_ms: millis(started),
        })
    })
    .await??;
    let Decoded {
        prepared: Prepared {
            page,
            steps,
            threshold,
        },
        decode_ms,
        preprocess_ms,
    } = prepared;
    let (width, height) = page.dimensions();
    let mut recognised =
        recognise(job, admission, vec![(page, threshold)], deadline, queued_ms).await?;
    let (words, recognize_ms) = recognised.pop().unwrap_or_default();
    Ok(vec![page_result(
        1,
        PageSource::Ocr,
        (width, height),
        words,
        job,
        steps,
        PageTimings {
            decode_ms: Some(decode_ms),
            preprocess_ms: Some(preprocess_ms),
            recognize_ms: Some(recognize_ms),
            render_ms: None,
        },
    )])
}

async fn pdf_pages(
    state: &OcrState,
    job: &Job,
    admission: &Admission,
    bytes: &[u8],
    deadline: Instant,
    queued_ms: &mut f64,
) -> Result<Vec<PageResult>, Failure> {
    let settings = &state.settings;
    let directory =
        tempfile::tempdir().map_err(|err| Failure::internal("making a scratch folder", err))?;
    let path = directory.path().join("upload.pdf");
    tokio::fs::write(&path, bytes)
        .await
        .map_err(|err| Failure::internal("writing the PDF to its scratch folder", err))?;
    pdf::page_count(&path, settings.max_pdf_pages, deadline).await?;
    let layers = pdf::text_layers(&path, deadline).await?;

    let mut pages: Vec<Option<PageResult>> = Vec::with_capacity(layers.len());
    let mut scanned: Vec<(usize, Prepared, f64)> = Vec::new();
    for (index, layer) in layers.into_iter().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
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

    if !scanned.is_empty() {
        let images = scanned
            .iter()
            .map(|(_, prepared, _)| (prepared.page.clone(), prepared.threshold))
            .collect();
        let recognised = recognise(job, admission, images, deadline, queued_ms).await?;
        for ((index, prepared, render_ms), (words, recognize_ms)) in
            scanned.into_iter().zip(recognised)
        {
            let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
            pages[index] = Some(page_result(
                number,
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
    Ok(pages.into_iter().flatten().collect())
}

/// A text layer worth trusting has at least one word with a letter or digit; scans often carry an
/// empty or invisible one.
fn has_text(words: &[Word]) -> bool {
    words
        .iter()
        .any(|word| word.text.chars().any(char::is_alphanumeric))
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn scaled_points(points: f32) -> u32 {
    (points * RENDER_DPI as f32 / 72.0).round().max(0.0) as u32
}

/// Recognises the pages in order on one engine; returns each page's words and milliseconds.
async fn recognise(
    job: &Job,
    admission: &Admission,
    pages: Vec<(GrayImage, Threshold)>,
    deadline: Instant,
    queued_ms: &mut f64,
) -> Result<Vec<(Vec<Word>, f64)>, Failure> {
    let waiting = StdInstant::now();
    let mut lease = admission.engine(&job.language, deadline).await?;
    *queued_ms += millis(waiting);
    let language = job.language.clone();
    let page_seg_mode = job.page_seg_mode;
    let stop_at = deadline.into_std();
    let results = blocking("recognising the pages", deadline, move || {
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
    Ok(results)
}

fn page_result(
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

fn record_words(state: &OcrState, pages: &[PageResult]) {
    let kept: usize = pages.iter().map(|page| page.words.len()).sum();
    let filtered: usize = pages.iter().map(|page| page.filtered_words.len()).sum();
    state.metrics.words(kept + filtered, kept);
    for page in pages.iter().filter(|page| page.source == PageSource::Ocr) {
        for word in page.words.iter().chain(&page.filtered_words) {
            state.metrics.recognised_word(word.confidence);
        }
    }
}

fn millis(since: StdInstant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
