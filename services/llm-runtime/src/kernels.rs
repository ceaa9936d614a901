//! Matrix-vector products on quantized weights, without dequantizing them: the activation vector is
//! quantized once per call to 8-bit blocks of 32 (a scale each, and the block's sum for formats with
//! an offset), and each weight row is dotted with it in integers, block by block, scaled at the end
//! of each block. Decoding is memory-bound, so reading 4–6 bits a weight instead of 32 is the speed.
//! The code runs portable or, on CPUs with AVX2, with AVX2 integer dot products;
//! [`crate::quant::dequantize`] is the reference both are tested against.
//!
//! The activations are quantized the way llama.cpp's CPU backend quantizes them for each weight
//! format (its "vec dot type"), to the rounding of every scale: greedy decoding turns on near ties
//! between two tokens, and parity with llama.cpp on the same file needs the same sums.

use rayon::prelude::*;

use crate::{
    elementwise::{LANES, lanes_total, multiply_add},
    gguf::TensorType,
    quant::{half, round_to_half, scale_min_k4},
};

/// Weights per activation block.
pub const QK: usize = 32;

/// Weights per K-quant super-block, which share one activation scale.
const QK_K: usize = 256;

/// How the activations are quantized for products with one weight format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationFormat {
    /// Blocks of 32 scaled by `max |x| / 127`, the scale kept in half precision (for Q8_0 and
    /// Q5_0 weights).
    Q8_0,
    /// As [`Self::Q8_0`], with `scale × Σq` also kept in half precision (for Q4_1 weights).
    Q8_1,
    /// Super-blocks of 256 with one single-precision scale, the value of largest magnitude mapped
    /// to −127 (for the K-quants).
    Q8K,
}

impl ActivationFormat {
    /// The format products with `kind` weights take, if we have a kernel for them.
    pub fn for_weights(kind: TensorType) -> Option<Self> {
        match kind {
            TensorType::Q8_0 | TensorType::Q5_0 => Some(Self::Q8_0),
            TensorType::Q4_1 => Some(Self::Q8_1),
            TensorType::Q4K | TensorType::Q6K => Some(Self::Q8K),
            _ => None,
        }
    }

    /// How many activations share a scale.
    fn group(self) -> usize {
        match self {
            Self::Q8_0 | Self::Q8_1 => QK,
            Self::Q8K => QK_K,
        }
    }
}

/// 32 activations as `scale × q`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivationBlock {
    pub scale: f32,
    pub q: [i8; QK],
    /// Σ q, for weight formats with an offset (Q5_0, Q4_K, Q6_K).
    pub sum: i32,
    /// `scale × Σq` rounded to half precision, Q4_1's offset term ([`ActivationFormat::Q8_1`]).
    pub scaled_sum: f32,
}

/// `x` (a multiple of the format's group long) quantized to 8 bits per block of 32.
#[allow(clippy::cast_possible_truncation)]
pub fn quantize_activations(x: &[f32], format: ActivationFormat) -> Vec<ActivationBlock> {
    let mut blocks = Vec::with_capacity(x.len() / QK);
    for group in x.chunks_exact(format.group()) {
        // The group's scale, and what each value is multiplied by before rounding.
        let (scale, multiplier) =
            match format {
                ActivationFormat::Q8_0 | ActivationFormat::Q8_1 => {
                    let largest = group.iter().fold(0.0_f32, |max, v| max.max(v.abs()));
                    let multiplier = if largest == 0.0 { 0.0 } else { 127.0 / largest };
                    (largest / 127.0, multiplier)
                }
                ActivationFormat::Q8K => {
                    // The first value of the largest magnitude, with its sign.
                    let extreme = group.iter().fold(0.0_f32, |extreme, &v| {
                        if v.abs() > extreme.abs() { v } else { extreme }
                    });
                    if extreme == 0.0 {
                        (0.0, 0.0)
                    } else {
                        let multiplier = -127.0 / extreme;
                        (1.0 / multiplier, multiplier)
                    }
                }
            };
        for chunk in group.chunks_exact(QK) {
            let mut q = [0_i8; QK];
            for (slot, value) in q.iter_mut().zip(chunk) {
                // Half to even, as both of llama.cpp's roundings do; −128 cannot come out.
                *slot = (value * multiplier).round_ties_even().clamp(-127.0, 127.0) as i8;
            }
            let sum: i32 = q.iter().map(|value| i32::from(*value)).sum();
            #[allow(clippy::cast_precision_loss)]
            let scaled_sum = round_to_half(scale * sum as f32);
            blocks.push(ActivationBlock {
                scale: match format {
                    ActivationFormat::Q8_0 | ActivationFormat::Q8_1
                        if std::env::var_os("FC_NOHALF").is_none() =>
                    {
                        round_to_half(scale)
                    }
                    _ => scale,
                },
                q,
                sum,
                scaled_sum,
            });
        }
    }
    blocks
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    #[error("no quantized kernel for {0} weights")]
    Unsupported(TensorType),
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        what: &'static str,
        expected: usize,
        got: usize,
    },
}

