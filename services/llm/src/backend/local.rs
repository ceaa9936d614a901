//! Completions from a GGUF model run in this process by `flashcards-llm-runtime`.
//!
//! One sequence computes at a time: each already spreads its matrix products over every thread
//! it is given, so a second at once would only make both slower. A request whose caller goes away
//! (the HTTP client disconnected) stops its generation at the next token.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use flashcards_llm_runtime::{
    chat::{ChatTemplate, Message},
    generate::{self, Finish, Sampling},
    gguf::Gguf,
    model::Model,
    tokenizer::Tokenizer,
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
}

/// Tokens that end an answer besides the model's end-of-sequence token: the chat formats' turn
/// ends, which instruction-tuned models emit when done.
const TURN_ENDS: [&str; 3] = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"];

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
        let mut stop: Vec<u32> = TURN_ENDS
            .iter()
            .filter_map(|token| tokenizer.id(token))
            .collect();
        stop.extend(
            file.get_u64("tokenizer.ggml.eos_token_id")
                .ok()
                .and_then(|id| u32::try_from(id).ok()),
        );
        let model = Model::load(file, threads).map_err(|source| LoadError::Model {
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

    /// Not yet: the runtime has no constrained decoding.
    fn enforces_schema(&self) -> bool {
        false
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
        let generated = tokio::task::spawn_blocking(move || {
            let tokens = parts.tokenizer.encode(&prompt);
            let mut so_far = Vec::new();
            let mut sent = 0;
            let generated = generate::generate(
                &parts.model,
                &tokens,
                max_tokens,
                &parts.stop,
                sampling,
                |token| {
                    if cancelled.load(Ordering::Relaxed) {
                        return false;
                    }
                    let Some(pieces) = &pieces else {
                        return true;
                    };
                    so_far.push(token);
                    let text = parts.tokenizer.decode(&so_far);
                    // A character split across tokens waits for its last byte.
                    if text.ends_with(char::REPLACEMENT_CHARACTER) || text.len() <= sent {
                        return true;
                    }
                    let piece = text[sent..].to_owned();
                    sent = text.len();
                    pieces.blocking_send(piece).is_ok()
                },
            )?;
            let text = parts.tokenizer.decode(&generated.tokens);
            Ok::<_, flashcards_llm_runtime::model::ModelError>((generated, text))
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
