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
    elementwise::{LANES, fastest, lanes_total, multiply_add},
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
    /// Σ q, for weight formats with an offset (Q4_1, Q4_K).
    pub sum: i32,
    /// Σ q over the first 16 and over the last 16, for Q6_K's offset.
    pub half_sums: [i32; 2],
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
                *slot = nearest(value * multiplier).clamp(-127.0, 127.0) as i8;
            }
            let half_sums = [&q[..16], &q[16..]]
                .map(|half| half.iter().map(|value| i32::from(*value)).sum::<i32>());
            let sum = half_sums[0] + half_sums[1];
            #[allow(clippy::cast_precision_loss)]
            let scaled_sum = round_to_half(scale * sum as f32);
            blocks.push(ActivationBlock {
                scale: match format {
                    ActivationFormat::Q8_0 | ActivationFormat::Q8_1 => round_to_half(scale),
                    ActivationFormat::Q8K => scale,
                },
                q,
                sum,
                half_sums,
                scaled_sum,
            });
        }
    }
    blocks
}

/// `x` rounded to the nearest integer, ties to even, as both of llama.cpp's roundings do, for
/// `|x|` below 2²²: adding 1.5 × 2²³ leaves no bits below the units, which rounds as the FPU
/// does, without a library call for want of SSE4.1's rounding instruction in the portable build.
#[inline(always)]
fn nearest(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    (x + SHIFT) - SHIFT
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

/// The registers the kernels compute in: eight 32-bit lanes of integers and eight of floats, as
/// llama.cpp's AVX2 kernels hold them. [`Portable`] keeps them in arrays the compiler vectorises
/// as it can; [`Avx2`] in AVX2 registers, so that a row's sums stay in registers from block to
/// block. Integer lanes are exact, so only the float lanes' order of operations must be
/// llama.cpp's.
trait Lanes {
    type Ints: Copy;
    type Floats: Copy;

    fn ints(values: [i32; LANES]) -> Self::Ints;
    fn zero() -> Self::Floats;
    /// The little-endian half-precision number at `at`.
    fn half(bytes: &[u8], at: usize) -> f32;
    /// Lane `l`: `scales[l / 4] × Σ w·a` over bytes `4l..4l + 4` of 32 weights and 32
    /// activations, the weights signed (two's complement) where `SIGNED` says so.
    fn quads<const SIGNED: bool>(w: &[u8; QK], a: &[i8; QK], scales: [i16; 2]) -> Self::Ints;
    fn add(x: Self::Ints, y: Self::Ints) -> Self::Ints;
    fn subtract(x: Self::Ints, y: Self::Ints) -> Self::Ints;
    /// The sum of the lanes.
    fn ints_total(x: Self::Ints) -> i32;
    /// `d × x + acc`, lane by lane.
    fn multiply_add(d: f32, x: Self::Ints, acc: Self::Floats) -> Self::Floats;
    /// The lanes summed as [`lanes_total`] sums them.
    fn total(x: Self::Floats) -> f32;
    /// `a × b + c` of single numbers, fused in the build whose lanes are (llama.cpp's AVX2
    /// build fuses them).
    fn fused(a: f32, b: f32, c: f32) -> f32;
}

/// [`Lanes`] as arrays, for any CPU.
struct Portable;

impl Lanes for Portable {
    type Ints = [i32; LANES];
    type Floats = [f32; LANES];

    #[inline(always)]
    fn ints(values: [i32; LANES]) -> Self::Ints {
        values
    }

    #[inline(always)]
    fn zero() -> Self::Floats {
        [0.0; LANES]
    }

    #[inline(always)]
    fn half(bytes: &[u8], at: usize) -> f32 {
        half(bytes, at)
    }

    #[inline(always)]
    fn quads<const SIGNED: bool>(w: &[u8; QK], a: &[i8; QK], scales: [i16; 2]) -> Self::Ints {
        let mut lanes = [0_i32; LANES];
        for (l, (lane, (w, a))) in lanes
            .iter_mut()
            .zip(w.chunks_exact(4).zip(a.chunks_exact(4)))
            .enumerate()
        {
            let sum: i32 = w
                .iter()
                .zip(a)
                .map(|(w, a)| {
                    let w = if SIGNED {
                        i32::from(w.cast_signed())
                    } else {
                        i32::from(*w)
                    };
                    w * i32::from(*a)
                })
                .sum();
            *lane = i32::from(scales[l / 4]) * sum;
        }
        lanes
    }

    #[inline(always)]
    fn add(x: Self::Ints, y: Self::Ints) -> Self::Ints {
        std::array::from_fn(|l| x[l] + y[l])
    }

    #[inline(always)]
    fn subtract(x: Self::Ints, y: Self::Ints) -> Self::Ints {
        std::array::from_fn(|l| x[l] - y[l])
    }

    #[inline(always)]
    fn ints_total(x: Self::Ints) -> i32 {
        x.iter().sum()
    }

    #[inline(always)]
    #[allow(clippy::cast_precision_loss)]
    fn multiply_add(d: f32, x: Self::Ints, acc: Self::Floats) -> Self::Floats {
        std::array::from_fn(|l| multiply_add::<false>(d, x[l] as f32, acc[l]))
    }

    #[inline(always)]
    fn total(x: Self::Floats) -> f32 {
        lanes_total(&x)
    }

    #[inline(always)]
    fn fused(a: f32, b: f32, c: f32) -> f32 {
        multiply_add::<false>(a, b, c)
    }
}

/// [`Lanes`] in AVX2 registers, with llama.cpp's instructions: unsigned bytes times signed bytes
/// summed in pairs to 16 bits (`maddubs`; no weight format here can overflow it), then in pairs
/// to 32 bits times a scale (`madd`); fused multiply-adds; F16C half-precision conversions. Its
/// functions are only instantiated inside [`rows_avx2`], which is compiled for AVX2, FMA and
/// F16C and runs only on CPUs found to have them: that is what makes their intrinsics sound.
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
impl Lanes for Avx2 {
    type Ints = std::arch::x86_64::__m256i;
    type Floats = std::arch::x86_64::__m256;

    #[inline(always)]
    fn ints(values: [i32; LANES]) -> Self::Ints {
        // SAFETY: see the type; the array is the 32 bytes one unaligned load reads.
        unsafe { std::arch::x86_64::_mm256_loadu_si256(values.as_ptr().cast()) }
    }

    #[inline(always)]
    fn zero() -> Self::Floats {
        // SAFETY: see the type.
        unsafe { std::arch::x86_64::_mm256_setzero_ps() }
    }

    #[inline(always)]
    fn half(bytes: &[u8], at: usize) -> f32 {
        use std::arch::x86_64::{_mm_cvtph_ps, _mm_cvtsi32_si128, _mm_cvtss_f32};
        let bits = i32::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
        // SAFETY: see the type.
        unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits))) }
    }

    #[inline(always)]
    fn quads<const SIGNED: bool>(w: &[u8; QK], a: &[i8; QK], scales: [i16; 2]) -> Self::Ints {
        use std::arch::x86_64::{
            _mm_set1_epi16, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_maddubs_epi16,
            _mm256_set_m128i, _mm256_sign_epi8,
        };
        // SAFETY: see the type; both arrays are the 32 bytes one unaligned load reads.
        unsafe {
            let (w, a) = (
                _mm256_loadu_si256(w.as_ptr().cast()),
                _mm256_loadu_si256(a.as_ptr().cast()),
            );
            // Signed weights: |w| times a with w's sign, an unsigned-by-signed product.
            let (w, a) = if SIGNED {
                (_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w))
            } else {
                (w, a)
            };
            let scales = _mm256_set_m128i(_mm_set1_epi16(scales[1]), _mm_set1_epi16(scales[0]));
            _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), scales)
        }
    }

    #[inline(always)]
    fn add(x: Self::Ints, y: Self::Ints) -> Self::Ints {
        // SAFETY: see the type.
        unsafe { std::arch::x86_64::_mm256_add_epi32(x, y) }
    }

    #[inline(always)]
    fn subtract(x: Self::Ints, y: Self::Ints) -> Self::Ints {
        // SAFETY: see the type.
        unsafe { std::arch::x86_64::_mm256_sub_epi32(x, y) }
    }

    #[inline(always)]
    fn ints_total(x: Self::Ints) -> i32 {
        let mut lanes = [0_i32; LANES];
        // SAFETY: see the type; the array is the 32 bytes one unaligned store writes.
        unsafe { std::arch::x86_64::_mm256_storeu_si256(lanes.as_mut_ptr().cast(), x) };
        lanes.iter().sum()
    }

    #[inline(always)]
    fn multiply_add(d: f32, x: Self::Ints, acc: Self::Floats) -> Self::Floats {
        use std::arch::x86_64::{_mm256_cvtepi32_ps, _mm256_fmadd_ps, _mm256_set1_ps};
        // SAFETY: see the type.
        unsafe { _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(x), acc) }
    }

    #[inline(always)]
    fn total(x: Self::Floats) -> f32 {
        let mut lanes = [0.0_f32; LANES];
        // SAFETY: see the type; the array is the 32 bytes one unaligned store writes.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(lanes.as_mut_ptr(), x) };
        lanes_total(&lanes)
    }

    #[inline(always)]
    fn fused(a: f32, b: f32, c: f32) -> f32 {
        multiply_add::<true>(a, b, c)
    }
}

