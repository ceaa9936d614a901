//! Our kernels as a burn backend extension. The forward pass is a graph of burn tensors on Flex,
//! burn's pure-Rust CPU backend; the operations burn has no form of for these models are the
//! primitives of [`RuntimeOps`], implemented for Flex on the tensors' own storage: products with
//! GGUF block-quantized matrices, RMSNorm, rotary embeddings, SwiGLU's gate, and attention over our
//! KV cache.
//! The functions at the end apply them to burn tensors.

use burn::backend::flex::FlexTensor;
use burn::{
    backend::{Backend, Flex, tensor::FloatTensor},
    tensor::{Tensor, TensorData},
};

use crate::{
    elementwise::{
        LANES, STEP, dot_in_lanes, dot_in_steps, exp, fastest, lanes_total, multiply_add, silu,
    },
    gguf::TensorType,
    kernels::{self, KernelError},
    quant::round_all_to_half,
};

/// A weight matrix in one of the GGUF block formats, read in place from the mapped file.
#[derive(Debug, Clone, Copy)]
pub struct QuantizedMatrix<'a> {
    pub kind: TensorType,
    pub bytes: &'a [u8],
    pub columns: usize,
    pub rows: usize,
}

/// How rotary embeddings pair a head's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rope {
    /// (0, 1), (2, 3), …: llama, after llama.cpp's permutation of its Q and K weights.
    Adjacent,
    /// (0, d/2), (1, d/2 + 1), …: qwen2 (GPT-NeoX style).
    Halves,
}

/// The heads of an attention layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    pub query: usize,
    pub key_value: usize,
    pub dim: usize,
}

/// One layer's keys and values for every position of a sequence, preallocated.
#[derive(Debug)]
pub struct LayerCache<'a> {
    pub keys: &'a mut [f32],
    pub values: &'a mut [f32],
}

#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("a tensor is not on the Flex backend: {0}")]
    Backend(String),
    #[error("a tensor does not hold f32 values")]
    Dtype,
}

/// The primitives the forward pass adds to a burn backend. Each takes rows of activations
/// (`tokens × width`) and returns new rows.
pub trait RuntimeOps: Backend {
    /// `x · Mᵀ` with the matrix in its block format: each row of `x` quantized once, then every
    /// weight row's dot product with it, split across `pool`'s threads.
    fn quantized_matmul(
        x: FloatTensor<Self>,
        matrix: QuantizedMatrix<'_>,
        pass: Pass,
        pool: &rayon::ThreadPool,
    ) -> Result<FloatTensor<Self>, ExtensionError>;

    /// Each row scaled to unit root mean square, times `weight`.
    fn rms_norm(
        x: FloatTensor<Self>,
        weight: &[f32],
        epsilon: f32,
    ) -> Result<FloatTensor<Self>, ExtensionError>;

    /// Rotary position embedding of every head of every row: row `i` turns by `angles[i]`.
    fn rotary(
        x: FloatTensor<Self>,
        angles: &[Vec<(f32, f32)>],
        head_dim: usize,
        rope: Rope,
    ) -> Result<FloatTensor<Self>, ExtensionError>;

    /// SwiGLU's gate: `silu(gate) · up`, element by element, with llama.cpp's SiLU
    /// ([`crate::elementwise::silu`]): greedy parity with llama.cpp turns on such last bits.
    fn swiglu(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
    ) -> Result<FloatTensor<Self>, ExtensionError>;

    /// Writes the rows' keys and values into `cache` from position `start` on, then attends each
    /// row's query heads causally over the cache up to its own position, summing as llama.cpp
    /// does in `pass`.
    fn attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        cache: LayerCache<'_>,
        start: usize,
        heads: Heads,
        pass: Pass,
    ) -> Result<FloatTensor<Self>, ExtensionError>;
}

/// The tensor's values, row-major.
fn values(tensor: &FlexTensor) -> Result<std::borrow::Cow<'_, [f32]>, ExtensionError> {
    if let Some(values) = tensor.as_slice::<f32>() {
        return Ok(std::borrow::Cow::Borrowed(values));
    }
    tensor
        .to_contiguous()
        .as_slice::<f32>()
        .map(|values| std::borrow::Cow::Owned(values.to_vec()))
        .ok_or(ExtensionError::Dtype)
}

