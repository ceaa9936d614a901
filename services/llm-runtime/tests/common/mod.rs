//! What the parity tests share: the reference models, each a GGUF file and llama.cpp's server
//! running it (`cargo xtask test` starts both), and a JSON call to such a server.

use std::path::PathBuf;

use serde_json::Value;

/// A reference model: its file, and llama.cpp's server with the same file.
pub struct Reference {
    pub name: &'static str,
    pub url: String,
    pub model: PathBuf,
}

impl Reference {
    /// SmolLM2-135M-Instruct (llama, Q4_1): FLASHCARDS_TEST_LLM_URL, FLASHCARDS_TEST_LLM_MODEL.
    fn smollm2() -> Self {
        Self::from_env(
            "SmolLM2",
            "FLASHCARDS_TEST_LLM_URL",
            "FLASHCARDS_TEST_LLM_MODEL",
        )
    }

    /// Qwen2.5-Coder-0.5B-Instruct (qwen2, Q5_0/Q8_0/Q4_K/Q6_K): FLASHCARDS_TEST_QWEN_URL,
    /// FLASHCARDS_TEST_QWEN_MODEL.
    fn qwen() -> Self {
        Self::from_env(
            "Qwen",
            "FLASHCARDS_TEST_QWEN_URL",
            "FLASHCARDS_TEST_QWEN_MODEL",
        )
    }

    /// Both, the small one first.
    pub fn both() -> [Self; 2] {
        [Self::smollm2(), Self::qwen()]
    }

    fn from_env(name: &'static str, url_var: &str, model_var: &str) -> Self {
        let var = |var: &str| {
            std::env::var(var).unwrap_or_else(|_| {
                panic!(
                    "{var} is not set: run the tests with `cargo xtask test`, which starts \
                     llama.cpp's server with each reference model"
                )
            })
        };
        Self {
            name,
            url: var(url_var),
            model: PathBuf::from(var(model_var)),
        }
    }
}

/// A client that opens a connection per request: llama.cpp's server (uvicorn) closes idle
/// connections after 5 s, and a request sent on one as it closes is reset (seen between the
/// parity test's requests, which wait on our model for longer than that).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client builds")
}

/// POSTs `body` to `url` and reads the JSON answer; any failure fails the test.
pub async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    client
        .post(url)
        .json(body)
        .send()
        .await
        .expect("llama.cpp's server answers")
        .error_for_status()
        .expect("llama.cpp's server accepts the request")
        .json()
        .await
        .expect("llama.cpp's server answers JSON")
}