/// One token's running sum along a weight row, in llama.cpp's accumulators: 8 lanes of block
/// products, a scalar added to them at the end (Q4_1's offsets; Q4_K's products) and one taken
/// away (Q4_K's offsets).
struct RowSum<L: Lanes> {
    lanes: L::Floats,
    rest: f32,
    less: f32,
}

impl<L: Lanes> RowSum<L> {
    #[inline(always)]
    fn new() -> Self {
        Self {
            lanes: L::zero(),
            rest: 0.0,
            less: 0.0,
        }
    }

    #[inline(always)]
    fn total(&self) -> f32 {
        L::total(self.lanes) + self.rest - self.less
    }
}

/// Σ w·a of one row of `kind` weights (`row` holds its blocks) with each token's quantized
/// activations (`activations` holds `tokens × blocks`, token after token), added to `sums`, one
/// per token. Each block is unpacked once and dotted with every token's block.
#[inline(always)]
fn dot<L: Lanes>(
    kind: TensorType,
    row: &[u8],
    activations: &[ActivationBlock],
    sums: &mut [RowSum<L>],
    grouped: usize,
) {
    let blocks = activations.len() / sums.len().max(1);
    let token = |t: usize, b: usize| &activations[t * blocks + b];
    match kind {
        TensorType::Q8_0 => {
            for (b, block) in row.chunks_exact(34).enumerate() {
                let w = block[2..34].try_into().unwrap_or(&[0; QK]);
                let d = L::half(block, 0);
                for (t, sum) in sums.iter_mut().enumerate() {
                    let a = token(t, b);
                    sum.lanes =
                        L::multiply_add(d * a.scale, L::quads::<true>(w, &a.q, [1, 1]), sum.lanes);
                }
            }
        }
        TensorType::Q4_1 => {
            for (b, block) in row.chunks_exact(20).enumerate() {
                let w = nibbles(&block[4..20]);
                let (d, m) = (L::half(block, 0), L::half(block, 2));
                for (t, sum) in sums.iter_mut().enumerate() {
                    let a = token(t, b);
                    sum.rest += m * a.scaled_sum;
                    sum.lanes = L::multiply_add(
                        d * a.scale,
                        L::quads::<false>(&w, &a.q, [1, 1]),
                        sum.lanes,
                    );
                }
            }
        }
        TensorType::Q5_0 => {
            for (b, block) in row.chunks_exact(22).enumerate() {
                let mut w = nibbles(&block[6..22]);
                // Weight j's fifth bit is bit j of bytes 2..6; a weight is its 5 bits less 16,
                // which in two's complement is its nibble with the high nibble set where the
                // fifth bit is not (as llama.cpp unpacks it), eight weights at a time.
                for (eight, bits) in w.chunks_exact_mut(8).zip(&block[2..6]) {
                    let mut word = [0_u8; 8];
                    word.copy_from_slice(eight);
                    let signed = u64::from_le_bytes(word) | HIGH_NIBBLES_UNLESS[usize::from(*bits)];
                    eight.copy_from_slice(&signed.to_le_bytes());
                }
                let d = L::half(block, 0);
                for (t, sum) in sums.iter_mut().enumerate() {
                    let a = token(t, b);
                    sum.lanes =
                        L::multiply_add(d * a.scale, L::quads::<true>(&w, &a.q, [1, 1]), sum.lanes);
                }
            }
        }
        TensorType::Q4K => {
            for (super_block, block) in row.chunks_exact(144).enumerate() {
                dot_q4_k(block, |sub| 8 * super_block + sub, &token, sums, grouped);
            }
        }
        TensorType::Q6K => {
            for (super_block, block) in row.chunks_exact(210).enumerate() {
                dot_q6_k(block, |sub| 8 * super_block + sub, &token, sums);
            }
        }
        _ => {}
    }
}

