//! From uploaded image bytes to the grayscale page Tesseract reads: decoding within limits, the
//! EXIF orientation phones record instead of rotating pixels, grayscale, uneven light evened out
//! (or a local threshold chosen, on a noisy page), skew levelled, small text scaled up, optional
//! binarisation. Each step is decided from what is measured on the page, and each that ran is
//! reported to the client with its measure. Only steps that the OCR corpus's photographed pages
//! show to help are here (`cargo xtask bench-ocr`): stretching a faded page's contrast changed
//! nothing, because Tesseract's own threshold adapts to it, so it is not done.

mod light;
mod skew;

use std::{
    io::Cursor,
    panic::{AssertUnwindSafe, catch_unwind},
};

use image::{
    DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, imageops::FilterType,
    metadata::Orientation,
};
use imageproc::contrast::{ThresholdType, otsu_level};

use crate::engine::Threshold;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("the image is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error("the image has no pixels ({width}×{height})")]
    Empty { width: u32, height: u32 },
    #[error("the image is {width}×{height} ({pixels} pixels), over the limit of {limit} pixels")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
}

impl From<DecodeError> for flashcards_bootstrap::ApiError {
    fn from(err: DecodeError) -> Self {
        match err {
            DecodeError::TooManyPixels { .. } => Self::PayloadTooLarge(err.to_string()),
            DecodeError::Corrupt(_) | DecodeError::Empty { .. } => {
                Self::Unprocessable(err.to_string())
            }
        }
    }
}

/// Decodes an image of a known format, refusing more than `max_pixels` before allocating them, and
/// turns it upright by its EXIF orientation. Returns the orientation applied, if any.
pub fn decode(
    bytes: &[u8],
    format: ImageFormat,
    max_pixels: u64,
) -> Result<(DynamicImage, Option<Orientation>), DecodeError> {
    // The decoders are third-party code fed hostile bytes: a panic in one is a bad file, not a crash.
    catch_unwind(AssertUnwindSafe(|| {
        decode_unguarded(bytes, format, max_pixels)
    }))
    .unwrap_or_else(|_| {
        Err(DecodeError::Corrupt(
            "the decoder could not make sense of it".to_owned(),
        ))
    })
}

fn decode_unguarded(
    bytes: &[u8],
    format: ImageFormat,
    max_pixels: u64,
) -> Result<(DynamicImage, Option<Orientation>), DecodeError> {
    let corrupt = |err: image::ImageError| DecodeError::Corrupt(err.to_string());
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), format)
        .into_decoder()
        .map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, max_pixels)?;
    let mut limits = image::Limits::default();
    // Decoders may need a few buffers of the image's size; anything far beyond that is hostile.
    limits.max_alloc = Some((u64::from(width) * u64::from(height)).saturating_mul(16) + (64 << 20));
    decoder.set_limits(limits).map_err(corrupt)?;
    let orientation = decoder
        .orientation()
        .ok()
        .filter(|orientation| *orientation != Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok((image, orientation))
}

