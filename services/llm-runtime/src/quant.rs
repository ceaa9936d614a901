//! The GGUF block formats the reference models use, turned back into numbers: F32, F16, Q8_0,
//! Q4_1, Q5_0 (32 weights a block) and Q4_K, Q6_K (256 weights a block, with sub-block scales).
//! These are the plain reference: the fast kernels are checked against them.

use crate::gguf::TensorType;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuantError {
    #[error("{0} weights are not supported (supported: {SUPPORTED})")]
    Unsupported(TensorType),
    #[error("{bytes} bytes are not a whole number of {kind} blocks of {block_bytes} bytes")]
    Ragged {
        kind: TensorType,
        bytes: usize,
        block_bytes: usize,
    },
}

/// What [`dequantize`] reads, for error messages and the README.
pub const SUPPORTED: &str = "F32, F16, Q8_0, Q4_1, Q5_0, Q4_K, Q6_K";

/// Every half's f32 value, looked up in the kernels' inner loops (one or two per 32 weights)
/// rather than converted one at a time there.
static HALVES: std::sync::LazyLock<Box<[f32]>> = std::sync::LazyLock::new(|| {
    (0..=u16::MAX)
        .map(|bits| half::f16::from_bits(bits).to_f32())
        .collect()
});

/// `value` rounded to the nearest half-precision number, ties to even: what llama.cpp keeps in
/// half precision we round the same way.
pub fn round_to_half(value: f32) -> f32 {
    half::f16::from_f32(value).to_f32()
}

/// Every one of `values` rounded as [`round_to_half`] does, with F16C where the CPU has it;
/// `scratch` holds the halves between.
pub fn round_all_to_half(values: &mut [f32], scratch: &mut Vec<half::f16>) {
    use half::slice::HalfFloatSliceExt;
    scratch.clear();
    scratch.resize(values.len(), half::f16::ZERO);
    scratch.convert_from_f32_slice(values);
    scratch.convert_to_f32_slice(values);
}

/// The little-endian half at `at`.
#[inline(always)]
pub(crate) fn half(bytes: &[u8], at: usize) -> f32 {
    HALVES[usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))]
}

/// The weights of `bytes`, stored as `kind`, appended to `out`.
pub fn dequantize(kind: TensorType, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), QuantError> {
    let (elements, block_bytes) = match kind {
        TensorType::F32
        | TensorType::F16
        | TensorType::Q8_0
        | TensorType::Q4_1
        | TensorType::Q5_0
        | TensorType::Q4K
        | TensorType::Q6K => kind.block().ok_or(QuantError::Unsupported(kind))?,
        other => return Err(QuantError::Unsupported(other)),
    };
    let block_bytes = usize::try_from(block_bytes).unwrap_or(usize::MAX);
    if !bytes.len().is_multiple_of(block_bytes) {
        return Err(QuantError::Ragged {
            kind,
            bytes: bytes.len(),
            block_bytes,
        });
    }
    out.reserve(bytes.len() / block_bytes * usize::try_from(elements).unwrap_or(0));
    for block in bytes.chunks_exact(block_bytes) {
        match kind {
            TensorType::F32 => {
                out.push(f32::from_le_bytes([block[0], block[1], block[2], block[3]]))
            }
            TensorType::F16 => out.push(half(block, 0)),
            TensorType::Q8_0 => q8_0(block, out),
            TensorType::Q4_1 => q4_1(block, out),
            TensorType::Q5_0 => q5_0(block, out),
            TensorType::Q4K => q4_k(block, out),
            _ => q6_k(block, out),
        }
    }
    Ok(())
}

/// Scale `d` (f16), then 32 signed bytes: `d × q`.
fn q8_0(block: &[u8], out: &mut Vec<f32>) {
    let d = half(block, 0);
    out.extend(
        block[2..34]
            .iter()
            .map(|q| d * f32::from(i8::from_le_bytes([*q]))),
    );
}

/// Scale `d` and minimum `m` (f16), then 16 bytes of two 4-bit values: the low nibbles are
/// weights 0–15, the high ones 16–31, each `d × q + m`.
fn q4_1(block: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (half(block, 0), half(block, 2));
    let qs = &block[4..20];
    out.extend(qs.iter().map(|q| d * f32::from(q & 0xF) + m));
    out.extend(qs.iter().map(|q| d * f32::from(q >> 4) + m));
}

/// Scale `d` (f16), 32 high bits, then 16 bytes of low nibbles: 5-bit values less 16, times `d`.
fn q5_0(block: &[u8], out: &mut Vec<f32>) {
    let d = half(block, 0);
    let high = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let qs = &block[6..22];
    let value = |low: u8, bit: u32| {
        let fifth = u8::from((high >> bit) & 1 == 1) << 4;
        d * f32::from(i16::from(low | fifth) - 16)
    };
    out.extend(qs.iter().zip(0_u32..).map(|(q, j)| value(q & 0xF, j)));
    out.extend(qs.iter().zip(0_u32..).map(|(q, j)| value(q >> 4, j + 16)));
}

