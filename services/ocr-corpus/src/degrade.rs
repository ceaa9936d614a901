//! Photographs of notes, imitated: the clean pages of the corpus blurred, noised, compressed,
//! shrunk, unevenly lit, skewed, seen at an angle, faded, on coloured paper, in two columns, in a
//! handwriting-like font and stored with every EXIF orientation. Each degraded page keeps the known
//! text of the page it came from, so a reader's character error rate can be measured per condition.
//!
//! Every step is deterministic: noise comes from a generator seeded with the page's index.

use image::{
    DynamicImage, GrayImage, ImageEncoder, Luma, Rgb, RgbImage,
    codecs::jpeg::JpegEncoder,
    imageops::{self, FilterType},
    metadata::Orientation,
};
use imageproc::{
    filter::gaussian_blur_f32,
    geometric_transformations::{Border, Interpolation, Projection, rotate_about_center, warp},
};

use crate::{
    CLEAN, CorpusError, Sample, exif,
    render::{self, Page, Style, Typeface},
    text::{self, SplitMix64},
};

/// Where Debian's `fonts-comic-neue` installs Comic Neue: a free font drawn after handwriting.
pub const HANDWRITING_FONT_PATH: &str =
    "/usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf";

/// The paragraphs each condition is applied to, one page each.
const PARAGRAPHS: [&str; 3] = [text::PHOTOSYNTHESIS, text::MITOCHONDRIA, text::ENZYMES];

/// A way a photographed page differs from a clean scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The clean page itself: the reference the others are compared with.
    Clean,
    /// Out of focus: Gaussian blur, sigma 1.6 px, on smaller text (as [`PHOTO`]).
    Blur,
    /// Sensor noise: Gaussian, sigma 30 gray levels, on smaller text.
    Noise,
    /// A JPEG saved at quality 15, of smaller text.
    Jpeg,
    /// Photographed from afar: the page at 45% of its size (x-height about 7 px).
    LowResolution,
    /// A lamp on one side and a hand's shadow across the page.
    UnevenLight,
    /// The page turned by up to ±5°.
    Skew,
    /// The page photographed at an angle on a dark desk.
    Perspective,
    /// Pale gray ink on gray paper: 47 levels apart.
    Faded,
    /// Blue ink on yellow paper, in colour.
    ColouredPaper,
    /// Two columns of text side by side.
    TwoColumns,
    /// A handwriting-like font (Comic Neue).
    Handwriting,
    /// The clean page stored turned or mirrored, with the EXIF orientation that puts it right.
    Exif,
    /// All of a quick phone snapshot at once: smaller text slightly out of focus (sigma 1.2),
    /// turned 1.5°, lit from one side, with sensor noise, saved as a JPEG at quality 60.
    PhonePhoto,
}

impl Condition {
    pub const ALL: [Self; 14] = [
        Self::Clean,
        Self::Blur,
        Self::Noise,
        Self::Jpeg,
        Self::LowResolution,
        Self::UnevenLight,
        Self::Skew,
        Self::Perspective,
        Self::Faded,
        Self::ColouredPaper,
        Self::TwoColumns,
        Self::Handwriting,
        Self::Exif,
        Self::PhonePhoto,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Blur => "blur",
            Self::Noise => "noise",
            Self::Jpeg => "jpeg",
            Self::LowResolution => "low_resolution",
            Self::UnevenLight => "uneven_light",
            Self::Skew => "skew",
            Self::Perspective => "perspective",
            Self::Faded => "faded",
            Self::ColouredPaper => "coloured_paper",
            Self::TwoColumns => "two_columns",
            Self::Handwriting => "handwriting",
            Self::Exif => "exif",
            Self::PhonePhoto => "phone_photo",
        }
    }
}

/// Text as a phone photographs a page from a normal distance: an x-height of about 11 px.
const PHOTO: Style = Style {
    em_px: 20.0,
    width: 900,
    margin: 40,
    ..CLEAN
};

/// Skew angles, one per page, in degrees.
const SKEW_DEGREES: [f32; 3] = [4.0, -3.0, -5.0];
/// The EXIF orientations other than "as stored".
const ORIENTATIONS: [Orientation; 7] = [
    Orientation::FlipHorizontal,
    Orientation::Rotate180,
    Orientation::FlipVertical,
    Orientation::Rotate90FlipH,
    Orientation::Rotate90,
    Orientation::Rotate270FlipH,
    Orientation::Rotate270,
];

/// Every condition's pages.
pub(crate) fn degraded(
    face: &Typeface,
    handwriting: &Typeface,
) -> Result<Vec<Sample>, CorpusError> {
    let mut samples = Vec::new();
    for condition in Condition::ALL {
        samples.extend(condition_samples(face, handwriting, condition)?);
    }
    Ok(samples)
}

