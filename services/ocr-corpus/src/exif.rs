//! The smallest Exif block that carries an orientation.

use image::metadata::Orientation;

/// TIFF tag number of Exif "Orientation".
const ORIENTATION_TAG: u16 = 0x0112;
/// TIFF field type SHORT (unsigned 16-bit).
const SHORT: u16 = 3;

/// A big-endian TIFF structure whose IFD0 holds only the Orientation tag: what the JPEG APP1
/// segment carries after its `Exif\0\0` header (which the JPEG encoder adds itself).
pub(crate) fn orientation_block(orientation: Orientation) -> Vec<u8> {
    let mut tiff = Vec::with_capacity(26);
    tiff.extend_from_slice(b"MM");
    tiff.extend_from_slice(&42u16.to_be_bytes());
    tiff.extend_from_slice(&8u32.to_be_bytes()); // IFD0 follows the 8-byte header
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&ORIENTATION_TAG.to_be_bytes());
    tiff.extend_from_slice(&SHORT.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes()); // one value
    // A value of up to four bytes sits in the entry itself, left-aligned.
    tiff.extend_from_slice(&u16::from(orientation.to_exif()).to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no IFD1
    tiff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_parses_back() {
        let block = orientation_block(Orientation::Rotate90);
        assert_eq!(block.len(), 26);
        assert_eq!(
            Orientation::from_exif_chunk(&block),
            Some(Orientation::Rotate90)
        );
    }
}