/// Refuses empty images and images over the pixel budget.
pub fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), DecodeError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 {
        return Err(DecodeError::Empty { width, height });
    }
    if pixels > max_pixels {
        return Err(DecodeError::TooManyPixels {
            width,
            height,
            pixels,
            limit: max_pixels,
        });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Replace the page by pure black and white (Otsu's threshold) before recognition.
    pub binarize: bool,
}

/// Text lines shorter than this (in pixels, ascenders to descenders) are scaled up; Tesseract's
/// accuracy drops sharply below roughly 20 px capitals.
const SMALL_LINE_PX: f32 = 24.0;
/// The line height small text is scaled to.
const TARGET_LINE_PX: f32 = 40.0;
const MAX_UPSCALE: f32 = 4.0;
/// Paper whose brightness varies more than this across the page (5th to 95th percentile of its
/// blocks) is evened out: a shadow or a lamp to one side.
const UNEVEN_LIGHT_SPREAD: u8 = 40;
/// Sensor noise (standard deviation, gray levels) from which a page counts as noisy.
const NOISY: f32 = 8.0;

/// A page ready for Tesseract.
#[derive(Debug)]
pub struct Prepared {
    pub page: GrayImage,
    /// The steps that ran, in order, each with what was measured (`deskew:4.00deg`).
    pub steps: Vec<String>,
    pub threshold: Threshold,
}

/// Prepares a page, deciding each step from what is measured on it.
pub fn prepare(
    image: DynamicImage,
    orientation: Option<Orientation>,
    options: Options,
    max_pixels: u64,
) -> Prepared {
    let mut steps = Vec::new();
    if let Some(orientation) = orientation {
        steps.push(format!("exif_orientation:{orientation:?}").to_lowercase());
    }
    let mut gray = image.into_luma8();
    steps.push("grayscale".to_owned());

    let mut threshold = Threshold::Global;
    if dark_on_light(&gray) {
        let paper = light::paper(&gray);
        let (low, high) = paper.spread;
        if high.saturating_sub(low) > UNEVEN_LIGHT_SPREAD {
            let noise = noise_level(&gray);
            // Dividing by the paper amplifies noise in the shadow; a local threshold copes with
            // both at once.
            if noise >= NOISY {
                let window_px = local_window(&gray, &paper);
                threshold = Threshold::Local { window_px };
                steps.push(format!(
                    "local_threshold:paper_{low}-{high},noise_{noise:.0},window_{window_px}px"
                ));
            } else {
                gray = light::flatten(&gray, &paper);
                steps.push(format!("flatten_light:paper_{low}-{high}"));
            }
        }
    }

    if let Some(degrees) = skew::measure(&gray)
        && degrees.abs() >= skew::MIN_CORRECTED_DEGREES
    {
        let (_, paper) = percentile_range(&gray);
        gray = skew::level(&gray, degrees, paper);
        steps.push(format!("deskew:{degrees:.2}deg"));
    }

    if let Some(line_px) = median_line_height(&gray) {
        let factor = upscale_factor(line_px, gray.width(), gray.height(), max_pixels);
        if factor > 1.0 {
            gray = scale(&gray, factor);
            steps.push(format!("upscale:{factor:.2}x"));
        }
    }

    if options.binarize {
        let level = otsu_level(&gray);
        gray = imageproc::contrast::threshold(&gray, level, ThresholdType::Binary);
        steps.push(format!("binarize:otsu_{level}"));
    }
    Prepared {
        page: gray,
        steps,
        threshold,
    }
}

/// The neighbourhood a local threshold looks at: one and a half lines of text. Lines are measured
/// on a copy with the light evened out and the noise blurred away, which would otherwise pass for
/// ink.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn local_window(gray: &GrayImage, paper: &light::Paper) -> u32 {
    let calm = imageproc::filter::gaussian_blur_f32(&light::flatten(gray, paper), 1.5);
    median_line_height(&calm).map_or(36, |line_px| {
        (1.5 * line_px).round().clamp(16.0, 200.0) as u32
    })
}

/// The standard deviation of the page's sensor noise, in gray levels: from the median difference
/// between horizontally neighbouring pixels, which edges of text barely move (they are few).
#[allow(clippy::cast_precision_loss)]
pub fn noise_level(gray: &GrayImage) -> f32 {
    let mut histogram = [0_u64; 256];
    for row in gray.rows() {
        let row: Vec<u8> = row.map(|pixel| pixel.0[0]).collect();
        for pair in row.windows(2) {
            histogram[usize::from(pair[0].abs_diff(pair[1]))] += 1;
        }
    }
    let total: u64 = histogram.iter().sum();
    let mut seen = 0;
    let median = histogram
        .iter()
        .position(|count| {
            seen += count;
            seen * 2 > total
        })
        .unwrap_or(0);
    // The difference of two samples of N(0, σ²) has median absolute value 0.6745·σ·√2.
    median as f32 / (0.6745 * std::f32::consts::SQRT_2)
}