/// The 6-bit scale and minimum of sub-block `j` (of 8) in Q4_K's 12 packed bytes.
pub(crate) fn scale_min_k4(j: usize, packed: &[u8]) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 63, packed[j + 4] & 63)
    } else {
        (
            (packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4),
            (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4),
        )
    }
}

/// `d` and `dmin` (f16), 12 bytes of eight 6-bit scales and minimums, 128 bytes of 4-bit values:
/// 256 weights in 8 sub-blocks of 32, each `d × scale × q − dmin × min`. Each 32 bytes of values
/// hold two sub-blocks: low nibbles first, then high ones.
fn q4_k(block: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (half(block, 0), half(block, 2));
    let packed = &block[4..16];
    for (chunk, qs) in block[16..144].chunks_exact(32).enumerate() {
        let (scale, min) = scale_min_k4(2 * chunk, packed);
        let (d1, m1) = (d * f32::from(scale), dmin * f32::from(min));
        out.extend(qs.iter().map(|q| d1 * f32::from(q & 0xF) - m1));
        let (scale, min) = scale_min_k4(2 * chunk + 1, packed);
        let (d2, m2) = (d * f32::from(scale), dmin * f32::from(min));
        out.extend(qs.iter().map(|q| d2 * f32::from(q >> 4) - m2));
    }
}

