//! Every kind of bad upload gets a clear 4xx and leaves the service healthy; a burst beyond engines
//! plus queue is refused at once; a request past its deadline is answered 503.

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use flashcards_bootstrap::testing::sample;
use flashcards_ocr_corpus as corpus;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use support::{default_settings, start};

/// A PNG whose header claims `width` × `height` (the chunk checksum fixed up so decoders believe it).
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = corpus::bench_images(1).unwrap().remove(0).bytes;
    // Signature (8), IHDR length and type (8), then width and height.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let checksum = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&checksum.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

async fn expect_error(response: reqwest::Response, status: u16, detail_has: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.to_lowercase().contains(&detail_has.to_lowercase()),
        "{detail:?} lacks {detail_has:?}"
    );
    body
}

#[tokio::test]
async fn bad_uploads_get_clear_client_errors() {
    let mut settings = default_settings();
    settings.max_upload_bytes = 300_000;
    settings.max_pdf_pages = 2;
    let server = start(settings).await;
    let clean = corpus::clean_png().unwrap();

    expect_error(server.ocr("", "image/png", Vec::new()).await, 400, "empty").await;
    expect_error(
        server
            .ocr(
                "",
                "image/png",
                clean.bytes[..clean.bytes.len() / 2].to_vec(),
            )
            .await,
        422,
        "corrupt or truncated",
    )
    .await;
    expect_error(
        server
            .ocr("", "image/jpeg", b"\xff\xd8\xff\xe0garbage".to_vec())
            .await,
        422,
        "corrupt",
    )
    .await;
    expect_error(
        server.ocr("", "text/plain", clean.bytes.clone()).await,
        415,
        "PNG",
    )
    .await;
    expect_error(
        server
            .ocr("", "image/gif", b"GIF89a\x01\x00".to_vec())
            .await,
        415,
        "not supported",
    )
    .await;
    expect_error(
        server
            .ocr("", "image/png", png_claiming(100_000, 100_000))
            .await,
        413,
        "over the limit",
    )
    .await;
    expect_error(
        server.ocr("", "image/png", png_claiming(0, 40)).await,
        422,
        "",
    )
    .await;
    expect_error(
        server.ocr("", "image/png", vec![0x89; 400_000]).await,
        413,
        "",
    )
    .await;

    let layered = corpus::text_layer_pdf(3).unwrap();
    expect_error(
        server
            .ocr("", "application/pdf", layered.bytes.clone())
            .await,
        413,
        "3 pages",
    )
    .await;
    expect_error(
        server
            .ocr(
                "",
                "application/pdf",
                b"%PDF-1.4\nnot really a pdf".to_vec(),
            )
            .await,
        422,
        "PDF",
    )
    .await;
    expect_error(
        server.ocr("", "application/pdf", encrypted_pdf()).await,
        422,
        "encrypted",
    )
    .await;

    expect_error(
        server
            .ocr("?lang=xx", "image/png", clean.bytes.clone())
            .await,
        422,
        "lang",
    )
    .await;
    expect_error(
        server.ocr("?psm=0", "image/png", clean.bytes.clone()).await,
        422,
        "psm",
    )
    .await;
    let unknown = server
        .ocr("?colour=red", "image/png", clean.bytes.clone())
        .await;
    assert!(unknown.status().is_client_error());

    let form = Form::new().part("other", Part::bytes(clean.bytes.clone()));
    let response = server
        .client
        .post(format!("{}/v1/ocr", server.base))
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(response, 422, "file").await;

    // The service is still whole: a multipart upload of a good page works.
    let form = Form::new().part(
        "file",
        Part::bytes(clean.bytes.clone())
            .file_name("notes.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let response = server
        .client
        .post(format!("{}/v1/ocr", server.base))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(sample(&server.metrics().await, "ocr_active_requests"), 0.0);
}

/// The three-page corpus PDF with a user password, made by Debian's qpdf.
fn encrypted_pdf() -> Vec<u8> {
    let directory = tempfile::tempdir().unwrap();
    let plain = directory.path().join("plain.pdf");
    let locked = directory.path().join("locked.pdf");
    std::fs::write(&plain, corpus::text_layer_pdf(1).unwrap().bytes).unwrap();
    let status = std::process::Command::new("qpdf")
        .args(["--encrypt", "secret", "owner", "256", "--"])
        .arg(&plain)
        .arg(&locked)
        .status()
        .expect("qpdf is installed by `cargo xtask test` (Debian package qpdf)");
    assert!(status.success());
    std::fs::read(locked).unwrap()
}

#[tokio::test]
async fn a_burst_beyond_engines_and_queue_is_refused_at_once() {
    let mut settings = default_settings();
    settings.engines = 1;
    settings.queue = 1;
    let server = Arc::new(start(settings).await);
    let page = corpus::clean_png().unwrap().bytes;
    let finished = Arc::new(AtomicUsize::new(0));
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let (server, page, finished) = (server.clone(), page.clone(), finished.clone());
            tokio::spawn(async move {
                let response = server.ocr("", "image/png", page).await;
                let order = finished.fetch_add(1, Ordering::SeqCst);
                let retry_after = response.headers().get("retry-after").cloned();
                (response.status().as_u16(), retry_after, order)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    let ok: Vec<_> = answers.iter().filter(|answer| answer.0 == 200).collect();
    let refused: Vec<_> = answers.iter().filter(|answer| answer.0 == 503).collect();
    assert_eq!(ok.len() + refused.len(), 8, "{answers:?}");
    assert!(
        ok.len() >= 2,
        "engine and queue place both served: {answers:?}"
    );
    assert!(!refused.is_empty(), "{answers:?}");
    assert!(
        refused.iter().all(|answer| answer.1.is_some()),
        "Retry-After on every 503"
    );
    // Refusals did not wait for recognition: they all came back before the first success.
    let first_success = ok.iter().map(|answer| answer.2).min().unwrap();
    assert!(
        refused.iter().all(|answer| answer.2 < first_success),
        "{answers:?}"
    );
    let metrics = server.metrics().await;
    #[allow(clippy::cast_precision_loss)]
    let refusals = refused.len() as f64;
    assert_eq!(
        sample(
            &metrics,
            "ocr_operations_total{status=\"overloaded\",file_type=\"unknown\"}"
        ),
        refusals
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_is_answered_503_and_the_engine_comes_back() {
    let mut settings = default_settings();
    settings.engines = 1;
    settings.deadline = Duration::from_secs(1);
    let server = start(settings).await;
    let scanned = corpus::scanned_pdf(2).unwrap();
    let response = server.ocr("", "application/pdf", scanned.bytes).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    expect_error(response, 503, "deadline").await;
    let metrics = server.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "ocr_operations_total{status=\"timeout\",file_type=\"pdf\"}"
        ),
        1.0
    );
    // The engine finishes the abandoned page, then serves again.
    let small = corpus::bench_images(1).unwrap().remove(0);
    let mut status = 0;
    for _ in 0..50 {
        status = server
            .ocr("", "image/png", small.bytes.clone())
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200);
}
