//! `cargo xtask bench-llm`: the local runtime (`services/llm-runtime`) against llama.cpp on the
//! same GGUF file, prompt and thread count, for SmolLM2 and Qwen2.5-Coder-0.5B: prompt tokens per
//! second, decode tokens per second and peak resident memory, with the ratios. Prints figures,
//! asserts nothing.

use std::{
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::{Value, json};

use crate::{apt, cargo, http, llama::LlamaServer, models::Model};

/// Tokens generated after the prompt on each side.
const DECODE_TOKENS: usize = 64;
/// The goals: decode at least half llama.cpp's speed, memory at most 1.3 times its.
const DECODE_GOAL: f64 = 0.5;
const RSS_GOAL: f64 = 1.3;
/// Measurements of llama.cpp's speeds, of which the median is reported.
const RUNS: usize = 3;
/// GNU time, for the peak memory of our side's process.
const TIME: &str = "/usr/bin/time";
/// Longest wait for one llama.cpp answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The models to measure.
    #[arg(long, value_enum, num_args = 1.., default_values = ["smollm2", "qwen05b"])]
    pub models: Vec<Model>,
}

/// One side's figures.
#[derive(Debug, Clone, Copy)]
struct Figures {
    prompt_tokens: u64,
    prompt_per_second: f64,
    decode_per_second: f64,
    peak_rss_bytes: u64,
}

/// Study notes of about 120 tokens; `variant` changes the first word, so llama.cpp's server, which
/// reuses the cache of a prompt sharing the last one's beginning, computes each prompt whole.
fn prompt(variant: &str) -> String {
    format!(
        "{variant}: The water cycle moves water between the oceans, the air and the land. Heat \
         from the Sun evaporates water from the surface of the oceans. The water vapour rises, \
         cools and condenses into clouds. Precipitation such as rain or snow returns the water to \
         the ground. Rivers then carry much of it back to the sea, where the cycle begins again. \
         Plants also release water vapour through their leaves, a process called transpiration, \
         and some water soaks into the ground to become groundwater."
    )
}

