//! Constrained decoding: a JSON schema compiled by llguidance over the model's vocabulary. Before
//! each pick, every token that would make the output stop being a prefix of a document the schema
//! accepts is masked out, so a finished answer always parses and validates.

use std::sync::Arc;

use llguidance::{
    JsonCompileOptions, Matcher, ParserFactory,
    api::TopLevelGrammar,
    toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie},
};
use serde_json::Value;

use crate::tokenizer::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum ConstraintError {
    #[error("the vocabulary cannot be indexed for constrained decoding: {0}")]
    Vocabulary(String),
    #[error("the JSON schema cannot be enforced: {0}")]
    Schema(String),
    #[error("constrained decoding failed: {0}")]
    Decoding(String),
}

/// The model's vocabulary indexed once for llguidance; each request compiles its schema on it.
pub struct ConstraintVocabulary {
    factory: Arc<ParserFactory>,
    /// The token that ends an answer, which the schema allows once the document is complete.
    end: u32,
}

impl std::fmt::Debug for ConstraintVocabulary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintVocabulary")
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl ConstraintVocabulary {
    /// Indexes `tokenizer`'s tokens for a model with `vocabulary` logits (the embedding may have
    /// rows past the tokenizer's last token); `end` ends an answer.
    pub fn new(
        tokenizer: &Tokenizer,
        vocabulary: usize,
        end: u32,
    ) -> Result<Self, ConstraintError> {
        let size = u32::try_from(vocabulary)
            .map_err(|_| ConstraintError::Vocabulary(format!("{vocabulary} tokens")))?;
        if end >= size {
            return Err(ConstraintError::Vocabulary(format!(
                "the end token {end} is outside the {size} tokens"
            )));
        }
        let words: Vec<Vec<u8>> = (0..size).map(|id| word(tokenizer, id)).collect();
        let info = TokRxInfo::new(size, end);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(TokTrie::from(&info, &words)));
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|err| ConstraintError::Vocabulary(err.to_string()))?;
        // Grammar warnings would go to stderr; our errors carry what matters.
        factory.quiet();
        Ok(Self {
            factory: Arc::new(factory),
            end,
        })
    }

    /// A fresh constraint for one answer that must match `schema`, written compactly (no
    /// whitespace between tokens: a small model given room for it fills it with newlines).
    pub fn json_schema(&self, schema: &Value) -> Result<JsonConstraint, ConstraintError> {
        let mut schema = schema.clone();
        if schema.is_object() && schema.get("x-guidance").is_none() {
            let compact = JsonCompileOptions {
                whitespace_flexible: false,
                ..JsonCompileOptions::default()
            };
            compact.apply_to(&mut schema);
        }
        let grammar = TopLevelGrammar::from_json_schema(schema);
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|err| ConstraintError::Schema(err.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(error) = matcher.get_error() {
            return Err(ConstraintError::Schema(error));
        }
        Ok(JsonConstraint {
            matcher,
            end: self.end,
        })
    }
}

/// What llguidance sees of a token: its bytes, or for a special token (which text may never
/// produce) llguidance's marker byte before its name.
fn word(tokenizer: &Tokenizer, id: u32) -> Vec<u8> {
    if id as usize >= tokenizer.vocabulary_size() {
        return special_word(&format!("<|unused {id}|>"));
    }
    if tokenizer.is_special(id) {
        return special_word(tokenizer.token(id).unwrap_or_default());
    }
    tokenizer.token_bytes(id)
}

fn special_word(name: &str) -> Vec<u8> {
    let mut word = vec![TokTrie::SPECIAL_TOKEN_MARKER];
    word.extend_from_slice(name.as_bytes());
    word
}

/// One answer's state in the schema's grammar.
pub struct JsonConstraint {
    matcher: Matcher,
    end: u32,
}

impl std::fmt::Debug for JsonConstraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonConstraint")
            .field("end", &self.end)
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl JsonConstraint {
    /// Sets the logit of every token the grammar does not allow next to minus infinity. When the
    /// document may end here, every token of `stop` is allowed too.
    pub fn mask(&mut self, logits: &mut [f32], stop: &[u32]) -> Result<(), ConstraintError> {
        let allowed = self
            .matcher
            .compute_mask()
            .map_err(|err| ConstraintError::Decoding(err.to_string()))?;
        let may_end = allowed.is_allowed(self.end);
        for (id, logit) in (0_u32..).zip(logits.iter_mut()) {
            let ends = may_end && stop.contains(&id);
            if !ends && !allowed.is_allowed(id) {
                *logit = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Moves past `token`, which [`JsonConstraint::mask`] allowed.
    pub fn accept(&mut self, token: u32) -> Result<(), ConstraintError> {
        self.matcher
            .consume_token(token)
            .map_err(|err| ConstraintError::Decoding(err.to_string()))
    }

    /// Whether the document is complete and nothing more may follow it.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }
}
