//! Our tokenizer against llama.cpp's, on both reference models (SmolLM2's `smollm` and Qwen's
//! `qwen2` pre-tokenizers): `cargo xtask test` runs llama.cpp's server with each, whose
//! `/extras/tokenize` tokenizes with special tokens parsed, as we do.

#![allow(clippy::unwrap_used)]

use flashcards_llm_runtime::{gguf::Gguf, tokenizer::Tokenizer};
use serde_json::json;

mod common;

use common::Reference;

/// ASCII, accents, CJK, emoji, code, numbers, runs of spaces and newlines, the chat template's
/// special tokens, contractions, and nothing at all.
const TEXTS: [&str; 14] = [
    "Hello world",
    "The mitochondrion makes ATP.",
    "naïve café résumé Übergröße",
    "日本語のテキスト 中文",
    "emoji 🙂🚀 done",
    "fn main() {\n    println!(\"{}\", x + 1);\n}",
    "12345 3.14159 1,000,000",
    "a  b   c\n\n\nd\t\te",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "   leading and trailing   ",
    "don't I'll we've THEY'RE",
    "Photosynthesis: 6CO2 + 6H2O → C6H12O6 + 6O2",
    "\n",
    "",
];

#[tokio::test]
async fn token_ids_are_llama_cpps() {
    let client = common::client();
    for Reference { name, url, model } in Reference::both() {
        let tokenizer = Tokenizer::from_gguf(&Gguf::open(&model).unwrap()).unwrap();
        for text in TEXTS {
            let answer = common::post_json(
                &client,
                &format!("{url}/extras/tokenize"),
                &json!({ "input": text }),
            )
            .await;
            let expected: Vec<u32> = answer["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| u32::try_from(id.as_u64().unwrap()).unwrap())
                .collect();
            let ours = tokenizer.encode(text);
            assert_eq!(ours, expected, "{name}: {text:?}");
            if !text.is_empty() {
                assert_eq!(
                    tokenizer.decode(&ours),
                    text,
                    "{name}: round trip of {text:?}"
                );
            }
        }
    }
}