/// Σ w·a over 32 weights and 32 activations in integers, as 8 lanes of 4 consecutive products:
/// with AVX2 in two multiply-add instructions (`AVX2` is true only inside [`rows_avx2`]), else
/// in a loop the compiler vectorises as it can.
#[inline(always)]
fn quads<const AVX2: bool>(w: &[i8; QK], a: &[i8; QK]) -> [i32; LANES] {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: `AVX2` is true only in code reached from `rows_avx2`, which runs only on CPUs
        // found to have AVX2.
        #[allow(unsafe_code)]
        return unsafe { avx2::quads_signed(w, a) };
    }
    portable_quads(w, a)
}

/// [`quads`] for unsigned weights (nibbles).
#[inline(always)]
fn quads_unsigned<const AVX2: bool>(w: &[u8; QK], a: &[i8; QK]) -> [i32; LANES] {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: as in `quads`.
        #[allow(unsafe_code)]
        return unsafe { avx2::quads_unsigned(w, a) };
    }
    portable_quads(w, a)
}

/// [`quads`] in a loop the compiler vectorises as it can, for signed or unsigned weights.
#[inline(always)]
fn portable_quads<W: Copy + Into<i32>>(w: &[W; QK], a: &[i8; QK]) -> [i32; LANES] {
    let mut lanes = [0_i32; LANES];
    for (lane, (w, a)) in lanes
        .iter_mut()
        .zip(w.chunks_exact(4).zip(a.chunks_exact(4)))
    {
        *lane = w
            .iter()
            .zip(a)
            .map(|(w, a)| (*w).into() * i32::from(*a))
            .sum();
    }
    lanes
}

/// One token's running sum along a weight row, in llama.cpp's accumulators: 8 lanes of block
/// products, a scalar added to them at the end (Q4_1's offsets; Q4_K's products) and one taken
/// away (Q4_K's offsets).
#[derive(Debug, Clone, Copy, Default)]
struct RowSum {
    lanes: [f32; LANES],
    rest: f32,
    less: f32,
}

impl RowSum {
    /// `lanes += d × products`, lane by lane.
    #[inline(always)]
    #[allow(clippy::cast_precision_loss)]
    fn add<const FMA: bool>(&mut self, d: f32, products: [i32; LANES]) {
        for (lane, product) in self.lanes.iter_mut().zip(products) {
            *lane = multiply_add::<FMA>(d, product as f32, *lane);
        }
    }

    fn total(&self) -> f32 {
        lanes_total(&self.lanes) + self.rest - self.less
    }
}

/// [`dot32`] for unsigned weights (nibbles, 5- and 6-bit values before their offset).
#[inline(always)]
fn dot32_unsigned<const AVX2: bool>(w: &[u8; QK], a: &[i8; QK]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: as in `dot32`.
        #[allow(unsafe_code)]
        return unsafe { avx2::dot32_unsigned(w, a) };
    }
    let (low, high) = dot16x2_unsigned::<false>(w, a);
    low + high
}

/// [`dot32_unsigned`] of the first 16 weights and of the last 16, apart.
#[inline(always)]
fn dot16x2_unsigned<const AVX2: bool>(w: &[u8; QK], a: &[i8; QK]) -> (i32, i32) {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: as in `dot32`.
        #[allow(unsafe_code)]
        return unsafe { avx2::dot16x2_unsigned(w, a) };
    }
    let (mut low, mut high) = (0_i32, 0_i32);
    for l in 0..16 {
        low += i32::from(w[l]) * i32::from(a[l]);
        high += i32::from(w[l + 16]) * i32::from(a[l + 16]);
    }
    (low, high)
}

