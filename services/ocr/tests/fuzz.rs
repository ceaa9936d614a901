//! Mutated files thrown at the paths every upload takes through the service (the same functions
//! `POST /v1/ocr` calls): every one must end in a 4xx-class answer or a prepared page, never a
//! panic (a panic the decoder guard catches counts as a failure here too).

#![allow(clippy::unwrap_used)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use flashcards_ocr::{
    file_type,
    pdf::PdfError,
    preprocess::Options,
    recognition::{decode_image, pdf_layers},
};
use flashcards_ocr_corpus as corpus;
use image::{DynamicImage, ImageFormat};
use rand::{Rng, SeedableRng, rngs::StdRng};

const IMAGE_MUTANTS: usize = 10_000;
const PDF_MUTANTS: usize = 300;
/// Small enough that a mutated header claiming a huge image is refused, not decoded.
const MAX_PIXELS: u64 = 4_000_000;

/// One seed file per image format, made from a small corpus page.
fn seeds() -> Vec<(Vec<u8>, &'static str)> {
    let page = image::load_from_memory(&corpus::bench_images(1).unwrap()[0].bytes).unwrap();
    let page = DynamicImage::ImageLuma8(page.into_luma8());
    [
        (ImageFormat::Png, "image/png"),
        (ImageFormat::Jpeg, "image/jpeg"),
        (ImageFormat::Tiff, "image/tiff"),
        (ImageFormat::WebP, "image/webp"),
        (ImageFormat::Bmp, "image/bmp"),
    ]
    .into_iter()
    .map(|(format, content_type)| {
        let mut bytes = std::io::Cursor::new(Vec::new());
        page.write_to(&mut bytes, format).unwrap();
        (bytes.into_inner(), content_type)
    })
    .chain([(corpus::exif_rotated_jpeg().unwrap().bytes, "image/jpeg")])
    .collect()
}

/// Damages a copy of `seed` the way broken uploads and hostile files look: flipped bits, bytes set
/// to edge values (mostly in the header, where sizes live), truncation, spliced or repeated runs.
fn mutate(seed: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if bytes.is_empty() {
            break;
        }
        let header = bytes.len().min(64);
        match rng.random_range(0..6) {
            0 => {
                let at = rng.random_range(0..bytes.len());
                bytes[at] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let at = rng.random_range(0..header);
                bytes[at] = [0x00, 0xff, 0x7f, 0x80, 0x01][rng.random_range(0..5)];
            }
            2 => bytes.truncate(rng.random_range(0..bytes.len())),
            3 => {
                let at = rng.random_range(0..bytes.len());
                let junk: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
                bytes.splice(at..at, junk);
            }
            4 => {
                let from = rng.random_range(0..bytes.len());
                let to = (from + rng.random_range(1..256)).min(bytes.len());
                let run = bytes[from..to].to_vec();
                let at = rng.random_range(0..bytes.len());
                bytes.splice(at..at, run);
            }
            _ => {
                let at = rng.random_range(0..header);
                let end = (at + 4).min(bytes.len());
                for byte in &mut bytes[at..end] {
                    *byte = 0xff;
                }
            }
        }
    }
    bytes
}

/// Counts panics, including those `decode` catches and turns into 422s.
fn count_panics() -> Arc<AtomicUsize> {
    let panics = Arc::new(AtomicUsize::new(0));
    let counter = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counter.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    panics
}

#[test]
fn ten_thousand_mutated_images_get_only_client_errors() {
    let panics = count_panics();
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(0x0c12);
    let (mut decoded, mut refused) = (0, 0);
    for round in 0..IMAGE_MUTANTS {
        let (seed, content_type) = &seeds[round % seeds.len()];
        let mutant = mutate(seed, &mut rng);
        let prepared = file_type::detect(&mutant, Some(content_type)).and_then(|kind| {
            let format = file_type::image_format(kind).expect("the seeds are images");
            Ok(decode_image(
                &mutant,
                format,
                Options::default(),
                MAX_PIXELS,
            )?)
        });
        match prepared {
            Ok(_) => decoded += 1,
            Err(err) => {
                assert!(
                    err.status().is_client_error(),
                    "mutant {round} of {content_type}: {} {err}",
                    err.status()
                );
                refused += 1;
            }
        }
    }
    println!("{IMAGE_MUTANTS} mutants: {decoded} still decoded, {refused} refused with 4xx");
    assert_eq!(decoded + refused, IMAGE_MUTANTS);
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a decoder panicked");
}

#[tokio::test]
async fn mutated_pdfs_are_read_or_refused_never_crash_the_service() {
    let seed = corpus::text_layer_pdf(2).unwrap().bytes;
    let directory = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x0bad_f00d);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    let (mut read, mut refused) = (0, 0);
    for round in 0..PDF_MUTANTS {
        let path = directory.path().join(format!("{round}.pdf"));
        std::fs::write(&path, mutate(&seed, &mut rng)).unwrap();
        match pdf_layers(&path, 50, deadline).await {
            Ok(_) => read += 1,
            Err(PdfError::Tool { tool, detail }) => panic!("mutant {round}: {tool}: {detail}"),
            Err(PdfError::DeadlineExceeded) => panic!("mutant {round} stalled the tools"),
            Err(_) => refused += 1,
        }
    }
    println!("{PDF_MUTANTS} PDF mutants: {read} read, {refused} refused");
}
