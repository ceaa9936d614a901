//! The llama and qwen2 architectures, as GGUF stores them, run token by token: embeddings,
//! RMSNorm, rotary position embeddings (adjacent pairs for llama, whose Q and K rows llama.cpp's
//! converter permuted; halves for qwen2), grouped-query attention over a preallocated KV cache,
//! a SwiGLU feed-forward block, q/k/v biases (qwen2), and a separate or tied output matrix.
//!
//! The forward pass is a graph of burn tensors on Flex, burn's CPU backend: embeddings, biases and
//! the residual stream are burn's own operations, and a float weight matrix is burn's matmul.
//! Block-quantized weights stay quantized in the mapped file; their products, RMSNorm, rotary
//! embeddings, SwiGLU's gate and attention are our kernels in [`crate::extension`].

use burn::tensor::{Device, Tensor, TensorData};

use crate::{
    extension::{
        self, ExtensionError, Heads, LayerCache, Pass, QuantizedMatrix, Rope, rms_norm_rows,
        rotary_angles,
    },
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
    #[error(transparent)]
    Extension(#[from] ExtensionError),
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

/// A weight matrix: quantized bytes in the mapped file, or a float matrix as a burn tensor.
enum Matrix {
    Quantized {
        kind: TensorType,
        range: std::ops::Range<usize>,
        columns: usize,
        rows: usize,
    },
    /// Transposed (`columns × rows`), ready for `x · M`; boxed, as a tensor handle is large.
    Dense(Box<Tensor<2>>),
}

struct Layer {
    attn_norm: Vec<f32>,
    q: Matrix,
    k: Matrix,
    v: Matrix,
    /// q, k and v biases (qwen2), each a row that broadcasts over the tokens.
    biases: Option<[Tensor<2>; 3]>,
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
    /// The threads every matrix product is split across; burn's own operations run on them too.
    pool: rayon::ThreadPool,
    device: Device,
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
        let device = Device::flex();
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
                let bias = |part: &str, length: usize| {
                    vector(&gguf, &name(part), length).map(|values| row(values, &device))
                };
                let biases = if rope == Rope::Halves {
                    Some([
                        bias("attn_q.bias", q_out)?,
                        bias("attn_k.bias", kv_out)?,
                        bias("attn_v.bias", kv_out)?,
                    ])
                } else {
                    None
                };
                Ok(Layer {
                    attn_norm: vector(&gguf, &name("attn_norm.weight"), c.width)?,
                    q: matrix(&gguf, &name("attn_q.weight"), c.width, q_out, &device)?,
                    k: matrix(&gguf, &name("attn_k.weight"), c.width, kv_out, &device)?,
                    v: matrix(&gguf, &name("attn_v.weight"), c.width, kv_out, &device)?,
                    biases,
                    output: matrix(&gguf, &name("attn_output.weight"), q_out, c.width, &device)?,
                    ffn_norm: vector(&gguf, &name("ffn_norm.weight"), c.width)?,
                    gate: matrix(
                        &gguf,
                        &name("ffn_gate.weight"),
                        c.width,
                        c.feed_forward,
                        &device,
                    )?,
                    up: matrix(
                        &gguf,
                        &name("ffn_up.weight"),
                        c.width,
                        c.feed_forward,
                        &device,
                    )?,
                    down: matrix(
                        &gguf,
                        &name("ffn_down.weight"),
                        c.feed_forward,
                        c.width,
                        &device,
                    )?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let output_norm = vector(&gguf, "output_norm.weight", c.width)?;
        let output_name = if gguf.tensor("output.weight").is_some() {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let output = matrix(&gguf, output_name, c.width, c.vocabulary, &device)?;
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
            device,
        })
    }

    /// A cache for `context` tokens.
    pub fn session(&self, context: usize) -> Session {
        let c = &self.config;
        let size = c.layers * context * c.kv_heads * c.head_dim;
        Session {
            keys: vec![0.0; size],
            values: vec![0.0; size],
            hidden: None,
            context,
            tokens: Vec::new(),
            prompted: 0,
        }
    }

    /// `x · Mᵀ`: each row of `x` (a token) times the matrix.
    fn product(&self, matrix: &Matrix, x: Tensor<2>, pass: Pass) -> Result<Tensor<2>, ModelError> {
        Ok(match matrix {
            Matrix::Quantized {
                kind,
                range,
                columns,
                rows,
            } => extension::quantized_matmul(
                x,
                QuantizedMatrix {
                    kind: *kind,
                    bytes: &self.gguf.bytes()[range.clone()],
                    columns: *columns,
                    rows: *rows,
                },
                pass,
                &self.pool,
            )?,
            Matrix::Dense(transposed) => x.matmul(transposed.as_ref().clone()),
        })
    }

    /// Feeds one token at the session's next position; returns the logits for the token after it.
    pub fn step(&self, session: &mut Session, token: u32) -> Result<Vec<f32>, ModelError> {
        self.pool.install(|| {
            self.advance_many(session, &[token], Pass::Decode)?;
            self.logits(session)
        })
    }

    /// Feeds a prompt, [`PREFILL_BATCH`] tokens at a time; returns the logits for the token after
    /// its last. Only the last token's logits are computed: the output matrix is a large part of
    /// each step.
    pub fn prefill(&self, session: &mut Session, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        let start = session.position();
        self.pool.install(|| {
            for (index, batch) in tokens.chunks(PREFILL_BATCH).enumerate() {
                let pass = prompt_pass(tokens.len(), index * PREFILL_BATCH, batch.len());
                self.advance_many(session, batch, pass)?;
            }
            if tokens.len() > 1 && session.prompted == start {
                session.prompted = session.position();
            }
            self.logits(session)
        })
    }

    /// The logits for the token after the session's last, from its final hidden state.
    fn logits(&self, session: &Session) -> Result<Vec<f32>, ModelError> {
        let c = &self.config;
        let hidden = session.hidden.clone().ok_or(ModelError::EmptyPrompt)?;
        let normed = rms_norm_rows(hidden, &self.output_norm, c.epsilon)?;
        // One row: llama.cpp's order of sums for it is its single-token one (the reference files'
        // output matrices are Q8_0, which sums alike in both).
        let logits = self.product(&self.output, normed, Pass::Decode)?;
        logits
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|err| ExtensionError::Backend(format!("{err:?}")).into())
    }

    /// Runs tokens through every layer together, each matrix read once for all of them, filling
    /// their places in the cache; each attends to the cache up to its own position. Leaves the
    /// last token's final hidden state in the session.
    fn advance_many(
        &self,
        session: &mut Session,
        tokens: &[u32],
        pass: Pass,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let n = tokens.len();
        let start = session.tokens.len();
        if start + n > session.context {
            return Err(ModelError::ContextFull(session.context));
        }
        let mut embedded = Vec::with_capacity(n * c.width);
        for &token in tokens {
            if token as usize >= c.vocabulary {
                return Err(ModelError::Token(token));
            }
            embedded.extend(self.embed(token)?);
        }
        let mut x = Tensor::<2>::from_data(TensorData::new(embedded, [n, c.width]), &self.device);
        // Every head of every layer turns by the same angles at a position.
        let angles: Vec<Vec<(f32, f32)>> = (start..start + n)
            .map(|position| rotary_angles(position, c.head_dim, c.rope_base))
            .collect();
        let heads = Heads {
            query: c.heads,
            key_value: c.kv_heads,
            dim: c.head_dim,
        };
        let layer_size = session.context * c.kv_heads * c.head_dim;
        for ((layer, keys), values) in self
            .layers
            .iter()
            .zip(session.keys.chunks_exact_mut(layer_size))
            .zip(session.values.chunks_exact_mut(layer_size))
        {
            let normed = rms_norm_rows(x.clone(), &layer.attn_norm, c.epsilon)?;
            let mut q = self.product(&layer.q, normed.clone(), pass)?;
            let mut k = self.product(&layer.k, normed.clone(), pass)?;
            let mut v = self.product(&layer.v, normed, pass)?;
            if let Some([qb, kb, vb]) = &layer.biases {
                q = q + qb.clone();
                k = k + kb.clone();
                v = v + vb.clone();
            }
            let q = extension::rotary(q, &angles, c.head_dim, c.rope)?;
            let k = extension::rotary(k, &angles, c.head_dim, c.rope)?;
            let cache = LayerCache { keys, values };
            let attended = extension::attention(q, k, v, cache, start, heads, pass)?;
            x = x + self.product(&layer.output, attended, pass)?;

            let normed = rms_norm_rows(x.clone(), &layer.ffn_norm, c.epsilon)?;
            let gate = self.product(&layer.gate, normed.clone(), pass)?;
            let up = self.product(&layer.up, normed, pass)?;
            x = x + self.product(&layer.down, extension::swiglu(gate, up)?, pass)?;
        }
        session.tokens.extend_from_slice(tokens);
        session.hidden = Some(x.slice([n - 1..n, 0..c.width]));
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
    /// The last token's output of the final layer, a `1 × width` row.
    hidden: Option<Tensor<2>>,
    context: usize,
    /// The tokens fed so far, one per cached position.
    tokens: Vec<u32>,
    /// How many of them, from the first, were fed as a prompt of two tokens or more: their
    /// cache holds what feeding them in a prompt again would compute.
    prompted: usize,
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
        self.prompted = self.prompted.min(position);
    }

    /// How many tokens from the first were fed as a prompt (see [`Model::prefill`]).
    pub fn prompted(&self) -> usize {
        self.prompted
    }
}

/// The tokens llama.cpp takes into one batch of a prompt.
const LLAMA_BATCH: usize = 512;
const _: () = assert!(LLAMA_BATCH.is_multiple_of(PREFILL_BATCH));

/// How llama.cpp takes tokens `offset..offset + count` of a prompt of `total`: in batches of
/// [`LLAMA_BATCH`], each of two tokens or more as a prompt, its repacked Q4_K kernel taking the
/// tokens four at a time until fewer than four are left; a batch of one token as decoding.
fn prompt_pass(total: usize, offset: usize, count: usize) -> Pass {
    let batch_start = offset - offset % LLAMA_BATCH;
    let batch = (total - batch_start).min(LLAMA_BATCH);
    if batch < 2 {
        return Pass::Decode;
    }
    let grouped_end = batch_start + batch - batch % 4;
    Pass::Prompt {
        grouped: grouped_end.saturating_sub(offset).min(count),
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

fn matrix(
    gguf: &Gguf,
    name: &str,
    columns: usize,
    rows: usize,
    device: &Device,
) -> Result<Matrix, ModelError> {
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
            let matrix = Tensor::<2>::from_data(TensorData::new(values, [rows, columns]), device);
            Matrix::Dense(Box::new(matrix.transpose()))
        }
        kind => Matrix::Quantized {
            kind,
            range: to_usize(info.bytes.start)..to_usize(info.bytes.end),
            columns,
            rows,
        },
    })
}

/// `values` as a `1 × length` row.
fn row(values: Vec<f32>, device: &Device) -> Tensor<2> {
    let length = values.len();
    Tensor::<2>::from_data(TensorData::new(values, [1, length]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_takes_a_prompt_in_batches_of_512_and_its_tokens_in_fours() {
        // 10 tokens: the first 8 four at a time.
        assert_eq!(prompt_pass(10, 0, 10), Pass::Prompt { grouped: 8 });
        // A 70-token prompt fed 32 at a time: the last 6 tokens, 4 of them grouped.
        assert_eq!(prompt_pass(70, 32, 32), Pass::Prompt { grouped: 32 });
        assert_eq!(prompt_pass(70, 64, 6), Pass::Prompt { grouped: 4 });
        // One token is decoded, alone or as a second batch of its own.
        assert_eq!(prompt_pass(1, 0, 1), Pass::Decode);
        assert_eq!(prompt_pass(513, 512, 1), Pass::Decode);
        // A second batch of 3 tokens is a prompt with none of them grouped.
        assert_eq!(prompt_pass(515, 512, 3), Pass::Prompt { grouped: 0 });
    }
}
