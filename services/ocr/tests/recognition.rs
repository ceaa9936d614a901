//! The corpus through the real service: accuracy, page numbers, the confidence filter, metrics.

#![allow(clippy::unwrap_used)]

mod support;

use flashcards_bootstrap::testing::sample;
use flashcards_ocr_corpus as corpus;
use serde_json::Value;
use support::{character_accuracy, default_settings, start};

/// The text of every page of an answer, in order.
fn page_texts(answer: &Value) -> Vec<String> {
    answer["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|page| page["text"].as_str().unwrap().to_owned())
        .collect()
}

async fn recognise(server: &support::OcrServer, query: &str, sample: &corpus::Sample) -> Value {
    let response = server
        .ocr(query, sample.content_type, sample.bytes.clone())
        .await;
    assert_eq!(response.status(), 200, "{}", sample.name);
    response.json().await.unwrap()
}

#[tokio::test]
async fn clean_pages_read_at_98_percent_and_the_rest_are_reported() {
    let server = start(default_settings()).await;
    for (sample, floor) in [
        (corpus::clean_png().unwrap(), Some(0.98)),
        (corpus::small_text_png().unwrap(), None),
        (corpus::low_contrast_png().unwrap(), None),
        (corpus::exif_rotated_jpeg().unwrap(), None),
    ] {
        let answer = recognise(&server, "?min_confidence=0", &sample).await;
        let texts = page_texts(&answer);
        assert_eq!(texts.len(), 1);
        let accuracy = character_accuracy(&sample.pages[0], &texts[0]);
        let steps = &answer["pages"][0]["preprocessing"];
        println!(
            "{:<14} character accuracy {:.4}  steps {steps}",
            sample.name, accuracy
        );
        if let Some(floor) = floor {
            assert!(
                accuracy >= floor,
                "{}: {accuracy}\n{}",
                sample.name,
                texts[0]
            );
        }
        if sample.name.contains("small") {
            assert!(steps.to_string().contains("upscale:"), "{steps}");
        }
        if sample.name.contains("exif") {
            assert!(
                steps.to_string().contains("exif_orientation:rotate90"),
                "{steps}"
            );
            assert!(
                accuracy >= 0.9,
                "the page was not turned upright: {}",
                texts[0]
            );
        }
    }
}

#[tokio::test]
async fn pdf_pages_come_from_the_text_layer_or_ocr_in_page_order() {
    let server = start(default_settings()).await;
    let layered = corpus::text_layer_pdf(3).unwrap();
    let answer = recognise(&server, "", &layered).await;
    let pages = answer["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 3);
    for (index, page) in pages.iter().enumerate() {
        assert_eq!(page["page"], index + 1);
        assert_eq!(page["source"], "text_layer");
        let accuracy = character_accuracy(&layered.pages[index], page["text"].as_str().unwrap());
        assert!(accuracy >= 0.99, "page {}: {accuracy}", index + 1);
    }

    let scanned = corpus::scanned_pdf(2).unwrap();
    let answer = recognise(&server, "", &scanned).await;
    let pages = answer["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2);
    for (index, page) in pages.iter().enumerate() {
        assert_eq!(page["page"], index + 1);
        assert_eq!(page["source"], "ocr");
        let accuracy = character_accuracy(&scanned.pages[index], page["text"].as_str().unwrap());
        println!(
            "scanned page {} character accuracy {accuracy:.4}",
            index + 1
        );
        assert!(accuracy >= 0.95, "page {}: {accuracy}", index + 1);
    }
}

#[tokio::test]
async fn filtered_words_are_exactly_those_under_the_threshold() {
    let server = start(default_settings()).await;
    let low = corpus::low_contrast_png().unwrap();
    let everything = recognise(&server, "?min_confidence=0", &low).await;
    let all_words = everything["pages"][0]["words"].as_array().unwrap().clone();
    assert!(
        everything["pages"][0]["filtered_words"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let mut confidences: Vec<f64> = all_words
        .iter()
        .map(|word| word["confidence"].as_f64().unwrap())
        .collect();
    confidences.sort_by(f64::total_cmp);
    // A threshold in the middle of what this page scores, so both sides have words.
    let threshold = confidences[confidences.len() / 2];

    let split = recognise(&server, &format!("?min_confidence={threshold}"), &low).await;
    let page = &split["pages"][0];
    let kept = page["words"].as_array().unwrap();
    let filtered = page["filtered_words"].as_array().unwrap();
    assert!(!kept.is_empty() && !filtered.is_empty());
    assert!(
        kept.iter()
            .all(|word| word["confidence"].as_f64().unwrap() >= threshold)
    );
    assert!(
        filtered
            .iter()
            .all(|word| word["confidence"].as_f64().unwrap() < threshold)
    );
    assert_eq!(kept.len() + filtered.len(), all_words.len());
    let text = page["text"].as_str().unwrap();
    let kept_text: Vec<&str> = kept
        .iter()
        .map(|word| word["text"].as_str().unwrap())
        .collect();
    assert_eq!(text.split_whitespace().collect::<Vec<_>>(), kept_text);
}

/// Photographed pages that Tesseract alone misreads (skewed, in a shadow, stored turned) or that
/// need their text scaled up (blurred, small) read as well as clean ones, and the answer names the
/// step that made the difference.
#[tokio::test]
async fn photographed_pages_read_at_99_percent() {
    let server = start(default_settings()).await;
    let pages = corpus::degraded().unwrap();
    for (condition, step) in [
        ("skew", Some("deskew:")),
        ("uneven_light", Some("flatten_light:")),
        ("exif", Some("exif_orientation:")),
        ("blur", Some("upscale:")),
        ("perspective", None),
        ("two_columns", None),
    ] {
        let chosen: Vec<&corpus::Sample> = pages
            .iter()
            .filter(|page| page.condition == condition)
            .take(2)
            .collect();
        assert!(!chosen.is_empty(), "{condition}");
        for sample in chosen {
            let answer = recognise(&server, "", sample).await;
            let text = &page_texts(&answer)[0];
            let accuracy = character_accuracy(&sample.pages[0], text);
            let steps = answer["pages"][0]["preprocessing"].to_string();
            println!("{:<16} accuracy {accuracy:.4}  steps {steps}", sample.name);
            assert!(accuracy >= 0.99, "{}: {accuracy}\n{text}", sample.name);
            if let Some(step) = step {
                assert!(steps.contains(step), "{}: {steps}", sample.name);
            }
        }
    }
}

#[tokio::test]
async fn by_default_low_confidence_words_stay_in_the_text_marked() {
    let server = start(default_settings()).await;
    let low = corpus::low_contrast_png().unwrap();
    let answer = recognise(&server, "", &low).await;
    assert_eq!(answer["filtered"], false);
    let threshold = answer["min_confidence"].as_f64().unwrap();
    let page = &answer["pages"][0];
    assert!(page["filtered_words"].as_array().unwrap().is_empty());
    let words = page["words"].as_array().unwrap();
    for word in words {
        let low = word["confidence"].as_f64().unwrap() < threshold;
        assert_eq!(word["low_confidence"].as_bool(), Some(low), "{word}");
    }
    let text: Vec<&str> = page["text"].as_str().unwrap().split_whitespace().collect();
    let read: Vec<&str> = words.iter().map(|w| w["text"].as_str().unwrap()).collect();
    assert_eq!(text, read, "every word read is in the text");

    let asked = recognise(&server, "?filter=true", &low).await;
    assert_eq!(asked["filtered"], true);
    let kept = asked["pages"][0]["words"].as_array().unwrap();
    assert!(kept.iter().all(|word| word["low_confidence"] == false));
}

#[tokio::test]
async fn metrics_count_known_requests() {
    let server = start(default_settings()).await;
    let clean = corpus::clean_png().unwrap();
    let all = recognise(&server, "?min_confidence=0", &clean).await;
    let certain = recognise(&server, "?min_confidence=100", &clean).await;
    let words = all["pages"][0]["words"].as_array().unwrap().len();
    let kept_at_100 = certain["pages"][0]["words"].as_array().unwrap().len();
    let out_of_range = server
        .ocr("?min_confidence=101", "image/png", clean.bytes.clone())
        .await;
    assert_eq!(out_of_range.status(), 422);
    let truncated = server
        .ocr("", "image/png", clean.bytes[..200].to_vec())
        .await;
    assert_eq!(truncated.status(), 422);
    let wrong_type = server.ocr("", "text/plain", b"hello".to_vec()).await;
    assert_eq!(wrong_type.status(), 415);

    let metrics = server.metrics().await;
    let operations = |status: &str, kind: &str| {
        sample(
            &metrics,
            &format!("ocr_operations_total{{status=\"{status}\",file_type=\"{kind}\"}}"),
        )
    };
    assert_eq!(operations("success", "png"), 2.0, "{metrics}");
    assert_eq!(operations("invalid", "png"), 1.0);
    assert_eq!(
        operations("invalid", "unknown"),
        2.0,
        "bad parameter and text/plain"
    );
    #[allow(clippy::cast_precision_loss)]
    let (words, kept_at_100) = (words as f64, kept_at_100 as f64);
    assert_eq!(sample(&metrics, "ocr_word_count_count"), 2.0);
    assert_eq!(sample(&metrics, "ocr_word_count_sum"), 2.0 * words);
    assert_eq!(
        sample(&metrics, "ocr_filtered_words_sum"),
        words + kept_at_100
    );
    assert_eq!(sample(&metrics, "ocr_confidence_score_count"), 2.0 * words);
    // Admitted requests: the two successes, the truncated PNG and the text file.
    assert_eq!(
        sample(&metrics, "ocr_processing_duration_seconds_count"),
        4.0
    );
    assert_eq!(sample(&metrics, "ocr_active_requests"), 0.0);
}

#[tokio::test]
async fn every_image_format_reads_the_same_page() {
    let server = start(default_settings()).await;
    let clean = corpus::clean_png().unwrap();
    let page = image::load_from_memory(&clean.bytes).unwrap();
    for (format, content_type) in [
        (image::ImageFormat::Tiff, "image/tiff"),
        (image::ImageFormat::WebP, "image/webp"),
        (image::ImageFormat::Bmp, "image/bmp"),
        (image::ImageFormat::Jpeg, "image/jpeg"),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(page.to_rgb8())
            .write_to(&mut bytes, format)
            .unwrap();
        let response = server.ocr("", content_type, bytes.into_inner()).await;
        assert_eq!(response.status(), 200, "{content_type}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["file_type"],
            content_type.trim_start_matches("image/")
        );
        let accuracy = character_accuracy(&clean.pages[0], &page_texts(&answer)[0]);
        assert!(accuracy >= 0.98, "{content_type}: {accuracy}");
    }
}
