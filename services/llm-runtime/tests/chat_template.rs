//! The chat prompt against llama.cpp's server on each reference model: the model's own template
//! rendered here must be the prompt llama.cpp builds from the same file (the same number of
//! tokens, the tokenizer being checked token by token elsewhere), and greedy generation from it
//! must give llama.cpp's answer (greedy_parity.rs says why the numbers are the same).

#![allow(clippy::unwrap_used)]

use flashcards_llm_runtime::{
    chat::{ChatTemplate, Message},
    generate::{Sampling, generate},
    gguf::Gguf,
    model::Model,
    tokenizer::Tokenizer,
};
use serde_json::json;

mod common;

use common::Reference;

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_prompt_and_its_greedy_answer_are_llama_cpps() {
    for reference in Reference::both() {
        check(&reference).await;
    }
}

async fn check(reference: &Reference) {
    let Reference { name, url, model } = reference;
    let file = Gguf::open(model).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let template = ChatTemplate::from_gguf(&file, &tokenizer).unwrap();
    let stop = tokenizer.turn_ends();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let model = Model::load(Gguf::open(model).unwrap(), threads).unwrap();
    let client = common::client();
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
            "{name}: {messages:?}"
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
            stop,
            Sampling::GREEDY,
            None,
            |_| true,
        )
        .unwrap();
        let ours = tokenizer.decode(&ours.tokens);
        println!("{name}\n  llama.cpp: {theirs:?}\n  ours:      {ours:?}");
        assert_eq!(ours, theirs, "{name}: {messages:?}");
    }
}
