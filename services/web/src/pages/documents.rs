//! From a page of notes to drafts: uploading (file picker, drag and drop, or the phone's camera),
//! the document with the recognised words' boxes over its image and the doubtful ones marked,
//! starting card generation into a deck, following the job, and the drafts: each shown with its
//! source passage highlighted in the page text, to accept (as is or edited) or discard, or accept
//! all at once.

use axum::{
    Form, Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use flashcards_backend::{
    auth::User,
    cards::model::{Card, CardKind},
    decks::Deck,
    documents::{Document, DocumentDetail, DocumentPage, DocumentStatus},
    generation::{Draft, DraftEdits, GenerationInput, jobs::Job, jobs::JobStatus},
};
use flashcards_contracts::ocr::Word;
use maud::{Markup, html};
use reqwest::Method;
use serde::Deserialize;

use super::{
    PageError, PathId, SignedIn,
    layout::{self, Visitor},
    sentence,
};
use crate::{WebState, backend::BackendError, math::has_math};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/documents", get(list).post(upload))
        .route("/documents/{id}", get(document))
        .route("/documents/{id}/generate", post(generate))
        .route("/documents/{id}/read-again", post(read_again))
        .route("/jobs/{id}", get(job))
        .route("/jobs/{id}/retry", post(retry_job))
        .route("/documents/{id}/drafts", get(drafts))
        .route("/documents/{id}/drafts/accept-all", post(accept_all))
        .route("/drafts/{id}/accept", post(accept))
        .route("/drafts/{id}/discard", post(discard))
}

/// What the upload input offers: images (a phone then offers its camera too) and PDFs; the
/// backend refuses image types it cannot read, and the page says which it takes.
const ACCEPT: &str = "image/*,application/pdf";
/// What `watch.js` compares to see that work under way moved on: the state as rendered.
fn watch_state(status: &str, pages_done: Option<i64>, drafts: Option<i64>) -> String {
    format!(
        "{status}:{}:{}",
        pages_done.map(|n| n.to_string()).unwrap_or_default(),
        drafts.map(|n| n.to_string()).unwrap_or_default()
    )
}

fn signed_in(user: &User) -> Visitor<'_> {
    Visitor { email: &user.email }
}

fn status_text(status: DocumentStatus) -> &'static str {
    match status {
        DocumentStatus::Processing => "Reading…",
        DocumentStatus::Done => "Read",
        DocumentStatus::FailedRetryable => "Could not be read yet",
        DocumentStatus::Failed => "Could not be read",
    }
}

pub fn documents_page(user: &User, documents: &[Document], error: Option<&str>) -> Markup {
    let main = html! {
        h1 { "Your notes" }
        h2 { "Upload a page" }
        p { "A photo, a scan or a PDF of your notes. Its text is read, then you can make cards from it." }
        (layout::form_error("upload-error", error))
        form class="stack upload" method="post" action="/documents" enctype="multipart/form-data" {
            label for="file" { "Photo, scan or PDF" }
            input id="file" name="file" type="file" required accept=(ACCEPT)
                aria-describedby={ "file-hint" @if error.is_some() { " upload-error" } };
            p class="hint" id="file-hint" { "Choose a file, or drop one on the picker." }
            button type="submit" { "Upload" }
        }
        // Its own form: a phone opens the camera for this input, and a photo taken there is
        // uploaded without a second file field in the other form.
        form class="stack upload" method="post" action="/documents" enctype="multipart/form-data" {
            label for="camera" { "Or take a photo of the page" }
            input id="camera" name="file" type="file" required accept="image/*" capture="environment";
            button type="submit" { "Upload photo" }
        }
        h2 { "Uploaded" }
        @if documents.is_empty() {
            p { "Nothing uploaded yet." }
        } @else {
            ul class="decks" {
                @for document in documents {
                    li {
                        a href={ "/documents/" (document.id) } { (document.file_name) }
                        span class="due-count" { (status_text(document.status)) }
                    }
                }
            }
        }
    };
    layout::page("Notes", Some(&signed_in(user)), &main)
}

