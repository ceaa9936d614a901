//! Card generation end to end: a document read by the real OCR service becomes draft cards through
//! the real LLM service (llama.cpp with SmolLM2); drafts are accepted (edited) into a deck. A backend
//! that dies mid-job leaves a job another backend resumes; an LLM outage leaves it retryable.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use flashcards_ocr_corpus as corpus;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{
    Engine, TestServer, User,
    services::{HeldPort, OcrService, start_llm, start_llm_on},
};

/// Long enough for SmolLM2 on two cores to get through a few pages.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);

async fn wait_for_job(user: &User, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (status, job) = user.get(&format!("/api/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if done(&job) {
            return job;
        }
        assert!(started.elapsed() < JOB_TIMEOUT, "job stuck: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn finished(job: &Value) -> bool {
    job["status"] != "queued" && job["status"] != "running"
}

async fn upload_pdf(user: &User, pages: usize) -> String {
    let pdf = corpus::text_layer_pdf(pages).unwrap();
    let (status, document) = user
        .upload_and_read("notes.pdf", "application/pdf", pdf.bytes.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{document}");
    assert_eq!(document["status"], "done");
    document["id"].as_str().unwrap().to_owned()
}

async fn deck(user: &User) -> String {
    let (status, deck) = user.post("/api/decks", json!({"name": "Biology"})).await;
    assert_eq!(status, StatusCode::CREATED);
    deck["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sqlite_documents_become_drafts_then_cards() {
    documents_become_drafts_then_cards(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_documents_become_drafts_then_cards() {
    documents_become_drafts_then_cards(Engine::Postgres).await;
}

#[tokio::test]
async fn sqlite_a_job_survives_its_backend() {
    a_job_survives_its_backend(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_job_survives_its_backend() {
    a_job_survives_its_backend(Engine::Postgres).await;
}

/// The LLM service's pod replaced mid-job: the page is asked again until the service answers, and
/// the job finishes by itself with no page stored twice.
#[tokio::test]
async fn a_job_waits_for_the_llm_service_to_come_back() {
    let ocr = OcrService::start().await;
    // A port nothing listens on yet; the LLM service comes up there once the job is waiting.
    let down = HeldPort::new();
    let server = TestServer::start_with(Engine::Sqlite, &ocr.url(), &down.url(), None).await;
    let dana = server.user("dana@example.org").await;
    let document = upload_pdf(&dana, 2).await;
    let deck_id = deck(&dana).await;
    let (status, job) = dana
        .post(
            &format!("/api/documents/{document}/generate"),
            json!({"deck_id": deck_id, "max_cards": 4, "kinds": ["basic"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let job_id = job["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, waiting) = dana.get(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(waiting["status"], "running", "still waiting: {waiting}");

    start_llm_on(down.listen()).await;
    let job = wait_for_job(&dana, &job_id, finished).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["pages_done"], 2);
    let (_, drafts) = dana.get(&format!("/api/documents/{document}/drafts")).await;
    assert_eq!(
        job["drafts_created"],
        drafts["items"].as_array().unwrap().len(),
        "no page stored twice"
    );
}

async fn documents_become_drafts_then_cards(engine: Engine) {
    let ocr = OcrService::start().await;
    let llm = start_llm().await;
    let server = TestServer::start_with(engine, &ocr.url(), &llm, None).await;
    let ada = server.user("ada@example.org").await;
    let bob = server.user("bob@example.org").await;
    let document = upload_pdf(&ada, 2).await;
    let deck_id = deck(&ada).await;

    // Bad requests first: they start nothing.
    let (status, _) = ada
        .post(
            &format!("/api/documents/{document}/generate"),
            json!({"deck_id": deck_id, "max_cards": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let bobs_deck = deck(&bob).await;
    let (status, _) = ada
        .post(
            &format!("/api/documents/{document}/generate"),
            json!({"deck_id": bobs_deck}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "someone else's deck");
    let (status, _) = bob
        .post(
            &format!("/api/documents/{document}/generate"),
            json!({"deck_id": bobs_deck}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "someone else's document");

    let (status, job) = ada
        .post(
            &format!("/api/documents/{document}/generate"),
            json!({"deck_id": deck_id, "max_cards": 6}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["pages_total"], 2);
    let (status, _) = bob.get(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let refused = bob.get_raw(&format!("/api/jobs/{job_id}/events")).await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);

    // The job's events show each page as it is done, and end when the job does.
    let events = ada.events(&format!("/api/jobs/{job_id}/events")).await;
    assert!(events.iter().all(|(event, _)| event == "job"), "{events:?}");
    let pages_done: Vec<i64> = events
        .iter()
        .map(|(_, job)| job["pages_done"].as_i64().unwrap())
        .collect();
    assert!(pages_done.is_sorted(), "{pages_done:?}");
    let job = events.last().unwrap().1.clone();
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["pages_done"], 2);
    let (_, drafts) = ada.get(&format!("/api/documents/{document}/drafts")).await;
    let drafts = drafts["items"].as_array().unwrap().clone();
    println!(
        "{} drafts: {}",
        drafts.len(),
        serde_json::to_string_pretty(&drafts).unwrap()
    );
    assert_eq!(job["drafts_created"], drafts.len());
    assert!(
        !drafts.is_empty(),
        "SmolLM2 produced no grounded card for the corpus pages"
    );
    let (_, detail) = ada.get(&format!("/api/documents/{document}")).await;
    let page_texts: Vec<Vec<char>> = detail["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|page| page["text"].as_str().unwrap().chars().collect())
        .collect();
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|word| word.chars().count() >= 3)
            .map(str::to_lowercase)
            .collect()
    };
    for draft in &drafts {
        let source = &draft["source"];
        assert_eq!(source["document_id"], document.as_str());
        let page = usize::try_from(source["page"].as_i64().unwrap()).unwrap();
        assert!((1..=2).contains(&page), "{draft}");
        // The span lies inside the stored page text and holds the answer it supports.
        let text = &page_texts[page - 1];
        let start = usize::try_from(source["start"].as_i64().unwrap()).unwrap();
        let end = usize::try_from(source["end"].as_i64().unwrap()).unwrap();
        assert!(start < end && end <= text.len(), "{draft}");
        let span: String = text[start..end].iter().collect();
        if draft["kind"] == "basic" {
            let answer = words(draft["back"].as_str().unwrap());
            let span_words = words(&span);
            let supported = answer.iter().filter(|w| span_words.contains(w)).count();
            assert!(
                supported * 2 >= answer.len(),
                "{draft} is not supported by {span:?}"
            );
        }
    }
    let (status, _) = bob.get(&format!("/api/documents/{document}/drafts")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Accept the first draft with an edit: it becomes a card in the deck, with its source.
    let first = &drafts[0];
    let first_id = first["id"].as_str().unwrap();
    let edit = if first["kind"] == "basic" {
        json!({"back": "an edited answer", "tags": ["generated"]})
    } else {
        json!({"tags": ["generated"]})
    };
    let (status, refused) = ada
        .post(
            &format!("/api/drafts/{first_id}/accept"),
            json!({"front": null}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().starts_with("front:"),
        "{refused}"
    );
    let (status, _) = bob
        .post(&format!("/api/drafts/{first_id}/accept"), edit.clone())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, card) = ada
        .post(&format!("/api/drafts/{first_id}/accept"), edit)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{card}");
    assert_eq!(card["deck_id"], deck_id.as_str());
    assert_eq!(card["tags"], json!(["generated"]));
    assert_eq!(card["source"], first["source"]);
    if first["kind"] == "basic" {
        assert_eq!(card["back"], "an edited answer");
    }
    let (status, _) = ada
        .post(&format!("/api/drafts/{first_id}/accept"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "accepted once only");
    let (_, cards) = ada.get(&format!("/api/decks/{deck_id}/cards")).await;
    assert_eq!(cards["items"].as_array().unwrap().len(), 1);

    if let Some(second) = drafts.get(1) {
        let second_id = second["id"].as_str().unwrap();
        assert_eq!(
            ada.delete(&format!("/api/drafts/{second_id}")).await.0,
            StatusCode::NO_CONTENT
        );
    }
    let (_, left) = ada.get(&format!("/api/documents/{document}/drafts")).await;
    let left = left["items"].as_array().unwrap().len();
    assert_eq!(left, drafts.len().saturating_sub(2));

    // The rest are accepted in one call, as they are; someone else's document is not found.
    let accept_all = format!("/api/documents/{document}/drafts/accept");
    let (status, _) = bob.post(&accept_all, Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, outcome) = ada.post(&accept_all, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["accepted"], left);
    let (_, none) = ada.get(&format!("/api/documents/{document}/drafts")).await;
    assert_eq!(none["items"], json!([]));
    let (_, cards) = ada.get(&format!("/api/decks/{deck_id}/cards")).await;
    let cards = cards["items"].as_array().unwrap();
    assert_eq!(cards.len(), 1 + left);
    assert!(
        cards
            .iter()
            .all(|card| card["source"]["document_id"] == document.as_str()),
        "every card keeps its source: {cards:?}"
    );
    let (_, again) = ada.post(&accept_all, Value::Null).await;
    assert_eq!(again["accepted"], 0, "nothing left to accept");
}

async fn a_job_survives_its_backend(engine: Engine) {
    let ocr = OcrService::start().await;
    let llm = start_llm().await;

    // With the LLM service down the job stops, retryable, and keeps the upload.
    let offline = TestServer::start_with(engine, &ocr.url(), "http://127.0.0.1:9", None).await;
    let carol = offline.user("carol@example.org").await;
    let document = upload_pdf(&carol, 1).await;
    let deck_id = deck(&carol).await;
    let (_, job) = carol
        .post(
            &format!("/api/documents/{document}/generate"),
            json!({"deck_id": deck_id}),
        )
        .await;
    let job = wait_for_job(&carol, job["id"].as_str().unwrap(), finished).await;
    assert_eq!(job["status"], "failed_retryable", "{job}");
    assert!(job["error"].as_str().unwrap().contains("retry"), "{job}");

    let first = TestServer::start_with(engine, &ocr.url(), &llm, None).await;
    let ada = first.user("ada@example.org").await;
    let document = upload_pdf(&ada, 3).await;
    let deck_id = deck(&ada).await;
    let (status, job) = ada
        .post(
            &format!("/api/documents/{document}/generate"),
            json!({"deck_id": deck_id, "max_cards": 6, "kinds": ["basic"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let job_id = job["id"].as_str().unwrap().to_owned();
    let job = wait_for_job(&ada, &job_id, |job| {
        job["pages_done"].as_i64().unwrap() >= 1 || finished(job)
    })
    .await;
    assert_eq!(
        job["status"], "running",
        "the test needs the job mid-way: {job}"
    );

    // The first backend dies; a second one on the same database takes the job over once the
    // dead runner's lease has run out.
    first.state.runners.abort_all();
    let second =
        TestServer::start_with(engine, &ocr.url(), &llm, Some(first.database_url.clone())).await;
    second.advance_days(0.01);
    let ada_again = second.login("ada@example.org").await;
    let job = wait_for_job(&ada_again, &job_id, finished).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["pages_done"], 3);
    let (_, drafts) = ada_again
        .get(&format!("/api/documents/{document}/drafts"))
        .await;
    let drafts = drafts["items"].as_array().unwrap();
    assert_eq!(
        job["drafts_created"],
        drafts.len(),
        "no page stored twice or lost"
    );
    assert!(drafts.len() <= 6);
}