/// Each byte's 8 bits spread to 8 bytes, byte `i` 0xF0 where bit `i` is clear, else 0: with a
/// Q5_0 weight's low 4 bits, its fifth bit's contribution as a signed byte less 16.
const HIGH_NIBBLES_UNLESS: [u64; 256] = {
    let mut table = [0_u64; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut spread = 0_u64;
        let mut bit = 0;
        while bit < 8 {
            if (byte >> bit) & 1 == 0 {
                spread |= 0xF0 << (8 * bit);
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
fn dot_q4_k<'a, L: Lanes>(
    block: &[u8],
    index: impl Fn(usize) -> usize,
    token: &impl Fn(usize, usize) -> &'a ActivationBlock,
    sums: &mut [RowSum<L>],
    grouped: usize,
) {
    let (d, dmin) = (L::half(block, 0), L::half(block, 2));
    let packed = &block[4..16];
    let mut w = [[0_u8; QK]; 8];
    let mut scales = [(0_i16, 0_i32); 8];
    for (chunk, qs) in block[16..144].chunks_exact(32).enumerate() {
        for nibble in [0, 4] {
            let sub = 2 * chunk + nibble / 4;
            let (scale, min) = scale_min_k4(sub, packed);
            scales[sub] = (i16::from(scale), i32::from(min));
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
            let (mut products, mut offsets) = (L::ints([0; LANES]), 0_i32);
            for (sub, (w, &(scale, min))) in w.iter().zip(scales).enumerate() {
                let a = token(t, index(chunk * part + sub));
                products = L::add(products, L::quads::<false>(w, &a.q, [scale, scale]));
                offsets += min * a.sum;
            }
            sum.rest = L::fused(int(L::ints_total(products)), d * a_scale, sum.rest);
            sum.less = L::fused(int(offsets), dmin * a_scale, sum.less);
        }
    }
}

/// One Q6_K super-block against 8 activation blocks per token; sub-blocks of 16 share an
/// activation block's scale two by two, and the values' offset of 32 comes off through sums of
/// the activations. Unpacked once, summed per token in integer lanes as llama.cpp sums them.
#[inline(always)]
fn dot_q6_k<'a, L: Lanes>(
    block: &[u8],
    index: impl Fn(usize) -> usize,
    token: &impl Fn(usize, usize) -> &'a ActivationBlock,
    sums: &mut [RowSum<L>],
) {
    let d = L::half(block, 208);
    let mut scales = [[0_i16; 2]; 8];
    for (pair, bytes) in scales.iter_mut().zip(block[192..208].chunks_exact(2)) {
        *pair = [bytes[0], bytes[1]].map(|byte| i16::from(byte.cast_signed()));
    }
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
        let mut lanes = L::ints([0; LANES]);
        let mut offsets = [0_i32; LANES];
        for (sub, ((w, scales), offset)) in w.iter().zip(&scales).zip(&mut offsets).enumerate() {
            let a = token(t, index(sub));
            lanes = L::add(lanes, L::quads::<false>(w, &a.q, *scales));
            let [first, second] = scales.map(i32::from);
            *offset = 32 * (first * a.half_sums[0] + second * a.half_sums[1]);
        }
        let lanes = L::subtract(lanes, L::ints(offsets));
        sum.lanes = L::multiply_add(token(t, index(0)).scale * d, lanes, sum.lanes);
    }
}

/// `out[r × tokens + t] = row r · token t` for consecutive rows of `row_bytes` each.
#[inline(always)]
fn rows<L: Lanes>(
    kind: TensorType,
    weights: &[u8],
    row_bytes: usize,
    activations: &[ActivationBlock],
    out: &mut [f32],
    tokens: usize,
    grouped: usize,
) {
    if tokens == 1 {
        // A lone token's sums in a one-element array the compiler keeps in registers: summed
        // through memory, each block would wait for the last block's store.
        for (out, row) in out.iter_mut().zip(weights.chunks_exact(row_bytes)) {
            let mut sum = [RowSum::<L>::new()];
            dot(kind, row, activations, &mut sum, grouped);
            *out = sum[0].total();
        }
        return;
    }
    let mut sums: Vec<RowSum<L>> = (0..tokens).map(|_| RowSum::new()).collect();
    for (out, row) in out
        .chunks_exact_mut(tokens)
        .zip(weights.chunks_exact(row_bytes))
    {
        sums.iter_mut().for_each(|sum| *sum = RowSum::new());
        dot(kind, row, activations, &mut sums, grouped);
        for (out, sum) in out.iter_mut().zip(&sums) {
            *out = sum.total();
        }
    }
}

/// [`rows`] in AVX2 registers ([`Avx2`]), compiled for the features those use.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_avx2(
    kind: TensorType,
    weights: &[u8],
    row_bytes: usize,
    activations: &[ActivationBlock],
    out: &mut [f32],
    tokens: usize,
    grouped: usize,
) {
    rows::<Avx2>(kind, weights, row_bytes, activations, out, tokens, grouped);
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
                    fastest!(
                        rows_avx2(kind, weights, row_bytes, &activations, out, tokens, grouped),
                        rows::<Portable>(
                            kind,
                            weights,
                            row_bytes,
                            &activations,
                            out,
                            tokens,
                            grouped
                        )
                    );
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
        if !crate::elementwise::has_avx2_fma_f16c() {
            eprintln!("this CPU has no AVX2, FMA and F16C: nothing to compare");
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
            rows::<Portable>(kind, &data, row_bytes, &activations, &mut portable, 1, 0);
            // SAFETY: the CPU has AVX2, FMA and F16C, checked above.
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