async fn list(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
) -> Result<Markup, PageError> {
    let documents = state
        .backend
        .all_pages::<Document>("/api/documents", &session)
        .await?;
    Ok(documents_page(&user, &documents, None))
}

/// Streams the form as it came to the backend, which checks the file's type and size.
async fn upload(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let sent = state
        .backend
        .post_raw::<DocumentDetail>(
            "/api/documents",
            &session,
            &content_type,
            reqwest::Body::wrap_stream(body.into_data_stream()),
        )
        .await;
    match sent {
        Ok(answer) => {
            Ok(Redirect::to(&format!("/documents/{}", answer.body.document.id)).into_response())
        }
        Err(BackendError::Refused { status, detail, .. }) if status.is_client_error() => {
            let documents = state
                .backend
                .all_pages::<Document>("/api/documents", &session)
                .await?;
            let message = match status {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    format!("That file is too large. {}", sentence(&detail))
                }
                StatusCode::UNSUPPORTED_MEDIA_TYPE => format!(
                    "That kind of file cannot be read: upload a photo (PNG, JPEG, WebP, TIFF, BMP) \
                     or a PDF. {}",
                    sentence(&detail)
                ),
                _ => sentence(&detail),
            };
            Ok((status, documents_page(&user, &documents, Some(&message))).into_response())
        }
        Err(err) => Err(err.into()),
    }
}

/// One page: the image with a box over each word (doubtful ones marked), and the text read.
fn page_view(document: &Document, page: &DocumentPage, image: bool) -> Markup {
    let (kept, doubtful) = (&page.words, &page.filtered_words);
    html! {
        section class="ocr-page" aria-label={ "Page " (page.page) } {
            h2 { "Page " (page.page) }
            @if image && page.width > 0 && page.height > 0 {
                figure class="page-image" {
                    svg viewBox={ "0 0 " (page.width) " " (page.height) } role="img"
                        aria-label={ "The page as uploaded, with " (kept.len()) " words read and "
                                     (doubtful.len()) " doubtful ones marked" } {
                        image href={ "/api/documents/" (document.id) "/file" }
                            width=(page.width) height=(page.height) {}
                        @for word in kept {
                            rect class="word" x=(word.bbox.x) y=(word.bbox.y)
                                width=(word.bbox.width) height=(word.bbox.height) {
                                title { (word.text) " (" (format!("{:.0}", word.confidence)) "%)" }
                            }
                        }
                        @for word in doubtful {
                            rect class="word doubtful" x=(word.bbox.x) y=(word.bbox.y)
                                width=(word.bbox.width) height=(word.bbox.height) {
                                title { (word.text) " (" (format!("{:.0}", word.confidence)) "%, left out)" }
                            }
                        }
                    }
                    figcaption class="hint" {
                        "Boxes: words read. "
                        span class="doubtful-key" { "Red boxes" }
                        ": words read with low confidence, left out of the text."
                    }
                }
            }
            h3 { "Text" }
            pre class="page-text" { (page.text) }
            @if !doubtful.is_empty() {
                p class="hint" {
                    "Left out as doubtful: "
                    @for (n, word) in doubtful.iter().enumerate() {
                        @if n > 0 { ", " }
                        mark { (word.text) }
                    }
                }
            }
        }
    }
}

