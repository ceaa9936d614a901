//! The chat prompt: the model's own `tokenizer.chat_template` (Jinja, as Hugging Face writes it),
//! rendered with minijinja, so each model sees the turns it was trained on.

use minijinja::{Environment, Error, ErrorKind, context};
use serde::Serialize;

use crate::{
    gguf::{Gguf, GgufError},
    tokenizer::Tokenizer,
};

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("the model file has no chat template (tokenizer.chat_template): {0}")]
    Missing(#[from] GgufError),
    #[error("the model's chat template does not render: {0}")]
    Template(String),
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.to_owned(),
            content: content.to_owned(),
        }
    }
}

/// A model's chat template, compiled once, with the special tokens it refers to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    environment: Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    pub fn from_gguf(model: &Gguf, tokenizer: &Tokenizer) -> Result<Self, ChatError> {
        let source = model.get_str("tokenizer.chat_template")?.to_owned();
        let token = |key: &str| {
            model
                .get_u64(key)
                .ok()
                .and_then(|id| u32::try_from(id).ok())
                .and_then(|id| tokenizer.token(id))
                .unwrap_or_default()
                .to_owned()
        };
        let template = Self::new(
            source,
            token("tokenizer.ggml.bos_token_id"),
            token("tokenizer.ggml.eos_token_id"),
        )?;
        // A template that cannot render fails at load, not on the first request.
        template.render(&[Message::new("user", "hello")])?;
        Ok(template)
    }

    fn new(source: String, bos: String, eos: String) -> Result<Self, ChatError> {
        let mut environment = Environment::new();
        environment.add_function(
            "raise_exception",
            |message: String| -> Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        // Hugging Face templates call Python's string methods (`content.strip()`).
        environment
            .set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        environment
            .add_template_owned("chat", source)
            .map_err(|err| ChatError::Template(err.to_string()))?;
        Ok(Self {
            environment,
            bos,
            eos,
        })
    }

    /// The prompt for `messages`, ending where the assistant's answer begins.
    pub fn render(&self, messages: &[Message]) -> Result<String, ChatError> {
        self.environment
            .get_template("chat")
            .and_then(|template| {
                template.render(context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => &self.bos,
                    eos_token => &self.eos,
                })
            })
            .map_err(|err| ChatError::Template(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(source: &str) -> Result<ChatTemplate, ChatError> {
        ChatTemplate::new(source.to_owned(), "<s>".to_owned(), "</s>".to_owned())
    }

    #[test]
    fn renders_each_turn_and_the_generation_prompt() {
        let chatml = template(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
             {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        )
        .expect("compiles");
        let prompt = chatml
            .render(&[
                Message::new("system", "Be brief."),
                Message::new("user", "Hi"),
            ])
            .expect("renders");
        assert_eq!(
            prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_and_raise_exception_work() {
        let strict = template(
            "{{ bos_token }}{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}\
             {{ raise_exception('only user and assistant') }}{% endif %}{{ m.content.strip() }}{% endfor %}",
        )
        .expect("compiles");
        assert_eq!(
            strict
                .render(&[Message::new("user", "  hi  ")])
                .expect("renders"),
            "<s>hi"
        );
        let err = strict
            .render(&[Message::new("tool", "x")])
            .expect_err("refused");
        assert!(err.to_string().contains("only user and assistant"), "{err}");
    }

    #[test]
    fn a_broken_template_is_an_error_not_a_panic() {
        assert!(matches!(
            template("{% for m in messages %}"),
            Err(ChatError::Template(_))
        ));
    }
}
