//! What the parity tests share: the llama.cpp server `cargo xtask test` starts, and a JSON call
//! to it.

use serde_json::Value;

/// The llama.cpp server's base URL (FLASHCARDS_TEST_LLM_URL).
pub fn server_url() -> String {
    std::env::var("FLASHCARDS_TEST_LLM_URL").expect(
        "FLASHCARDS_TEST_LLM_URL is not set: run the tests with `cargo xtask test`, which starts \
         llama.cpp's server with SmolLM2",
    )
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