pub fn document_page(user: &User, detail: &DocumentDetail, decks: &[Deck]) -> Markup {
    let document = &detail.document;
    let image = document.content_type.starts_with("image/");
    let main = html! {
        p { a href="/documents" { "← All notes" } }
        h1 { (document.file_name) }
        p class="status" role="status" { (status_text(document.status)) }
        @match document.status {
            DocumentStatus::Processing => {
                p data-watch={ "/api/documents/" (document.id) }
                    data-watch-state=(watch_state("processing", None, None)) {
                    "The text is being read; this page updates by itself."
                }
                script src=(crate::assets::href("watch.js")) defer {}
            }
            DocumentStatus::FailedRetryable => {
                p role="alert" class="error" {
                    "The text could not be read yet: the reading service did not answer. \
                     Your file is kept."
                }
                form method="post" action={ "/documents/" (document.id) "/read-again" } {
                    button type="submit" { "Try again" }
                }
            }
            DocumentStatus::Failed => {
                p role="alert" class="error" {
                    (sentence(document.error.as_deref().unwrap_or("the file could not be read")))
                }
            }
            DocumentStatus::Done => {
                section class="generate" aria-label="Make cards" {
                    h2 { "Make cards from it" }
                    @if decks.is_empty() {
                        p { "Cards go into a deck: " a href="/decks" { "make a deck first" } "." }
                    } @else {
                        form class="stack" method="post" action={ "/documents/" (document.id) "/generate" } {
                            label for="deck" { "Into deck" }
                            select id="deck" name="deck_id" {
                                @for deck in decks { option value=(deck.id) { (deck.name) } }
                            }
                            label for="max-cards" { "At most this many cards" }
                            input id="max-cards" name="max_cards" type="number" min="1" max="100" value="20";
                            button type="submit" { "Make cards" }
                        }
                        p { a href={ "/documents/" (document.id) "/drafts" } { "See the drafts made so far" } }
                    }
                }
            }
        }
        @for page in &detail.pages {
            (page_view(document, page, image))
        }
    };
    layout::page(&document.file_name, Some(&signed_in(user)), &main)
}

async fn load_document(
    state: &WebState,
    session: &str,
    id: &str,
) -> Result<DocumentDetail, PageError> {
    super::fetch_by_id(state, session, "/api/documents", id).await
}

async fn document(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let detail = load_document(&state, &session, &id).await?;
    let decks = state
        .backend
        .all_pages::<Deck>("/api/decks", &session)
        .await?;
    Ok(document_page(&user, &detail, &decks))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GenerateForm {
    deck_id: String,
    max_cards: String,
}

async fn generate(
    State(state): State<WebState>,
    SignedIn { session, .. }: SignedIn,
    PathId(id): PathId,
    Form(form): Form<GenerateForm>,
) -> Result<Response, PageError> {
    let input = GenerationInput {
        deck_id: form.deck_id.clone(),
        max_cards: form.max_cards.trim().parse().ok(),
        kinds: None,
    };
    match state
        .backend
        .call::<Job>(
            Method::POST,
            &format!("/api/documents/{id}/generate"),
            Some(&session),
            Some(&input),
        )
        .await
    {
        Ok(job) => Ok(Redirect::to(&format!("/jobs/{}", job.body.id)).into_response()),
        Err(BackendError::Refused { status, detail, .. }) if status.is_client_error() => Ok((
            status,
            layout::message_page("Cards could not be made", &sentence(&detail)),
        )
            .into_response()),
        Err(err) => Err(err.into()),
    }
}

/// Reads the document again, then shows it being read.
async fn read_again(
    State(state): State<WebState>,
    SignedIn { session, .. }: SignedIn,
    PathId(id): PathId,
) -> Result<Response, PageError> {
    let api = format!("/api/documents/{id}/ocr");
    post_and_show(&state, &session, &api, &format!("/documents/{id}")).await
}

/// Goes on with a job that stopped, then shows it running.
async fn retry_job(
    State(state): State<WebState>,
    SignedIn { session, .. }: SignedIn,
    PathId(id): PathId,
) -> Result<Response, PageError> {
    let api = format!("/api/jobs/{id}/retry");
    post_and_show(&state, &session, &api, &format!("/jobs/{id}")).await
}

/// POSTs `api` and sends the browser to `page`, which shows what it did or the work it started; a
/// conflict means that work is under way already, which the page shows as well.
async fn post_and_show(
    state: &WebState,
    session: &str,
    api: &str,
    page: &str,
) -> Result<Response, PageError> {
    match state.backend.act(Method::POST, api, session).await {
        Ok(_) => Ok(Redirect::to(page).into_response()),
        Err(BackendError::Refused { status, .. }) if status == StatusCode::CONFLICT => {
            Ok(Redirect::to(page).into_response())
        }
        Err(err) => Err(err.into()),
    }
}

/// The status as the API spells it.
fn job_status_value(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Queued => "queued",
        JobStatus::Running => "running",
        JobStatus::Done => "done",
        JobStatus::FailedRetryable => "failed_retryable",
        JobStatus::Failed => "failed",
    }
}

