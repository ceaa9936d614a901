//! Completions from a GGUF model run in this process by `flashcards-llm-runtime`.
//!
//! One sequence computes at a time: each already spreads its matrix products over every thread
//! it is given, so a second at once would only make both slower. A request whose caller goes away
//! (the HTTP client disconnected) stops its generation at the next token. The last sequence's
//! cache is kept: a request that starts with the same tokens (the card prompt's instructions and
//! examples) computes only what follows them.

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use flashcards_llm_runtime::{
    chat::{ChatTemplate, Message},
    constraint::ConstraintVocabulary,
    generate::{self, Finish, GenerateError, Sampling},
    gguf::Gguf,
    model::{Model, ModelError, Session},
    tokenizer::{TURN_ENDS, Tokenizer},
};
use tokio::sync::{Semaphore, mpsc};

use super::{BackendError, BackendFuture, ChatRequest, Completion, ModelBackend};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading the model file {path}: {source}")]
    File {
        path: String,
        source: flashcards_llm_runtime::gguf::GgufError,
    },
    #[error("loading the model {path}: {source}")]
    Model {
        path: String,
        source: flashcards_llm_runtime::model::ModelError,
    },
    #[error("the tokenizer of {path}: {source}")]
    Tokenizer {
        path: String,
        source: flashcards_llm_runtime::tokenizer::TokenizerError,
    },
    #[error("the chat template of {path}: {source}")]
    Chat {
        path: String,
        source: flashcards_llm_runtime::chat::ChatError,
    },
    #[error("{path} names no token that ends an answer (none of {TURN_ENDS:?}, no eos_token_id)")]
    NoEndToken { path: String },
    #[error("{path}: {source}")]
    Constraint {
        path: String,
        source: flashcards_llm_runtime::constraint::ConstraintError,
    },
}

/// The smallest cache a kept session gets, in tokens: enough for the card prompt and its answer,
/// so that one session serves request after request.
const KEPT_CONTEXT: usize = 1024;

pub struct LocalModel {
    name: String,
    parts: Arc<Parts>,
    /// One sequence at a time; see the module's comment.
    compute: Semaphore,
}

struct Parts {
    model: Model,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    stop: Vec<u32>,
    /// The vocabulary indexed for schema-constrained answers.
    constraints: ConstraintVocabulary,
    /// The last sequence, whose cached start the next request may share.
    kept: Mutex<Option<Session>>,
}

impl Parts {
    /// The kept session if it can hold `needed` tokens, else a new one (the model's context
    /// permitting).
    fn session(&self, needed: usize) -> Result<Session, ModelError> {
        let context = self.model.config.context;
        if needed > context {
            return Err(ModelError::ContextFull(context));
        }
        let kept = self
            .kept
            .lock()
            .map_or(None, |mut kept| kept.take())
            .filter(|session| session.capacity() >= needed);
        Ok(kept.unwrap_or_else(|| self.model.session(needed.max(KEPT_CONTEXT).min(context))))
    }

    fn keep(&self, session: Session) {
        if let Ok(mut kept) = self.kept.lock() {
            *kept = Some(session);
        }
    }
}

impl LocalModel {
    /// Reads and checks the model file; the weights stay mapped, quantized, where they are.
    pub fn load(path: &Path, threads: usize) -> Result<Self, LoadError> {
        let shown = path.display().to_string();
        let open = || {
            Gguf::open(path).map_err(|source| LoadError::File {
                path: shown.clone(),
                source,
            })
        };
        let file = open()?;
        let tokenizer = Tokenizer::from_gguf(&file).map_err(|source| LoadError::Tokenizer {
            path: shown.clone(),
            source,
        })?;
        let template =
            ChatTemplate::from_gguf(&file, &tokenizer).map_err(|source| LoadError::Chat {
                path: shown.clone(),
                source,
            })?;
        let stop = tokenizer.turn_ends().to_vec();
        let end = *stop.first().ok_or_else(|| LoadError::NoEndToken {
            path: shown.clone(),
        })?;
        let model = Model::load(file, threads).map_err(|source| LoadError::Model {
            path: shown.clone(),
            source,
        })?;
        let constraints = ConstraintVocabulary::new(&tokenizer, model.config.vocabulary, end)
            .map_err(|source| LoadError::Constraint {
                path: shown.clone(),
                source,
            })?;
        let name = path
            .file_stem()
            .map_or_else(|| shown.clone(), |stem| stem.to_string_lossy().into_owned());
        Ok(Self {
            name,
            parts: Arc::new(Parts {
                model,
                tokenizer,
                template,
                stop,
                constraints,
                kept: Mutex::new(None),
            }),
            compute: Semaphore::new(1),
        })
    }
}