/// The rows of a `rows × width` tensor: every tensor of the forward pass has two dimensions.
fn rows_of(tensor: &FlexTensor) -> usize {
    tensor.layout().shape().dims::<2>()[0]
}

fn tensor(values: Vec<f32>, rows: usize) -> FlexTensor {
    let width = values.len() / rows.max(1);
    FlexTensor::from_data(TensorData::new(values, [rows, width]))
}

impl RuntimeOps for Flex {
    fn quantized_matmul(
        x: FlexTensor,
        matrix: QuantizedMatrix<'_>,
        pass: Pass,
        pool: &rayon::ThreadPool,
    ) -> Result<FlexTensor, ExtensionError> {
        let rows = rows_of(&x);
        let xs = values(&x)?;
        let mut out = vec![0.0; rows * matrix.rows];
        kernels::matmul(
            matrix.kind,
            matrix.bytes,
            matrix.columns,
            &xs,
            &mut out,
            pool,
            pass.grouped(),
        )?;
        Ok(tensor(out, rows))
    }

    fn rms_norm(x: FlexTensor, weight: &[f32], epsilon: f32) -> Result<FlexTensor, ExtensionError> {
        let rows = rows_of(&x);
        let xs = values(&x)?;
        let out = xs
            .chunks_exact(weight.len())
            .flat_map(|row| rms_norm(row, weight, epsilon))
            .collect();
        Ok(tensor(out, rows))
    }

    fn rotary(
        x: FlexTensor,
        angles: &[Vec<(f32, f32)>],
        head_dim: usize,
        rope: Rope,
    ) -> Result<FlexTensor, ExtensionError> {
        let rows = rows_of(&x);
        let mut out = values(&x)?.into_owned();
        fastest!(
            rotate_rows_avx2(&mut out, angles, head_dim, rope),
            rotate_rows::<false>(&mut out, angles, head_dim, rope)
        );
        Ok(tensor(out, rows))
    }

    fn swiglu(gate: FlexTensor, up: FlexTensor) -> Result<FlexTensor, ExtensionError> {
        let rows = rows_of(&gate);
        let mut out = values(&gate)?.into_owned();
        let up = values(&up)?;
        fastest!(
            swiglu_avx2(&mut out, &up),
            swiglu_rows::<false>(&mut out, &up)
        );
        Ok(tensor(out, rows))
    }

    fn attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        cache: LayerCache<'_>,
        start: usize,
        heads: Heads,
        pass: Pass,
    ) -> Result<FlexTensor, ExtensionError> {
        let rows = rows_of(&q);
        let mut scratch = Vec::new();
        // Keys, values and queries in half precision, as llama.cpp keeps its cache and converts
        // the queries to meet it.
        let mut q = values(&q)?.into_owned();
        round_all_to_half(&mut q, &mut scratch);
        let stride = heads.key_value * heads.dim;
        let at = start * stride;
        for (source, cache) in [(k, &mut *cache.keys), (v, &mut *cache.values)] {
            let source = values(&source)?;
            let target = &mut cache[at..at + source.len()];
            target.copy_from_slice(&source);
            round_all_to_half(target, &mut scratch);
        }
        let width = heads.query * heads.dim;
        let mut out = vec![0.0; rows * width];
        for (i, (query, target)) in q
            .chunks_exact(width)
            .zip(out.chunks_exact_mut(width))
            .enumerate()
        {
            let seen = (start + i + 1) * stride;
            let (keys, values) = (&cache.keys[..seen], &cache.values[..seen]);
            fastest!(
                attend_avx2(heads, pass, query, keys, values, target),
                attend::<false>(heads, pass, query, keys, values, target)
            );
        }
        Ok(tensor(out, rows))
    }
}

/// The Flex primitive of a burn tensor.
fn primitive(x: Tensor<2>) -> Result<FlexTensor, ExtensionError> {
    x.try_into_primitive::<Flex>()
        .map_err(|err| ExtensionError::Backend(format!("{err:?}")))
}

fn wrap(primitive: FlexTensor) -> Tensor<2> {
    Tensor::from_primitive::<Flex>(primitive)
}