fn job_status_text(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Queued => "Waiting for its turn…",
        JobStatus::Running => "Making cards…",
        JobStatus::Done => "Done",
        JobStatus::FailedRetryable => "Stopped: the card maker was busy or down",
        JobStatus::Failed => "Failed",
    }
}

pub fn job_page(user: &User, job: &Job) -> Markup {
    let waiting = matches!(job.status, JobStatus::Queued | JobStatus::Running);
    let main = html! {
        p { a href={ "/documents/" (job.document_id) } { "← The notes" } }
        h1 { "Making cards" }
        p class="status" role="status" { (job_status_text(job.status)) }
        @if job.pages_total > 0 {
            label for="progress" { "Pages done" }
            progress id="progress" max=(job.pages_total) value=(job.pages_done) {
                (job.pages_done) " of " (job.pages_total)
            }
            p { (job.pages_done) " of " (job.pages_total) " pages, " (job.drafts_created) " drafts so far." }
        }
        @if job.status == JobStatus::FailedRetryable {
            p class="error" role="alert" {
                "The card maker did not answer, so making cards stopped after "
                (job.pages_done) " of " (job.pages_total) " pages. The drafts made so far are kept."
            }
            form method="post" action={ "/jobs/" (job.id) "/retry" } {
                button type="submit" { "Go on from there" }
            }
        } @else if let Some(error) = &job.error {
            p class="error" role="alert" { (sentence(error)) }
        }
        @if waiting {
            p class="hint" data-watch={ "/api/jobs/" (job.id) }
                data-watch-state=(watch_state(job_status_value(job.status), Some(job.pages_done), Some(job.drafts_created))) {
                "This page updates by itself."
            }
            script src=(crate::assets::href("watch.js")) defer {}
        }
        @if job.drafts_created > 0 || job.status == JobStatus::Done {
            p { a class="button" href={ "/documents/" (job.document_id) "/drafts" } { "Review the drafts" } }
        }
    };
    layout::page("Making cards", Some(&signed_in(user)), &main)
}

async fn job(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    PathId(id): PathId,
) -> Result<Markup, PageError> {
    let job = state
        .backend
        .get::<Job>(&format!("/api/jobs/{id}"), &session)
        .await?;
    Ok(job_page(&user, &job))
}

/// `text` with the characters `start..end` in a `<mark>` (offsets in characters, clamped).
pub fn highlighted(text: &str, start: Option<i64>, end: Option<i64>) -> Markup {
    let count = text.chars().count();
    let clamp =
        |offset: Option<i64>| offset.map(|o| usize::try_from(o.max(0)).unwrap_or(0).min(count));
    match (clamp(start), clamp(end)) {
        (Some(start), Some(end)) if start < end => {
            let before: String = text.chars().take(start).collect();
            let passage: String = text.chars().skip(start).take(end - start).collect();
            let after: String = text.chars().skip(end).collect();
            html! { (before) mark { (passage) } (after) }
        }
        _ => html! { (text) },
    }
}

