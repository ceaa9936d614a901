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
    gguf::TensorType,
    kernels::{self, KernelError},
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

    /// SwiGLU's gate: `silu(gate) · up`, element by element, with silu as llama.cpp writes it
    /// (`g / (1 + e^-g)`): greedy parity with llama.cpp turns on such last bits.
    fn swiglu(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
    ) -> Result<FloatTensor<Self>, ExtensionError>;

    /// Writes the rows' keys and values into `cache` from position `start` on, then attends each
    /// row's query heads causally over the cache up to its own position.
    fn attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        cache: LayerCache<'_>,
        start: usize,
        heads: Heads,
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
        let width = out.len() / rows.max(1);
        for (row, angles) in out.chunks_exact_mut(width).zip(angles) {
            for head in row.chunks_exact_mut(head_dim) {
                rotate(head, angles, rope);
            }
        }
        Ok(tensor(out, rows))
    }

    fn swiglu(gate: FlexTensor, up: FlexTensor) -> Result<FlexTensor, ExtensionError> {
        let rows = rows_of(&gate);
        let mut out = values(&gate)?.into_owned();
        for (g, u) in out.iter_mut().zip(values(&up)?.iter()) {
            *g = *g / (1.0 + (-*g).exp()) * u;
        }
        Ok(tensor(out, rows))
    }

    fn attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        cache: LayerCache<'_>,
        start: usize,
        heads: Heads,
    ) -> Result<FlexTensor, ExtensionError> {
        let rows = rows_of(&q);
        let (q, k, v) = (values(&q)?, values(&k)?, values(&v)?);
        let stride = heads.key_value * heads.dim;
        let at = start * stride;
        cache.keys[at..at + k.len()].copy_from_slice(&k);
        cache.values[at..at + v.len()].copy_from_slice(&v);
        let width = heads.query * heads.dim;
        let mut out = vec![0.0; rows * width];
        for (i, (query, target)) in q
            .chunks_exact(width)
            .zip(out.chunks_exact_mut(width))
            .enumerate()
        {
            let seen = (start + i + 1) * stride;
            attend(
                heads,
                query,
                &cache.keys[..seen],
                &cache.values[..seen],
                target,
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
    pool: &rayon::ThreadPool,
) -> Result<Tensor<2>, ExtensionError> {
    Flex::quantized_matmul(primitive(x)?, matrix, pool).map(wrap)
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
) -> Result<Tensor<2>, ExtensionError> {
    Flex::attention(
        primitive(q)?,
        primitive(k)?,
        primitive(v)?,
        cache,
        start,
        heads,
    )
    .map(wrap)
}

fn rms_norm(x: &[f32], weight: &[f32], epsilon: f32) -> impl Iterator<Item = f32> {
    #[allow(clippy::cast_precision_loss)]
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean + epsilon).sqrt();
    x.iter().zip(weight).map(move |(v, w)| v * scale * w)
}

/// The (sine, cosine) of the angle each of a head's `dim / 2` pairs turns by at `position`.
#[allow(clippy::cast_precision_loss)]
pub fn rotary_angles(position: usize, dim: usize, base: f32) -> Vec<(f32, f32)> {
    (0..dim / 2)
        .map(|i| (position as f32 * base.powf(-2.0 * i as f32 / dim as f32)).sin_cos())
        .collect()
}

/// Rotary position embedding of one head, by the angles of its position.
fn rotate(head: &mut [f32], angles: &[(f32, f32)], rope: Rope) {
    let dim = head.len();
    for (i, &(sin, cos)) in angles.iter().enumerate() {
        let (a, b) = match rope {
            Rope::Adjacent => (2 * i, 2 * i + 1),
            Rope::Halves => (i, i + dim / 2),
        };
        let (x, y) = (head[a], head[b]);
        head[a] = x * cos - y * sin;
        head[b] = x * sin + y * cos;
    }
}

/// Causal attention of every query head over the cached keys and values (`keys` and `values`
/// hold every position so far), each query head reading its group's key-value head.
#[allow(clippy::cast_precision_loss)]
fn attend(heads: Heads, q: &[f32], keys: &[f32], values: &[f32], out: &mut [f32]) {
    let stride = heads.key_value * heads.dim;
    let positions = keys.len() / stride;
    let group = (heads.query / heads.key_value.max(1)).max(1);
    let scale = 1.0 / (heads.dim as f32).sqrt();
    let mut scores = vec![0.0_f32; positions];
    for head in 0..heads.query {
        let kv = head / group;
        let query = &q[head * heads.dim..(head + 1) * heads.dim];
        for (position, score) in scores.iter_mut().enumerate() {
            let key = &keys[position * stride + kv * heads.dim..][..heads.dim];
            *score = query.iter().zip(key).map(|(a, b)| a * b).sum::<f32>() * scale;
        }
        let largest = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for score in &mut scores {
            *score = (*score - largest).exp();
            total += *score;
        }
        let target = &mut out[head * heads.dim..(head + 1) * heads.dim];
        target.fill(0.0);
        for (position, weight) in scores.iter().enumerate() {
            let value = &values[position * stride + kv * heads.dim..][..heads.dim];
            let weight = weight / total;
            for (t, v) in target.iter_mut().zip(value) {
                *t += weight * v;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rotation_pairs_differ_by_architecture_and_keep_length() {
        let mut adjacent = [1.0, 0.0, 1.0, 0.0];
        rotate(
            &mut adjacent,
            &rotary_angles(1, 4, 10_000.0),
            Rope::Adjacent,
        );
        // Pair (0, 1) turns by 1 radian; pair (2, 3) by 1/100.
        assert!((adjacent[0] - 1.0_f32.cos()).abs() < 1e-6);
        assert!((adjacent[1] - 1.0_f32.sin()).abs() < 1e-6);
        assert!((adjacent[2] - 0.01_f32.cos()).abs() < 1e-6);
        let mut halves = [1.0, 1.0, 0.0, 0.0];
        rotate(&mut halves, &rotary_angles(1, 4, 10_000.0), Rope::Halves);
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
        )
        .unwrap();
        // One query head pair shares the single key-value head; position 0 is still zeros.
        assert_eq!(&keys[2..], &[0.5, 0.5]);
        assert_eq!(&values[2..], &[3.0, -1.0]);
        let out = out.into_data().try_into_vec::<f32>().unwrap();
        // Scores are equal for the zero key and this one only if q·k = 0; here q·k = 0.5 / √2.
        let w = (0.5_f32 / 2.0_f32.sqrt()).exp();
        let expected = [3.0 * w / (1.0 + w), -w / (1.0 + w)];
        for (got, want) in out
            .chunks_exact(2)
            .flat_map(|head| head.iter())
            .zip(expected.iter().cycle())
        {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }
}
