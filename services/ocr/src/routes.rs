//! `POST /v1/ocr` and `GET /v1/languages`: the upload read, the limits (the engine queue and the
//! request's deadline), and the metrics and MLflow run written once, where a request ends. The
//! reading itself is [`crate::recognition`].

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
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    OcrState,
    engine::DEFAULT_PAGE_SEG_MODE,
    file_type::{self, FileKind},
    metrics::Outcome,
    recognition::{self, Failure, Job, Parameters, Recognised, millis},
    tracking,
};
pub use flashcards_contracts::ocr::{OcrResponse, PageResult, PageSource, PageTimings};

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

impl From<OcrParams> for Parameters {
    fn from(params: OcrParams) -> Self {
        Self {
            lang: params.lang,
            min_confidence: params.min_confidence,
            filter: params.filter,
            psm: params.psm,
            binarize: params.binarize,
        }
    }
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
    let parameters = Parameters::from(params);
    let Attempt {
        file_type,
        processing_secs,
        result,
    } = attempt(&state, &parameters, request).await;
    let outcome = result
        .as_ref()
        .map_or_else(|failure| failure.outcome, |_| Outcome::Success);
    state
        .metrics
        .operation(outcome, file_type.map_or("unknown", FileKind::as_str));
    if let Some(secs) = processing_secs {
        state.metrics.processed(secs);
    }
    if let Ok(response) = &result {
        record_words(&state, &response.pages);
    }
    let answer = result.map_err(|failure| failure.error);
    log_run(
        &state,
        &parameters,
        file_type,
        outcome,
        received,
        answer.as_ref(),
    );
    answer.map(Json)
}

/// How far a request got: the kind of its file once known, how long it held its place in the
/// queue once admitted, and its answer.
struct Attempt {
    file_type: Option<FileKind>,
    processing_secs: Option<f64>,
    result: Result<OcrResponse, Failure>,
}

async fn attempt(state: &OcrState, parameters: &Parameters, request: Request) -> Attempt {
    let refused = |failure| Attempt {
        file_type: None,
        processing_secs: None,
        result: Err(failure),
    };
    let job = match Job::validate(parameters, &state.languages, &state.settings) {
        Ok(job) => job,
        Err(err) => return refused(Failure::invalid(err)),
    };
    let admission = match state.pool.admit() {
        Ok(admission) => admission,
        Err(err) => return refused(Failure::overloaded(&err)),
    };
    let _active = state.metrics.active();
    let started = StdInstant::now();
    let deadline = Instant::now() + state.settings.deadline;
    let (file_type, result) = match receive(request, deadline).await {
        Err(failure) => (None, Err(failure)),
        Ok((bytes, kind)) => {
            let read = recognition::recognise_file(
                &state.settings,
                &job,
                &admission,
                bytes,
                kind,
                deadline,
            )
            .await;
            (
                Some(kind),
                read.map(|recognised| answer(job, kind, recognised, started)),
            )
        }
    };
    Attempt {
        file_type,
        processing_secs: Some(started.elapsed().as_secs_f64()),
        result,
    }
}

/// The upload's bytes and what they are, by the request's deadline.
async fn receive(request: Request, deadline: Instant) -> Result<(Bytes, FileKind), Failure> {
    let (bytes, declared) = tokio::time::timeout_at(deadline, read_upload(request))
        .await
        .map_err(|_| Failure::timeout("receiving the upload"))?
        .map_err(Failure::invalid)?;
    let kind = file_type::detect(&bytes, declared.as_deref()).map_err(Failure::invalid)?;
    Ok((bytes, kind))
}

fn answer(job: Job, kind: FileKind, recognised: Recognised, started: StdInstant) -> OcrResponse {
    OcrResponse {
        file_type: kind,
        language: job.language,
        min_confidence: job.min_confidence,
        filtered: job.filter,
        page_seg_mode: job.page_seg_mode,
        pages: recognised.pages,
        queued_ms: recognised.queued_ms,
        total_ms: millis(started),
    }
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

/// Queues the request's MLflow run; builds nothing when logging is off.
fn log_run(
    state: &OcrState,
    parameters: &Parameters,
    file_type: Option<FileKind>,
    outcome: Outcome,
    received: StdInstant,
    result: Result<&OcrResponse, &ApiError>,
) {
    state.mlflow.log(|| {
        let settings = &state.settings;
        let requested = tracking::Requested {
            language: parameters
                .lang
                .as_deref()
                .unwrap_or(&settings.default_language),
            min_confidence: parameters.min_confidence.unwrap_or(settings.min_confidence),
            filter: parameters
                .filter
                .unwrap_or(parameters.min_confidence.is_some()),
            psm: parameters.psm.unwrap_or(DEFAULT_PAGE_SEG_MODE),
            binarize: parameters.binarize.unwrap_or(false),
        };
        tracking::record(
            &requested,
            file_type.map_or("unknown", FileKind::as_str),
            outcome,
            received.elapsed(),
            result,
        )
    });
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
