//! Hand-written PDF 1.4 files: a catalog, a page tree and a few objects per page are short
//! enough that writing them (with an exact cross-reference table) beats a PDF library.

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;
use image::GrayImage;

use crate::CorpusError;
use crate::render::Style;

/// US Letter, in points.
const PAGE_WIDTH_PT: u32 = 612;
const PAGE_HEIGHT_PT: u32 = 792;
const MARGIN_PT: u32 = 72;
const TEXT_PT: u32 = 14;
const LEADING_PT: u32 = 20;
/// Characters per line of the text layer; Helvetica averages about half an em per character,
/// so 60 characters of 14 pt text stay well inside the 468 pt between the margins.
const TEXT_LINE_CHARS: usize = 60;
/// Resolution of the scanned pages: a typical office scanner setting.
const SCAN_DPI: u32 = 200;

/// The look of a scanned page: the text layer's size and margins, rasterised at [`SCAN_DPI`].
pub(crate) const SCAN_STYLE: Style = Style {
    em_px: (TEXT_PT * SCAN_DPI) as f32 / 72.0,
    width: PAGE_WIDTH_PT * SCAN_DPI / 72,
    height: Some(PAGE_HEIGHT_PT * SCAN_DPI / 72),
    margin: MARGIN_PT * SCAN_DPI / 72,
    ink: 0,
    paper: 255,
};

