//! GGUF, the file format llama.cpp and local-model users keep models in: a header, typed metadata
//! (architecture, hyperparameters, tokenizer), a tensor index, and the tensor data, aligned. The
//! file is memory-mapped; the index is parsed with every length and offset checked against the
//! file's size, so a truncated or hostile file is an error, never a panic or a huge allocation.

use std::{collections::BTreeMap, fmt, fs::File, ops::Range, path::Path};

use memmap2::Mmap;

/// `GGUF` as the first four bytes.
const MAGIC: [u8; 4] = *b"GGUF";
/// Versions whose layout this reader knows (2 and 3 differ only in what 1 lacked: 64-bit counts).
const VERSIONS: [u32; 2] = [2, 3];
/// Tensor data starts at a multiple of this unless `general.alignment` says otherwise.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Dimensions a tensor may have.
const MAX_DIMS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a GGUF file: it starts with {found:?}, not \"GGUF\"")]
    NotGguf { found: Vec<u8> },
    #[error("GGUF version {0} is not supported (versions 2 and 3 are)")]
    Version(u32),
    #[error("the file ends at byte {size} while reading {what} at byte {at}: truncated or corrupt")]
    Truncated { what: String, at: u64, size: u64 },
    #[error("corrupt GGUF: {0}")]
    Corrupt(String),
    #[error("metadata {key:?} is missing")]
    MissingKey { key: String },
    #[error("metadata {key:?} is {found}, not {wanted}")]
    WrongType {
        key: String,
        found: &'static str,
        wanted: &'static str,
    },
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::U8(_) => "u8",
            Self::I8(_) => "i8",
            Self::U16(_) => "u16",
            Self::I16(_) => "i16",
            Self::U32(_) => "u32",
            Self::I32(_) => "i32",
            Self::U64(_) => "u64",
            Self::I64(_) => "i64",
            Self::F32(_) => "f32",
            Self::F64(_) => "f64",
            Self::Bool(_) => "bool",
            Self::String(_) => "string",
            Self::Array(_) => "array",
        }
    }

    /// An unsigned integer of any width, or a non-negative signed one.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(value) => Some(u64::from(value)),
            Self::U16(value) => Some(u64::from(value)),
            Self::U32(value) => Some(u64::from(value)),
            Self::U64(value) => Some(value),
            Self::I8(value) => u64::try_from(value).ok(),
            Self::I16(value) => u64::try_from(value).ok(),
            Self::I32(value) => u64::try_from(value).ok(),
            Self::I64(value) => u64::try_from(value).ok(),
            _ => None,
        }
    }

    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Self::F32(value) => Some(value),
            #[allow(clippy::cast_possible_truncation)]
            Self::F64(value) => Some(value as f32),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(value) => Some(value),
            _ => None,
        }
    }
}

/// How a tensor's elements are stored: ggml's type numbers, blocks of `block_elements` elements
/// in `block_bytes` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TensorType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    BF16,
    /// A type number this reader has no layout for (newer quantisations, or corruption).
    Other(u32),
}

impl TensorType {
    fn from_id(id: u32) -> Self {
        match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            9 => Self::Q8_1,
            10 => Self::Q2K,
            11 => Self::Q3K,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            15 => Self::Q8K,
            30 => Self::BF16,
            other => Self::Other(other),
        }
    }

    /// Elements per block and bytes per block, as ggml lays them out.
    pub fn block(self) -> Option<(u64, u64)> {
        Some(match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q8_1 => (32, 36),
            Self::Q2K => (256, 84),
            Self::Q3K => (256, 110),
            Self::Q4K => (256, 144),
            Self::Q5K => (256, 176),
            Self::Q6K => (256, 210),
            Self::Q8K => (256, 292),
            Self::Other(_) => return None,
        })
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::F32 => f.write_str("F32"),
            Self::F16 => f.write_str("F16"),
            Self::Q4_0 => f.write_str("Q4_0"),
            Self::Q4_1 => f.write_str("Q4_1"),
            Self::Q5_0 => f.write_str("Q5_0"),
            Self::Q5_1 => f.write_str("Q5_1"),
            Self::Q8_0 => f.write_str("Q8_0"),
            Self::Q8_1 => f.write_str("Q8_1"),
            Self::Q2K => f.write_str("Q2_K"),
            Self::Q3K => f.write_str("Q3_K"),
            Self::Q4K => f.write_str("Q4_K"),
            Self::Q5K => f.write_str("Q5_K"),
            Self::Q6K => f.write_str("Q6_K"),
            Self::Q8K => f.write_str("Q8_K"),
            Self::BF16 => f.write_str("BF16"),
            Self::Other(id) => write!(f, "ggml type {id}"),
        }
    }
}