/// 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 signed 8-bit scales, then `d` (f16):
/// 256 weights in 16 sub-blocks of 16, each `d × scale × (q − 32)`. Each half of 128 weights
/// takes 64 low bytes and 32 high bytes, laid out in four interleaved rows of 32.
fn q6_k(block: &[u8], out: &mut Vec<f32>) {
    let d = half(block, 208);
    let scales: Vec<f32> = block[192..208]
        .iter()
        .map(|scale| d * f32::from(i8::from_le_bytes([*scale])))
        .collect();
    for half_block in 0..2 {
        let low = &block[64 * half_block..64 * half_block + 64];
        let high = &block[128 + 32 * half_block..128 + 32 * half_block + 32];
        let scale = &scales[8 * half_block..8 * half_block + 8];
        let mut values = [0.0_f32; 128];
        for l in 0..32 {
            let sub = l / 16;
            let q = |low_bits: u8, shift: u8| {
                f32::from(i16::from(low_bits | (((high[l] >> shift) & 3) << 4)) - 32)
            };
            values[l] = scale[sub] * q(low[l] & 0xF, 0);
            values[l + 32] = scale[sub + 2] * q(low[l + 32] & 0xF, 2);
            values[l + 64] = scale[sub + 4] * q(low[l] >> 4, 4);
            values[l + 96] = scale[sub + 6] * q(low[l + 32] >> 4, 6);
        }
        out.extend_from_slice(&values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bits(value: f32) -> [u8; 2] {
        // Exact for the small powers of two and integers the tests use.
        let bits = value.to_bits();
        let sign = ((bits >> 31) as u16) << 15;
        if value == 0.0 {
            return sign.to_le_bytes();
        }
        let exponent = ((bits >> 23) & 0xFF) as i32 - 127 + 15;
        let mantissa = ((bits >> 13) & 0x3FF) as u16;
        (sign | ((exponent as u16) << 10) | mantissa).to_le_bytes()
    }

    fn run(kind: TensorType, block: &[u8]) -> Vec<f32> {
        let mut out = Vec::new();
        dequantize(kind, block, &mut out).expect("dequantizes");
        out
    }

    #[test]
    fn halves_read_and_round_to_nearest_even() {
        assert_eq!(half(&0x3C00_u16.to_le_bytes(), 0), 1.0);
        assert_eq!(half(&0x3555_u16.to_le_bytes(), 0), 0.333_251_95);
        // 1 + 2^-11 lies halfway between 1 and the next half, 1 + 2^-10: ties go to the even one.
        assert_eq!(round_to_half(1.0 + 2.0_f32.powi(-11)), 1.0);
        assert_eq!(
            round_to_half(1.0 + 3.0 * 2.0_f32.powi(-11)),
            1.0 + 2.0_f32.powi(-9)
        );
        let mut values = vec![1.0 + 2.0_f32.powi(-11), 0.1, -70_000.0, 3.0];
        round_all_to_half(&mut values, &mut Vec::new());
        assert_eq!(values, [1.0, round_to_half(0.1), f32::NEG_INFINITY, 3.0]);
    }

    #[test]
    fn q8_0_is_scale_times_byte() {
        let mut block = f16_bits(0.5).to_vec();
        block.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let values = run(TensorType::Q8_0, &block);
        assert_eq!(values.len(), 32);
        assert_eq!(values[0], -8.0);
        assert_eq!(values[16], 0.0);
        assert_eq!(values[31], 7.5);
    }

    #[test]
    fn q4_1_low_nibbles_then_high_ones() {
        let mut block = f16_bits(2.0).to_vec();
        block.extend(f16_bits(-3.0));
        // Byte j holds j in its low nibble and 15 - j in its high one.
        block.extend((0..16_u8).map(|j| j | ((15 - j) << 4)));
        let values = run(TensorType::Q4_1, &block);
        assert_eq!(values[0], -3.0);
        assert_eq!(values[5], 7.0);
        assert_eq!(values[16], 27.0);
        assert_eq!(values[31], -3.0);
    }

    #[test]
    fn q5_0_takes_its_fifth_bit_from_the_high_word() {
        let mut block = f16_bits(1.0).to_vec();
        // Fifth bits set for weight 1 (bit 1) and weight 17 (bit 17).
        block.extend(((1_u32 << 1) | (1 << 17)).to_le_bytes());
        block.extend(
            [0x00_u8; 16]
                .iter()
                .enumerate()
                .map(|(j, _)| if j == 1 { 0xF3 } else { 0x00 }),
        );
        let values = run(TensorType::Q5_0, &block);
        assert_eq!(values[0], -16.0);
        assert_eq!(values[1], (0x13 - 16) as f32);
        assert_eq!(values[17], (0x1F - 16) as f32);
        assert_eq!(values[18], -16.0);
    }

    #[test]
    fn q4_k_applies_each_sub_blocks_scale_and_minimum() {
        let mut block = f16_bits(0.5).to_vec();
        block.extend(f16_bits(0.25));
        // Sub-blocks 0-3: scale j + 1, minimum 2; 4-7: scale 1 + 16 (its high bits in bytes
        // 0-3), minimum 4 + 16 (high bits in bytes 4-7), low parts in bytes 8-11.
        let mut packed = [0_u8; 12];
        for j in 0..4 {
            packed[j] = (j as u8 + 1) | (1 << 6);
            packed[j + 4] = 2 | (1 << 6);
            packed[j + 8] = 1 | (4 << 4);
        }
        block.extend(packed);
        // Every value byte: low nibble 3, high nibble 10.
        block.extend([0xA3_u8; 128]);
        let values = run(TensorType::Q4K, &block);
        assert_eq!(values.len(), 256);
        // Sub-block 0 (low nibbles of the first 32 bytes): 0.5 × 1 × 3 − 0.25 × 2.
        assert_eq!(values[0], 1.0);
        // Sub-block 1 (high nibbles): 0.5 × 2 × 10 − 0.5.
        assert_eq!(values[32], 9.5);
        // Sub-block 4: scale 17, minimum 20: 0.5 × 17 × 3 − 0.25 × 20.
        assert_eq!(values[128], 20.5);
        // Sub-block 7: 0.5 × 17 × 10 − 5.
        assert_eq!(values[255], 80.0);
    }

    #[test]
    fn q6_k_interleaves_four_rows_per_half() {
        let mut block = vec![0_u8; 210];
        // Low bits: weight 0 gets 5 (byte 0 low nibble), weight 64 gets 9 (byte 0 high nibble).
        block[0] = 5 | (9 << 4);
        // High bits of byte 0 of the first half: 1 for weight 0, 2 for weight 32.
        block[128] = 1 | (2 << 2);
        for (index, scale) in block[192..208].iter_mut().enumerate() {
            *scale = (index as i8 - 4) as u8;
        }
        block[208..210].copy_from_slice(&f16_bits(0.5));
        let values = run(TensorType::Q6K, &block);
        assert_eq!(values.len(), 256);
        // Weight 0: scale 0 (−4), q = 5 | 1 << 4 = 21, less 32: 0.5 × −4 × −11.
        assert_eq!(values[0], 22.0);
        // Weight 32: scale 2 (−2), q = 0 | 2 << 4 = 32: zero.
        assert_eq!(values[32], 0.0);
        // Weight 64: scale 4 (0).
        assert_eq!(values[64], 0.0);
        // Weight 16: scale 1 (−3), q = 0 − 32: 0.5 × −3 × −32.
        assert_eq!(values[16], 48.0);
        // Second half, weight 128 + 0: scale 8 (4), q = −32: 0.5 × 4 × −32.
        assert_eq!(values[128], -64.0);
    }

    #[test]
    fn other_types_and_ragged_data_are_refused() {
        let mut out = Vec::new();
        assert_eq!(
            dequantize(TensorType::Q2K, &[0; 84], &mut out),
            Err(QuantError::Unsupported(TensorType::Q2K))
        );
        assert_eq!(
            dequantize(TensorType::Q8_0, &[0; 35], &mut out),
            Err(QuantError::Ragged {
                kind: TensorType::Q8_0,
                bytes: 35,
                block_bytes: 34
            })
        );
        let message = QuantError::Unsupported(TensorType::Other(40)).to_string();
        assert!(
            message.contains("ggml type 40") && message.contains("Q6_K"),
            "{message}"
        );
    }
}