fn condition_samples(
    face: &Typeface,
    handwriting: &Typeface,
    condition: Condition,
) -> Result<Vec<Sample>, CorpusError> {
    let name = condition.name();
    if condition == Condition::TwoColumns {
        let page = two_columns(face)?;
        return Ok(vec![png_sample(name, 0, &page.image, page.text)?]);
    }
    if condition == Condition::Exif {
        let page = render::render(face, &CLEAN, &[PARAGRAPHS[0]])?;
        return ORIENTATIONS
            .iter()
            .enumerate()
            .map(|(index, orientation)| {
                let stored = stored_for(&page.image, *orientation);
                let bytes = jpeg(&DynamicImage::ImageLuma8(stored), 90, Some(*orientation))?;
                Ok(sample(
                    name,
                    index,
                    "jpg",
                    "image/jpeg",
                    bytes,
                    page.text.clone(),
                ))
            })
            .collect();
    }
    let mut samples = Vec::new();
    for (index, paragraph) in PARAGRAPHS.iter().enumerate() {
        let typeface = if condition == Condition::Handwriting {
            handwriting
        } else {
            face
        };
        let style = match condition {
            Condition::Faded => Style {
                ink: 175,
                paper: 222,
                ..CLEAN
            },
            Condition::Blur | Condition::Noise | Condition::Jpeg | Condition::PhonePhoto => PHOTO,
            _ => CLEAN,
        };
        let Page { image, text } = render::render(typeface, &style, &[paragraph])?;
        let seed = index as u64 + 1;
        let made = match condition {
            Condition::Blur => png_sample(name, index, &gaussian_blur_f32(&image, 1.6), text)?,
            Condition::Noise => png_sample(name, index, &noisy(&image, 30.0, seed), text)?,
            Condition::Jpeg => {
                let bytes = jpeg(&DynamicImage::ImageLuma8(image), 15, None)?;
                sample(name, index, "jpg", "image/jpeg", bytes, text)
            }
            Condition::LowResolution => png_sample(name, index, &shrunk(&image, 0.45), text)?,
            Condition::UnevenLight => png_sample(name, index, &unevenly_lit(&image), text)?,
            Condition::Skew => png_sample(name, index, &skewed(&image, SKEW_DEGREES[index]), text)?,
            Condition::Perspective => png_sample(name, index, &at_an_angle(&image), text)?,
            Condition::PhonePhoto => {
                let snapshot = skewed(&gaussian_blur_f32(&image, 1.2), 1.5);
                let snapshot = noisy(&unevenly_lit(&snapshot), 20.0, seed);
                let bytes = jpeg(&DynamicImage::ImageLuma8(snapshot), 60, None)?;
                sample(name, index, "jpg", "image/jpeg", bytes, text)
            }
            Condition::ColouredPaper => {
                let coloured = coloured(&image, Rgb([250, 236, 170]), Rgb([35, 45, 140]));
                let mut bytes = Vec::new();
                DynamicImage::ImageRgb8(coloured).write_to(
                    &mut std::io::Cursor::new(&mut bytes),
                    image::ImageFormat::Png,
                )?;
                sample(name, index, "png", "image/png", bytes, text)
            }
            Condition::Clean
            | Condition::Faded
            | Condition::Handwriting
            | Condition::TwoColumns
            | Condition::Exif => png_sample(name, index, &image, text)?,
        };
        samples.push(made);
    }
    Ok(samples)
}

fn sample(
    condition: &'static str,
    index: usize,
    extension: &str,
    content_type: &'static str,
    bytes: Vec<u8>,
    text: String,
) -> Sample {
    Sample {
        name: format!("{condition}_{index}"),
        file_name: format!("{condition}_{index}.{extension}"),
        content_type,
        bytes,
        pages: vec![text],
        condition,
    }
}

fn png_sample(
    condition: &'static str,
    index: usize,
    image: &GrayImage,
    text: String,
) -> Result<Sample, CorpusError> {
    Ok(sample(
        condition,
        index,
        "png",
        "image/png",
        render::png(image)?,
        text,
    ))
}

fn jpeg(
    image: &DynamicImage,
    quality: u8,
    orientation: Option<Orientation>,
) -> Result<Vec<u8>, CorpusError> {
    let mut bytes = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut bytes, quality);
    if let Some(orientation) = orientation {
        encoder
            .set_exif_metadata(exif::orientation_block(orientation))
            .map_err(image::ImageError::Unsupported)?;
    }
    let gray = image.to_luma8();
    encoder.write_image(
        gray.as_raw(),
        gray.width(),
        gray.height(),
        image::ExtendedColorType::L8,
    )?;
    Ok(bytes)
}