/// [`RuntimeOps::quantized_matmul`] on a burn tensor.
pub fn quantized_matmul(
    x: Tensor<2>,
    matrix: QuantizedMatrix<'_>,
    pass: Pass,
    pool: &rayon::ThreadPool,
) -> Result<Tensor<2>, ExtensionError> {
    Flex::quantized_matmul(primitive(x)?, matrix, pass, pool).map(wrap)
}

/// [`RuntimeOps::rms_norm`] on a burn tensor.
pub fn rms_norm_rows(
    x: Tensor<2>,
    weight: &[f32],
    epsilon: f32,
) -> Result<Tensor<2>, ExtensionError> {
    Flex::rms_norm(primitive(x)?, weight, epsilon).map(wrap)
}

/// [`RuntimeOps::rotary`] on a burn tensor.
pub fn rotary(
    x: Tensor<2>,
    angles: &[Vec<(f32, f32)>],
    head_dim: usize,
    rope: Rope,
) -> Result<Tensor<2>, ExtensionError> {
    Flex::rotary(primitive(x)?, angles, head_dim, rope).map(wrap)
}

/// [`RuntimeOps::swiglu`] on burn tensors.
pub fn swiglu(gate: Tensor<2>, up: Tensor<2>) -> Result<Tensor<2>, ExtensionError> {
    Flex::swiglu(primitive(gate)?, primitive(up)?).map(wrap)
}

/// [`RuntimeOps::attention`] on burn tensors.
pub fn attention(
    q: Tensor<2>,
    k: Tensor<2>,
    v: Tensor<2>,
    cache: LayerCache<'_>,
    start: usize,
    heads: Heads,
    pass: Pass,
) -> Result<Tensor<2>, ExtensionError> {
    Flex::attention(
        primitive(q)?,
        primitive(k)?,
        primitive(v)?,
        cache,
        start,
        heads,
        pass,
    )
    .map(wrap)
}

/// The mean square summed in double precision, as llama.cpp sums it.
fn rms_norm(x: &[f32], weight: &[f32], epsilon: f32) -> impl Iterator<Item = f32> {
    let squares: f64 = x.iter().map(|v| f64::from(v * v)).sum();
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let mean = (squares / x.len() as f64) as f32;
    let scale = 1.0 / (mean + epsilon).sqrt();
    x.iter().zip(weight).map(move |(v, w)| v * scale * w)
}

/// The (sine, cosine) of the angle each of a head's `dim / 2` pairs turns by at `position`. Pair
/// `i` turns by `position × base^(−2i/dim)`, each angle the last one times `base^(−2/dim)` in
/// single precision, as llama.cpp computes them.
#[allow(clippy::cast_precision_loss)]
pub fn rotary_angles(position: usize, dim: usize, base: f32) -> Vec<(f32, f32)> {
    let step = base.powf(-2.0 / dim as f32);
    let mut angle = position as f32;
    (0..dim / 2)
        .map(|_| {
            let pair = angle.sin_cos();
            angle *= step;
            pair
        })
        .collect()
}

/// Rotary position embedding of one head, by the angles of its position, each new coordinate one
/// product fused with the other where `FMA` says so, as llama.cpp's build computes it.
#[inline(always)]
fn rotate<const FMA: bool>(head: &mut [f32], angles: &[(f32, f32)], rope: Rope) {
    let dim = head.len();
    for (i, &(sin, cos)) in angles.iter().enumerate() {
        let (a, b) = match rope {
            Rope::Adjacent => (2 * i, 2 * i + 1),
            Rope::Halves => (i, i + dim / 2),
        };
        let (x, y) = (head[a], head[b]);
        head[a] = multiply_add::<FMA>(x, cos, -(y * sin));
        head[b] = multiply_add::<FMA>(x, sin, y * cos);
    }
}

/// Every head of every row turned by [`rotate`], row `i` by `angles[i]`.
#[inline(always)]
fn rotate_rows<const FMA: bool>(
    values: &mut [f32],
    angles: &[Vec<(f32, f32)>],
    head_dim: usize,
    rope: Rope,
) {
    let width = values.len() / angles.len().max(1);
    for (row, angles) in values.chunks_exact_mut(width.max(1)).zip(angles) {
        for head in row.chunks_exact_mut(head_dim) {
            rotate::<FMA>(head, angles, rope);
        }
    }
}

