//! Our model against llama.cpp's on the same GGUF file, for both reference models (`cargo xtask
//! test` runs llama.cpp's server with each): the same prompts, 32 tokens each, the likeliest
//! token at every step.
//!
//! The reference is llama.cpp built for x86-64-v3 (AVX2, FMA, F16C) with its stock kernels
//! (`GGML_CPU_TILED_MM=0`). Our AVX2 build computes its numbers bit for bit: the same 8-bit
//! activation blocks, half-precision cache and attention weights, the same order of every sum,
//! its `exp` (crate::elementwise). So the measures are strict:
//! - whole generations: at least 9 of the 10 give llama.cpp's text exactly (all 10 do);
//! - along the way, while the texts agree, each token's log-probability is llama.cpp's within
//!   [`LOGPROB_TOLERANCE`]; where they part, llama.cpp's own top two are within [`NEAR_TIE`].

#![allow(clippy::unwrap_used)]

use flashcards_llm_runtime::{
    generate::likeliest,
    gguf::Gguf,
    model::{Model, PREFILL_BATCH},
    tokenizer::Tokenizer,
};
use serde_json::{Value, json};

mod common;

use common::Reference;

const PROMPTS: [&str; 10] = [
    "The capital of France is",
    "Photosynthesis is the process by which",
    "def fibonacci(n):\n",
    "Q: What is the chemical symbol for gold?\nA:",
    "1, 2, 3, 4,",
    "The mitochondria is the powerhouse of",
    "<|im_start|>user\nName three primary colours.<|im_end|>\n<|im_start|>assistant\n",
    "In 1789, the French Revolution",
    "Water boils at",
    "A haiku about autumn:\n",
];
const TOKENS: usize = 32;

/// Whole generations of the 10 that must be llama.cpp's.
const SAME_GENERATIONS: usize = 9;

/// How far apart, in log-probability, llama.cpp's likeliest two tokens may be for our choice to
/// be the other one. With the same logits only an exact tie could part them.
const NEAR_TIE: f64 = 1e-4;

/// How far our log-probability of a token may be from llama.cpp's. The logits are the same
/// numbers; llama-cpp-python takes their log-softmax in single precision and we in double, which
/// differ by under 1e-5 (the test prints the largest gap).
const LOGPROB_TOLERANCE: f64 = 1e-4;

/// llama.cpp's greedy generation after a prompt, with the log-probabilities it reports.
struct Theirs {
    text: String,
    /// Each generated token's text.
    tokens: Vec<String>,
    /// The log-probability of each generated token.
    logprobs: Vec<f64>,
    /// The second largest log-probability at each position, if llama.cpp named one.
    runner_up: Vec<Option<f64>>,
}

async fn llama_cpp_greedy(client: &reqwest::Client, url: &str, prompt: &str) -> Theirs {
    let answer = common::post_json(
        client,
        &format!("{url}/v1/completions"),
        &json!({
            "prompt": prompt,
            "max_tokens": TOKENS,
            "temperature": 0.0,
            "repeat_penalty": 1.0,
            "logprobs": 2,
        }),
    )
    .await;
    let choice = &answer["choices"][0];
    let logprobs = &choice["logprobs"];
    let numbers = |values: &Value| -> Vec<f64> {
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|value| value.as_f64().unwrap())
            .collect()
    };
    Theirs {
        text: choice["text"].as_str().unwrap().to_owned(),
        tokens: logprobs["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|token| token.as_str().unwrap().to_owned())
            .collect(),
        logprobs: numbers(&logprobs["token_logprobs"]),
        runner_up: logprobs["top_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|top| {
                let mut values: Vec<f64> = top
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|value| value.as_f64().unwrap())
                    .collect();
                values.sort_by(|a, b| b.total_cmp(a));
                values.get(1).copied()
            })
            .collect(),
    }
}

