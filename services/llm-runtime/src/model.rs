//! The llama and qwen2 architectures, as GGUF stores them, run token by token: embeddings,
//! RMSNorm, rotary position embeddings (adjacent pairs for llama, whose Q and K rows llama.cpp's
//! converter permuted; halves for qwen2), grouped-query attention over a preallocated KV cache,
//! a SwiGLU feed-forward block, q/k/v biases (qwen2), and a separate or tied output matrix.
//! Weights stay quantized; every product goes through [`crate::kernels::matvec`].
//!
//! This is the plain-Rust reference of the forward pass; the burn graph will take it over.

use crate::{
    gguf::{Gguf, GgufError, TensorInfo, TensorType},
    kernels::{self, KernelError},
    quant::{self, QuantError},
};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("architecture {0:?} is not supported (supported: llama, qwen2)")]
    Architecture(String),
    #[error("tensor {0:?} is missing")]
    MissingTensor(String),
    #[error("tensor {name:?} has dimensions {found:?}, not {wanted:?}")]
    Shape {
        name: String,
        found: Vec<u64>,
        wanted: Vec<u64>,
    },
    #[error("the context of {0} tokens is full")]
    ContextFull(usize),
    #[error("token {0} is outside the vocabulary")]
    Token(u32),
    #[error("the prompt has no tokens")]
    EmptyPrompt,
}

/// How rotary embeddings pair a head's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rope {
    /// (0, 1), (2, 3), …: llama, after llama.cpp's permutation of its Q and K weights.
    Adjacent,
    /// (0, d/2), (1, d/2 + 1), …: qwen2 (GPT-NeoX style).
    Halves,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub layers: usize,
    pub width: usize,
    pub feed_forward: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocabulary: usize,
    /// The longest sequence the model was trained on.
    pub context: usize,
    epsilon: f32,
    rope_base: f32,
    rope: Rope,
}

/// A weight matrix: quantized bytes in the mapped file, or (for float matrices) numbers.
enum Matrix {
    Quantized {
        kind: TensorType,
        range: std::ops::Range<usize>,
        columns: usize,
    },
    Dense {
        values: Vec<f32>,
        columns: usize,
    },
}

