//! Skew: the angle of a page's text lines, measured from how sharply its ink falls into rows when
//! the page is looked at under each candidate angle (a projection profile), and the turn that
//! levels them. Tesseract reads lines a few degrees off level badly: at 4° on tightly spaced
//! notes it finds no text at all.

use image::{GrayImage, Luma};
use imageproc::{
    contrast::otsu_level,
    geometric_transformations::{Border, Interpolation, rotate_about_center_no_crop},
};

/// The largest skew searched for, in degrees either way: photos of notes held roughly level.
pub const MAX_DEGREES: f32 = 6.0;
/// Skews smaller than this are left alone: Tesseract reads them as well as level text.
pub const MIN_CORRECTED_DEGREES: f32 = 1.6;
/// The page is measured at most this many pixels wide, for speed.
const MEASURED_WIDTH: u32 = 1000;
/// Fewer ink pixels than this say nothing about lines.
const MIN_INK_POINTS: usize = 200;

/// The angle in degrees by which the page's lines are turned (the angle imageproc's
/// `rotate_about_center` would have turned level lines by), or `None` on a page without enough
/// ink to tell.
pub fn measure(gray: &GrayImage) -> Option<f32> {
    let points = ink_points(gray);
    if points.len() < MIN_INK_POINTS {
        return None;
    }
    let coarse = best_angle(&points, -MAX_DEGREES, MAX_DEGREES, 0.2);
    Some(best_angle(&points, coarse - 0.2, coarse + 0.2, 0.05))
}

/// The page turned back by `degrees`, on a canvas large enough to keep every corner, the new
/// corners filled with `paper`.
pub fn level(gray: &GrayImage, degrees: f32, paper: u8) -> GrayImage {
    rotate_about_center_no_crop(
        gray,
        -degrees.to_radians(),
        Interpolation::Bilinear,
        Border::Constant(Luma([paper])),
    )
}

/// Ink pixels of a copy at most [`MEASURED_WIDTH`] wide, in that copy's coordinates. Ink is the
/// minority side of Otsu's threshold.
#[allow(clippy::cast_precision_loss)]
fn ink_points(gray: &GrayImage) -> Vec<(f32, f32)> {
    let step = gray.width().div_ceil(MEASURED_WIDTH).max(1);
    let level = otsu_level(gray);
    let dark = gray.pixels().filter(|pixel| pixel.0[0] <= level).count();
    let dark_is_ink = dark * 2 <= gray.pixels().len();
    let mut points = Vec::new();
    for y in (0..gray.height()).step_by(step as usize) {
        for x in (0..gray.width()).step_by(step as usize) {
            if (gray.get_pixel(x, y).0[0] <= level) == dark_is_ink {
                points.push(((x / step) as f32, (y / step) as f32));
            }
        }
    }
    points
}

/// The angle in `[from, to]` (every `step` degrees) under which the ink's row profile is sharpest.
fn best_angle(points: &[(f32, f32)], from: f32, to: f32, step: f32) -> f32 {
    let mut best = (f64::MIN, 0.0);
    let mut angle = from;
    while angle <= to + step / 2.0 {
        let score = sharpness(points, angle);
        if score > best.0 {
            best = (score, angle);
        }
        angle += step;
    }
    best.1
}

/// How unevenly the ink falls into one-pixel rows when the page is turned back by `degrees`: the
/// sum of squared differences between neighbouring rows, largest when lines are level.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn sharpness(points: &[(f32, f32)], degrees: f32) -> f64 {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let rows: Vec<f32> = points.iter().map(|(x, y)| y * cos - x * sin).collect();
    let low = rows.iter().copied().fold(f32::INFINITY, f32::min);
    let high = rows.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut counts = vec![0_i64; (high - low) as usize + 2];
    for row in rows {
        counts[(row - low) as usize] += 1;
    }
    counts
        .windows(2)
        .map(|pair| ((pair[1] - pair[0]) as f64).powi(2))
        .sum()
}

#[cfg(test)]
mod tests {
    use imageproc::geometric_transformations::rotate_about_center;

    use super::*;

    /// Dark bars standing in for lines of text, with gaps in them like words.
    fn lines() -> GrayImage {
        GrayImage::from_fn(800, 500, |x, y| {
            let in_line = y > 80 && y < 420 && (y % 40) < 16 && x > 60 && x < 740 && x % 50 > 8;
            Luma([if in_line { 20 } else { 250 }])
        })
    }

    #[test]
    fn turned_lines_are_measured_and_levelled() {
        for degrees in [4.0_f32, -3.0, -5.0, 1.5] {
            let turned = rotate_about_center(
                &lines(),
                degrees.to_radians(),
                Interpolation::Bilinear,
                Border::Constant(Luma([250])),
            );
            let measured = measure(&turned).expect("ink");
            assert!((measured - degrees).abs() < 0.15, "{degrees}: {measured}");
            let levelled = measure(&level(&turned, measured, 250)).expect("ink");
            assert!(
                levelled.abs() < 0.15,
                "{degrees}: {levelled} after levelling"
            );
        }
    }

    #[test]
    fn level_text_and_blank_pages() {
        assert!(measure(&lines()).expect("ink").abs() < 0.1);
        assert_eq!(measure(&GrayImage::from_pixel(300, 200, Luma([255]))), None);
    }
}
