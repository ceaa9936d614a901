//! The LLM service's command line; every flag also reads an environment variable.

use std::path::PathBuf;

use clap::{ArgGroup, Parser};
use flashcards_bootstrap::{CommonArgs, config::MlflowArgs};
use flashcards_contracts::flags::llm as flags;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "flashcards-llm",
    version,
    about = "The flashcards LLM service: grounded flashcards from text"
)]
// Where completions come from: a model file run in process, or a server; exactly one.
#[command(group(ArgGroup::new("backend").required(true).args(["model", "upstream_url"])))]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub mlflow: MlflowArgs,

    /// A GGUF model file to run in this process (llama or qwen2 architecture), e.g.
    /// `/models/qwen2.5-coder-0.5b-instruct.gguf`.
    #[arg(long = flags::MODEL.long, env = flags::MODEL.env)]
    pub model: Option<PathBuf>,

    /// Threads for the local model's matrix products [default: the CPUs this process may use].
    #[arg(long, env = "MODEL_THREADS")]
    pub model_threads: Option<usize>,

    /// OpenAI-compatible server to generate with (llama.cpp's server, Ollama, vLLM), e.g.
    /// `http://127.0.0.1:8080`.
    #[arg(long = flags::UPSTREAM_URL.long, env = flags::UPSTREAM_URL.env, value_parser = http_url)]
    pub upstream_url: Option<String>,

    /// Model to ask the upstream for [default: the first one it lists].
    #[arg(long = flags::UPSTREAM_MODEL.long, env = flags::UPSTREAM_MODEL.env)]
    pub upstream_model: Option<String>,

    /// Bearer key for the upstream.
    #[arg(long = flags::UPSTREAM_API_KEY.long, env = flags::UPSTREAM_API_KEY.env, hide_env_values = true)]
    pub upstream_api_key: Option<String>,

    /// Longest wait for one upstream answer, in seconds.
    #[arg(long, env = "UPSTREAM_TIMEOUT_SECS", default_value_t = 120)]
    pub upstream_timeout_secs: u64,

    /// Further attempts after an upstream 429, 5xx or refused connection (jittered backoff).
    #[arg(long, env = "UPSTREAM_RETRIES", default_value_t = 2)]
    pub upstream_retries: u32,

    /// Generations at once; more get 503 with `Retry-After` at once.
    #[arg(long, env = "MAX_CONCURRENT_GENERATIONS", default_value_t = 2)]
    pub max_concurrent_generations: usize,

    /// Longest text one request may carry, in characters.
    #[arg(long, env = "MAX_TEXT_CHARS", default_value_t = 100_000)]
    pub max_text_chars: usize,
}

/// An upstream must be an absolute `http://` or `https://` URL: anything else would only fail
/// later, at every readiness check.
fn http_url(value: &str) -> Result<String, String> {
    let url =
        reqwest::Url::parse(value.trim()).map_err(|err| format!("not an absolute URL ({err})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{}:// is not http:// or https://", url.scheme()));
    }
    Ok(value.trim().to_owned())
}
