//! Uneven light: a lamp to one side, a hand's shadow. The paper's brightness is estimated block by
//! block (paper covers most of any block of text, so a high percentile of the block is paper; not
//! its maximum, which sensor noise pushes to white), and each pixel is divided by it, so the paper
//! comes out evenly white and one threshold separates ink everywhere. Tesseract's single global
//! threshold otherwise loses the text in the shadow.

use image::{GrayImage, Luma, imageops};

/// Side of the blocks the paper's brightness is measured in, in pixels.
const BLOCK: u32 = 32;
/// The percentile of a block's gray levels taken as its paper, and the one taken as its ink.
const PAPER_PERCENTILE: u64 = 90;
const INK_PERCENTILE: u64 = 10;
/// A block whose paper and ink percentiles differ by this much holds something written.
const INKED_RANGE: u8 = 40;

/// The paper under a page's text.
pub struct Paper {
    /// Brightness, one value per [`BLOCK`]-sized block, smoothed over neighbouring blocks.
    pub levels: GrayImage,
    /// The 5th and 95th percentile of the brightness of the blocks holding writing: how uneven the
    /// light on the text is. Blocks without writing are left out, so a dark desk around a
    /// photographed page does not count as a shadow.
    pub spread: (u8, u8),
}

/// The gray level under which `fraction` percent of a histogram's pixels lie.
fn percentile(histogram: &[u32; 256], fraction: u64) -> u8 {
    let total: u64 = histogram.iter().map(|count| u64::from(*count)).sum();
    let wanted = total * fraction / 100;
    let mut seen = 0_u64;
    let level = histogram
        .iter()
        .position(|count| {
            seen += u64::from(*count);
            seen > wanted
        })
        .unwrap_or(255);
    u8::try_from(level).unwrap_or(u8::MAX)
}

pub fn paper(gray: &GrayImage) -> Paper {
    let (columns, rows) = (gray.width().div_ceil(BLOCK), gray.height().div_ceil(BLOCK));
    let mut histograms = vec![[0_u32; 256]; (columns * rows) as usize];
    for (x, y, pixel) in gray.enumerate_pixels() {
        histograms[((y / BLOCK) * columns + x / BLOCK) as usize][usize::from(pixel.0[0])] += 1;
    }
    let blocks = GrayImage::from_fn(columns, rows, |x, y| {
        Luma([percentile(
            &histograms[(y * columns + x) as usize],
            PAPER_PERCENTILE,
        )])
    });
    // Smooths away a block that happened to hold only ink.
    let levels = GrayImage::from_fn(columns, rows, |x, y| {
        let mut values = Vec::with_capacity(9);
        for ny in y.saturating_sub(1)..=(y + 1).min(rows - 1) {
            for nx in x.saturating_sub(1)..=(x + 1).min(columns - 1) {
                values.push(blocks.get_pixel(nx, ny).0[0]);
            }
        }
        values.sort_unstable();
        Luma([values[values.len() / 2]])
    });
    let mut inked: Vec<u8> = histograms
        .iter()
        .zip(levels.pixels())
        .filter(|(histogram, _)| {
            percentile(histogram, PAPER_PERCENTILE) - percentile(histogram, INK_PERCENTILE)
                >= INKED_RANGE
        })
        .map(|(_, level)| level.0[0])
        .collect();
    inked.sort_unstable();
    let spread = if inked.is_empty() {
        (0, 0)
    } else {
        let at = |fraction: usize| inked[(inked.len() - 1) * fraction / 100];
        (at(5), at(95))
    };
    Paper { levels, spread }
}

/// Every pixel divided by the paper's brightness where it stands, so the paper becomes white.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub fn flatten(gray: &GrayImage, paper: &Paper) -> GrayImage {
    let light = imageops::resize(
        &paper.levels,
        gray.width(),
        gray.height(),
        imageops::FilterType::Triangle,
    );
    GrayImage::from_fn(gray.width(), gray.height(), |x, y| {
        let value = f32::from(gray.get_pixel(x, y).0[0]);
        let paper = f32::from(light.get_pixel(x, y).0[0]).max(1.0);
        Luma([(value * 255.0 / paper).round().min(255.0) as u8])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text-like bars on paper lit from 250 on the left to 110 on the right.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn shaded() -> GrayImage {
        GrayImage::from_fn(640, 320, |x, y| {
            let paper = 250.0 - 140.0 * x as f32 / 640.0;
            let ink = (y % 40) < 14 && x % 30 > 6;
            Luma([if ink {
                (paper * 0.15) as u8
            } else {
                paper as u8
            }])
        })
    }

    #[test]
    fn uneven_paper_is_measured_and_made_white() {
        let page = shaded();
        let (low, high) = paper(&page).spread;
        assert!(low < 130 && high > 230, "{low}-{high}");
        let flat = flatten(&page, &paper(&page));
        let (low, high) = paper(&flat).spread;
        assert!(low >= 245, "{low}-{high}");
        // Ink stays dark on both sides.
        assert!(flat.get_pixel(10, 5).0[0] < 60);
        assert!(flat.get_pixel(620, 5).0[0] < 60);
    }

    #[test]
    fn even_paper_and_a_dark_desk_around_it_have_no_spread() {
        let page = GrayImage::from_fn(300, 300, |x, y| {
            Luma([if (y % 30) < 10 && x % 20 > 5 { 10 } else { 240 }])
        });
        assert_eq!(paper(&page).spread, (240, 240));
        let on_desk = GrayImage::from_fn(500, 500, |x, y| {
            let on_page = (100..400).contains(&x) && (100..400).contains(&y);
            let ink = on_page && (y % 30) < 10 && x % 20 > 5;
            Luma([if ink {
                10
            } else if on_page {
                240
            } else {
                70
            }])
        });
        let (low, high) = paper(&on_desk).spread;
        assert!(high - low < 40, "{low}-{high}");
    }
}
