//! The service against a real model: llama.cpp's server with SmolLM2, which `cargo xtask test`
//! starts and names in `FLASHCARDS_TEST_LLM_URL`. A small TCP relay in front of it lets tests cut
//! the upstream mid-request and see when the service hangs up.

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::{stand_in_upstream, start};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// A passage SmolLM2 (greedy decoding) makes at least one grounded card from; most of what it
/// writes is dropped, which exercises the filters too.
const PASSAGE: &str = "Page 2: Water on the move\nWater moves between the oceans, the air and the \
land. Heat from the Sun evaporates it; the vapour rises, cools and condenses into tiny droplets \
high in the sky. Rain and snow bring it back to the ground, where rivers carry it to the sea again.";

fn upstream_url() -> String {
    std::env::var("FLASHCARDS_TEST_LLM_URL").expect(
        "FLASHCARDS_TEST_LLM_URL is not set: run the tests with `cargo xtask test`, which starts \
         llama.cpp's server with SmolLM2",
    )
}

/// Lower-cased words of at least three letters or digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| word.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

#[tokio::test]
async fn cards_parse_and_rest_on_spans_of_the_text() {
    let server = start(&upstream_url(), &[]).await;
    let (status, answer) = server
        .generate(json!({"text": PASSAGE, "max_cards": 3}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    println!("{}", serde_json::to_string_pretty(&answer).unwrap());
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let cards = answer["cards"].as_array().unwrap();
    assert!(!cards.is_empty() && cards.len() <= 3, "{answer}");
    let chars: Vec<char> = PASSAGE.chars().collect();
    for card in cards {
        let (start, end) = (
            usize::try_from(card["source"]["start"].as_u64().unwrap()).unwrap(),
            usize::try_from(card["source"]["end"].as_u64().unwrap()).unwrap(),
        );
        assert!(start < end && end <= chars.len(), "{card}");
        let span: String = chars[start..end].iter().collect();
        let answer_text = match card["kind"].as_str().unwrap() {
            "basic" => card["back"].as_str().unwrap().to_owned(),
            _ => card["text"].as_str().unwrap().to_owned(),
        };
        let span_words = words(&span);
        let answer_words = words(&answer_text);
        let supported = answer_words
            .iter()
            .filter(|w| span_words.contains(w))
            .count();
        assert!(
            supported * 2 >= answer_words.len(),
            "answer {answer_text:?} not supported by {span:?}"
        );
    }
    // Whatever was dropped says why.
    for dropped in answer["dropped"].as_array().unwrap() {
        assert!(!dropped["reason"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn excess_requests_get_503_at_once_and_metrics_count_them() {
    let server = Arc::new(start(&upstream_url(), &["--max-concurrent-generations", "1"]).await);
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .generate(json!({"text": PASSAGE, "max_cards": 2, "kinds": ["basic"]}))
                    .await
                    .0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let busy = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(ok >= 1 && busy >= 1 && ok + busy == 3, "{statuses:?}");
    let (status, _) = server.generate(json!({"text": "  "})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    assert_eq!(server.metric("llm_generation_requests_total").await, 4.0);
    #[allow(clippy::cast_precision_loss)]
    let (ok, busy) = (ok as f64, busy as f64);
    assert_eq!(
        server
            .metric("llm_generation_errors_total{type=\"overload\"}")
            .await,
        busy
    );
    assert_eq!(
        server
            .metric("llm_generation_errors_total{type=\"invalid_request\"}")
            .await,
        1.0
    );
    assert_eq!(
        server.metric("llm_generation_duration_seconds_count").await,
        ok
    );
    assert_eq!(server.metric("llm_active_generations").await, 0.0);
}

/// A TCP relay to the upstream that can be cut, and that counts connections the service closed
/// before the upstream had answered.
struct Relay {
    address: String,
    cut: watch::Sender<bool>,
    hung_up_early: Arc<AtomicUsize>,
}

async fn relay(upstream: &str) -> Relay {
    let target = upstream.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (cut, watching) = watch::channel(false);
    let hung_up_early = Arc::new(AtomicUsize::new(0));
    let counter = hung_up_early.clone();
    tokio::spawn(async move {
        loop {
            let mut cut_signal = watching.clone();
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = cut_signal.wait_for(|cut| *cut) => return,
            };
            let Ok((mut inbound, _)) = accepted else {
                return;
            };
            let target = target.clone();
            let counter = counter.clone();
            let mut cut_signal = watching.clone();
            tokio::spawn(async move {
                let mut outbound = TcpStream::connect(&target).await.unwrap();
                let (mut in_read, mut in_write) = inbound.split();
                let (mut out_read, mut out_write) = outbound.split();
                let upstream_answered = async {
                    tokio::io::copy(&mut out_read, &mut in_write).await.ok();
                };
                let service_side = async {
                    tokio::io::copy(&mut in_read, &mut out_write).await.ok();
                };
                tokio::select! {
                    () = upstream_answered => {}
                    () = service_side => { counter.fetch_add(1, Ordering::SeqCst); }
                    _ = cut_signal.wait_for(|cut| *cut) => {}
                }
                let _ = inbound.shutdown().await;
            });
        }
    });
    Relay {
        address,
        cut,
        hung_up_early,
    }
}

#[tokio::test]
async fn an_upstream_that_dies_mid_request_is_a_clear_503() {
    let relay = relay(&upstream_url()).await;
    let server = start(&relay.address, &["--upstream-retries", "1"]).await;
    let generation = {
        let base = server.base.clone();
        tokio::spawn(async move {
            Client::new()
                .post(format!("{base}/v1/generate"))
                .json(&json!({"text": PASSAGE, "max_cards": 8}))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.cut.send(true).unwrap();
    let response = generation.await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("upstream"),
        "{body}"
    );
    assert_eq!(
        server
            .metric("llm_generation_errors_total{type=\"upstream\"}")
            .await,
        1.0
    );
    assert_eq!(server.metric("llm_active_generations").await, 0.0);
}

#[tokio::test]
async fn a_client_that_leaves_cancels_its_generation() {
    let relay = relay(&upstream_url()).await;
    let server = start(&relay.address, &[]).await;
    let base = server.base.clone();
    let leaving = tokio::spawn(async move {
        Client::new()
            .post(format!("{base}/v1/generate"))
            .json(&json!({"text": PASSAGE, "max_cards": 10}))
            .send()
            .await
    });
    // Wait until the generation reached the model, then hang up.
    for _ in 0..100 {
        if server.metric("llm_active_generations").await == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    leaving.abort();
    for _ in 0..200 {
        if relay.hung_up_early.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        relay.hung_up_early.load(Ordering::SeqCst),
        1,
        "the service closed its upstream request before the model answered"
    );
    assert_eq!(server.metric("llm_active_generations").await, 0.0);
}

/// A stand-in upstream that refuses the first `failures` chat requests with 503, then answers with
/// one fixed reply.
async fn flaky_upstream(failures: usize) -> (String, Arc<AtomicUsize>) {
    let reply = move |call| {
        (call >= failures).then(|| json!({"question": "When did the French Revolution begin?"}))
    };
    stand_in_upstream("flaky", reply).await
}

#[tokio::test]
async fn a_busy_upstream_is_retried_then_given_up_on() {
    // A date is a fact whose question the model phrases (no template), so it is asked.
    let text = "Cells need energy. The French Revolution began in 1789.";
    let (url, calls) = flaky_upstream(2).await;
    let server = start(&url, &["--upstream-retries", "2"]).await;
    let (status, answer) = server
        .generate(json!({"text": text, "kinds": ["basic"], "max_cards": 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two refusals, then the answer"
    );
    assert_eq!(answer["cards"][0]["back"], "1789");

    let (url, calls) = flaky_upstream(usize::MAX).await;
    let server = start(&url, &["--upstream-retries", "1"]).await;
    let (status, answer) = server.generate(json!({"text": text})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one try and one retry");
    assert!(
        answer["detail"].as_str().unwrap().contains("503"),
        "{answer}"
    );
}

#[tokio::test]
async fn chat_completions_pass_through_to_the_upstream_with_its_schema() {
    let server = start(&upstream_url(), &[]).await;
    let schema = json!({
        "type": "object",
        "properties": {"colour": {"type": "string"}},
        "required": ["colour"],
    });
    let answer: Value = Client::new()
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&json!({
            "messages": [{"role": "user", "content": "Name a primary colour as JSON."}],
            "max_tokens": 40,
            "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(content).expect("the schema held the model to JSON");
    assert!(parsed["colour"].is_string(), "{answer}");
    assert_eq!(answer["model"], "SmolLM2-135M-Instruct", "{answer}");
}