pub fn run(options: &Options) -> Result<()> {
    apt::ensure_apt_packages(&[(TIME, "time")])?;
    cargo::build_release(&["-p", "flashcards-llm-runtime", "--example", "decode_bench"])?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut rows = Vec::new();
    for model in &options.models {
        let server = LlamaServer::start_alone(*model)?;
        let theirs = llama_cpp(&server)?;
        let path = server.model_path().to_owned();
        let name = server.model_id().to_owned();
        drop(server);
        let ours = ours(&path, threads)?;
        rows.push((name, ours, theirs));
    }
    println!(
        "\n{threads} threads each, {DECODE_TOKENS} tokens decoded greedily after the prompt\n"
    );
    println!(
        "{:<30} {:<10} {:>7} {:>10} {:>10} {:>10}",
        "model", "runtime", "prompt", "prompt t/s", "decode t/s", "peak MiB"
    );
    for (name, ours, theirs) in &rows {
        for (runtime, figures) in [("ours", ours), ("llama.cpp", theirs)] {
            println!(
                "{:<30} {:<10} {:>7} {:>10.1} {:>10.1} {:>10.0}",
                name,
                runtime,
                figures.prompt_tokens,
                figures.prompt_per_second,
                figures.decode_per_second,
                mib(figures.peak_rss_bytes)
            );
        }
        let decode = ours.decode_per_second / theirs.decode_per_second;
        let rss = mib(ours.peak_rss_bytes) / mib(theirs.peak_rss_bytes).max(1.0);
        println!(
            "{:<30} {:<10} {:>7} {:>9.2}x {:>9.2}x {:>9.2}x   goal: decode ≥ {DECODE_GOAL}x {}, \
             memory ≤ {RSS_GOAL}x {}",
            name,
            "ratio",
            "",
            ours.prompt_per_second / theirs.prompt_per_second,
            decode,
            rss,
            if decode >= DECODE_GOAL { "✓" } else { "✗" },
            if rss <= RSS_GOAL { "✓" } else { "✗" },
        );
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// llama.cpp's server: a warm-up, then [`RUNS`] prompts with a single token out (the prompt's
/// time), then as many streamed with up to [`DECODE_TOKENS`] more, whose decode rate is taken
/// between the first and the last token's arrival, so prompt time and its jitter stay out of it.
/// Each figure is the median of the runs. Its peak memory is the server process's, Python
/// included.
#[allow(clippy::cast_precision_loss)]
fn llama_cpp(server: &LlamaServer) -> Result<Figures> {
    let address: SocketAddr = server
        .url()
        .trim_start_matches("http://")
        .parse()
        .context("reading the llama.cpp server's address")?;
    let request = |text: &str, tokens: usize, stream: bool| {
        json!({
            "prompt": text,
            "max_tokens": tokens,
            "temperature": 0.0,
            "repeat_penalty": 1.0,
            "stream": stream,
        })
    };
    let prompt_time = |text: &str| -> Result<(f64, u64)> {
        let started = Instant::now();
        let answer = http::request_within(
            address,
            "POST",
            "/v1/completions",
            &[],
            Some(&request(text, 1, false)),
            ANSWER_TIMEOUT,
        )?
        .expect_status(200, "a completion from llama.cpp")?;
        let seconds = started.elapsed().as_secs_f64();
        let body: Value = serde_json::from_str(&answer.body).context("reading the completion")?;
        Ok((
            seconds,
            body["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        ))
    };
    let decode_rate = |text: &str| -> Result<f64> {
        let events = http::post_event_stream(
            address,
            "/v1/completions",
            &request(text, DECODE_TOKENS, true),
            ANSWER_TIMEOUT,
        )?;
        let token_times: Vec<Instant> = events
            .iter()
            .filter(|(_, data)| {
                serde_json::from_str::<Value>(data).is_ok_and(|event| {
                    event["choices"][0]["text"]
                        .as_str()
                        .is_some_and(|text| !text.is_empty())
                })
            })
            .map(|(at, _)| *at)
            .collect();
        let (Some(first), Some(last)) = (token_times.first(), token_times.last()) else {
            bail!("llama.cpp streamed no tokens");
        };
        ensure!(
            token_times.len() > 1 && last > first,
            "llama.cpp streamed {} tokens",
            token_times.len()
        );
        Ok((token_times.len() - 1) as f64 / last.duration_since(*first).as_secs_f64())
    };
    prompt_time(&prompt("Warm-up"))?;
    let mut prompt_rates = Vec::new();
    let mut decode_rates = Vec::new();
    let mut prompt_tokens = 0;
    for run in 0..RUNS {
        let (seconds, tokens) = prompt_time(&prompt(&format!("Notes {run}")))?;
        prompt_tokens = tokens;
        prompt_rates.push(tokens as f64 / seconds);
        decode_rates.push(decode_rate(&prompt(&format!("Summary {run}")))?);
    }
    Ok(Figures {
        prompt_tokens,
        prompt_per_second: median(prompt_rates),
        decode_per_second: median(decode_rates),
        peak_rss_bytes: peak_rss(server.pid())?,
    })
}

/// The middle value (the upper of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// This runtime in a process of its own (the release example `decode_bench`), so that its peak
/// memory, which GNU time reports, is the model's alone.
#[allow(clippy::cast_precision_loss)]
fn ours(model: &std::path::Path, threads: usize) -> Result<Figures> {
    let memory = std::env::temp_dir().join(format!("flashcards-bench-llm-{}", std::process::id()));
    let output = Command::new(TIME)
        .args(["-f", "%M", "-o"])
        .arg(&memory)
        .arg(cargo::release_example("decode_bench"))
        .arg(model)
        .arg(prompt("Notes"))
        .arg(DECODE_TOKENS.to_string())
        .arg(threads.to_string())
        .output()
        .context("running decode_bench")?;
    ensure!(
        output.status.success(),
        "decode_bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: Value =
        serde_json::from_slice(&output.stdout).context("reading decode_bench's figures")?;
    let number = |field: &str| {
        line[field]
            .as_f64()
            .ok_or_else(|| anyhow!("decode_bench printed no {field}: {line}"))
    };
    let kib: u64 = std::fs::read_to_string(&memory)
        .with_context(|| format!("reading {}", memory.display()))?
        .trim()
        .parse()
        .context("reading GNU time's maximum resident set")?;
    let _ = std::fs::remove_file(&memory);
    Ok(Figures {
        prompt_tokens: line["prompt_tokens"].as_u64().unwrap_or(0),
        prompt_per_second: number("prompt_tokens")? / number("prompt_seconds")?,
        decode_per_second: number("decode_tokens")? / number("decode_seconds")?,
        peak_rss_bytes: kib * 1024,
    })
}

/// A process's peak resident set (VmHWM) from /proc.
fn peak_rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .ok_or_else(|| anyhow!("no VmHWM in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}
