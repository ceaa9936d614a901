//! A test corpus for the OCR service: known text rendered with Debian's DejaVu Sans into PNG,
//! JPEG and PDF samples, so a test can score what the service reads against what is there.
//!
//! Everything is generated offline and is byte-for-byte reproducible for a given font file: the
//! only variation (the benchmark words) comes from a generator seeded with the image index.

mod degrade;
mod exif;
mod pdf;
mod render;
mod text;

use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{ImageEncoder, ImageError, imageops};

pub use degrade::{Condition, HANDWRITING_FONT_PATH};
use render::{Page, Style, Typeface};

/// Where Debian's `fonts-dejavu-core` installs DejaVu Sans.
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Environment variable naming another font file to render with instead of [`FONT_PATH`].
pub const FONT_ENV: &str = "FLASHCARDS_CORPUS_FONT";

/// One corpus file and the text it carries.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Short identifier, e.g. `clean` or `bench_007`.
    pub name: String,
    /// Suggested file name, e.g. `clean.png`.
    pub file_name: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
    /// The exact text on each page, its lines joined with `'\n'`.
    pub pages: Vec<String>,
    /// What the sample stands for (`clean`, `blur`, `bench`, ...): see [`Condition`].
    pub condition: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error(
        "cannot read font {} (install Debian's fonts-dejavu-core or set {FONT_ENV})",
        path.display()
    )]
    FontMissing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a TrueType/OpenType font covering printable ASCII", path.display())]
    FontInvalid { path: PathBuf },
    #[error("text does not fit inside the page margins: {text:?}")]
    TextDoesNotFit { text: String },
    #[error("a PDF needs at least one page")]
    NoPages,
    #[error("encoding an image failed: {0}")]
    Image(#[from] ImageError),
    #[error("compressing a page image failed: {0}")]
    Compress(#[from] std::io::Error),
}

/// Ordinary notes: a 28 px em (ab_glyph scale ~32 px), x-height about 15 px.
const CLEAN: Style = Style {
    em_px: 28.0,
    width: 1200,
    height: None,
    margin: 60,
    ink: 0,
    paper: 255,
};

/// Fine print: an x-height of about 6.5 px, small enough that a service should upscale it.
const SMALL: Style = Style {
    em_px: 12.0,
    width: 640,
    margin: 24,
    ..CLEAN
};

/// Gray on light gray: a contrast of only 50 luma levels, like a faded print.
const LOW_CONTRAST: Style = Style {
    ink: 150,
    paper: 200,
    ..CLEAN
};

/// Three short lines on a 1000 x 200 strip.
const BENCH: Style = Style {
    em_px: 26.0,
    width: 1000,
    height: Some(200),
    margin: 40,
    ..CLEAN
};

const JPEG_QUALITY: u8 = 90;

/// Generates samples with one loaded font; the free functions load [`FONT_PATH`] (or the file
/// [`FONT_ENV`] names) on every call.
pub struct Corpus {
    face: Typeface,
}

impl Corpus {
    /// Renders with the font file at `path`.
    pub fn with_font(path: impl AsRef<Path>) -> Result<Self, CorpusError> {
        Ok(Self {
            face: Typeface::load(path.as_ref())?,
        })
    }

    /// Renders with the font named by [`FONT_ENV`], or else [`FONT_PATH`].
    pub fn from_env() -> Result<Self, CorpusError> {
        let path = std::env::var_os(FONT_ENV)
            .filter(|path| !path.is_empty())
            .map_or_else(|| PathBuf::from(FONT_PATH), PathBuf::from);
        Self::with_font(path)
    }

    pub fn clean_png(&self) -> Result<Sample, CorpusError> {
        self.png("clean", &CLEAN, &[text::PHOTOSYNTHESIS])
    }

    pub fn small_text_png(&self) -> Result<Sample, CorpusError> {
        self.png("small_text", &SMALL, &[text::MITOCHONDRIA])
    }

    pub fn low_contrast_png(&self) -> Result<Sample, CorpusError> {
        self.png("low_contrast", &LOW_CONTRAST, &[text::ENZYMES])
    }

    /// The clean page stored turned a quarter left, with Exif Orientation 6 ("rotate 90 degrees
    /// clockwise to view"): it reads upright only if the reader honours the tag.
    pub fn exif_rotated_jpeg(&self) -> Result<Sample, CorpusError> {
        let page = render::render(&self.face, &CLEAN, &[text::PHOTOSYNTHESIS])?;
        let stored = imageops::rotate270(&page.image);
        let mut bytes = Vec::new();
        let mut encoder = JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY);
        encoder
            .set_exif_metadata(exif::orientation_block(Orientation::Rotate90))
            .map_err(ImageError::Unsupported)?;
        encoder.encode_image(&stored)?;
        Ok(Sample {
            name: "exif_rotated".to_owned(),
            condition: "exif",
            file_name: "exif_rotated.jpg".to_owned(),
            content_type: "image/jpeg",
            bytes,
            pages: vec![page.text],
        })
    }

    /// A PDF of `pages` pages that are only images of text, as a scanner makes: no text layer.
    pub fn scanned_pdf(&self, pages: usize) -> Result<Sample, CorpusError> {
        if pages == 0 {
            return Err(CorpusError::NoPages);
        }
        let (images, texts): (Vec<_>, Vec<_>) = (1..=pages)
            .map(|page| {
                let [heading, body] = text::pdf_page(page);
                render::render(&self.face, &pdf::SCAN_STYLE, &[&heading, &body])
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|page| (page.image, page.text))
            .unzip();
        Ok(Sample {
            name: "scanned".to_owned(),
            condition: "scanned_pdf",
            file_name: "scanned.pdf".to_owned(),
            content_type: "application/pdf",
            bytes: pdf::scanned(&images)?,
            pages: texts,
        })
    }

    /// `count` different single-page PNGs of three lines each, for throughput measurements.
    pub fn bench_images(&self, count: usize) -> Result<Vec<Sample>, CorpusError> {
        (0..count)
            .map(|index| {
                let lines = text::bench_lines(index);
                let page =
                    render::render(&self.face, &BENCH, &lines.each_ref().map(String::as_str))?;
                Ok(Sample {
                    name: format!("bench_{index:03}"),
                    condition: "bench",
                    file_name: format!("{index:03}.png"),
                    content_type: "image/png",
                    bytes: render::png(&page.image)?,
                    pages: vec![page.text],
                })
            })
            .collect()
    }

    /// Pages as phones photograph them: every [`Condition`], three pages each (one for two
    /// columns, seven EXIF orientations), with their known text. The handwriting pages need
    /// Debian's `fonts-comic-neue` ([`HANDWRITING_FONT_PATH`]).
    pub fn degraded(&self) -> Result<Vec<Sample>, CorpusError> {
        let handwriting = Typeface::load(Path::new(HANDWRITING_FONT_PATH))?;
        degrade::degraded(&self.face, &handwriting)
    }

    /// Every sample but the benchmark images.
    pub fn all(&self) -> Result<Vec<Sample>, CorpusError> {
        Ok(vec![
            self.clean_png()?,
            self.small_text_png()?,
            self.low_contrast_png()?,
            self.exif_rotated_jpeg()?,
            text_layer_pdf(3)?,
            self.scanned_pdf(2)?,
        ])
    }

    fn png(
        &self,
        name: &'static str,
        style: &Style,
        paragraphs: &[&str],
    ) -> Result<Sample, CorpusError> {
        let Page { image, text } = render::render(&self.face, style, paragraphs)?;
        Ok(Sample {
            name: name.to_owned(),
            condition: name,
            file_name: format!("{name}.png"),
            content_type: "image/png",
            bytes: render::png(&image)?,
            pages: vec![text],
        })
    }
}

/// Black text on white, about 1200 px wide: the easy case.
pub fn clean_png() -> Result<Sample, CorpusError> {
    Corpus::from_env()?.clean_png()
}

/// Text too small to read without upscaling.
pub fn small_text_png() -> Result<Sample, CorpusError> {
    Corpus::from_env()?.small_text_png()
}

/// Gray text on a light gray background.
pub fn low_contrast_png() -> Result<Sample, CorpusError> {
    Corpus::from_env()?.low_contrast_png()
}

/// See [`Corpus::exif_rotated_jpeg`].
pub fn exif_rotated_jpeg() -> Result<Sample, CorpusError> {
    Corpus::from_env()?.exif_rotated_jpeg()
}

/// A US Letter PDF of `pages` pages with a real text layer (14 pt Helvetica, not embedded), each
/// page starting "Page N:". Needs no font file.
pub fn text_layer_pdf(pages: usize) -> Result<Sample, CorpusError> {
    if pages == 0 {
        return Err(CorpusError::NoPages);
    }
    let lines: Vec<Vec<String>> = (1..=pages)
        .map(|page| {
            let [heading, body] = text::pdf_page(page);
            let mut lines = vec![heading];
            lines.extend(pdf::text_lines(&body));
            lines
        })
        .collect();
    Ok(Sample {
        name: "text_layer".to_owned(),
        condition: "text_layer_pdf",
        file_name: "text_layer.pdf".to_owned(),
        content_type: "application/pdf",
        bytes: pdf::text_layer(&lines),
        pages: lines.iter().map(|page| page.join("\n")).collect(),
    })
}

/// See [`Corpus::scanned_pdf`].
pub fn scanned_pdf(pages: usize) -> Result<Sample, CorpusError> {
    Corpus::from_env()?.scanned_pdf(pages)
}

/// See [`Corpus::bench_images`].
pub fn bench_images(count: usize) -> Result<Vec<Sample>, CorpusError> {
    Corpus::from_env()?.bench_images(count)
}

/// See [`Corpus::degraded`].
pub fn degraded() -> Result<Vec<Sample>, CorpusError> {
    Corpus::from_env()?.degraded()
}

/// See [`Corpus::all`].
pub fn all() -> Result<Vec<Sample>, CorpusError> {
    Corpus::from_env()?.all()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::Cursor;
    use std::process::Command;

    use image::{DynamicImage, GrayImage, ImageDecoder, ImageReader};

    use super::*;

    fn corpus() -> Corpus {
        Corpus::with_font(FONT_PATH).expect("DejaVu Sans from fonts-dejavu-core")
    }

    fn decode(sample: &Sample) -> GrayImage {
        image::load_from_memory(&sample.bytes)
            .expect("sample decodes")
            .into_luma8()
    }

    fn line_count(sample: &Sample) -> usize {
        sample.pages[0].lines().count()
    }

    /// A Debian tool from poppler-utils or tesseract-ocr, or `None` (and a note) when absent.
    fn tool(name: &str) -> Option<PathBuf> {
        let path = Path::new("/usr/bin").join(name);
        if path.exists() {
            Some(path)
        } else {
            eprintln!(
                "skipping the {name} check: {} is not installed",
                path.display()
            );
            None
        }
    }

    fn stdout(program: &Path, args: &[&str]) -> String {
        let output = Command::new(program)
            .args(args)
            .output()
            .expect("tool runs");
        assert!(output.status.success(), "{program:?} {args:?}: {output:?}");
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// Writes `sample` into a fresh temporary directory, returned with the file's path.
    fn written(sample: &Sample) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join(&sample.file_name);
        std::fs::write(&path, &sample.bytes).expect("sample written");
        let path = path.to_str().expect("UTF-8 temporary path").to_owned();
        (dir, path)
    }

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace()
            .map(|word| word.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
            .filter(|word| !word.is_empty())
            .map(str::to_ascii_lowercase)
            .collect()
    }

    fn assert_pdf_frame(sample: &Sample, pages: usize) {
        assert_eq!(sample.content_type, "application/pdf");
        assert!(sample.bytes.starts_with(b"%PDF-"));
        assert!(sample.bytes.ends_with(b"%%EOF"));
        assert_eq!(sample.pages.len(), pages);
        let page_objects = String::from_utf8_lossy(&sample.bytes)
            .matches("/Type /Page ")
            .count();
        assert_eq!(page_objects, pages);
        if let Some(pdfinfo) = tool("pdfinfo") {
            let (_dir, path) = written(sample);
            let info = stdout(&pdfinfo, &[&path]);
            assert!(
                info.lines()
                    .any(|line| line.split_whitespace().eq(["Pages:", &pages.to_string()])),
                "{info}"
            );
        }
    }

    #[test]
    fn clean_png_is_black_text_on_white() {
        let sample = corpus().clean_png().expect("clean sample");
        assert_eq!(
            (sample.name.as_str(), sample.file_name.as_str()),
            ("clean", "clean.png")
        );
        assert_eq!(sample.content_type, "image/png");
        assert!(
            (4..=6).contains(&line_count(&sample)),
            "{}",
            sample.pages[0]
        );
        let image = decode(&sample);
        assert_eq!(image.width(), 1200);
        assert!((200..=500).contains(&image.height()), "{}", image.height());
        let ink = image.pixels().filter(|pixel| pixel.0[0] < 64).count();
        let paper = image.pixels().filter(|pixel| pixel.0[0] == 255).count();
        assert!(ink > 5_000 && paper > image.len() * 3 / 4, "{ink} {paper}");
    }

    #[test]
    fn generation_is_deterministic() {
        let corpus = corpus();
        let first = corpus.clean_png().expect("clean sample");
        let second = corpus.clean_png().expect("clean sample");
        assert_eq!(first.bytes, second.bytes);
        let bench = corpus.bench_images(3).expect("bench images");
        let again = corpus.bench_images(3).expect("bench images");
        assert!(bench.iter().zip(&again).all(|(a, b)| a.bytes == b.bytes));
    }

    #[test]
    fn every_condition_has_reproducible_pages_with_their_text() {
        let corpus = corpus();
        let pages = corpus.degraded().expect("degraded pages");
        let again = corpus.degraded().expect("degraded pages");
        assert!(pages.iter().zip(&again).all(|(a, b)| a.bytes == b.bytes));
        for condition in Condition::ALL {
            let of: Vec<&Sample> = pages
                .iter()
                .filter(|page| page.condition == condition.name())
                .collect();
            assert!(!of.is_empty(), "{condition:?}");
            for page in of {
                assert!(page.pages[0].len() > 100, "{}", page.name);
                image::load_from_memory(&page.bytes).expect("decodes");
            }
        }
        // Each EXIF page, turned upright by its tag, is the clean page.
        let clean = decode(&pages[0]);
        for page in pages.iter().filter(|page| page.condition == "exif") {
            let mut decoder = ImageReader::new(Cursor::new(&page.bytes))
                .with_guessed_format()
                .expect("format")
                .into_decoder()
                .expect("decoder");
            let orientation = decoder.orientation().expect("orientation");
            let mut upright = DynamicImage::from_decoder(decoder).expect("decodes");
            upright.apply_orientation(orientation);
            assert_eq!(
                (upright.width(), upright.height()),
                clean.dimensions(),
                "{}",
                page.name
            );
        }
    }

    #[test]
    fn small_text_needs_upscaling() {
        let corpus = corpus();
        let x_height = corpus.face.x_height_px(SMALL.em_px);
        assert!((6.0..=7.5).contains(&x_height), "{x_height}");
        let sample = corpus.small_text_png().expect("small sample");
        assert!(
            (3..=6).contains(&line_count(&sample)),
            "{}",
            sample.pages[0]
        );
        let image = decode(&sample);
        assert_eq!(image.width(), 640);
        assert!(image.height() < 150, "{}", image.height());
    }

    #[test]
    fn low_contrast_stays_between_ink_and_paper() {
        let sample = corpus().low_contrast_png().expect("low-contrast sample");
        let image = decode(&sample);
        assert_eq!(image.width(), 1200);
        assert!(
            image
                .pixels()
                .all(|pixel| (150..=200).contains(&pixel.0[0]))
        );
        assert!(image.pixels().any(|pixel| pixel.0[0] <= 155));
    }

    #[test]
    fn exif_rotated_jpeg_reads_upright_once_oriented() {
        let corpus = corpus();
        let upright = decode(&corpus.clean_png().expect("clean sample"));
        let sample = corpus.exif_rotated_jpeg().expect("rotated sample");
        assert_eq!(sample.content_type, "image/jpeg");

        let mut decoder = ImageReader::new(Cursor::new(&sample.bytes))
            .with_guessed_format()
            .expect("format sniffed")
            .into_decoder()
            .expect("JPEG decoder");
        assert_eq!(
            decoder.orientation().expect("orientation"),
            Orientation::Rotate90
        );
        let mut image = DynamicImage::from_decoder(decoder).expect("JPEG decodes");
        assert_eq!(image.width(), upright.height());
        assert_eq!(image.height(), upright.width());

        image.apply_orientation(Orientation::Rotate90);
        let oriented = image.into_luma8();
        assert_eq!(oriented.dimensions(), upright.dimensions());
        // Compression blurs a little; the wrong way round (upside down) differs wholesale.
        let difference = |a: &GrayImage, b: &GrayImage| {
            let total: u64 = a
                .pixels()
                .zip(b.pixels())
                .map(|(p, q)| u64::from(p.0[0].abs_diff(q.0[0])))
                .sum();
            total as f64 / a.len() as f64
        };
        let right = difference(&oriented, &upright);
        let wrong = difference(&imageops::rotate180(&oriented), &upright);
        assert!(right < 3.0 && wrong > 4.0 * right, "{right} {wrong}");
    }

    #[test]
    fn text_layer_pdf_has_the_text() {
        let sample = text_layer_pdf(3).expect("text PDF");
        assert_pdf_frame(&sample, 3);
        for (index, page) in sample.pages.iter().enumerate() {
            assert!(page.starts_with(&format!("Page {}: ", index + 1)), "{page}");
        }
        let Some(pdftotext) = tool("pdftotext") else {
            return;
        };
        let (_dir, path) = written(&sample);
        for (index, page) in sample.pages.iter().enumerate() {
            let number = (index + 1).to_string();
            let text = stdout(&pdftotext, &["-f", &number, "-l", &number, &path, "-"]);
            assert_eq!(words(&text), words(page));
        }
        // Every word lies inside the right margin (612 - 72 pt).
        let layout = stdout(&pdftotext, &["-bbox-layout", &path, "-"]);
        let right_edges: Vec<f64> = layout
            .split("<word ")
            .skip(1)
            .filter_map(|word| {
                word.split("xMax=\"")
                    .nth(1)?
                    .split('"')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        assert_eq!(right_edges.len(), words(&sample.pages.join(" ")).len());
        assert!(right_edges.iter().all(|&x| x <= 540.0), "{right_edges:?}");
    }

    #[test]
    fn scanned_pdf_has_no_text_layer() {
        let sample = corpus().scanned_pdf(2).expect("scanned PDF");
        assert_pdf_frame(&sample, 2);
        assert_ne!(sample.pages[0], sample.pages[1]);
        assert!(sample.pages[1].starts_with("Page 2: "));
        assert!(!String::from_utf8_lossy(&sample.bytes).contains("/Font"));
        if let Some(pdftotext) = tool("pdftotext") {
            let (_dir, path) = written(&sample);
            assert_eq!(stdout(&pdftotext, &[&path, "-"]).trim(), "");
        }
    }

    #[test]
    fn zero_page_pdfs_are_refused() {
        assert!(matches!(text_layer_pdf(0), Err(CorpusError::NoPages)));
        assert!(matches!(corpus().scanned_pdf(0), Err(CorpusError::NoPages)));
    }

    #[test]
    fn bench_images_are_distinct_three_line_strips() {
        let samples = corpus().bench_images(50).expect("bench images");
        assert_eq!(samples.len(), 50);
        assert_eq!(samples[7].file_name, "007.png");
        let texts: HashSet<_> = samples.iter().map(|sample| &sample.pages[0]).collect();
        assert_eq!(texts.len(), 50);
        for sample in &samples {
            assert_eq!(line_count(sample), 3, "{}", sample.pages[0]);
            assert_eq!(decode(sample).dimensions(), (1000, 200));
        }
    }

    #[test]
    fn all_has_every_kind_once() {
        let samples = corpus().all().expect("corpus");
        let names: Vec<_> = samples.iter().map(|sample| sample.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "clean",
                "small_text",
                "low_contrast",
                "exif_rotated",
                "text_layer",
                "scanned"
            ]
        );
        let files: HashSet<_> = samples.iter().map(|sample| &sample.file_name).collect();
        assert_eq!(files.len(), samples.len());
    }

    #[test]
    fn missing_font_is_reported_with_its_path() {
        let Err(error) = Corpus::with_font("/nonexistent/font.ttf") else {
            panic!("a missing font loaded");
        };
        assert!(matches!(error, CorpusError::FontMissing { .. }));
        let message = error.to_string();
        assert!(message.contains("/nonexistent/font.ttf") && message.contains(FONT_ENV));
        let not_a_font = Corpus::with_font("/etc/hostname");
        assert!(matches!(not_a_font, Err(CorpusError::FontInvalid { .. })));
    }

    #[test]
    fn tesseract_reads_the_clean_sample() {
        let Some(tesseract) = tool("tesseract") else {
            return;
        };
        let sample = corpus().clean_png().expect("clean sample");
        let (_dir, path) = written(&sample);
        let read: HashSet<_> = words(&stdout(&tesseract, &[&path, "-"]))
            .into_iter()
            .collect();
        let expected = words(&sample.pages[0]);
        let found = expected.iter().filter(|word| read.contains(*word)).count();
        assert!(
            found * 100 >= expected.len() * 95,
            "{found}/{} in {read:?}",
            expected.len()
        );
    }
}
