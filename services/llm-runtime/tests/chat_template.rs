//! The chat prompt against llama.cpp's server on the test model: the model's own template rendered
//! here must be the prompt llama.cpp builds from the same file (the same number of tokens, the
//! tokenizer being checked token by token elsewhere), and greedy generation from it must begin
//! with llama.cpp's answer.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use flashcards_llm_runtime::{
    chat::{ChatTemplate, Message},
    generate::{Sampling, generate},
    gguf::Gguf,
    model::Model,
    tokenizer::Tokenizer,
};
use serde_json::json;

mod common;

/// Tokens of each answer that must be llama.cpp's (see greedy_parity.rs for why not all).
const AGREED: usize = 6;

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_prompt_and_its_greedy_answer_are_llama_cpps() {
    let url = common::server_url();
    let path = std::env::var("FLASHCARDS_TEST_LLM_MODEL").unwrap();
    let file = Gguf::open(Path::new(&path)).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let template = ChatTemplate::from_gguf(&file, &tokenizer).unwrap();
    let eos = u32::try_from(file.get_u64("tokenizer.ggml.eos_token_id").unwrap()).unwrap();
    let stop: Vec<u32> = ["<|im_end|>", "<|endoftext|>"]
        .iter()
        .filter_map(|token| tokenizer.id(token))
        .chain([eos])
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let model = Model::load(Gguf::open(Path::new(&path)).unwrap(), threads).unwrap();
    let client = reqwest::Client::new();
    let conversations = [
        vec![
            Message::new("system", "You write flashcards from study notes."),
            Message::new(
                "user",
                "Sentence: Heat from the Sun evaporates water.\nAnswer: Heat from the Sun",
            ),
        ],
        vec![Message::new("user", "Name three primary colours.")],
    ];
    for messages in conversations {
        let answer = common::post_json(
            &client,
            &format!("{url}/v1/chat/completions"),
            &json!({
                "messages": messages,
                "max_tokens": 24,
                "temperature": 0.0,
                "repeat_penalty": 1.0,
            }),
        )
        .await;
        let prompt = tokenizer.encode(&template.render(&messages).unwrap());
        assert_eq!(
            prompt.len() as u64,
            answer["usage"]["prompt_tokens"].as_u64().unwrap(),
            "{messages:?}"
        );
        let theirs = answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut session = model.session(prompt.len() + 24);
        let ours = generate(
            &model,
            &mut session,
            &prompt,
            24,
            &stop,
            Sampling::GREEDY,
            None,
            |_| true,
        )
        .unwrap();
        let start = tokenizer.decode(&ours.tokens[..AGREED.min(ours.tokens.len())]);
        println!(
            "llama.cpp: {theirs:?}\nours:      {:?}",
            tokenizer.decode(&ours.tokens)
        );
        assert!(
            theirs.trim_start().starts_with(start.trim_start()),
            "{theirs:?} does not begin with {start:?}"
        );
    }
}
