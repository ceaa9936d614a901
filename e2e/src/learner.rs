//! A learner's steps through the web front end's same-origin API, as the web app takes them: a
//! session kept in a cookie, then decks, cards and uploads. The end-to-end tests' learners and
//! the load generator's go through here.

use std::time::{Duration, Instant};

use reqwest::{Client, RequestBuilder, StatusCode, multipart};
use serde_json::{Value, json};

/// A call the API answered otherwise than expected, or could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct ApiError {
    pub what: String,
    pub detail: String,
}

/// A learner signed in at a web front end.
pub struct Learner {
    /// Holds the session cookie; for calls this module has no step for.
    pub client: Client,
    web: String,
}

/// How long one call may take: an upload, or a page of generation on two cores.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends `request`; an answer with another status than `expected` is an error naming `what`.
/// Returns the answer's JSON (`null` for an empty body).
pub async fn call(
    request: RequestBuilder,
    expected: StatusCode,
    what: &str,
) -> Result<Value, ApiError> {
    let failed = |detail: String| ApiError {
        what: what.to_owned(),
        detail,
    };
    let answer = request
        .send()
        .await
        .map_err(|error| failed(format!("{error:?}")))?;
    let status = answer.status();
    let text = answer
        .text()
        .await
        .map_err(|error| failed(format!("{error:?}")))?;
    if status != expected {
        return Err(failed(format!("{status}: {text}")));
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|error| failed(format!("{error}: {text}")))
}

impl Learner {
    /// Registers `email` at `web` (the front end's URL) and signs in.
    pub async fn sign_up(web: &str, email: &str, password: &str) -> Result<Self, ApiError> {
        let client = Client::builder()
            .cookie_store(true)
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|error| ApiError {
                what: "building the HTTP client".to_owned(),
                detail: error.to_string(),
            })?;
        let learner = Self {
            client,
            web: web.trim_end_matches('/').to_owned(),
        };
        let credentials = json!({"email": email, "password": password});
        call(
            learner.post("/api/auth/register").json(&credentials),
            StatusCode::CREATED,
            "registering",
        )
        .await?;
        learner.sign_in(&credentials).await?;
        Ok(learner)
    }

    /// Signs in again (`{"email", "password"}`), as after the front end's address changed.
    pub async fn sign_in(&self, credentials: &Value) -> Result<(), ApiError> {
        call(
            self.post("/api/auth/login").json(credentials),
            StatusCode::OK,
            "signing in",
        )
        .await
        .map(drop)
    }

    /// Points the learner at another front end URL (its Service made anew).
    pub fn moved_to(&mut self, web: &str) {
        web.trim_end_matches('/').clone_into(&mut self.web);
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.web))
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(format!("{}{path}", self.web))
    }

    /// A new deck's id.
    pub async fn create_deck(&self, name: &str) -> Result<String, ApiError> {
        let deck = call(
            self.post("/api/decks").json(&json!({"name": name})),
            StatusCode::CREATED,
            "creating a deck",
        )
        .await?;
        id_of(&deck, "creating a deck")
    }

    /// A new basic card's id.
    pub async fn create_card(
        &self,
        deck: &str,
        front: &str,
        back: &str,
    ) -> Result<String, ApiError> {
        let card = call(
            self.post(&format!("/api/decks/{deck}/cards"))
                .json(&json!({"front": front, "back": back})),
            StatusCode::CREATED,
            "creating a card",
        )
        .await?;
        id_of(&card, "creating a card")
    }

    /// Uploads a document; returns its id (reading it goes on in the background).
    pub async fn upload(
        &self,
        file_name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, ApiError> {
        let part = multipart::Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str(content_type)
            .map_err(|error| ApiError {
                what: "uploading a document".to_owned(),
                detail: error.to_string(),
            })?;
        let document = call(
            self.post("/api/documents")
                .multipart(multipart::Form::new().part("file", part)),
            StatusCode::CREATED,
            "uploading a document",
        )
        .await?;
        id_of(&document, "uploading a document")
    }

    /// Starts generating up to `max_cards` drafts for `deck` from `document`; returns the job's id.
    pub async fn generate(
        &self,
        document: &str,
        deck: &str,
        max_cards: u32,
    ) -> Result<String, ApiError> {
        let job = call(
            self.post(&format!("/api/documents/{document}/generate"))
                .json(&json!({"deck_id": deck, "max_cards": max_cards})),
            StatusCode::ACCEPTED,
            "starting generation",
        )
        .await?;
        id_of(&job, "starting generation")
    }

    /// Waits until generation job `job` has ended, however it ended; returns it.
    pub async fn finished_job(&self, job: &str, timeout: Duration) -> Result<Value, ApiError> {
        self.poll(&format!("/api/jobs/{job}"), timeout, |job| {
            job["status"] != "queued" && job["status"] != "running"
        })
        .await
    }

    /// The drafts waiting for review from `document`.
    pub async fn drafts(&self, document: &str) -> Result<Vec<Value>, ApiError> {
        let drafts = call(
            self.get(&format!("/api/documents/{document}/drafts")),
            StatusCode::OK,
            "listing drafts",
        )
        .await?;
        Ok(drafts["items"].as_array().cloned().unwrap_or_default())
    }

    /// Polls `GET path` every 200 ms until `done` holds for its answer, which it returns.
    pub async fn poll(
        &self,
        path: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, ApiError> {
        let started = Instant::now();
        loop {
            let value = call(self.get(path), StatusCode::OK, path).await?;
            if done(&value) {
                return Ok(value);
            }
            if started.elapsed() >= timeout {
                return Err(ApiError {
                    what: format!("GET {path}"),
                    detail: format!("still not done after {timeout:?}: {value}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The `id` of an answer.
fn id_of(answer: &Value, what: &str) -> Result<String, ApiError> {
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ApiError {
            what: what.to_owned(),
            detail: format!("no id in {answer}"),
        })
}
