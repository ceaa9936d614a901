//! PDFs through Debian's poppler-utils: `pdfinfo` for the page count and encryption, `pdftotext
//! -bbox-layout` for pages that carry a text layer, `pdftoppm` to rasterise scanned pages for OCR.
//! Each tool runs as its own process under the request's deadline, so a hostile PDF can at worst
//! crash or stall a child that is then killed, never the service.

use std::{path::Path, process::Stdio};

use image::{GrayImage, ImageFormat};
use quick_xml::{
    Reader,
    events::{BytesStart, Event},
};
use tokio::{process::Command, time::Instant};

use crate::words::{BoundingBox, Word};

/// Resolution scanned pages are rendered at, and the pixel space every PDF page's boxes are given in.
pub const RENDER_DPI: u32 = 300;
const POINTS_PER_INCH: f32 = 72.0;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PdfError {
    #[error("the PDF is encrypted; remove its password protection and upload it again")]
    Encrypted,
    #[error("the PDF is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error("the PDF has {pages} pages, over the limit of {limit}")]
    TooManyPages { pages: u32, limit: u32 },
    #[error("the PDF has no pages")]
    NoPages,
    #[error("reading the PDF ran past the request's deadline")]
    DeadlineExceeded,
    #[error("running {tool}: {detail}")]
    Tool { tool: &'static str, detail: String },
}

/// Page count, refusing encrypted PDFs and more than `max_pages` pages.
pub async fn page_count(path: &Path, max_pages: u32, deadline: Instant) -> Result<u32, PdfError> {
    let output = run("pdfinfo", &[path.as_os_str()], deadline).await?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("Incorrect password") {
            return Err(PdfError::Encrypted);
        }
        return Err(PdfError::Corrupt(first_line(&stderr)));
    }
    let (pages, encrypted) = parse_info(&String::from_utf8_lossy(&output.stdout))?;
    if encrypted {
        return Err(PdfError::Encrypted);
    }
    match pages {
        0 => Err(PdfError::NoPages),
        pages if pages > max_pages => Err(PdfError::TooManyPages {
            pages,
            limit: max_pages,
        }),
        pages => Ok(pages),
    }
}

/// `(pages, encrypted)` from `pdfinfo`'s report.
pub fn parse_info(report: &str) -> Result<(u32, bool), PdfError> {
    let field = |name: &str| {
        report.lines().find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
    };
    let pages = field("Pages")
        .and_then(|pages| pages.parse().ok())
        .ok_or_else(|| PdfError::Corrupt("no page count".to_owned()))?;
    let encrypted = field("Encrypted").is_some_and(|value| value.starts_with("yes"));
    Ok((pages, encrypted))
}

/// A page as its text layer describes it; boxes are in pixels at [`RENDER_DPI`].
#[derive(Debug, Clone, PartialEq)]
pub struct TextLayerPage {
    pub width_pt: f32,
    pub height_pt: f32,
    pub words: Vec<Word>,
}

/// Every page's text layer (pages without one come back without words).
pub async fn text_layers(path: &Path, deadline: Instant) -> Result<Vec<TextLayerPage>, PdfError> {
    let output = run(
        "pdftotext",
        &["-bbox-layout".as_ref(), path.as_os_str(), "-".as_ref()],
        deadline,
    )
    .await?;
    if !output.status.success() {
        return Err(PdfError::Corrupt(first_line(&String::from_utf8_lossy(
            &output.stderr,
        ))));
    }
    parse_bbox_layout(&String::from_utf8_lossy(&output.stdout))
}

