//! One side of `cargo xtask bench-llm`: this runtime on a GGUF file, the same prompt and thread
//! count llama.cpp gets. Prints one JSON line: prompt and decode tokens and seconds (the caller
//! measures the process's memory).

use std::{path::Path, process::ExitCode, time::Instant};

use flashcards_llm_runtime::{
    generate::{Sampling, pick},
    gguf::Gguf,
    model::Model,
    tokenizer::Tokenizer,
};
use rand::{SeedableRng, rngs::StdRng};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, prompt, decode, threads] = args.as_slice() else {
        eprintln!("usage: decode_bench <model.gguf> <prompt text> <decode tokens> <threads>");
        return ExitCode::FAILURE;
    };
    match run(model, prompt, decode, threads) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("decode_bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(model: &str, prompt: &str, decode: &str, threads: &str) -> Result<String, String> {
    let decode: usize = decode
        .parse()
        .map_err(|err| format!("decode tokens: {err}"))?;
    let threads: usize = threads.parse().map_err(|err| format!("threads: {err}"))?;
    let open = || Gguf::open(Path::new(model)).map_err(|err| err.to_string());
    let tokenizer = Tokenizer::from_gguf(&open()?).map_err(|err| err.to_string())?;
    let model = Model::load(open()?, threads).map_err(|err| err.to_string())?;
    let tokens = tokenizer.encode(prompt);
    let mut session = model.session(tokens.len() + decode + 1);
    let started = Instant::now();
    let mut logits = model
        .prefill(&mut session, &tokens)
        .map_err(|err| err.to_string())?;
    let prompt_seconds = started.elapsed().as_secs_f64();
    let mut rng = StdRng::seed_from_u64(0);
    let started = Instant::now();
    for _ in 0..decode {
        let next = pick(&logits, Sampling::GREEDY, &mut rng);
        logits = model
            .step(&mut session, next)
            .map_err(|err| err.to_string())?;
    }
    let decode_seconds = started.elapsed().as_secs_f64();
    Ok(format!(
        "{{\"prompt_tokens\": {}, \"prompt_seconds\": {prompt_seconds}, \"decode_tokens\": {decode}, \
         \"decode_seconds\": {decode_seconds}}}",
        tokens.len(),
    ))
}