/// Sets its flag when dropped: the generation of a request whose future was dropped stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl ModelBackend for LocalModel {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn model<'a>(&'a self) -> BackendFuture<'a, String> {
        Box::pin(async move { Ok(self.name.clone()) })
    }

    /// Decoding is constrained to the request's schema, which llguidance must be able to compile.
    fn schema_error(&self, schema: &serde_json::Value) -> Option<String> {
        self.parts
            .constraints
            .json_schema(schema)
            .err()
            .map(|err| err.to_string())
    }

    fn complete<'a>(&'a self, request: &'a ChatRequest) -> BackendFuture<'a, Completion> {
        Box::pin(self.run(request, None))
    }

    fn complete_streaming<'a>(
        &'a self,
        request: &'a ChatRequest,
        pieces: mpsc::Sender<String>,
    ) -> BackendFuture<'a, Completion> {
        Box::pin(self.run(request, Some(pieces)))
    }
}

impl LocalModel {
    /// Generates the answer to `request`, handing each new piece of text to `pieces` as it is
    /// made when there is a receiver; a receiver that goes away stops the generation, as a
    /// dropped future does.
    async fn run(
        &self,
        request: &ChatRequest,
        pieces: Option<mpsc::Sender<String>>,
    ) -> Result<Completion, BackendError> {
        let messages: Vec<Message> = request
            .messages
            .iter()
            .map(|message| Message::new(message.role, &message.content))
            .collect();
        let prompt = self
            .parts
            .template
            .render(&messages)
            .map_err(|err| BackendError::Rejected(err.to_string()))?;
        let _permit = self
            .compute
            .acquire()
            .await
            .map_err(|_| BackendError::Unavailable("the model is shutting down".to_owned()))?;
        let cancelled = Arc::new(AtomicBool::new(false));
        let _guard = CancelOnDrop(cancelled.clone());
        let parts = self.parts.clone();
        let max_tokens = request.max_tokens as usize;
        #[allow(clippy::cast_possible_truncation)]
        let sampling = Sampling {
            temperature: request.sampling.temperature as f32,
            top_p: request.sampling.top_p as f32,
            seed: request.sampling.seed.unwrap_or(0),
        };
        let mut constraint = request
            .schema
            .as_ref()
            .map(|schema| self.parts.constraints.json_schema(schema))
            .transpose()
            .map_err(|err| BackendError::Rejected(err.to_string()))?;
        let generated = tokio::task::spawn_blocking(move || {
            let tokens = parts.tokenizer.encode(&prompt);
            let mut session = parts.session(tokens.len() + max_tokens)?;
            let mut text = Utf8Pieces::default();
            let generated = generate::generate(
                &parts.model,
                &mut session,
                &tokens,
                max_tokens,
                &parts.stop,
                sampling,
                constraint.as_mut(),
                |token| {
                    if cancelled.load(Ordering::Relaxed) {
                        return false;
                    }
                    let Some(pieces) = &pieces else {
                        return true;
                    };
                    match text.push(&parts.tokenizer.token_bytes(token)) {
                        Some(piece) => pieces.blocking_send(piece).is_ok(),
                        None => true,
                    }
                },
            )?;
            // Only a session that finished cleanly is kept; after an error it may be half-written.
            parts.keep(session);
            let text = parts.tokenizer.decode(&generated.tokens);
            Ok::<_, GenerateError>((generated, text))
        })
        .await
        .map_err(|err| BackendError::Unavailable(format!("the model stopped: {err}")))?
        .map_err(|err| BackendError::Rejected(err.to_string()))?;
        let (generated, content) = generated;
        if generated.finish == Finish::Cancelled {
            return Err(BackendError::Unavailable(
                "the generation was cancelled".to_owned(),
            ));
        }
        Ok(Completion {
            content,
            prompt_tokens: generated.prompt_tokens as u64,
            completion_tokens: generated.tokens.len() as u64,
        })
    }
}

/// Streamed text, one token's bytes at a time: each piece is the complete characters that came
/// since the last, so a character split across tokens waits for its last byte.
#[derive(Debug, Default)]
struct Utf8Pieces {
    pending: Vec<u8>,
}

impl Utf8Pieces {
    fn push(&mut self, bytes: &[u8]) -> Option<String> {
        self.pending.extend_from_slice(bytes);
        let complete = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            // Bytes that can never become a character are shown as U+FFFD rather than held.
            Err(err) if err.error_len().is_some() => self.pending.len(),
            Err(err) => err.valid_up_to(),
        };
        if complete == 0 {
            return None;
        }
        let rest = self.pending.split_off(complete);
        let piece = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Pieces;

    #[test]
    fn a_character_split_across_tokens_waits_for_its_last_byte() {
        let mut pieces = Utf8Pieces::default();
        assert_eq!(pieces.push(b"caf").as_deref(), Some("caf"));
        // "é" is C3 A9; "日" is E6 97 A5.
        assert_eq!(pieces.push(&[0xC3]), None);
        assert_eq!(
            pieces.push(&[0xA9, b' ', 0xE6, 0x97]).as_deref(),
            Some("é ")
        );
        assert_eq!(pieces.push(&[0xA5]).as_deref(), Some("日"));
        assert_eq!(pieces.push(&[0xFF, b'x']).as_deref(), Some("\u{FFFD}x"));
    }
}