/// The AVX2 forms of the integer dot products (as llama.cpp computes them): unsigned bytes times
/// signed bytes summed in pairs to 16 bits (`maddubs`; 6-bit weights times 8-bit activations
/// cannot overflow it), then in fours to 32 bits.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm_add_epi32, _mm_cvtsi128_si32, _mm_shuffle_epi32, _mm256_castsi256_si128,
        _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_maddubs_epi16,
        _mm256_set1_epi16, _mm256_sign_epi8, _mm256_storeu_si256,
    };

    use super::{LANES, QK};

    #[inline]
    #[target_feature(enable = "avx2")]
    fn quads(w: __m256i, a: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1))
    }

    /// The sums of the low and the high 128 bits' four 32-bit lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn halves(v: __m256i) -> (i32, i32) {
        let sum = |v| {
            let v = _mm_add_epi32(v, _mm_shuffle_epi32::<0b01_00_11_10>(v));
            _mm_cvtsi128_si32(_mm_add_epi32(v, _mm_shuffle_epi32::<0b10_11_00_01>(v)))
        };
        (
            sum(_mm256_castsi256_si128(v)),
            sum(_mm256_extracti128_si256::<1>(v)),
        )
    }

    /// The sum of all eight 32-bit lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn total(v: __m256i) -> i32 {
        let v = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let v = _mm_add_epi32(v, _mm_shuffle_epi32::<0b01_00_11_10>(v));
        _mm_cvtsi128_si32(_mm_add_epi32(v, _mm_shuffle_epi32::<0b10_11_00_01>(v)))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot32_unsigned(w: &[u8; QK], a: &[i8; QK]) -> i32 {
        total(quads(load(w), load(a)))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn quads_signed(w: &[i8; QK], a: &[i8; QK]) -> [i32; LANES] {
        let (w, a) = (load(w), load(a));
        // |w| times a with w's sign: the unsigned-by-signed product of signed weights.
        store(quads(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w)))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn quads_unsigned(w: &[u8; QK], a: &[i8; QK]) -> [i32; LANES] {
        store(quads(load(w), load(a)))
    }

    /// The eight 32-bit lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn store(v: __m256i) -> [i32; LANES] {
        let mut lanes = [0_i32; LANES];
        // SAFETY: the array is eight 32-bit values, what one unaligned 256-bit store writes.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
        lanes
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot16x2_unsigned(w: &[u8; QK], a: &[i8; QK]) -> (i32, i32) {
        halves(quads(load(w), load(a)))
    }

    /// 32 bytes in one register.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load<T>(bytes: &[T; QK]) -> __m256i {
        const { assert!(size_of::<T>() == 1) };
        // SAFETY: the array is 32 one-byte values, what one unaligned 256-bit load reads.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    }
}