/// One tensor of the index.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions, innermost (contiguous) first, as ggml orders them.
    pub dims: Vec<u64>,
    pub kind: TensorType,
    /// Where the tensor's bytes lie in the file.
    pub bytes: Range<u64>,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A GGUF file, mapped: its metadata and tensor index parsed, its tensor data read in place.
pub struct Gguf {
    map: Mmap,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
}

impl fmt::Debug for Gguf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gguf")
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

impl Gguf {
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let io = |source| GgufError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // Safety: the map is read-only, and a model file changed under a running service is
        // outside what the service promises (as for any memory-mapped model in llama.cpp).
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let (version, metadata, tensors) = parse(&map)?;
        Ok(Self {
            map,
            version,
            metadata,
            tensors,
        })
    }

    /// The bytes of a tensor of the index.
    pub fn data(&self, tensor: &TensorInfo) -> &[u8] {
        // In range: checked against the file's size when the index was parsed.
        let range = usize::try_from(tensor.bytes.start).unwrap_or(usize::MAX)
            ..usize::try_from(tensor.bytes.end).unwrap_or(usize::MAX);
        &self.map[range]
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|tensor| tensor.name == name)
    }

    pub fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_owned(),
        })
    }

    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let value = self.get(key)?;
        value
            .as_u64()
            .ok_or_else(|| wrong(key, value, "an unsigned integer"))
    }

    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let value = self.get(key)?;
        value.as_f32().ok_or_else(|| wrong(key, value, "a float"))
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let value = self.get(key)?;
        value.as_str().ok_or_else(|| wrong(key, value, "a string"))
    }

    /// `general.architecture`: `llama`, `qwen2`, ...
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.get_str("general.architecture")
    }
}

fn wrong(key: &str, value: &Value, wanted: &'static str) -> GgufError {
    GgufError::WrongType {
        key: key.to_owned(),
        found: value.kind(),
        wanted,
    }
}

type Parsed = (u32, BTreeMap<String, Value>, Vec<TensorInfo>);

/// Parses the header, metadata and tensor index of a whole file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Parsed, GgufError> {
    let mut reader = Reader { bytes, at: 0 };
    let magic = reader.take(4, "the magic number")?;
    if magic != MAGIC {
        return Err(GgufError::NotGguf {
            found: magic.to_vec(),
        });
    }
    let version = reader.u32("the version")?;
    if !VERSIONS.contains(&version) {
        return Err(GgufError::Version(version));
    }
    let tensor_count = reader.u64("the tensor count")?;
    let metadata_count = reader.u64("the metadata count")?;
    let mut metadata = BTreeMap::new();
    for _ in 0..metadata_count {
        let key = reader.string("a metadata key")?;
        let kind = reader.u32("a metadata type")?;
        let value = reader.value(kind, &key, 0)?;
        metadata.insert(key, value);
    }
    let mut infos = Vec::new();
    for _ in 0..tensor_count {
        // Each entry takes at least 24 bytes: more entries than that cannot be in the file.
        reader.need(24, "a tensor entry")?;
        let name = reader.string("a tensor name")?;
        let dim_count = reader.u32("a tensor's dimension count")?;
        if dim_count == 0 || dim_count > MAX_DIMS {
            return Err(GgufError::Corrupt(format!(
                "tensor {name:?} has {dim_count} dimensions"
            )));
        }
        let dims = (0..dim_count)
            .map(|_| reader.u64("a tensor dimension"))
            .collect::<Result<Vec<_>, _>>()?;
        let kind = TensorType::from_id(reader.u32("a tensor type")?);
        let offset = reader.u64("a tensor offset")?;
        infos.push((name, dims, kind, offset));
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(value) => value
            .as_u64()
            .filter(|alignment| alignment.is_power_of_two())
            .ok_or_else(|| GgufError::Corrupt(format!("general.alignment is {value:?}")))?,
    };
    let data_start = (reader.at as u64).next_multiple_of(alignment);
    let size = bytes.len() as u64;
    let tensors = infos
        .into_iter()
        .map(|(name, dims, kind, offset)| {
            let length = tensor_bytes(&name, &dims, kind)?;
            let start = data_start
                .checked_add(offset)
                .filter(|_| offset.is_multiple_of(alignment))
                .ok_or_else(|| {
                    GgufError::Corrupt(format!("tensor {name:?} has offset {offset}"))
                })?;
            let end = start.checked_add(length).filter(|end| *end <= size).ok_or(
                GgufError::Truncated {
                    what: format!("tensor {name:?}"),
                    at: start,
                    size,
                },
            )?;
            Ok(TensorInfo {
                name,
                dims,
                kind,
                bytes: start..end,
            })
        })
        .collect::<Result<Vec<_>, GgufError>>()?;
    Ok((version, metadata, tensors))
}