/// The words of `words` (in reading order) that fall in characters `start..end` of `text`: each
/// word is looked up in the text from where the previous one ended.
pub fn words_in_span<'a>(text: &str, words: &'a [Word], start: usize, end: usize) -> Vec<&'a Word> {
    let mut found = Vec::new();
    let mut cursor = 0;
    for word in words {
        let Some(at) = text
            .get(cursor..)
            .and_then(|rest| rest.find(word.text.as_str()))
        else {
            continue;
        };
        let byte = cursor + at;
        cursor = byte + word.text.len();
        let first = text[..byte].chars().count();
        let last = first + word.text.chars().count();
        if first < end && last > start {
            found.push(word);
        }
    }
    found
}

/// The part of a `width` × `height` page to show around the words of a passage, as an SVG
/// `viewBox` (x, y, width, height): their boxes with a margin of two word heights, inside the page,
/// so the passage is shown as large as the column allows with a little context around it.
pub fn passage_view(marked: &[&Word], width: f64, height: f64) -> (f64, f64, f64, f64) {
    let Some(first) = marked.first() else {
        return (0.0, 0.0, width, height);
    };
    let edges = |word: &Word| {
        let b = word.bbox;
        let (x, y) = (f64::from(b.x), f64::from(b.y));
        (x, y, x + f64::from(b.width), y + f64::from(b.height))
    };
    let (mut left, mut top, mut right, mut bottom) = edges(first);
    for word in marked {
        let (l, t, r, b) = edges(word);
        (left, top, right, bottom) = (left.min(l), top.min(t), right.max(r), bottom.max(b));
    }
    let mut heights: Vec<f64> = marked
        .iter()
        .map(|word| f64::from(word.bbox.height))
        .collect();
    heights.sort_by(f64::total_cmp);
    let margin = 2.0 * heights[heights.len() / 2];
    let (left, top) = ((left - margin).max(0.0), (top - margin).max(0.0));
    let (right, bottom) = ((right + margin).min(width), (bottom + margin).min(height));
    (left, top, (right - left).max(1.0), (bottom - top).max(1.0))
}

/// The part of the page image around the passage a draft comes from, its words boxed.
fn source_on_page(document: &Document, page: &DocumentPage, draft: &Draft) -> Markup {
    let span = |offset: Option<i64>| offset.and_then(|o| usize::try_from(o).ok());
    let marked = match (span(draft.source.start), span(draft.source.end)) {
        (Some(start), Some(end)) => words_in_span(&page.text, &page.words, start, end),
        _ => Vec::new(),
    };
    html! {
        @if !marked.is_empty() && page.width > 0 && page.height > 0 {
            @let (x, y, w, h) = passage_view(&marked, page.width as f64, page.height as f64);
            svg class="source-image" viewBox={ (x) " " (y) " " (w) " " (h) } role="img"
                aria-label="The passage marked on the page" {
                image href={ "/api/documents/" (document.id) "/file" }
                    width=(page.width) height=(page.height) {}
                @for word in marked {
                    rect class="source-word" x=(word.bbox.x) y=(word.bbox.y)
                        width=(word.bbox.width) height=(word.bbox.height) {}
                }
            }
        }
    }
}

/// Whether the drafts page shows `draft` typeset: its front, or a basic card's back, has maths.
fn draft_has_math(draft: &Draft) -> bool {
    has_math(&draft.front) || draft.kind == CardKind::Basic && has_math(&draft.back)
}