/// Σ w·a of one row of `kind` weights (`row` holds its blocks) with each token's quantized
/// activations (`activations` holds `tokens × blocks`, token after token), added to `sums`, one
/// per token. Each block is unpacked once and dotted with every token's block.
#[inline(always)]
#[allow(clippy::cast_possible_wrap)]
fn dot<const AVX2: bool>(
    kind: TensorType,
    row: &[u8],
    activations: &[ActivationBlock],
    sums: &mut [RowSum],
    grouped: usize,
) {
    let blocks = activations.len() / sums.len().max(1);
    let token = |t: usize, b: usize| &activations[t * blocks + b];
    match kind {
        TensorType::Q8_0 => {
            let mut w = [0_i8; QK];
            for (b, block) in row.chunks_exact(34).enumerate() {
                for (slot, byte) in w.iter_mut().zip(&block[2..34]) {
                    *slot = *byte as i8;
                }
                let d = half(block, 0);
                for (t, sum) in sums.iter_mut().enumerate() {
                    let a = token(t, b);
                    sum.add::<AVX2>(d * a.scale, quads::<AVX2>(&w, &a.q));
                }
            }
        }
        TensorType::Q4_1 => {
            for (b, block) in row.chunks_exact(20).enumerate() {
                let w = nibbles(&block[4..20]);
                let (d, m) = (half(block, 0), half(block, 2));
                for (t, sum) in sums.iter_mut().enumerate() {
                    let a = token(t, b);
                    sum.rest += m * a.scaled_sum;
                    sum.add::<AVX2>(d * a.scale, quads_unsigned::<AVX2>(&w, &a.q));
                }
            }
        }
        TensorType::Q5_0 => {
            for (b, block) in row.chunks_exact(22).enumerate() {
                let mut w = nibbles(&block[6..22]);
                // Weight j's fifth bit is bit j of bytes 2..6, added eight weights at a time.
                for (eight, bits) in w.chunks_exact_mut(8).zip(&block[2..6]) {
                    let mut word = [0_u8; 8];
                    word.copy_from_slice(eight);
                    let spread = u64::from_le_bytes(word) | FIFTH_BITS[usize::from(*bits)];
                    eight.copy_from_slice(&spread.to_le_bytes());
                }
                // Signed, as llama.cpp unpacks them (a loop: `map` would not be inlined here).
                let mut signed = [0_i8; QK];
                for (slot, value) in signed.iter_mut().zip(w) {
                    *slot = value as i8 - 16;
                }
                let d = half(block, 0);
                for (t, sum) in sums.iter_mut().enumerate() {
                    let a = token(t, b);
                    sum.add::<AVX2>(d * a.scale, quads::<AVX2>(&signed, &a.q));
                }
            }
        }
        TensorType::Q4K => {
            for (super_block, block) in row.chunks_exact(144).enumerate() {
                dot_q4_k::<AVX2>(block, |sub| 8 * super_block + sub, &token, sums, grouped);
            }
        }
        TensorType::Q6K => {
            for (super_block, block) in row.chunks_exact(210).enumerate() {
                dot_q6_k::<AVX2>(block, |sub| 8 * super_block + sub, &token, sums);
            }
        }
        _ => {}
    }
}

/// Each byte's 8 bits spread to 8 bytes, bit `i` to byte `i` as 0 or 16: Q5_0's fifth bits.
const FIFTH_BITS: [u64; 256] = {
    let mut table = [0_u64; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut spread = 0_u64;
        let mut bit = 0;
        while bit < 8 {
            if (byte >> bit) & 1 == 1 {
                spread |= 16 << (8 * bit);
            }
            bit += 1;
        }
        table[byte] = spread;
        byte += 1;
    }
    table
};

/// The low nibbles of 16 bytes, then their high nibbles: a 32-weight block's 4-bit values,
/// unpacked eight at a time in 64-bit words.
#[inline(always)]
fn nibbles(bytes: &[u8]) -> [u8; QK] {
    const LOW: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    let mut out = [0_u8; QK];
    for (half, eight) in bytes.chunks_exact(8).take(2).enumerate() {
        let mut word = [0_u8; 8];
        word.copy_from_slice(eight);
        let word = u64::from_le_bytes(word);
        out[8 * half..8 * half + 8].copy_from_slice(&(word & LOW).to_le_bytes());
        out[16 + 8 * half..24 + 8 * half].copy_from_slice(&((word >> 4) & LOW).to_le_bytes());
    }
    out
}

#[allow(clippy::cast_precision_loss)]
fn int(value: i32) -> f32 {
    value as f32
}

/// One Q4_K super-block (256 weights) against 8 activation blocks per token (`index` gives a
/// sub-block's activation block, `token` a token's): sub-block `2c` is the low nibbles of value
/// bytes `32c..32c + 32`, sub-block `2c + 1` their high nibbles. The super-block is unpacked
/// once. Its 8 activation blocks share one scale, so each token's share is summed in integers
/// and scaled once, the products and the offsets apart, as llama.cpp's repacked kernel does.
#[inline(always)]
fn dot_q4_k<'a, const AVX2: bool>(
    block: &[u8],
    index: impl Fn(usize) -> usize,
    token: &impl Fn(usize, usize) -> &'a ActivationBlock,
    sums: &mut [RowSum],
    grouped: usize,
) {
    let (d, dmin) = (half(block, 0), half(block, 2));
    let packed = &block[4..16];
    let mut w = [[0_u8; QK]; 8];
    let mut scales = [(0_i32, 0_i32); 8];
    for (chunk, qs) in block[16..144].chunks_exact(32).enumerate() {
        for nibble in [0, 4] {
            let sub = 2 * chunk + nibble / 4;
            let (scale, min) = scale_min_k4(sub, packed);
            scales[sub] = (i32::from(scale), i32::from(min));
            for (slot, q) in w[sub].iter_mut().zip(qs) {
                *slot = (q >> nibble) & 0xF;
            }
        }
    }
    for (t, sum) in sums.iter_mut().enumerate() {
        // Four tokens at a time, llama.cpp scales each 64 weights' sums apart; one token, the
        // whole super-block's.
        let part = if t < grouped { 2 } else { 8 };
        let a_scale = token(t, index(0)).scale;
        for (chunk, (w, scales)) in w
            .chunks_exact(part)
            .zip(scales.chunks_exact(part))
            .enumerate()
        {
            let (mut products, mut offsets) = (0_i32, 0_i32);
            for (sub, (w, (scale, min))) in w.iter().zip(scales).enumerate() {
                let a = token(t, index(chunk * part + sub));
                products += scale * dot32_unsigned::<AVX2>(w, &a.q);
                offsets += min * a.sum;
            }
            sum.rest = multiply_add::<AVX2>(int(products), d * a_scale, sum.rest);
            sum.less = multiply_add::<AVX2>(int(offsets), dmin * a_scale, sum.less);
        }
    }
}

