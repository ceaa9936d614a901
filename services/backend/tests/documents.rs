//! Documents end to end: uploads are answered at once and read in the background by the real OCR
//! service (libtesseract, in this process), followed through server-sent events, and land in SQLite
//! or PostgreSQL; an OCR outage keeps the upload for a retry, and a backend that dies while reading
//! leaves the document to another.

#![allow(clippy::unwrap_used)]

mod support;

use flashcards_ocr_corpus as corpus;
use reqwest::StatusCode;
use serde_json::Value;
use support::{Engine, MAX_UPLOAD_BYTES, TestServer, services::OcrService};

#[tokio::test]
async fn sqlite_uploads_are_read_deduplicated_and_private() {
    uploads_are_read_deduplicated_and_private(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_uploads_are_read_deduplicated_and_private() {
    uploads_are_read_deduplicated_and_private(Engine::Postgres).await;
}

#[tokio::test]
async fn sqlite_reading_survives_its_backend() {
    reading_survives_its_backend(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_reading_survives_its_backend() {
    reading_survives_its_backend(Engine::Postgres).await;
}

#[tokio::test]
async fn sqlite_an_ocr_outage_keeps_the_upload_for_a_retry() {
    an_ocr_outage_keeps_the_upload_for_a_retry(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_an_ocr_outage_keeps_the_upload_for_a_retry() {
    an_ocr_outage_keeps_the_upload_for_a_retry(Engine::Postgres).await;
}

async fn uploads_are_read_deduplicated_and_private(engine: Engine) {
    let ocr = OcrService::start().await;
    let server = TestServer::start_with_ocr(engine, &ocr.url()).await;
    let ada = server.user("ada@example.org").await;
    let bob = server.user("bob@example.org").await;

    let pdf = corpus::text_layer_pdf(2).unwrap();
    let (status, uploaded) = ada
        .upload("notes.pdf", "application/pdf", pdf.bytes.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    assert_eq!(uploaded["status"], "processing", "answered before OCR");
    assert_eq!(uploaded["file_name"], "notes.pdf");
    assert!(uploaded["pages"].as_array().unwrap().is_empty());
    let pdf_id = uploaded["id"].as_str().unwrap().to_owned();
    let events = ada.events(&format!("/api/documents/{pdf_id}/events")).await;
    let (last_event, last) = events.last().unwrap();
    assert_eq!(last_event, "document");
    assert_eq!(last["status"], "done", "{events:?}");
    assert_eq!(last["page_count"], 2);
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|(event, document)| event == "document" && document["status"] == "processing"),
        "{events:?}"
    );
    // A finished document's stream says so once and ends.
    let again = ada.events(&format!("/api/documents/{pdf_id}/events")).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1["status"], "done");
    let (_, document) = ada.get(&format!("/api/documents/{pdf_id}")).await;
    assert_eq!(document["page_count"], 2);
    let pages = document["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2);
    for (index, page) in pages.iter().enumerate() {
        assert_eq!(page["page"], index + 1);
        assert_eq!(page["source"], "text_layer");
        let first_line = pdf.pages[index].lines().next().unwrap();
        assert!(
            page["text"].as_str().unwrap().starts_with(first_line),
            "{page}"
        );
    }

    let photo = corpus::clean_png().unwrap();
    let (status, document) = ada
        .upload_and_read("photo.png", "image/png", photo.bytes.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let page = &document["pages"][0];
    assert_eq!(page["source"], "ocr");
    let first_word = &page["words"][0];
    assert!(
        first_word["confidence"].as_f64().unwrap() > 50.0,
        "{first_word}"
    );
    assert!(first_word["bbox"]["width"].as_u64().unwrap() > 0);
    let expected_start = photo.pages[0].split_whitespace().next().unwrap();
    assert!(
        page["text"].as_str().unwrap().starts_with(expected_start),
        "{page}"
    );

    // The same file again is the same document.
    let (status, again) = ada
        .upload("copy.pdf", "application/pdf", pdf.bytes.clone())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], pdf_id.as_str());
    let (_, list) = ada.get("/api/documents").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    let (status, detail) = ada.get(&format!("/api/documents/{pdf_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["pages"].as_array().unwrap().len(), 2);
    let file = ada.get_raw(&format!("/api/documents/{pdf_id}/file")).await;
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()["content-type"], "application/pdf");
    assert_eq!(file.headers()["x-content-type-options"], "nosniff");
    assert_eq!(file.bytes().await.unwrap().to_vec(), pdf.bytes);

    // Bob sees none of it, and his copy of the same file is his own document.
    for path in [
        format!("/api/documents/{pdf_id}"),
        format!("/api/documents/{pdf_id}/file"),
        format!("/api/documents/{pdf_id}/events"),
    ] {
        assert_eq!(bob.get_raw(&path).await.status(), StatusCode::NOT_FOUND);
    }
    let (status, _) = bob
        .post(&format!("/api/documents/{pdf_id}/ocr"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = bob.get("/api/documents").await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let (status, his) = bob
        .upload("notes.pdf", "application/pdf", pdf.bytes.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(his["id"], pdf_id.as_str());

    // Bad uploads: clear answers, and only a readable-looking file is stored.
    let (status, failed) = ada
        .upload_and_read("broken.png", "image/png", photo.bytes[..300].to_vec())
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "kept, though OCR cannot read it"
    );
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("corrupt"),
        "{failed}"
    );
    let (status, body) = ada
        .upload("notes.txt", "text/plain", b"hello".to_vec())
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, _) = ada.upload("empty.png", "image/png", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = ada
        .upload("huge.png", "image/png", vec![0; MAX_UPLOAD_BYTES + 1])
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, list) = ada.get("/api/documents").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
}

async fn an_ocr_outage_keeps_the_upload_for_a_retry(engine: Engine) {
    let ocr = OcrService::start().await;
    let server = TestServer::start_with_ocr(engine, &ocr.url()).await;
    let ada = server.user("ada@example.org").await;
    let down = ocr.stop().await;

    let photo = corpus::clean_png().unwrap();
    let (status, document) = ada
        .upload_and_read("photo.png", "image/png", photo.bytes.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{document}");
    assert_eq!(document["status"], "failed_retryable", "{document}");
    let error = document["error"].as_str().unwrap();
    assert!(
        error.contains("unavailable") && error.contains("/ocr"),
        "{error}"
    );
    assert!(document["pages"].as_array().unwrap().is_empty());
    let id = document["id"].as_str().unwrap().to_owned();
    let kept = ada.get_raw(&format!("/api/documents/{id}/file")).await;
    assert_eq!(kept.bytes().await.unwrap().to_vec(), photo.bytes);

    let _restarted = OcrService::start_on(down.listen()).await;
    let (status, retried) = ada
        .post(&format!("/api/documents/{id}/ocr"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    assert_eq!(retried["status"], "processing");
    assert!(retried["error"].is_null());
    ada.events(&format!("/api/documents/{id}/events")).await;
    let (_, read) = ada.get(&format!("/api/documents/{id}")).await;
    assert_eq!(read["status"], "done", "{read}");
    assert_eq!(read["page_count"], 1);
    assert!(!read["pages"][0]["words"].as_array().unwrap().is_empty());
}

/// An OCR service that accepts connections and never answers: the backend's runner waits on it
/// for as long as the test needs a document mid-read.
async fn stalled_ocr_service() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    url
}

async fn reading_survives_its_backend(engine: Engine) {
    let stalled = stalled_ocr_service().await;
    let first = TestServer::start_with_ocr(engine, &stalled).await;
    let ada = first.user("ada@example.org").await;
    let photo = corpus::clean_png().unwrap();
    let (status, document) = ada
        .upload("photo.png", "image/png", photo.bytes.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{document}");
    let id = document["id"].as_str().unwrap().to_owned();
    let (status, body) = ada
        .post(&format!("/api/documents/{id}/ocr"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "being read already: {body}");

    // The first backend dies mid-read; a second one on the same database, with a working OCR
    // service, reads the document once the dead runner's lease has run out.
    first.state.runners.abort_all();
    let ocr = OcrService::start().await;
    let second = TestServer::start_with(
        engine,
        &ocr.url(),
        "http://127.0.0.1:9",
        Some(first.database_url.clone()),
    )
    .await;
    let ada = second.login("ada@example.org").await;
    let (_, still) = ada.get(&format!("/api/documents/{id}")).await;
    assert_eq!(
        still["status"], "processing",
        "the lease holds until it expires"
    );
    second.advance_days(0.01);
    let events = ada.events(&format!("/api/documents/{id}/events")).await;
    assert_eq!(events.last().unwrap().1["status"], "done", "{events:?}");
    let (_, read) = ada.get(&format!("/api/documents/{id}")).await;
    assert_eq!(read["page_count"], 1);
    let expected_start = photo.pages[0].split_whitespace().next().unwrap();
    assert!(
        read["pages"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with(expected_start),
        "{read}"
    );
}