/// Wraps `text` into lines of at most [`TEXT_LINE_CHARS`] characters, as the text layer shows it.
pub(crate) fn text_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > TEXT_LINE_CHARS {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A PDF whose pages show `pages` (one line per entry) as real text in Helvetica, a standard
/// font every reader has, so nothing is embedded. The text must be ASCII (a subset of WinAnsi).
pub(crate) fn text_layer(pages: &[Vec<String>]) -> Vec<u8> {
    let mut pdf = Writer::new();
    let (catalog, tree) = (pdf.reserve(), pdf.reserve());
    let font = pdf.reserve();
    let ids: Vec<_> = pages
        .iter()
        .map(|_| (pdf.reserve(), pdf.reserve()))
        .collect();

    pdf.page_tree(catalog, tree, ids.iter().map(|&(page, _)| page));
    pdf.object(
        font,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    );
    for ((page, contents), lines) in ids.into_iter().zip(pages) {
        pdf.page(
            page,
            tree,
            contents,
            &format!("<< /Font << /F1 {font} 0 R >> >>"),
        );
        let first_baseline = PAGE_HEIGHT_PT - MARGIN_PT - TEXT_PT;
        let mut stream =
            format!("BT\n/F1 {TEXT_PT} Tf\n{LEADING_PT} TL\n{MARGIN_PT} {first_baseline} Td\n");
        for (index, line) in lines.iter().enumerate() {
            if index > 0 {
                stream.push_str("T*\n");
            }
            stream.push_str(&format!("({}) Tj\n", escape(line)));
        }
        stream.push_str("ET\n");
        pdf.stream(contents, "", stream.as_bytes());
    }
    pdf.finish(catalog)
}

/// A PDF whose pages are nothing but full-page 8-bit grayscale images, like a scanner makes.
pub(crate) fn scanned(pages: &[GrayImage]) -> Result<Vec<u8>, CorpusError> {
    let mut pdf = Writer::new();
    let (catalog, tree) = (pdf.reserve(), pdf.reserve());
    let ids: Vec<_> = pages
        .iter()
        .map(|_| (pdf.reserve(), pdf.reserve(), pdf.reserve()))
        .collect();

    pdf.page_tree(catalog, tree, ids.iter().map(|&(page, _, _)| page));
    for ((page, contents, scan), image) in ids.into_iter().zip(pages) {
        pdf.page(
            page,
            tree,
            contents,
            &format!("<< /XObject << /Scan {scan} 0 R >> >>"),
        );
        // Images are drawn into the unit square; scale it to cover the page.
        let draw = format!("q {PAGE_WIDTH_PT} 0 0 {PAGE_HEIGHT_PT} 0 0 cm /Scan Do Q\n");
        pdf.stream(contents, "", draw.as_bytes());

        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(image.as_raw())?;
        let dict = format!(
            "/Type /XObject /Subtype /Image /Width {} /Height {} /ColorSpace /DeviceGray \
             /BitsPerComponent 8 /Filter /FlateDecode",
            image.width(),
            image.height()
        );
        pdf.stream(scan, &dict, &zlib.finish()?);
    }
    Ok(pdf.finish(catalog))
}

/// Escapes the characters that are special inside a PDF literal string.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '(' | ')') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Appends numbered objects and remembers where each starts, for the cross-reference table.
struct Writer {
    out: Vec<u8>,
    /// Byte offset of object `n` at index `n - 1`.
    offsets: Vec<usize>,
}

impl Writer {
    fn new() -> Self {
        // The comment's high bytes tell transfer tools the file is binary.
        let out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
        Self {
            out,
            offsets: Vec::new(),
        }
    }

    /// Allocates an object number, so objects can refer to ones written later.
    fn reserve(&mut self) -> usize {
        self.offsets.push(0);
        self.offsets.len()
    }

    fn object(&mut self, id: usize, body: &str) {
        self.offsets[id - 1] = self.out.len();
        self.out
            .extend_from_slice(format!("{id} 0 obj\n{body}\nendobj\n").as_bytes());
    }

    fn stream(&mut self, id: usize, dict: &str, data: &[u8]) {
        self.offsets[id - 1] = self.out.len();
        let header = format!("{id} 0 obj\n<< {dict} /Length {} >>\nstream\n", data.len());
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\nendstream\nendobj\n");
    }

    fn page_tree(&mut self, catalog: usize, tree: usize, kids: impl Iterator<Item = usize>) {
        self.object(catalog, &format!("<< /Type /Catalog /Pages {tree} 0 R >>"));
        let kids: Vec<_> = kids.map(|kid| format!("{kid} 0 R")).collect();
        let body = format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            kids.len()
        );
        self.object(tree, &body);
    }

    fn page(&mut self, id: usize, tree: usize, contents: usize, resources: &str) {
        let body = format!(
            "<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 {PAGE_WIDTH_PT} {PAGE_HEIGHT_PT}] \
             /Resources {resources} /Contents {contents} 0 R >>"
        );
        self.object(id, &body);
    }

    /// Appends the cross-reference table and trailer; the file ends exactly with `%%EOF`.
    fn finish(mut self, root: usize) -> Vec<u8> {
        let xref = self.out.len();
        let count = self.offsets.len() + 1;
        // Entries must be exactly 20 bytes long, so each ends in the two bytes " \n".
        let mut table = format!("xref\n0 {count}\n0000000000 65535 f \n");
        for offset in &self.offsets {
            table.push_str(&format!("{offset:010} 00000 n \n"));
        }
        table.push_str(&format!(
            "trailer\n<< /Size {count} /Root {root} 0 R >>\nstartxref\n{xref}\n%%EOF"
        ));
        self.out.extend_from_slice(table.as_bytes());
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_wrap_at_word_boundaries() {
        let text = "alpha beta gamma ".repeat(10);
        let lines = text_lines(&text);
        assert!(lines.iter().all(|line| line.len() <= TEXT_LINE_CHARS));
        assert_eq!(lines.join(" "), text.trim_end());
    }

    #[test]
    fn escape_protects_string_delimiters() {
        assert_eq!(escape(r"a (b) \c"), r"a \(b\) \\c");
    }

    #[test]
    fn xref_offsets_point_at_objects() {
        let pdf = text_layer(&[vec!["Hello".to_owned()]]);
        let text = String::from_utf8_lossy(&pdf);
        let (_, table) = text.split_once("\nxref\n").unwrap_or_default();
        let offsets: Vec<usize> = table
            .lines()
            .skip(2) // the subsection header and free entry 0
            .take_while(|line| line.ends_with(" n "))
            .filter_map(|line| line.get(..10)?.parse().ok())
            .collect();
        assert_eq!(offsets.len(), 5);
        for (index, offset) in offsets.into_iter().enumerate() {
            let expected = format!("{} 0 obj", index + 1);
            assert!(pdf[offset..].starts_with(expected.as_bytes()), "{expected}");
        }
    }
}