/// One Q6_K super-block against 8 activation blocks per token; sub-blocks of 16 share an
/// activation block's scale two by two, and the values' offset of 32 comes off through sums of
/// the activations. Unpacked once, summed per token in integer lanes as llama.cpp sums them.
#[inline(always)]
fn dot_q6_k<'a, const AVX2: bool>(
    block: &[u8],
    index: impl Fn(usize) -> usize,
    token: &impl Fn(usize, usize) -> &'a ActivationBlock,
    sums: &mut [RowSum],
) {
    let d = half(block, 208);
    let scales = &block[192..208];
    let mut w = [[0_u8; QK]; 8];
    for half_block in 0..2 {
        let low = &block[64 * half_block..64 * half_block + 64];
        let high = &block[128 + 32 * half_block..128 + 32 * half_block + 32];
        // Rows r = 0..4 of 32 weights: weight 32r + l of this half.
        for row in 0..4 {
            let (nibbles, shift) = match row {
                0 => (&low[..32], 0),
                1 => (&low[32..], 0),
                2 => (&low[..32], 4),
                _ => (&low[32..], 4),
            };
            for ((slot, low), high) in w[4 * half_block + row].iter_mut().zip(nibbles).zip(high) {
                *slot = ((low >> shift) & 0xF) | (((high >> (2 * row)) & 3) << 4);
            }
        }
    }
    for (t, sum) in sums.iter_mut().enumerate() {
        // llama.cpp's lanes: lane l holds products 4l..4l + 4 of every row of 32, times that
        // half-row's scale, less the offset of row l's two halves.
        let mut lanes = [0_i32; LANES];
        for (sub, w) in w.iter().enumerate() {
            let a = token(t, index(sub));
            let products = quads_unsigned::<AVX2>(w, &a.q);
            let (low_a, high_a) = dot16x2_unsigned::<AVX2>(&[1; QK], &a.q);
            let first = i32::from(i8::from_le_bytes([scales[2 * sub]]));
            let second = i32::from(i8::from_le_bytes([scales[2 * sub + 1]]));
            for (lane, (product, scale)) in lanes.iter_mut().zip(
                products
                    .iter()
                    .zip([first, first, first, first, second, second, second, second]),
            ) {
                *lane += scale * product;
            }
            lanes[sub] -= 32 * (first * low_a + second * high_a);
        }
        sum.add::<AVX2>(token(t, index(0)).scale * d, lanes);
    }
}

/// `out[r × tokens + t] = row r · token t` for consecutive rows of `row_bytes` each.
#[inline(always)]
fn rows<const AVX2: bool>(
    kind: TensorType,
    weights: &[u8],
    row_bytes: usize,
    activations: &[ActivationBlock],
    out: &mut [f32],
    tokens: usize,
    grouped: usize,
) {
    let mut sums = vec![RowSum::default(); tokens];
    for (out, row) in out
        .chunks_exact_mut(tokens)
        .zip(weights.chunks_exact(row_bytes))
    {
        sums.fill(RowSum::default());
        dot::<AVX2>(kind, row, activations, &mut sums, grouped);
        for (out, sum) in out.iter_mut().zip(&sums) {
            *out = sum.total();
        }
    }
}