/// Reads `pdftotext -bbox-layout` XHTML: pages, blocks, lines and words with their boxes in points.
pub fn parse_bbox_layout(xhtml: &str) -> Result<Vec<TextLayerPage>, PdfError> {
    let corrupt = |err: &dyn std::fmt::Display| PdfError::Corrupt(format!("text layer: {err}"));
    let scale = RENDER_DPI as f32 / POINTS_PER_INCH;
    let mut reader = Reader::from_str(xhtml);
    let mut pages: Vec<TextLayerPage> = Vec::new();
    let (mut block, mut line) = (0, 0);
    let mut word: Option<(BoundingBox, String)> = None;
    loop {
        match reader.read_event().map_err(|err| corrupt(&err))? {
            Event::Eof => break,
            Event::Start(tag) => match tag.name().as_ref() {
                b"page" => {
                    pages.push(TextLayerPage {
                        width_pt: attribute(&tag, b"width")?,
                        height_pt: attribute(&tag, b"height")?,
                        words: Vec::new(),
                    });
                    (block, line) = (0, 0);
                }
                b"block" => block += 1,
                b"line" => line += 1,
                b"word" => {
                    let (x_min, y_min) = (attribute(&tag, b"xMin")?, attribute(&tag, b"yMin")?);
                    let (x_max, y_max) = (attribute(&tag, b"xMax")?, attribute(&tag, b"yMax")?);
                    word = Some((
                        BoundingBox {
                            x: pixels(x_min, scale),
                            y: pixels(y_min, scale),
                            width: pixels(x_max - x_min, scale),
                            height: pixels(y_max - y_min, scale),
                        },
                        String::new(),
                    ));
                }
                _ => {}
            },
            Event::Text(text) => {
                if let Some((_, content)) = word.as_mut() {
                    content.push_str(&text.decode().map_err(|err| corrupt(&err))?);
                }
            }
            Event::GeneralRef(reference) => {
                if let Some((_, content)) = word.as_mut() {
                    let name = reference.decode().map_err(|err| corrupt(&err))?;
                    let character = quick_xml::escape::resolve_predefined_entity(&name)
                        .map(str::to_owned)
                        .or_else(|| {
                            reference
                                .resolve_char_ref()
                                .ok()
                                .flatten()
                                .map(String::from)
                        })
                        .unwrap_or_default();
                    content.push_str(&character);
                }
            }
            Event::End(tag) if tag.name().as_ref() == b"word" => {
                if let (Some((bbox, text)), Some(page)) = (word.take(), pages.last_mut()) {
                    let text = text.trim();
                    if !text.is_empty() {
                        page.words.push(Word {
                            text: text.to_owned(),
                            confidence: 100.0,
                            bbox,
                            block,
                            line,
                            low_confidence: false,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(pages)
}

fn attribute(tag: &BytesStart<'_>, name: &[u8]) -> Result<f32, PdfError> {
    let missing = || {
        PdfError::Corrupt(format!(
            "text layer: <{}> lacks a numeric {}",
            String::from_utf8_lossy(tag.name().as_ref()),
            String::from_utf8_lossy(name)
        ))
    };
    let value = tag
        .try_get_attribute(name)
        .map_err(|_| missing())?
        .ok_or_else(missing)?;
    std::str::from_utf8(&value.value)
        .ok()
        .and_then(|text| text.parse::<f32>().ok())
        .filter(|number| number.is_finite())
        .ok_or_else(missing)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn pixels(points: f32, scale: f32) -> u32 {
    (points * scale).round().max(0.0) as u32
}

/// The resolution a page of the given size is rasterised at: [`RENDER_DPI`], lowered so the page
/// stays within `max_pixels`.
pub fn raster_dpi(width_pt: f32, height_pt: f32, max_pixels: u64) -> u32 {
    let area_sq_in = f64::from(width_pt.max(1.0)) * f64::from(height_pt.max(1.0))
        / f64::from(POINTS_PER_INCH).powi(2);
    #[allow(clippy::cast_precision_loss)]
    let fitting = (max_pixels as f64 / area_sq_in).sqrt().floor();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let fitting = fitting.clamp(1.0, f64::from(RENDER_DPI)) as u32;
    fitting
}

/// Renders one page (1-based) in grayscale at `dpi`.
pub async fn rasterize(
    path: &Path,
    page: u32,
    dpi: u32,
    deadline: Instant,
) -> Result<GrayImage, PdfError> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let prefix = directory.join(format!("page-{page}"));
    let page_text = page.to_string();
    let dpi_text = dpi.to_string();
    let output = run(
        "pdftoppm",
        &[
            "-f".as_ref(),
            page_text.as_ref(),
            "-l".as_ref(),
            page_text.as_ref(),
            "-r".as_ref(),
            dpi_text.as_ref(),
            "-gray".as_ref(),
            "-png".as_ref(),
            "-singlefile".as_ref(),
            path.as_os_str(),
            prefix.as_os_str(),
        ],
        deadline,
    )
    .await?;
    if !output.status.success() {
        return Err(PdfError::Corrupt(first_line(&String::from_utf8_lossy(
            &output.stderr,
        ))));
    }
    let png = prefix.with_extension("png");
    let bytes = tokio::fs::read(&png).await.map_err(|err| PdfError::Tool {
        tool: "pdftoppm",
        detail: format!("reading its page image: {err}"),
    })?;
    let image = image::load_from_memory_with_format(&bytes, ImageFormat::Png)
        .map_err(|err| PdfError::Corrupt(format!("rendered page {page}: {err}")))?;
    Ok(image.into_luma8())
}

async fn run(
    tool: &'static str,
    args: &[&std::ffi::OsStr],
    deadline: Instant,
) -> Result<std::process::Output, PdfError> {
    let child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| PdfError::Tool {
            tool,
            detail: format!("{err} (is poppler-utils installed?)"),
        })?;
    tokio::time::timeout_at(deadline, child.wait_with_output())
        .await
        .map_err(|_| PdfError::DeadlineExceeded)?
        .map_err(|err| PdfError::Tool {
            tool,
            detail: err.to_string(),
        })
}

/// The first line of a tool's complaint, without the temporary file's path.
fn first_line(stderr: &str) -> String {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("the PDF could not be read");
    line.split_whitespace()
        .filter(|word| !word.contains('/'))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: &str = r#"<!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml"><head></head><body><doc>
  <page width="612.000000" height="792.000000"><flow>
    <block xMin="72" yMin="81" xMax="186" yMax="114">
      <line xMin="72" yMin="81" xMax="186" yMax="94">
        <word xMin="72.000000" yMin="81.948000" xMax="103.892000" yMax="94.898000">Hello</word>
        <word xMin="139.6" yMin="81.9" xMax="149.0" yMax="94.8">&amp;</word>
      </line>
      <line xMin="72" yMin="101" xMax="145" yMax="114">
        <word xMin="72" yMin="101.9" xMax="119.4" yMax="114.8">Second</word>
      </line>
    </block></flow></page>
  <page width="612.000000" height="792.000000"></page>
</doc></body></html>"#;

    #[test]
    fn text_layers_become_words_in_render_pixels() {
        let pages = parse_bbox_layout(LAYOUT).expect("parses");
        assert_eq!(pages.len(), 2);
        let words: Vec<(&str, u32, u32)> = pages[0]
            .words
            .iter()
            .map(|word| (word.text.as_str(), word.block, word.line))
            .collect();
        assert_eq!(words, [("Hello", 1, 1), ("&", 1, 1), ("Second", 1, 2)]);
        assert_eq!(
            pages[0].words[0].bbox,
            BoundingBox {
                x: 300,
                y: 341,
                width: 133,
                height: 54
            }
        );
        assert!(pages[1].words.is_empty());
        assert!((pages[0].width_pt - 612.0).abs() < f32::EPSILON);
    }

    #[test]
    fn a_broken_layout_is_corrupt_not_a_panic() {
        assert!(matches!(
            parse_bbox_layout(r#"<doc><page width="x" height="1"></page></doc>"#),
            Err(PdfError::Corrupt(_))
        ));
    }

    #[test]
    fn info_gives_pages_and_encryption() {
        assert_eq!(
            parse_info("Title: x\nPages:           3\nEncrypted:       no\n"),
            Ok((3, false))
        );
        assert_eq!(
            parse_info("Pages: 1\nEncrypted:       yes (print:yes copy:no)\n"),
            Ok((1, true))
        );
        assert!(parse_info("garbage").is_err());
    }

    #[test]
    fn large_pages_are_rendered_at_a_lower_resolution() {
        assert_eq!(raster_dpi(612.0, 792.0, 40_000_000), 300);
        // A 100 x 100 inch poster within 4 MP: 20 dpi.
        assert_eq!(raster_dpi(7200.0, 7200.0, 4_000_000), 20);
    }

    #[test]
    fn complaints_lose_file_paths() {
        assert_eq!(
            first_line("\nSyntax Error: Couldn't open /tmp/x/upload.pdf\nmore"),
            "Syntax Error: Couldn't open"
        );
    }
}