/// The bytes a tensor's data takes, or why it cannot be laid out.
fn tensor_bytes(name: &str, dims: &[u64], kind: TensorType) -> Result<u64, GgufError> {
    let elements = dims
        .iter()
        .try_fold(1_u64, |product, dim| product.checked_mul(*dim))
        .ok_or_else(|| GgufError::Corrupt(format!("tensor {name:?} has dimensions {dims:?}")))?;
    // Types without a known layout get no length: the file cannot be laid out past them.
    let (block_elements, block_bytes) = kind.block().ok_or_else(|| {
        GgufError::Corrupt(format!(
            "tensor {name:?} is of {kind}, whose layout this reader does not know"
        ))
    })?;
    if !dims[0].is_multiple_of(block_elements) {
        return Err(GgufError::Corrupt(format!(
            "tensor {name:?} ({kind}) has rows of {} elements, not a multiple of {block_elements}",
            dims[0]
        )));
    }
    (elements / block_elements)
        .checked_mul(block_bytes)
        .ok_or_else(|| GgufError::Corrupt(format!("tensor {name:?} is too large")))
}

/// Nested arrays deeper than this are refused (real files have none).
const MAX_NESTING: usize = 2;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn need(&self, count: u64, what: &str) -> Result<(), GgufError> {
        let left = (self.bytes.len() - self.at) as u64;
        if count > left {
            return Err(GgufError::Truncated {
                what: what.to_owned(),
                at: self.at as u64,
                size: self.bytes.len() as u64,
            });
        }
        Ok(())
    }

    fn take(&mut self, count: u64, what: &str) -> Result<&'a [u8], GgufError> {
        self.need(count, what)?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let taken = &self.bytes[self.at..self.at + count];
        self.at += count;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let length = self.u64(what)?;
        let bytes = self.take(length, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| GgufError::Corrupt(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, kind: u32, key: &str, depth: usize) -> Result<Value, GgufError> {
        let what = format!("metadata {key:?}");
        Ok(match kind {
            0 => Value::U8(self.array::<1>(&what)?[0]),
            1 => Value::I8(i8::from_le_bytes(self.array(&what)?)),
            2 => Value::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => Value::U32(self.u32(&what)?),
            5 => Value::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => match self.array::<1>(&what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                other => {
                    return Err(GgufError::Corrupt(format!(
                        "metadata {key:?} is a bool of value {other}"
                    )));
                }
            },
            8 => Value::String(self.string(&what)?),
            9 if depth < MAX_NESTING => {
                let item_kind = self.u32(&what)?;
                let count = self.u64(&what)?;
                // Every item takes a byte at least: a count beyond the bytes left is a lie.
                self.need(count, &what)?;
                let mut items = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
                for _ in 0..count {
                    items.push(self.value(item_kind, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(&what)?),
            11 => Value::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(&what)?)),
            other => {
                return Err(GgufError::Corrupt(format!(
                    "metadata {key:?} has value type {other}"
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small GGUF file: two metadata entries and one F32 tensor of 4×2.
    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3_u32.to_le_bytes());
        out.extend_from_slice(&1_u64.to_le_bytes());
        out.extend_from_slice(&2_u64.to_le_bytes());
        let string = |out: &mut Vec<u8>, text: &str| {
            out.extend_from_slice(&(text.len() as u64).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        };
        string(&mut out, "general.architecture");
        out.extend_from_slice(&8_u32.to_le_bytes());
        string(&mut out, "llama");
        string(&mut out, "tokenizer.ggml.scores");
        out.extend_from_slice(&9_u32.to_le_bytes());
        out.extend_from_slice(&6_u32.to_le_bytes());
        out.extend_from_slice(&2_u64.to_le_bytes());
        out.extend_from_slice(&0.5_f32.to_le_bytes());
        out.extend_from_slice(&(-1.0_f32).to_le_bytes());
        string(&mut out, "w");
        out.extend_from_slice(&2_u32.to_le_bytes());
        out.extend_from_slice(&4_u64.to_le_bytes());
        out.extend_from_slice(&2_u64.to_le_bytes());
        out.extend_from_slice(&0_u32.to_le_bytes());
        out.extend_from_slice(&0_u64.to_le_bytes());
        while out.len() % 32 != 0 {
            out.push(0);
        }
        for value in 0..8 {
            out.extend_from_slice(&(value as f32).to_le_bytes());
        }
        out
    }

    #[test]
    fn a_file_is_read_with_its_metadata_and_tensors() {
        let bytes = sample();
        let (version, metadata, tensors) = parse(&bytes).expect("parses");
        assert_eq!(version, 3);
        assert_eq!(
            metadata["general.architecture"],
            Value::String("llama".into())
        );
        assert_eq!(
            metadata["tokenizer.ggml.scores"],
            Value::Array(vec![Value::F32(0.5), Value::F32(-1.0)])
        );
        assert_eq!(tensors.len(), 1);
        assert_eq!(tensors[0].dims, [4, 2]);
        assert_eq!(tensors[0].kind, TensorType::F32);
        let range = tensors[0].bytes.clone();
        assert_eq!(range.end - range.start, 32);
        let start = usize::try_from(range.start).expect("small");
        assert_eq!(&bytes[start + 4..start + 8], &1.0_f32.to_le_bytes());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample();
        for end in 0..bytes.len() {
            assert!(parse(&bytes[..end]).is_err(), "cut at {end}");
        }
    }

    #[test]
    fn corrupt_headers_are_named() {
        let mut bytes = sample();
        bytes[0] = b'X';
        assert!(matches!(parse(&bytes), Err(GgufError::NotGguf { .. })));
        let mut bytes = sample();
        bytes[4] = 9;
        assert!(matches!(parse(&bytes), Err(GgufError::Version(9))));
        // A metadata count of 2^40: refused as truncated, without allocating for it.
        let mut bytes = sample();
        bytes[16..24].copy_from_slice(&(1_u64 << 40).to_le_bytes());
        assert!(parse(&bytes).is_err());
        // A tensor of an unknown type.
        let mut bytes = sample();
        let name = bytes
            .windows(9)
            .position(|window| window == [1, 0, 0, 0, 0, 0, 0, 0, b'w'])
            .expect("the tensor's name");
        // Past the name, the dimension count and two dimensions.
        let at = name + 9 + 4 + 16;
        bytes[at..at + 4].copy_from_slice(&99_u32.to_le_bytes());
        let err = parse(&bytes).expect_err("unknown type").to_string();
        assert!(err.contains("ggml type 99"), "{err}");
    }

    #[test]
    fn every_byte_flipped_still_answers() {
        let bytes = sample();
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0xA5;
            let _ = parse(&flipped);
        }
    }
}