/// [`rows`] compiled for AVX2: the compiler vectorises it 256 bits wide, and its integer dot
/// products are the `avx2` module's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn rows_avx2(
    kind: TensorType,
    weights: &[u8],
    row_bytes: usize,
    activations: &[ActivationBlock],
    out: &mut [f32],
    tokens: usize,
    grouped: usize,
) {
    rows::<true>(kind, weights, row_bytes, activations, out, tokens, grouped);
}

/// [`rows`] with the widest vectors this CPU has.
fn rows_fastest(
    kind: TensorType,
    weights: &[u8],
    row_bytes: usize,
    activations: &[ActivationBlock],
    out: &mut [f32],
    tokens: usize,
    grouped: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU was just found to have both features `rows_avx2` is compiled for.
        #[allow(unsafe_code)]
        unsafe {
            rows_avx2(kind, weights, row_bytes, activations, out, tokens, grouped);
        }
        return;
    }
    rows::<false>(kind, weights, row_bytes, activations, out, tokens, grouped);
}

/// `out = W · x` for a `rows × columns` matrix of `kind` weights stored row after row, the rows
/// split across `pool`'s threads.
pub fn matvec(
    kind: TensorType,
    weights: &[u8],
    columns: usize,
    x: &[f32],
    out: &mut [f32],
    pool: &rayon::ThreadPool,
) -> Result<(), KernelError> {
    matmul(kind, weights, columns, x, out, pool, 0)
}

/// `out[t] = W · x[t]` for each of the tokens whose activations `xs` holds one after another
/// (`tokens × columns`), written to `out` the same way (`tokens × rows`). Each weight row is read
/// and unpacked once for all the tokens: a prompt costs far less than as many single products.
/// The first `grouped` tokens are summed as llama.cpp sums the tokens it takes four at a time
/// (which changes only Q4_K's order of additions), the others as it sums a lone token.
pub fn matmul(
    kind: TensorType,
    weights: &[u8],
    columns: usize,
    xs: &[f32],
    out: &mut [f32],
    pool: &rayon::ThreadPool,
    grouped: usize,
) -> Result<(), KernelError> {
    let format = ActivationFormat::for_weights(kind).ok_or(KernelError::Unsupported(kind))?;
    let (block_elements, block_bytes) = kind.block().ok_or(KernelError::Unsupported(kind))?;
    let (block_elements, block_bytes) = (
        usize::try_from(block_elements).unwrap_or(usize::MAX),
        usize::try_from(block_bytes).unwrap_or(usize::MAX),
    );
    if columns == 0 || !xs.len().is_multiple_of(columns) || !columns.is_multiple_of(block_elements)
    {
        return Err(KernelError::Shape {
            what: "activations",
            expected: columns,
            got: xs.len(),
        });
    }
    let tokens = xs.len() / columns;
    if tokens == 0 || !out.len().is_multiple_of(tokens) {
        return Err(KernelError::Shape {
            what: "outputs",
            expected: tokens,
            got: out.len(),
        });
    }
    let row_count = out.len() / tokens;
    let row_bytes = columns / block_elements * block_bytes;
    if weights.len() != row_bytes * row_count {
        return Err(KernelError::Shape {
            what: "weight bytes",
            expected: row_bytes * row_count,
            got: weights.len(),
        });
    }
    let activations = quantize_activations(xs, format);
    // Row after row, a token's result each; a few parts per thread, so that one slow thread does
    // not hold the others up.
    let per_part = row_count.div_ceil(4 * pool.current_num_threads()).max(1);
    let compute = |by_row: &mut [f32]| {
        pool.install(|| {
            by_row
                .par_chunks_mut(per_part * tokens)
                .zip(weights.par_chunks(per_part * row_bytes))
                .for_each(|(out, weights)| {
                    rows_fastest(kind, weights, row_bytes, &activations, out, tokens, grouped);
                });
        });
    };
    // One token's results are already in `out`'s order; several are turned to token after token.
    if tokens == 1 {
        compute(out);
    } else {
        let mut by_row = vec![0.0_f32; out.len()];
        compute(&mut by_row);
        for (row, values) in by_row.chunks_exact(tokens).enumerate() {
            for (token, value) in values.iter().enumerate() {
                out[token * row_count + row] = *value;
            }
        }
    }
    Ok(())
}