/// How much to enlarge a page whose text lines are `line_px` high, within the pixel budget.
pub fn upscale_factor(line_px: f32, width: u32, height: u32, max_pixels: u64) -> f32 {
    if line_px >= SMALL_LINE_PX || line_px <= 0.0 {
        return 1.0;
    }
    #[allow(clippy::cast_precision_loss)] // pixel counts far below 2^52
    let budget = (max_pixels as f64 / (f64::from(width) * f64::from(height))).sqrt();
    #[allow(clippy::cast_possible_truncation)]
    let budget = budget as f32;
    (TARGET_LINE_PX / line_px)
        .min(MAX_UPSCALE)
        .min(budget)
        .max(1.0)
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn scale(gray: &GrayImage, factor: f32) -> GrayImage {
    let width = (gray.width() as f32 * factor).round() as u32;
    let height = (gray.height() as f32 * factor).round() as u32;
    image::imageops::resize(gray, width, height, FilterType::CatmullRom)
}

/// Whether the page is dark ink on lighter paper. Decided block by block, where a block holds
/// ink: paper fills most of a block, so its median lies nearer the paper's side of the block's
/// range. Counting dark pixels page-wide would not do: a shadow makes the paper itself dark.
fn dark_on_light(gray: &GrayImage) -> bool {
    const BLOCK: u32 = 32;
    const MIN_RANGE: u8 = 40;
    let mut votes = 0_i64;
    let mut values = Vec::with_capacity((BLOCK * BLOCK) as usize);
    for top in (0..gray.height()).step_by(BLOCK as usize) {
        for left in (0..gray.width()).step_by(BLOCK as usize) {
            values.clear();
            for y in top..(top + BLOCK).min(gray.height()) {
                for x in left..(left + BLOCK).min(gray.width()) {
                    values.push(gray.get_pixel(x, y).0[0]);
                }
            }
            values.sort_unstable();
            let (low, high) = (values[0], values[values.len() - 1]);
            if high - low < MIN_RANGE {
                continue;
            }
            let median = values[values.len() / 2];
            votes += if high - median < median - low { 1 } else { -1 };
        }
    }
    votes >= 0
}

/// The gray levels at the 1st and 99th percentile.
fn percentile_range(gray: &GrayImage) -> (u8, u8) {
    let mut histogram = [0_u64; 256];
    for pixel in gray.pixels() {
        histogram[usize::from(pixel.0[0])] += 1;
    }
    let total: u64 = histogram.iter().sum();
    let at = |fraction: u64| {
        let wanted = total * fraction / 100;
        let mut seen = 0;
        for (level, count) in histogram.iter().enumerate() {
            seen += count;
            if seen > wanted {
                return u8::try_from(level).unwrap_or(u8::MAX);
            }
        }
        u8::MAX
    };
    (at(1), at(99))
}

/// The median height of the page's text lines: runs of rows holding ink, where ink is whichever side
/// of Otsu's threshold is the minority (dark text on light paper, or the reverse). `None` without
/// any line.
pub fn median_line_height(gray: &GrayImage) -> Option<f32> {
    let level = otsu_level(gray);
    let dark = gray.pixels().filter(|pixel| pixel.0[0] <= level).count();
    let dark_is_ink = dark * 2 <= gray.pixels().len();
    let is_ink = |value: u8| (value <= level) == dark_is_ink;
    // Ignore specks: a text row holds a few ink pixels at least.
    let min_ink = (gray.width() / 200).max(2);
    let mut runs = Vec::new();
    let mut run = 0_u32;
    for row in gray.rows() {
        let ink = u32::try_from(row.filter(|pixel| is_ink(pixel.0[0])).count()).unwrap_or(u32::MAX);
        if ink >= min_ink {
            run += 1;
        } else if run > 0 {
            runs.push(run);
            run = 0;
        }
    }
    if run > 0 {
        runs.push(run);
    }
    runs.retain(|run| *run >= 3);
    if runs.is_empty() {
        return None;
    }
    runs.sort_unstable();
    #[allow(clippy::cast_precision_loss)]
    Some(runs[runs.len() / 2] as f32)
}

#[cfg(test)]
mod tests {
    use image::{ImageEncoder, Luma, codecs::png::PngEncoder};

    use super::*;

    /// A white page with dark bars standing in for text lines `line` pixels high.
    fn page(width: u32, height: u32, line: u32, ink: u8, paper: u8) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| {
            let in_line = (y % (line * 2)) < line && y >= line && x % 7 != 0;
            Luma([if in_line { ink } else { paper }])
        })
    }

    fn png(image: &GrayImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        PngEncoder::new(&mut bytes)
            .write_image(
                image.as_raw(),
                image.width(),
                image.height(),
                image::ExtendedColorType::L8,
            )
            .expect("encode");
        bytes
    }

    #[test]
    fn line_height_is_measured_from_ink_rows() {
        let height = median_line_height(&page(400, 300, 12, 0, 255)).expect("lines");
        assert!((height - 12.0).abs() < 0.5, "{height}");
        // White text on black reads the same.
        let height = median_line_height(&page(400, 300, 12, 255, 0)).expect("lines");
        assert!((height - 12.0).abs() < 0.5, "{height}");
        assert_eq!(median_line_height(&GrayImage::new(50, 50)), None);
    }

    #[test]
    fn ink_is_told_from_paper_in_shadow_too() {
        assert!(dark_on_light(&page(400, 300, 12, 0, 255)));
        assert!(!dark_on_light(&page(400, 300, 12, 255, 0)));
        // Most of the page in a shadow darker than Otsu's split: the ink is still the dark side.
        let shaded = GrayImage::from_fn(400, 300, |x, y| {
            let paper: u8 = if y > 60 { 120 } else { 250 };
            let ink = (y % 24) < 8 && x % 9 > 2;
            Luma([if ink { paper / 5 } else { paper }])
        });
        assert!(dark_on_light(&shaded));
    }

    #[test]
    fn noise_is_measured_in_gray_levels() {
        let clean = page(400, 300, 12, 0, 255);
        assert!(noise_level(&clean) < 1.0);
        // Deterministic noise of standard deviation about 20: a sum of 12 uniform values.
        let mut state = 7_u64;
        let mut uniform = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 40) as f32 / (1_u64 << 24) as f32
        };
        let noisy = GrayImage::from_fn(400, 300, |_, _| {
            let normal: f32 = (0..12).map(|_| uniform()).sum::<f32>() - 6.0;
            Luma([(128.0 + 20.0 * normal).round().clamp(0.0, 255.0) as u8])
        });
        let measured = noise_level(&noisy);
        assert!((measured - 20.0).abs() < 3.0, "{measured}");
    }

    #[test]
    fn small_text_is_scaled_up_within_the_budget() {
        assert!((upscale_factor(10.0, 1000, 1000, 100_000_000) - 4.0).abs() < 1e-6);
        assert!((upscale_factor(20.0, 1000, 1000, 100_000_000) - 2.0).abs() < 1e-6);
        assert!((upscale_factor(30.0, 1000, 1000, 100_000_000) - 1.0).abs() < 1e-6);
        // Only 4 MP allowed on a 1 MP page: at most 2x.
        assert!((upscale_factor(10.0, 1000, 1000, 4_000_000) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn prepare_reports_the_steps_it_ran() {
        let small = DynamicImage::ImageLuma8(page(300, 200, 8, 0, 255));
        let Prepared {
            page: gray, steps, ..
        } = prepare(small, None, Options { binarize: true }, 10_000_000);
        assert_eq!(steps[0], "grayscale");
        assert!(steps[1].starts_with("upscale:"), "{steps:?}");
        assert!(steps[2].starts_with("binarize:otsu_"), "{steps:?}");
        assert!(gray.width() > 300);
        assert!(
            gray.pixels()
                .all(|pixel| pixel.0[0] == 0 || pixel.0[0] == 255)
        );

        let faint = DynamicImage::ImageLuma8(page(300, 200, 30, 150, 200));
        let prepared = prepare(
            faint,
            Some(Orientation::Rotate90),
            Options::default(),
            10_000_000,
        );
        assert_eq!(prepared.steps, ["exif_orientation:rotate90", "grayscale"]);
        assert_eq!(prepared.threshold, Threshold::Global);
    }

    /// Bars of text on paper lit from 250 on the left to 110 on the right, with noise of about
    /// `noise` gray levels.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    fn shaded(noise: f32) -> DynamicImage {
        let mut state = 11_u64;
        DynamicImage::ImageLuma8(GrayImage::from_fn(640, 400, |x, y| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let jitter = ((state >> 40) as f32 / (1_u64 << 24) as f32 - 0.5) * noise * 3.4;
            let paper = 250.0 - 140.0 * x as f32 / 640.0;
            let ink = (40..360).contains(&y) && (y % 40) < 20 && x % 30 > 6;
            let value = if ink { paper * 0.15 } else { paper };
            Luma([(value + jitter).round().clamp(0.0, 255.0) as u8])
        }))
    }

    #[test]
    fn uneven_light_is_evened_out_or_met_with_a_local_threshold() {
        let even = prepare(shaded(0.0), None, Options::default(), 10_000_000);
        assert!(
            even.steps[1].starts_with("flatten_light:"),
            "{:?}",
            even.steps
        );
        assert_eq!(even.threshold, Threshold::Global);
        let noisy = prepare(shaded(20.0), None, Options::default(), 10_000_000);
        assert!(
            noisy.steps[1].starts_with("local_threshold:"),
            "{:?}",
            noisy.steps
        );
        let Threshold::Local { window_px } = noisy.threshold else {
            panic!("{:?}", noisy.threshold);
        };
        // One and a half lines of 20 px.
        assert!((25..=35).contains(&window_px), "{window_px}");
    }

    #[test]
    fn decoding_refuses_bombs_empty_and_garbage() {
        let bytes = png(&page(100, 80, 10, 0, 255));
        let (image, orientation) = decode(&bytes, ImageFormat::Png, 10_000).expect("fits");
        assert_eq!(
            (image.width(), image.height(), orientation),
            (100, 80, None)
        );
        assert!(matches!(
            decode(&bytes, ImageFormat::Png, 7_999),
            Err(DecodeError::TooManyPixels { pixels: 8000, .. })
        ));
        assert!(matches!(
            decode(&bytes[..bytes.len() / 2], ImageFormat::Png, 10_000),
            Err(DecodeError::Corrupt(_))
        ));
        assert_eq!(
            check_pixels(0, 10, 100),
            Err(DecodeError::Empty {
                width: 0,
                height: 10
            })
        );
    }
}