pub fn drafts_page(user: &User, detail: &DocumentDetail, drafts: &[Draft]) -> Markup {
    let document = &detail.document;
    let image = document.content_type.starts_with("image/");
    let main = html! {
        p { a href={ "/documents/" (document.id) } { "← " (document.file_name) } }
        h1 { "Drafts" }
        @if drafts.is_empty() {
            p { "No drafts waiting: every one was accepted or discarded, or none was made yet." }
        } @else {
            form method="post" action={ "/documents/" (document.id) "/drafts/accept-all" } {
                button type="submit" { "Accept all " (drafts.len()) }
            }
            ol class="drafts" {
                @for draft in drafts {
                    li class="draft" {
                        @let page = draft.source.page.and_then(|n| detail.pages.iter().find(|p| p.page == n));
                        form class="stack" method="post" action={ "/drafts/" (draft.id) "/accept" } {
                            input type="hidden" name="document" value=(document.id);
                            label for={ "front-" (draft.id) } {
                                @if draft.kind == CardKind::Cloze { "Cloze text" } @else { "Front" }
                            }
                            textarea id={ "front-" (draft.id) } name="front" rows="2" { (draft.front) }
                            @if draft.kind == CardKind::Basic {
                                label for={ "back-" (draft.id) } { "Back" }
                                textarea id={ "back-" (draft.id) } name="back" rows="2" { (draft.back) }
                            }
                            // Text boxes show maths as typed; this shows how studying will.
                            @if draft_has_math(draft) {
                                div class="typeset" {
                                    p class="hint" { "As generated, with the maths typeset:" }
                                    p data-math[has_math(&draft.front)] { (draft.front) }
                                    @if draft.kind == CardKind::Basic {
                                        p data-math[has_math(&draft.back)] { (draft.back) }
                                    }
                                }
                            }
                            @if let Some(page) = page {
                                details class="source" open {
                                    summary { "Where it comes from (page " (page.page) ")" }
                                    @if image {
                                        (source_on_page(document, page, draft))
                                    }
                                    p class="page-text" {
                                        (highlighted(&page.text, draft.source.start, draft.source.end))
                                    }
                                }
                            }
                            div class="draft-actions" {
                                button type="submit" { "Accept" }
                                button type="submit" class="secondary" formaction={ "/drafts/" (draft.id) "/discard" } {
                                    "Discard"
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page_with_math(
        "Drafts",
        Some(&signed_in(user)),
        &main,
        drafts.iter().any(draft_has_math),
    )
}

async fn drafts(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let detail = load_document(&state, &session, &id).await?;
    let drafts = state
        .backend
        .all_pages::<Draft>(&format!("/api/documents/{id}/drafts"), &session)
        .await?;
    Ok(drafts_page(&user, &detail, &drafts))
}

/// A draft's form: its edits, and its document, to come back to the list.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DraftForm {
    document: String,
    front: Option<String>,
    back: Option<String>,
}

/// The drafts list of the form's document, or the notes list if the form names none.
fn back_to_drafts(document: &str) -> Response {
    if super::is_id(document) {
        Redirect::to(&format!("/documents/{document}/drafts")).into_response()
    } else {
        Redirect::to("/documents").into_response()
    }
}

async fn accept(
    State(state): State<WebState>,
    SignedIn { session, .. }: SignedIn,
    PathId(id): PathId,
    Form(form): Form<DraftForm>,
) -> Result<Response, PageError> {
    let edits = DraftEdits {
        front: form.front.filter(|front| !front.trim().is_empty()),
        back: form.back,
        tags: Vec::new(),
    };
    state
        .backend
        .send::<Card>(
            Method::POST,
            &format!("/api/drafts/{id}/accept"),
            &session,
            &edits,
        )
        .await?;
    Ok(back_to_drafts(&form.document))
}

async fn discard(
    State(state): State<WebState>,
    SignedIn { session, .. }: SignedIn,
    PathId(id): PathId,
    Form(form): Form<DraftForm>,
) -> Result<Response, PageError> {
    state
        .backend
        .act(Method::DELETE, &format!("/api/drafts/{id}"), &session)
        .await?;
    Ok(back_to_drafts(&form.document))
}

async fn accept_all(
    State(state): State<WebState>,
    SignedIn { session, .. }: SignedIn,
    PathId(id): PathId,
) -> Result<Response, PageError> {
    let api = format!("/api/documents/{id}/drafts/accept");
    post_and_show(&state, &session, &api, &format!("/documents/{id}/drafts")).await
}

#[cfg(test)]
mod tests {
    use flashcards_contracts::ocr::BoundingBox;

    use super::*;

    /// A word 50 × 10 px at `x`, `y`.
    fn word(text: &str, x: u32, y: u32) -> Word {
        Word {
            text: text.to_owned(),
            confidence: 90.0,
            bbox: BoundingBox {
                x,
                y,
                width: 50,
                height: 10,
            },
            block: 1,
            line: 1,
            low_confidence: false,
        }
    }

    #[test]
    fn the_source_passage_is_marked_by_character_offsets() {
        let marked = highlighted("Lima is the capital of Peru.", Some(0), Some(4)).into_string();
        assert_eq!(marked, "<mark>Lima</mark> is the capital of Peru.");
        let accented = highlighted("Évora <é>", Some(6), Some(9)).into_string();
        assert_eq!(accented, "Évora <mark>&lt;é&gt;</mark>");
        assert_eq!(
            highlighted("abc", Some(2), Some(99)).into_string(),
            "ab<mark>c</mark>"
        );
        assert_eq!(highlighted("abc", None, Some(2)).into_string(), "abc");
    }

    #[test]
    fn the_page_is_cut_to_the_passage_with_a_margin_inside_the_page() {
        let (a, b) = (word("a", 100, 200), word("b", 300, 220));
        assert_eq!(
            passage_view(&[&a, &b], 1000.0, 1000.0),
            (80.0, 180.0, 290.0, 70.0)
        );
        let corner = word("c", 5, 5);
        assert_eq!(
            passage_view(&[&corner], 60.0, 1000.0),
            (0.0, 0.0, 60.0, 35.0),
            "kept inside the page"
        );
        assert_eq!(passage_view(&[], 640.0, 480.0), (0.0, 0.0, 640.0, 480.0));
    }

    #[test]
    fn a_passage_is_found_word_by_word_in_the_page_text() {
        let words = [
            word("Évora", 0, 0),
            word("is", 0, 0),
            word("in", 0, 0),
            word("Portugal.", 0, 0),
            word("It", 0, 0),
            word("is", 0, 0),
        ];
        let text = "Évora is in Portugal.\nIt is";
        let texts = |start, end| -> Vec<String> {
            words_in_span(text, &words, start, end)
                .into_iter()
                .map(|w| w.text.clone())
                .collect()
        };
        assert_eq!(texts(0, 5), ["Évora"], "offsets are characters, not bytes");
        assert_eq!(texts(9, 21), ["in", "Portugal."]);
        assert_eq!(
            texts(22, 27),
            ["It", "is"],
            "the second \"is\" is the later one"
        );
        assert!(texts(50, 60).is_empty());
    }

    #[test]
    fn drafts_with_maths_in_what_the_card_shows_are_typeset() {
        let draft = |kind: CardKind, front: &str, back: &str| Draft {
            id: "d".to_owned(),
            job_id: "j".to_owned(),
            document_id: "doc".to_owned(),
            deck_id: "deck".to_owned(),
            kind,
            front: front.to_owned(),
            back: back.to_owned(),
            source: flashcards_backend::cards::model::SourceRef {
                document_id: "doc".to_owned(),
                page: None,
                start: None,
                end: None,
                bbox: None,
            },
            created_at: String::new(),
        };
        assert!(draft_has_math(&draft(CardKind::Basic, "Slope?", r"\(2x\)")));
        assert!(draft_has_math(&draft(
            CardKind::Cloze,
            r"{{c1::\(2x\)}}",
            ""
        )));
        assert!(
            !draft_has_math(&draft(CardKind::Cloze, "{{c1::Lima}}", r"\(x\)")),
            "a cloze draft's back is not shown"
        );
        assert!(!draft_has_math(&draft(
            CardKind::Basic,
            "Price?",
            "$5 or $10"
        )));
    }
}