/// A pool of `threads` threads for [`matvec`], started once and kept.
pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|index| format!("matvec-{index}"))
        .build()
        .unwrap_or_else(|_| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .expect("a one-thread pool starts")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dequantize;

    /// Deterministic bytes (a linear congruential generator), so each test block is fixed.
    fn bytes(count: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 56) as u8
            })
            .collect()
    }

    /// Random blocks with their f16 scales set to small normal values, so no block holds an
    /// infinity or a NaN.
    fn weights(kind: TensorType, rows: usize, columns: usize) -> Vec<u8> {
        let (elements, block_bytes) = kind.block().expect("known");
        let blocks = rows * columns / elements as usize;
        let mut data = bytes(blocks * block_bytes as usize, 7 + block_bytes);
        for (index, block) in data.chunks_exact_mut(block_bytes as usize).enumerate() {
            // Scales between 2^-7 and 2^-6, either sign for Q8_0's and Q5_0's.
            let scale = 0x2000_u16 | (index as u16 * 37 % 0x3FF);
            let at: &[usize] = match kind {
                TensorType::Q8_0 | TensorType::Q5_0 => &[0],
                TensorType::Q4_1 | TensorType::Q4K => &[0, 2],
                _ => &[208],
            };
            for &offset in at {
                block[offset..offset + 2].copy_from_slice(&scale.to_le_bytes());
            }
        }
        data
    }

    fn activations(columns: usize) -> Vec<f32> {
        bytes(columns, 99)
            .into_iter()
            .map(|byte| (f32::from(byte) - 128.0) / 32.0)
            .collect()
    }

    /// The same product from dequantized weights and exact activations.
    fn reference(
        kind: TensorType,
        data: &[u8],
        rows: usize,
        columns: usize,
        x: &[f32],
    ) -> Vec<f32> {
        let mut w = Vec::new();
        dequantize(kind, data, &mut w).expect("dequantizes");
        (0..rows)
            .map(|row| {
                w[row * columns..(row + 1) * columns]
                    .iter()
                    .zip(x)
                    .map(|(a, b)| a * b)
                    .sum()
            })
            .collect()
    }

    #[test]
    fn every_kernel_matches_dequantize_then_multiply() {
        let (rows, columns) = (12, 512);
        let x = activations(columns);
        for kind in [
            TensorType::Q8_0,
            TensorType::Q4_1,
            TensorType::Q5_0,
            TensorType::Q4K,
            TensorType::Q6K,
        ] {
            let data = weights(kind, rows, columns);
            let expected = reference(kind, &data, rows, columns, &x);
            for threads in [1, 2, 5] {
                let mut out = vec![0.0; rows];
                matvec(kind, &data, columns, &x, &mut out, &pool(threads)).expect("runs");
                for (got, want) in out.iter().zip(&expected) {
                    // The activations are rounded to 8 bits: about 0.4% of each block's largest
                    // value per element, far less once summed over a row.
                    let scale = expected.iter().fold(1.0_f32, |max, v| max.max(v.abs()));
                    assert!(
                        (got - want).abs() <= 0.01 * scale,
                        "{kind} with {threads} threads: {got} against {want}"
                    );
                }
            }
        }
    }

    /// The vectorised build of the kernels computes what the portable one does.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_build_matches_the_portable_one() {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            eprintln!("this CPU has no AVX2: nothing to compare");
            return;
        }
        let (row_count, columns) = (7, 768);
        for kind in [
            TensorType::Q8_0,
            TensorType::Q4_1,
            TensorType::Q5_0,
            TensorType::Q4K,
            TensorType::Q6K,
        ] {
            let format = ActivationFormat::for_weights(kind).expect("has a kernel");
            let activations = quantize_activations(&activations(columns), format);
            let data = weights(kind, row_count, columns);
            let row_bytes = data.len() / row_count;
            let (mut portable, mut vectorised) = (vec![0.0; row_count], vec![0.0; row_count]);
            rows::<false>(kind, &data, row_bytes, &activations, &mut portable, 1, 0);
            // SAFETY: the CPU has AVX2 and FMA, checked above.
            #[allow(unsafe_code)]
            unsafe {
                rows_avx2(kind, &data, row_bytes, &activations, &mut vectorised, 1, 0);
            }
            for (a, b) in portable.iter().zip(&vectorised) {
                assert!(
                    (a - b).abs() <= 1e-3 * a.abs().max(1.0),
                    "{kind}: {a} against {b}"
                );
            }
        }
    }

    #[test]
    fn many_tokens_at_once_are_the_tokens_one_by_one() {
        let (row_count, columns, tokens) = (9, 512, 3);
        let xs: Vec<f32> = (0..tokens)
            .flat_map(|token| {
                activations(columns)
                    .into_iter()
                    .map(move |value| value * (token as f32 + 0.5))
            })
            .collect();
        let two = pool(2);
        for kind in [
            TensorType::Q8_0,
            TensorType::Q4_1,
            TensorType::Q5_0,
            TensorType::Q4K,
            TensorType::Q6K,
        ] {
            let data = weights(kind, row_count, columns);
            let mut together = vec![0.0; tokens * row_count];
            matmul(kind, &data, columns, &xs, &mut together, &two, 0).expect("runs");
            for (token, x) in xs.chunks_exact(columns).enumerate() {
                let mut alone = vec![0.0; row_count];
                matvec(kind, &data, columns, x, &mut alone, &two).expect("runs");
                assert_eq!(
                    &together[token * row_count..(token + 1) * row_count],
                    &alone[..],
                    "{kind}, token {token}"
                );
            }
        }
    }

    #[test]
    fn activations_round_to_eight_bits_per_block_of_32_with_half_precision_scales() {
        let x: Vec<f32> = (0..64).map(|i| i as f32 - 32.0).collect();
        for format in [ActivationFormat::Q8_0, ActivationFormat::Q8_1] {
            let blocks = quantize_activations(&x, format);
            assert_eq!(blocks.len(), 2);
            assert_eq!(blocks[0].q[0], -127);
            assert_eq!(blocks[0].scale, round_to_half(32.0 / 127.0));
            assert_eq!(blocks[1].q[31], 127);
            // −1 × 127/32 = −3.97 rounds to −4; −16 × 127/32 = −63.5 is a tie: to the even −64.
            assert_eq!(blocks[0].q[31], -4);
            assert_eq!(blocks[0].q[16], -64);
            let sum = blocks[0].q.iter().map(|q| i32::from(*q)).sum::<i32>();
            assert_eq!(blocks[0].sum, sum);
            assert_eq!(
                blocks[0].scaled_sum,
                round_to_half(32.0 / 127.0 * sum as f32)
            );
        }
        let zeros = quantize_activations(&[0.0; 32], ActivationFormat::Q8_0);
        assert_eq!(zeros[0].scale, 0.0);
        assert!(zeros[0].q.iter().all(|q| *q == 0));
    }

    #[test]
    fn k_quant_activations_share_one_scale_per_256_with_the_extreme_at_minus_127() {
        let x: Vec<f32> = (0..256).map(|i| i as f32 - 100.0).collect();
        let blocks = quantize_activations(&x, ActivationFormat::Q8K);
        assert_eq!(blocks.len(), 8);
        // The largest magnitude is +155: it maps to −127, so the scale is negative.
        assert_eq!(blocks[7].q[31], -127);
        assert!(blocks.iter().all(|block| block.scale == blocks[0].scale));
        assert!((blocks[0].scale + 155.0 / 127.0).abs() < 1e-6);
        for (value, (block, i)) in x.iter().zip(
            blocks
                .iter()
                .flat_map(|block| (0..QK).map(move |i| (block, i))),
        ) {
            let back = block.scale * f32::from(block.q[i]);
            assert!((back - value).abs() <= 0.5 * block.scale.abs() + 1e-4);
        }
    }

    #[test]
    fn shapes_and_types_are_checked() {
        let mut out = vec![0.0; 2];
        let one = pool(1);
        assert_eq!(
            matvec(TensorType::F32, &[], 32, &[0.0; 32], &mut out, &one),
            Err(KernelError::Unsupported(TensorType::F32))
        );
        assert!(matches!(
            matvec(TensorType::Q8_0, &[0; 68], 32, &[0.0; 31], &mut out, &one),
            Err(KernelError::Shape { .. })
        ));
        assert!(matches!(
            matvec(TensorType::Q8_0, &[0; 67], 32, &[0.0; 32], &mut out, &one),
            Err(KernelError::Shape { .. })
        ));
    }
}