struct Layer {
    attn_norm: Vec<f32>,
    q: Matrix,
    k: Matrix,
    v: Matrix,
    biases: Option<[Vec<f32>; 3]>,
    output: Matrix,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

pub struct Model {
    gguf: Gguf,
    pub config: Config,
    embedding: (TensorType, std::ops::Range<usize>),
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    output: Matrix,
    /// The threads every matrix product is split across.
    pool: rayon::ThreadPool,
}

/// Prompt tokens run through the layers together: enough to read each matrix once for many
/// tokens, few enough that their activations stay in cache.
pub const PREFILL_BATCH: usize = 32;

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

impl Model {
    pub fn load(gguf: Gguf, threads: usize) -> Result<Self, ModelError> {
        let arch = gguf.architecture()?.to_owned();
        let rope = match arch.as_str() {
            "llama" => Rope::Adjacent,
            "qwen2" => Rope::Halves,
            other => return Err(ModelError::Architecture(other.to_owned())),
        };
        let key = |name: &str| format!("{arch}.{name}");
        let width = to_usize(gguf.get_u64(&key("embedding_length"))?);
        let heads = to_usize(gguf.get_u64(&key("attention.head_count"))?);
        let kv_heads = to_usize(gguf.get_u64(&key("attention.head_count_kv"))?);
        let embedding_info = tensor(&gguf, "token_embd.weight")?;
        let config = Config {
            layers: to_usize(gguf.get_u64(&key("block_count"))?),
            width,
            feed_forward: to_usize(gguf.get_u64(&key("feed_forward_length"))?),
            heads,
            kv_heads,
            head_dim: width / heads.max(1),
            vocabulary: to_usize(embedding_info.dims.get(1).copied().unwrap_or(0)),
            context: to_usize(gguf.get_u64(&key("context_length"))?),
            epsilon: gguf.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            rope_base: gguf.get_f32(&key("rope.freq_base")).unwrap_or(10_000.0),
            rope,
        };
        let c = &config;
        let (q_out, kv_out) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let layers = (0..c.layers)
            .map(|layer| {
                let name = |part: &str| format!("blk.{layer}.{part}");
                let biases = if rope == Rope::Halves {
                    Some([
                        vector(&gguf, &name("attn_q.bias"), q_out)?,
                        vector(&gguf, &name("attn_k.bias"), kv_out)?,
                        vector(&gguf, &name("attn_v.bias"), kv_out)?,
                    ])
                } else {
                    None
                };
                Ok(Layer {
                    attn_norm: vector(&gguf, &name("attn_norm.weight"), c.width)?,
                    q: matrix(&gguf, &name("attn_q.weight"), c.width, q_out)?,
                    k: matrix(&gguf, &name("attn_k.weight"), c.width, kv_out)?,
                    v: matrix(&gguf, &name("attn_v.weight"), c.width, kv_out)?,
                    biases,
                    output: matrix(&gguf, &name("attn_output.weight"), q_out, c.width)?,
                    ffn_norm: vector(&gguf, &name("ffn_norm.weight"), c.width)?,
                    gate: matrix(&gguf, &name("ffn_gate.weight"), c.width, c.feed_forward)?,
                    up: matrix(&gguf, &name("ffn_up.weight"), c.width, c.feed_forward)?,
                    down: matrix(&gguf, &name("ffn_down.weight"), c.feed_forward, c.width)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let output_norm = vector(&gguf, "output_norm.weight", c.width)?;
        let output_name = if gguf.tensor("output.weight").is_some() {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let output = matrix(&gguf, output_name, c.width, c.vocabulary)?;
        let embedding = (
            embedding_info.kind,
            to_usize(embedding_info.bytes.start)..to_usize(embedding_info.bytes.end),
        );
        Ok(Self {
            gguf,
            config,
            embedding,
            layers,
            output_norm,
            output,
            pool: kernels::pool(threads),
        })
    }

    /// A cache for `context` tokens.
    pub fn session(&self, context: usize) -> Session {
        let c = &self.config;
        let size = c.layers * context * c.kv_heads * c.head_dim;
        Session {
            keys: vec![0.0; size],
            values: vec![0.0; size],
            hidden: Vec::new(),
            context,
            tokens: Vec::new(),
        }
    }

    /// `out = M · x` for each of the tokens whose rows `x` holds (`tokens × columns` in,
    /// `tokens × rows` out).
    fn product(&self, matrix: &Matrix, x: &[f32], out: &mut [f32]) -> Result<(), ModelError> {
        match matrix {
            Matrix::Quantized {
                kind,
                range,
                columns,
            } => kernels::matmul(
                *kind,
                &self.gguf.bytes()[range.clone()],
                *columns,
                x,
                out,
                &self.pool,
            )?,
            Matrix::Dense { values, columns } => {
                let rows = values.len() / columns;
                for (x, out) in x.chunks_exact(*columns).zip(out.chunks_exact_mut(rows)) {
                    for (row, slot) in values.chunks_exact(*columns).zip(out.iter_mut()) {
                        *slot = row.iter().zip(x).map(|(w, v)| w * v).sum();
                    }
                }
            }
        }
        Ok(())
    }

    /// Feeds one token at the session's next position; returns the logits for the token after it.
    pub fn step(&self, session: &mut Session, token: u32) -> Result<Vec<f32>, ModelError> {
        self.advance(session, token)?;
        self.logits(session)
    }

    /// Feeds a prompt, [`PREFILL_BATCH`] tokens at a time; returns the logits for the token after
    /// its last. Only the last token's logits are computed: the output matrix is a large part of
    /// each step.
    pub fn prefill(&self, session: &mut Session, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        for batch in tokens.chunks(PREFILL_BATCH) {
            self.advance_many(session, batch)?;
        }
        self.logits(session)
    }

    /// The logits for the token after the session's last, from its final hidden state.
    fn logits(&self, session: &Session) -> Result<Vec<f32>, ModelError> {
        let c = &self.config;
        let normed = rms_norm(&session.hidden, &self.output_norm, c.epsilon);
        let mut logits = vec![0.0; c.vocabulary];
        self.product(&self.output, &normed, &mut logits)?;
        Ok(logits)
    }

    /// Runs one token through every layer, filling its place in the cache and leaving its final
    /// hidden state in the session.
    fn advance(&self, session: &mut Session, token: u32) -> Result<(), ModelError> {
        self.advance_many(session, &[token])
    }

    /// Runs tokens through every layer together, each matrix read once for all of them, filling
    /// their places in the cache; each attends to the cache up to its own position. Leaves the
    /// last token's final hidden state in the session.
    fn advance_many(&self, session: &mut Session, tokens: &[u32]) -> Result<(), ModelError> {
        let c = &self.config;
        let n = tokens.len();
        let start = session.tokens.len();
        if start + n > session.context {
            return Err(ModelError::ContextFull(session.context));
        }
        let mut x = Vec::with_capacity(n * c.width);
        for &token in tokens {
            if token as usize >= c.vocabulary {
                return Err(ModelError::Token(token));
            }
            x.extend(self.embed(token)?);
        }
        let (q_out, kv_out) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let (mut q, mut k, mut v) = (
            vec![0.0; n * q_out],
            vec![0.0; n * kv_out],
            vec![0.0; n * kv_out],
        );
        let mut attended = vec![0.0; n * q_out];
        let mut projected = vec![0.0; n * c.width];
        let (mut gate, mut up) = (vec![0.0; n * c.feed_forward], vec![0.0; n * c.feed_forward]);
        // Every head of every layer turns by the same angles at a position.
        let angles: Vec<Vec<(f32, f32)>> = (start..start + n)
            .map(|position| rotary_angles(position, c.head_dim, c.rope_base))
            .collect();
        let stride = kv_out;
        for (index, layer) in self.layers.iter().enumerate() {
            let normed = rms_norm_rows(&x, &layer.attn_norm, c.epsilon, c.width);
            self.product(&layer.q, &normed, &mut q)?;
            self.product(&layer.k, &normed, &mut k)?;
            self.product(&layer.v, &normed, &mut v)?;
            if let Some([qb, kb, vb]) = &layer.biases {
                add_rows(&mut q, qb);
                add_rows(&mut k, kb);
                add_rows(&mut v, vb);
            }
            for (i, angles) in angles.iter().enumerate() {
                for head in q[i * q_out..(i + 1) * q_out]
                    .chunks_exact_mut(c.head_dim)
                    .chain(k[i * kv_out..(i + 1) * kv_out].chunks_exact_mut(c.head_dim))
                {
                    rotate(head, angles, c.rope);
                }
            }
            let layer_start = index * session.context * stride;
            let at = layer_start + start * stride;
            session.keys[at..at + n * stride].copy_from_slice(&k);
            session.values[at..at + n * stride].copy_from_slice(&v);
            for i in 0..n {
                let seen = layer_start..layer_start + (start + i + 1) * stride;
                attend(
                    c,
                    &q[i * q_out..(i + 1) * q_out],
                    &session.keys[seen.clone()],
                    &session.values[seen],
                    &mut attended[i * q_out..(i + 1) * q_out],
                );
            }
            self.product(&layer.output, &attended, &mut projected)?;
            add(&mut x, &projected);

            let normed = rms_norm_rows(&x, &layer.ffn_norm, c.epsilon, c.width);
            self.product(&layer.gate, &normed, &mut gate)?;
            self.product(&layer.up, &normed, &mut up)?;
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            self.product(&layer.down, &gate, &mut projected)?;
            add(&mut x, &projected);
        }
        session.tokens.extend_from_slice(tokens);
        session.hidden = x.split_off((n - 1) * c.width);
        Ok(())
    }

    fn embed(&self, token: u32) -> Result<Vec<f32>, ModelError> {
        let (kind, range) = &self.embedding;
        let (elements, block_bytes) = kind.block().ok_or(QuantError::Unsupported(*kind))?;
        let row_bytes = self.config.width / to_usize(elements) * to_usize(block_bytes);
        let start = range.start + token as usize * row_bytes;
        let mut out = Vec::with_capacity(self.config.width);
        quant::dequantize(
            *kind,
            &self.gguf.bytes()[start..start + row_bytes],
            &mut out,
        )?;
        Ok(out)
    }
}

/// A sequence's place in the model: the keys and values of every token so far.
pub struct Session {
    keys: Vec<f32>,
    values: Vec<f32>,
    /// The last token's output of the final layer.
    hidden: Vec<f32>,
    context: usize,
    /// The tokens fed so far, one per cached position.
    tokens: Vec<u32>,
}

impl Session {
    pub fn position(&self) -> usize {
        self.tokens.len()
    }

    /// The tokens fed so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// How many tokens the cache holds.
    pub fn capacity(&self) -> usize {
        self.context
    }

    /// Forgets every token from `position` on: the cache before it stays valid for a sequence
    /// that starts the same way. The next token must be fed before logits are asked for.
    pub fn rewind(&mut self, position: usize) {
        self.tokens.truncate(position);
    }
}

fn tensor<'a>(gguf: &'a Gguf, name: &str) -> Result<&'a TensorInfo, ModelError> {
    gguf.tensor(name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_owned()))
}

fn vector(gguf: &Gguf, name: &str, length: usize) -> Result<Vec<f32>, ModelError> {
    let info = tensor(gguf, name)?;
    if info.dims != [length as u64] {
        return Err(ModelError::Shape {
            name: name.to_owned(),
            found: info.dims.clone(),
            wanted: vec![length as u64],
        });
    }
    let mut out = Vec::with_capacity(length);
    quant::dequantize(info.kind, gguf.data(info), &mut out)?;
    Ok(out)
}

fn matrix(gguf: &Gguf, name: &str, columns: usize, rows: usize) -> Result<Matrix, ModelError> {
    let info = tensor(gguf, name)?;
    if info.dims != [columns as u64, rows as u64] {
        return Err(ModelError::Shape {
            name: name.to_owned(),
            found: info.dims.clone(),
            wanted: vec![columns as u64, rows as u64],
        });
    }
    Ok(match info.kind {
        TensorType::F32 | TensorType::F16 | TensorType::BF16 => {
            let mut values = Vec::with_capacity(columns * rows);
            quant::dequantize(info.kind, gguf.data(info), &mut values)?;
            Matrix::Dense { values, columns }
        }
        kind => Matrix::Quantized {
            kind,
            range: to_usize(info.bytes.start)..to_usize(info.bytes.end),
            columns,
        },
    })
}

/// [`rms_norm`] of each `width`-long row of `x`.
fn rms_norm_rows(x: &[f32], weight: &[f32], epsilon: f32, width: usize) -> Vec<f32> {
    x.chunks_exact(width)
        .flat_map(|row| rms_norm(row, weight, epsilon))
        .collect()
}

/// Adds `bias` to each of `x`'s rows.
fn add_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        add(row, bias);
    }
}

fn rms_norm(x: &[f32], weight: &[f32], epsilon: f32) -> Vec<f32> {
    #[allow(clippy::cast_precision_loss)]
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean + epsilon).sqrt();
    x.iter().zip(weight).map(|(v, w)| v * scale * w).collect()
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// The (sine, cosine) of the angle each of a head's `dim / 2` pairs turns by at `position`.
#[allow(clippy::cast_precision_loss)]
fn rotary_angles(position: usize, dim: usize, base: f32) -> Vec<(f32, f32)> {
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
fn attend(c: &Config, q: &[f32], keys: &[f32], values: &[f32], out: &mut [f32]) {
    let stride = c.kv_heads * c.head_dim;
    let positions = keys.len() / stride;
    let group = c.heads / c.kv_heads.max(1);
    let scale = 1.0 / (c.head_dim as f32).sqrt();
    let mut scores = vec![0.0_f32; positions];
    for head in 0..c.heads {
        let kv = head / group.max(1);
        let query = &q[head * c.head_dim..(head + 1) * c.head_dim];
        for (position, score) in scores.iter_mut().enumerate() {
            let key = &keys[position * stride + kv * c.head_dim..][..c.head_dim];
            *score = query.iter().zip(key).map(|(a, b)| a * b).sum::<f32>() * scale;
        }
        let largest = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for score in &mut scores {
            *score = (*score - largest).exp();
            total += *score;
        }
        let target = &mut out[head * c.head_dim..(head + 1) * c.head_dim];
        target.fill(0.0);
        for (position, weight) in scores.iter().enumerate() {
            let value = &values[position * stride + kv * c.head_dim..][..c.head_dim];
            for (t, v) in target.iter_mut().zip(value) {
                *t += weight / total * v;
            }
        }
    }
}

#[cfg(test)]
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
    fn rms_norm_scales_to_unit_root_mean_square() {
        let normed = rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0);
        let rms = (12.5_f32).sqrt();
        assert!((normed[0] - 3.0 / rms).abs() < 1e-6);
        assert!((normed[1] - 8.0 / rms).abs() < 1e-6);
    }
}