/// [`rotate_rows`] compiled for AVX2 with fused multiply-adds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn rotate_rows_avx2(values: &mut [f32], angles: &[Vec<(f32, f32)>], head_dim: usize, rope: Rope) {
    rotate_rows::<true>(values, angles, head_dim, rope);
}

/// How llama.cpp would take the tokens of a step, which decides the order of its sums (and
/// parity turns on their last bits): a prompt of several tokens goes through its matrix
/// multiplications, a single token through its vector dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Part of a prompt; the first `grouped` tokens are among those llama.cpp's repacked Q4_K
    /// kernel takes four at a time.
    Prompt {
        grouped: usize,
    },
    Decode,
}

impl Pass {
    fn grouped(self) -> usize {
        match self {
            Self::Prompt { grouped } => grouped,
            Self::Decode => 0,
        }
    }
}

/// Causal attention of every query head over the cached keys and values (`keys` and `values`
/// hold every position so far, in half precision as `q` is), each query head reading its
/// group's key-value head. The softmax is llama.cpp's: the exponentials eight at a time, their
/// total in double precision, and the weights rounded to half precision before they meet the
/// values.
#[inline(always)]
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
fn attend<const FMA: bool>(
    heads: Heads,
    pass: Pass,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    out: &mut [f32],
) {
    // A function, not a closure: a closure is not compiled with its caller's target features,
    // and its multiply-adds would be calls into libm.
    let dot = dot_for::<FMA>;
    let stride = heads.key_value * heads.dim;
    let positions = keys.len() / stride;
    let group = (heads.query / heads.key_value.max(1)).max(1);
    let scale = 1.0 / (heads.dim as f32).sqrt();
    // llama.cpp's cache is longer than the sequence, its unused places masked to weight 0: the
    // weights and values are padded with zeros to whole steps of its dot product.
    let padded = positions.div_ceil(STEP) * STEP;
    let mut weights = vec![0.0_f32; padded];
    let mut halves = Vec::with_capacity(padded);
    // The values of one key-value head, a row per dimension: what llama.cpp's cache holds.
    let mut by_dimension = vec![0.0_f32; heads.dim * padded];
    let mut cached_head = None;
    for head in 0..heads.query {
        let kv = head / group;
        let query = &q[head * heads.dim..(head + 1) * heads.dim];
        let seen = &mut weights[..positions];
        for (position, weight) in seen.iter_mut().enumerate() {
            let key = &keys[position * stride + kv * heads.dim..][..heads.dim];
            *weight = dot(pass, key, query) * scale;
        }
        let largest = seen.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0_f64;
        for eight in seen.chunks_mut(LANES) {
            let mut lanes = [0.0_f32; LANES];
            for (lane, weight) in lanes.iter_mut().zip(eight.iter_mut()) {
                *weight = exp::<FMA>(*weight - largest);
                *lane = *weight;
            }
            total += f64::from(lanes_total(&lanes));
        }
        let inverse = (1.0 / total) as f32;
        for weight in seen.iter_mut() {
            *weight *= inverse;
        }
        round_all_to_half(seen, &mut halves);
        if cached_head != Some(kv) {
            for (position, value) in values.chunks_exact(stride).enumerate() {
                let value = &value[kv * heads.dim..(kv + 1) * heads.dim];
                for (d, v) in value.iter().enumerate() {
                    by_dimension[d * padded + position] = *v;
                }
            }
            cached_head = Some(kv);
        }
        let target = &mut out[head * heads.dim..(head + 1) * heads.dim];
        for (t, value) in target.iter_mut().zip(by_dimension.chunks_exact(padded)) {
            *t = dot(pass, value, &weights);
        }
    }
}

/// Σ a·b in the order llama.cpp adds it in `pass`.
#[inline(always)]
fn dot_for<const FMA: bool>(pass: Pass, a: &[f32], b: &[f32]) -> f32 {
    match pass {
        Pass::Prompt { .. } => dot_in_lanes::<FMA>(a, b),
        Pass::Decode => dot_in_steps::<FMA>(a, b),
    }
}

