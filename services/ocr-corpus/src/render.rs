//! Rasterising known text onto grayscale pages.

use std::io::Cursor;
use std::path::Path;

use ab_glyph::{Font, FontVec, PxScale};
use image::{GrayImage, ImageFormat, Luma};
use imageproc::drawing::{draw_text_mut, text_size};

use crate::CorpusError;

/// Baseline-to-baseline distance as a multiple of the font's ascent-to-descent height.
const LINE_SPACING: f32 = 1.25;

/// A loaded font that can draw every printable ASCII character.
pub(crate) struct Typeface {
    font: FontVec,
    units_per_em: f32,
}

impl Typeface {
    pub(crate) fn load(path: &Path) -> Result<Self, CorpusError> {
        let bytes = std::fs::read(path).map_err(|source| CorpusError::FontMissing {
            path: path.to_owned(),
            source,
        })?;
        let invalid = || CorpusError::FontInvalid {
            path: path.to_owned(),
        };
        let font = FontVec::try_from_vec(bytes).map_err(|_| invalid())?;
        let units_per_em = font.units_per_em().ok_or_else(invalid)?;
        // Glyph 0 is "missing glyph": a font without the ASCII letters would render boxes.
        if (' '..='~').any(|c| font.glyph_id(c).0 == 0) {
            return Err(invalid());
        }
        Ok(Self { font, units_per_em })
    }

    /// ab_glyph scales by ascent-to-descent height; typographic sizes are in ems.
    fn scale(&self, em_px: f32) -> PxScale {
        PxScale::from(em_px * self.font.height_unscaled() / self.units_per_em)
    }

    fn width(&self, scale: PxScale, text: &str) -> u32 {
        text_size(scale, &self.font, text).0
    }

    #[cfg(test)]
    pub(crate) fn x_height_px(&self, em_px: f32) -> f32 {
        let glyph = self.font.glyph_id('x').with_scale(self.scale(em_px));
        self.font
            .outline_glyph(glyph)
            .map_or(0.0, |outline| outline.px_bounds().height())
    }
}

/// How a page looks.
pub(crate) struct Style {
    /// Font size in pixels per em; DejaVu Sans's x-height is 0.55 em.
    pub em_px: f32,
    pub width: u32,
    /// A fixed page height (a scanned sheet); `None` fits the height to the text.
    pub height: Option<u32>,
    pub margin: u32,
    pub ink: u8,
    pub paper: u8,
}

/// A rendered page and the exact text on it, one line per row.
pub(crate) struct Page {
    pub image: GrayImage,
    pub text: String,
}

/// Draws `paragraphs`, each word-wrapped to the page's width and starting on a new line.
pub(crate) fn render(
    face: &Typeface,
    style: &Style,
    paragraphs: &[&str],
) -> Result<Page, CorpusError> {
    let scale = face.scale(style.em_px);
    let max_width = style.width.saturating_sub(2 * style.margin);
    let mut lines = Vec::new();
    for paragraph in paragraphs {
        wrap(face, scale, paragraph, max_width, &mut lines)?;
    }

    let advance = scale.y * LINE_SPACING;
    let text_height = lines.len().saturating_sub(1) as f32 * advance + scale.y;
    let needed = 2 * style.margin + text_height.ceil() as u32;
    let height = match style.height {
        None => needed,
        Some(height) if height >= needed => height,
        Some(_) => {
            return Err(CorpusError::TextDoesNotFit {
                text: lines.join("\n"),
            });
        }
    };

    let mut image = GrayImage::from_pixel(style.width, height, Luma([style.paper]));
    for (row, line) in lines.iter().enumerate() {
        let y = style.margin as f32 + row as f32 * advance;
        draw_text_mut(
            &mut image,
            Luma([style.ink]),
            style.margin as i32,
            y.round() as i32,
            scale,
            &face.font,
            line,
        );
    }
    Ok(Page {
        image,
        text: lines.join("\n"),
    })
}

/// Greedy word wrap, measured with the font so no line runs into the margin.
fn wrap(
    face: &Typeface,
    scale: PxScale,
    paragraph: &str,
    max_width: u32,
    lines: &mut Vec<String>,
) -> Result<(), CorpusError> {
    let mut line = String::new();
    for word in paragraph.split_whitespace() {
        if !line.is_empty() {
            let candidate = format!("{line} {word}");
            if face.width(scale, &candidate) <= max_width {
                line = candidate;
                continue;
            }
            lines.push(std::mem::take(&mut line));
        }
        if face.width(scale, word) > max_width {
            return Err(CorpusError::TextDoesNotFit {
                text: word.to_owned(),
            });
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    Ok(())
}

pub(crate) fn png(image: &GrayImage) -> Result<Vec<u8>, CorpusError> {
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)?;
    Ok(bytes)
}