/// The pixels a camera stores for a page that `orientation` turns upright.
fn stored_for(upright: &GrayImage, orientation: Orientation) -> GrayImage {
    let mut image = DynamicImage::ImageLuma8(upright.clone());
    // Applying the inverse transform: each orientation is its own inverse except the quarter turns.
    let inverse = match orientation {
        Orientation::Rotate90 => Orientation::Rotate270,
        Orientation::Rotate270 => Orientation::Rotate90,
        other => other,
    };
    image.apply_orientation(inverse);
    image.into_luma8()
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn level(value: f32) -> u8 {
    value.round().clamp(0.0, 255.0) as u8
}

fn noisy(image: &GrayImage, sigma: f32, seed: u64) -> GrayImage {
    let mut noise = SplitMix64(seed);
    let mut out = image.clone();
    for pixel in out.pixels_mut() {
        pixel.0[0] = level(f32::from(pixel.0[0]) + sigma * noise.normal());
    }
    out
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn shrunk(image: &GrayImage, factor: f32) -> GrayImage {
    let width = (image.width() as f32 * factor).round() as u32;
    let height = (image.height() as f32 * factor).round() as u32;
    imageops::resize(image, width, height, FilterType::Triangle)
}

/// Light falling off from the top left to 45% at the bottom right, and a soft shadow band across
/// the lower third.
#[allow(clippy::cast_precision_loss)]
fn unevenly_lit(image: &GrayImage) -> GrayImage {
    let (width, height) = (image.width() as f32, image.height() as f32);
    let mut out = image.clone();
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let (u, v) = (x as f32 / width, y as f32 / height);
        let lamp = 1.0 - 0.55 * (u + v) / 2.0;
        let shadow = 1.0 - 0.3 * (-((v - 0.7) / 0.12).powi(2)).exp();
        pixel.0[0] = level(f32::from(pixel.0[0]) * lamp * shadow);
    }
    out
}

/// The page, with a white border so no text leaves it, turned by `degrees`.
fn skewed(image: &GrayImage, degrees: f32) -> GrayImage {
    let padded = padded(image, 80, 255);
    rotate_about_center(
        &padded,
        degrees.to_radians(),
        Interpolation::Bilinear,
        Border::Constant(Luma([255])),
    )
}

fn padded(image: &GrayImage, border: u32, value: u8) -> GrayImage {
    let mut out = GrayImage::from_pixel(
        image.width() + 2 * border,
        image.height() + 2 * border,
        Luma([value]),
    );
    imageops::replace(&mut out, image, i64::from(border), i64::from(border));
    out
}

/// The page on a dark desk, its far edge narrower than its near one: a photograph taken from
/// above the bottom of the page.
#[allow(clippy::cast_precision_loss)]
fn at_an_angle(image: &GrayImage) -> GrayImage {
    let desk = 70;
    let border = 60;
    let canvas = padded(image, border, desk);
    let (width, height) = (canvas.width() as f32, canvas.height() as f32);
    let (left, top) = (border as f32, border as f32);
    let (right, bottom) = (width - border as f32, height - border as f32);
    let inset = (right - left) * 0.07;
    let page = [(left, top), (right, top), (right, bottom), (left, bottom)];
    let seen = [
        (left + inset, top + 10.0),
        (right - inset, top + 10.0),
        (right, bottom),
        (left, bottom),
    ];
    match Projection::from_control_points(page, seen) {
        Some(projection) => warp(
            &canvas,
            projection,
            Interpolation::Bilinear,
            Border::Constant(Luma([desk])),
        ),
        None => canvas,
    }
}

/// The page in colour: black becomes `ink`, white becomes `paper`.
fn coloured(image: &GrayImage, paper: Rgb<u8>, ink: Rgb<u8>) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let white = f32::from(image.get_pixel(x, y).0[0]) / 255.0;
        Rgb(std::array::from_fn(|channel| {
            level(
                f32::from(ink.0[channel])
                    + white * (f32::from(paper.0[channel]) - f32::from(ink.0[channel])),
            )
        }))
    })
}

/// Two paragraphs in two columns on one page; the known text reads the left column first.
fn two_columns(face: &Typeface) -> Result<Page, CorpusError> {
    let column = Style {
        width: 560,
        margin: 20,
        ..CLEAN
    };
    let left = render::render(face, &column, &[PARAGRAPHS[0]])?;
    let right = render::render(face, &column, &[PARAGRAPHS[1]])?;
    let height = left.image.height().max(right.image.height()) + 80;
    let mut page = GrayImage::from_pixel(1240, height, Luma([CLEAN.paper]));
    imageops::replace(&mut page, &left.image, 40, 40);
    imageops::replace(&mut page, &right.image, 640, 40);
    Ok(Page {
        image: page,
        text: format!("{}\n{}", left.text, right.text),
    })
}