/// The log-softmax of the logits, in double precision.
fn log_probabilities(logits: &[f32]) -> Vec<f64> {
    let largest = f64::from(likeliest(logits).1);
    let total: f64 = logits
        .iter()
        .map(|logit| (f64::from(*logit) - largest).exp())
        .sum();
    let log_total = largest + total.ln();
    logits
        .iter()
        .map(|logit| f64::from(*logit) - log_total)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn greedy_generations_and_next_token_distributions_are_llama_cpps() {
    let mut failures = Vec::new();
    for reference in Reference::both() {
        failures.extend(compare(&reference).await);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Runs every prompt on both sides; returns what fell short.
async fn compare(reference: &Reference) -> Vec<String> {
    let Reference { name, url, model } = reference;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let tokenizer = Tokenizer::from_gguf(&Gguf::open(model).unwrap()).unwrap();
    let model = Model::load(Gguf::open(model).unwrap(), threads).unwrap();
    let client = common::client();
    let mut failures = Vec::new();
    let (mut same, mut positions, mut ties, mut widest) = (0, 0, 0, 0.0_f64);
    for prompt in PROMPTS {
        let theirs = llama_cpp_greedy(&client, url, prompt).await;
        let prompt_tokens = tokenizer.encode(prompt);

        // Our greedy generation, with the log-probability of each token we pick.
        let mut session = model.session(prompt_tokens.len() + TOKENS + 1);
        let mut logits = model.prefill(&mut session, &prompt_tokens).unwrap();
        let mut ours = Vec::new();
        let mut our_logprobs = Vec::new();
        while ours.len() < TOKENS {
            let next = likeliest(&logits).0;
            if tokenizer.turn_ends().contains(&next) {
                break;
            }
            ours.push(next);
            our_logprobs.push(log_probabilities(&logits)[next as usize]);
            logits = model.step(&mut session, next).unwrap();
        }
        let text = tokenizer.decode(&ours);
        println!(
            "{name} {prompt:?}\n  llama.cpp: {:?}\n  ours:      {text:?}",
            theirs.text
        );
        if text == theirs.text {
            same += 1;
        }
        // Token by token while the two agree: the same log-probability; where they part, a near
        // tie in llama.cpp's own numbers.
        for (index, (&token, ours)) in ours.iter().zip(&our_logprobs).enumerate() {
            let Some(their_token) = theirs.tokens.get(index) else {
                failures.push(format!(
                    "{name} {prompt:?}: llama.cpp stopped at token {index}"
                ));
                break;
            };
            let piece = String::from_utf8_lossy(&tokenizer.token_bytes(token)).into_owned();
            if !their_token.is_empty() && piece != *their_token {
                let margin =
                    theirs.runner_up[index].map_or(0.0, |second| theirs.logprobs[index] - second);
                if margin <= NEAR_TIE {
                    ties += 1;
                } else {
                    failures.push(format!(
                        "{name} {prompt:?}, token {index}: ours is {piece:?}, llama.cpp's \
                         {their_token:?} by {margin:.4}"
                    ));
                }
                break;
            }
            positions += 1;
            let gap = (ours - theirs.logprobs[index]).abs();
            widest = widest.max(gap);
            if gap > LOGPROB_TOLERANCE {
                failures.push(format!(
                    "{name} {prompt:?}, token {index} {piece:?}: log-probability {ours:.6} \
                     here, {:.6} in llama.cpp",
                    theirs.logprobs[index]
                ));
            }
        }
    }
    println!(
        "{name}: {same} of 10 whole generations of {TOKENS} tokens are llama.cpp's; along its \
         text, {positions} positions with log-probabilities at most {widest:.2e} apart, \
         {ties} near ties taken the other way"
    );
    if same < SAME_GENERATIONS {
        failures.push(format!(
            "{name}: {same} of 10 whole generations are llama.cpp's, not {SAME_GENERATIONS}"
        ));
    }
    failures
}

/// A prompt fed in two parts ends in the logits of feeding it at once: the products of a batch's
/// tokens do not depend on which other tokens share the batch, and the second part reads the
/// first part's cache. The cut is a multiple of 4, so that the tokens llama.cpp's repacked Q4_K
/// kernel takes four at a time are the same either way.
#[test]
fn a_prompt_fed_in_parts_is_the_prompt_fed_at_once() {
    for Reference { name, model, .. } in Reference::both() {
        let tokenizer = Tokenizer::from_gguf(&Gguf::open(&model).unwrap()).unwrap();
        let model = Model::load(Gguf::open(&model).unwrap(), 2).unwrap();
        // Longer than one batch, so that batches attend to earlier batches' cache.
        let cut = PREFILL_BATCH + 4;
        let prompt = tokenizer.encode(&PROMPTS.join(" ").repeat(2));
        assert!(prompt.len() > cut + 1);
        let mut whole = model.session(prompt.len());
        let at_once = model.prefill(&mut whole, &prompt).unwrap();
        let mut parts = model.session(prompt.len());
        model.prefill(&mut parts, &prompt[..cut]).unwrap();
        let in_parts = model.prefill(&mut parts, &prompt[cut..]).unwrap();
        assert_eq!(whole.position(), parts.position());
        let differing = at_once
            .iter()
            .zip(&in_parts)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 0, "{name}: {differing} logits differ");
    }
}
