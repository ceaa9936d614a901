//! The models' tokenizer, read from GGUF metadata: byte-level BPE (`tokenizer.ggml.model` = `gpt2`)
//! with each pre-tokenizer the reference models name (`smollm`, `qwen2`), and their special tokens.
//! Text is cut at special tokens first (`<|im_start|>` is one token, not eight), each other piece
//! is split by the pre-tokenizer's expressions in turn, each split's bytes are mapped to printable
//! characters (GPT-2's byte alphabet), and adjacent symbols are merged by rank until no ranked pair
//! is left.

use std::collections::HashMap;

use fancy_regex::Regex;

use crate::gguf::{Gguf, GgufError, Value};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("tokenizer model {0:?} is not supported (only byte-level BPE, \"gpt2\")")]
    Model(String),
    #[error("pre-tokenizer {0:?} is not supported (supported: smollm, qwen2)")]
    PreTokenizer(String),
    #[error("tokenizer metadata {0}")]
    Corrupt(String),
}

/// GGUF token types: control tokens and user-defined ones are matched whole in the text.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// The expressions each pre-tokenizer splits text with, applied one after the other, as llama.cpp
/// defines them for these models.
fn pre_tokenizer(name: &str) -> Result<Vec<&'static str>, TokenizerError> {
    match name {
        "smollm" => Ok(vec![
            r"\p{N}",
            r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
        ]),
        "qwen2" => Ok(vec![
            r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ]),
        other => Err(TokenizerError::PreTokenizer(other.to_owned())),
    }
}

pub struct Tokenizer {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    /// Rank of each mergeable pair (lower merges first).
    ranks: HashMap<(String, String), usize>,
    /// Special tokens, longest first, with their ids.
    specials: Vec<(String, u32)>,
    expressions: Vec<Regex>,
    /// GPT-2's printable character for each byte.
    byte_chars: [char; 256],
    /// The byte each of those characters stands for.
    char_bytes: HashMap<char, u8>,
    /// The tokens that end a generation, see [`Tokenizer::turn_ends`].
    turn_ends: Vec<u32>,
}

/// The chat templates' end-of-turn markers, by name: each one the vocabulary has ends a
/// generation, as the file's end-of-sequence token does.
pub const TURN_ENDS: [&str; 3] = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"];

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("tokens", &self.tokens.len())
            .field("merges", &self.ranks.len())
            .field("specials", &self.specials.len())
            .finish_non_exhaustive()
    }
}

fn strings(model: &Gguf, key: &str) -> Result<Vec<String>, TokenizerError> {
    match model.get(key)? {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| {
                    TokenizerError::Corrupt(format!("{key} holds a {}", item.kind()))
                })
            })
            .collect(),
        other => Err(TokenizerError::Corrupt(format!(
            "{key} is a {}",
            other.kind()
        ))),
    }
}

/// GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the others are moved to
/// code points from 256 on, in byte order.
fn byte_chars() -> [char; 256] {
    let mut chars = ['\0'; 256];
    let mut next = 256_u32;
    for (byte, slot) in chars.iter_mut().enumerate() {
        let printable = matches!(byte, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        let code = if printable {
            u32::try_from(byte).unwrap_or(0)
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(code).unwrap_or('\0');
    }
    chars
}

impl Tokenizer {
    pub fn from_gguf(model: &Gguf) -> Result<Self, TokenizerError> {
        let kind = model.get_str("tokenizer.ggml.model")?;
        if kind != "gpt2" {
            return Err(TokenizerError::Model(kind.to_owned()));
        }
        let pre = model.get_str("tokenizer.ggml.pre")?;
        let expressions = pre_tokenizer(pre)?
            .into_iter()
            .map(|expression| {
                Regex::new(expression)
                    .map_err(|err| TokenizerError::Corrupt(format!("pre-tokenizer {pre}: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tokens = strings(model, "tokenizer.ggml.tokens")?;
        let types: Vec<i64> = match model.get("tokenizer.ggml.token_type")? {
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::I32(value) => i64::from(*value),
                    other => i64::try_from(other.as_u64().unwrap_or(0)).unwrap_or(0),
                })
                .collect(),
            other => {
                return Err(TokenizerError::Corrupt(format!(
                    "token types are a {}",
                    other.kind()
                )));
            }
        };
        if types.len() != tokens.len() {
            return Err(TokenizerError::Corrupt(format!(
                "{} tokens but {} token types",
                tokens.len(),
                types.len()
            )));
        }
        let ranks = strings(model, "tokenizer.ggml.merges")?
            .into_iter()
            .enumerate()
            .map(|(rank, merge)| {
                merge
                    .split_once(' ')
                    .map(|(left, right)| ((left.to_owned(), right.to_owned()), rank))
                    .ok_or_else(|| TokenizerError::Corrupt(format!("merge {merge:?} has no space")))
            })
            .collect::<Result<HashMap<_, _>, _>>()?;
        let ids: HashMap<String, u32> = tokens
            .iter()
            .zip(0_u32..)
            .map(|(token, id)| (token.clone(), id))
            .collect();
        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .zip(&types)
            .zip(0_u32..)
            .filter(|((token, kind), _)| {
                (**kind == CONTROL || **kind == USER_DEFINED) && !token.is_empty()
            })
            .map(|((token, _), id)| (token.clone(), id))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let byte_chars = byte_chars();
        let char_bytes = (0..=u8::MAX)
            .map(|byte| (byte_chars[usize::from(byte)], byte))
            .collect();
        let mut turn_ends: Vec<u32> = TURN_ENDS
            .iter()
            .filter_map(|token| ids.get(*token).copied())
            .collect();
        let end_of_sequence = model
            .get_u64("tokenizer.ggml.eos_token_id")
            .ok()
            .and_then(|id| u32::try_from(id).ok());
        turn_ends.extend(end_of_sequence.filter(|id| !turn_ends.contains(id)));
        Ok(Self {
            tokens,
            ids,
            ranks,
            specials,
            expressions,
            byte_chars,
            char_bytes,
            turn_ends,
        })
    }

    /// The token ids of `text`, special tokens matched whole.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for (piece, special) in self.split_special(text) {
            match special {
                Some(id) => ids.push(id),
                None => {
                    for word in self.pre_tokenize(piece) {
                        self.bpe(word, &mut ids);
                    }
                }
            }
        }
        ids
    }

    /// The text of token ids (byte-level tokens turned back into their bytes).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for id in ids {
            self.append_bytes(*id, &mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The bytes one token stands for: a special token's own text, a byte-level token's bytes,
    /// nothing for an id outside the vocabulary. A token may end inside a UTF-8 character.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.append_bytes(id, &mut bytes);
        bytes
    }

    fn append_bytes(&self, id: u32, bytes: &mut Vec<u8>) {
        let Some(token) = self.tokens.get(id as usize) else {
            return;
        };
        if self.is_special(id) {
            bytes.extend_from_slice(token.as_bytes());
            return;
        }
        for c in token.chars() {
            match self.char_bytes.get(&c) {
                Some(byte) => bytes.push(*byte),
                None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
    }

    /// Whether the token is a control or user-defined token (`<|im_end|>`), matched whole and
    /// never produced by byte-level merges.
    pub fn is_special(&self, id: u32) -> bool {
        self.specials.iter().any(|(_, special)| *special == id)
    }

    /// The tokens that end a generation: the end-of-turn markers the vocabulary has
    /// (`<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`, in that order), then the file's
    /// end-of-sequence token. Empty only for a file that has none of them.
    pub fn turn_ends(&self) -> &[u32] {
        &self.turn_ends
    }

    pub fn vocabulary_size(&self) -> usize {
        self.tokens.len()
    }

    /// A token's text as the vocabulary writes it (`<|im_end|>`, `Ġthe`).
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a token written exactly so.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The text cut at special tokens: each piece, with the special token's id when it is one.
    fn split_special<'a>(&self, text: &'a str) -> Vec<(&'a str, Option<u32>)> {
        let mut pieces = Vec::new();
        let mut start = 0;
        let mut at = 0;
        while at < text.len() {
            let found = self
                .specials
                .iter()
                .find(|(token, _)| text[at..].starts_with(token.as_str()));
            match found {
                Some((token, id)) => {
                    if start < at {
                        pieces.push((&text[start..at], None));
                    }
                    pieces.push((&text[at..at + token.len()], Some(*id)));
                    at += token.len();
                    start = at;
                }
                None => at += text[at..].chars().next().map_or(1, char::len_utf8),
            }
        }
        if start < text.len() {
            pieces.push((&text[start..], None));
        }
        pieces
    }

    /// The pre-tokenizer's words: each expression splits every piece the previous ones left,
    /// keeping both what it matched and what lies between matches.
    fn pre_tokenize<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut pieces = vec![text];
        for expression in &self.expressions {
            let mut next = Vec::new();
            for piece in pieces {
                let mut last = 0;
                for found in expression.find_iter(piece).flatten() {
                    if found.start() > last {
                        next.push(&piece[last..found.start()]);
                    }
                    if found.end() > found.start() {
                        next.push(found.as_str());
                    }
                    last = found.end();
                }
                if last < piece.len() {
                    next.push(&piece[last..]);
                }
            }
            pieces = next;
        }
        pieces
    }

    /// Byte-level BPE of one word: its bytes as GPT-2 characters, merged pair by pair, lowest rank
    /// first; a symbol outside the vocabulary falls back to its bytes' tokens.
    fn bpe(&self, word: &str, ids: &mut Vec<u32>) {
        let mut symbols: Vec<String> = word
            .bytes()
            .map(|byte| self.byte_chars[usize::from(byte)].to_string())
            .collect();
        loop {
            let best = symbols
                .windows(2)
                .enumerate()
                .filter_map(|(at, pair)| {
                    self.ranks
                        .get(&(pair[0].clone(), pair[1].clone()))
                        .map(|rank| (*rank, at))
                })
                .min();
            let Some((_, at)) = best else {
                break;
            };
            let right = symbols.remove(at + 1);
            symbols[at].push_str(&right);
        }
        for symbol in symbols {
            match self.ids.get(&symbol) {
                Some(id) => ids.push(*id),
                None => ids.extend(symbol.chars().filter_map(|c| self.ids.get(&c.to_string()))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_alphabet_is_gpt2s() {
        let chars = byte_chars();
        assert_eq!(chars[usize::from(b'A')], 'A');
        // Space and newline move past Latin-1: Ġ and Ċ.
        assert_eq!(chars[usize::from(b' ')], 'Ġ');
        assert_eq!(chars[usize::from(b'\n')], 'Ċ');
        let distinct: std::collections::HashSet<char> = chars.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn unknown_pre_tokenizers_are_named() {
        let err = pre_tokenizer("llama3")
            .expect_err("unsupported")
            .to_string();
        assert!(err.contains("llama3") && err.contains("qwen2"), "{err}");
    }
}