/// [`attend`] compiled for AVX2 with fused multiply-adds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn attend_avx2(heads: Heads, pass: Pass, q: &[f32], keys: &[f32], values: &[f32], out: &mut [f32]) {
    attend::<true>(heads, pass, q, keys, values, out);
}

/// SwiGLU's gate, `silu(gate) · up`, compiled for AVX2 with fused multiply-adds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn swiglu_avx2(gate: &mut [f32], up: &[f32]) {
    swiglu_rows::<true>(gate, up);
}

#[inline(always)]
fn swiglu_rows<const FMA: bool>(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = silu::<FMA>(*g) * u;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rotation_pairs_differ_by_architecture_and_keep_length() {
        let mut adjacent = [1.0, 0.0, 1.0, 0.0];
        rotate::<false>(
            &mut adjacent,
            &rotary_angles(1, 4, 10_000.0),
            Rope::Adjacent,
        );
        // Pair (0, 1) turns by 1 radian; pair (2, 3) by 1/100.
        assert!((adjacent[0] - 1.0_f32.cos()).abs() < 1e-6);
        assert!((adjacent[1] - 1.0_f32.sin()).abs() < 1e-6);
        assert!((adjacent[2] - 0.01_f32.cos()).abs() < 1e-6);
        let mut halves = [1.0, 1.0, 0.0, 0.0];
        rotate::<false>(&mut halves, &rotary_angles(1, 4, 10_000.0), Rope::Halves);
        assert!((halves[0] - 1.0_f32.cos()).abs() < 1e-6);
        assert!((halves[2] - 1.0_f32.sin()).abs() < 1e-6);
        let length: f32 = halves.iter().map(|v| v * v).sum();
        assert!((length - 2.0).abs() < 1e-5);
    }

    #[test]
    fn rms_norm_scales_rows_of_a_burn_tensor_to_unit_root_mean_square() {
        let device = burn::tensor::Device::flex();
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![3.0_f32, 4.0, 0.0, 2.0], [2, 2]),
            &device,
        );
        let normed = rms_norm_rows(x, &[1.0, 2.0], 0.0).unwrap();
        let values = normed.into_data().try_into_vec::<f32>().unwrap();
        let rms = 12.5_f32.sqrt();
        assert!((values[0] - 3.0 / rms).abs() < 1e-6);
        assert!((values[1] - 8.0 / rms).abs() < 1e-6);
        assert!((values[2]).abs() < 1e-6);
        assert!((values[3] - 4.0 / 2.0_f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn attention_over_one_position_returns_its_value_and_fills_the_cache() {
        let device = burn::tensor::Device::flex();
        let heads = Heads {
            query: 2,
            key_value: 1,
            dim: 2,
        };
        let row = |values: Vec<f32>| {
            let width = values.len();
            Tensor::<2>::from_data(TensorData::new(values, [1, width]), &device)
        };
        let (mut keys, mut values) = (vec![0.0; 4], vec![0.0; 4]);
        let out = attention(
            row(vec![1.0, 0.0, 0.0, 1.0]),
            row(vec![0.5, 0.5]),
            row(vec![3.0, -1.0]),
            LayerCache {
                keys: &mut keys,
                values: &mut values,
            },
            1,
            heads,
            Pass::Decode,
        )
        .unwrap();
        // One query head pair shares the single key-value head; position 0 is still zeros.
        assert_eq!(&keys[2..], &[0.5, 0.5]);
        assert_eq!(&values[2..], &[3.0, -1.0]);
        let out = out.into_data().try_into_vec::<f32>().unwrap();
        // Scores are equal for the zero key and this one only if q·k = 0; here q·k = 0.5 / √2.
        // The attention weight is rounded to half precision before it meets the values.
        let w = (0.5_f32 / 2.0_f32.sqrt()).exp();
        let weight = crate::quant::round_to_half(w / (1.0 + w));
        let expected = [3.0 * weight, -weight];
        for (got, want) in out
            .chunks_exact(2)
            .flat_map(|head| head.iter())
            .zip(expected.iter().cycle())
        {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }
}
