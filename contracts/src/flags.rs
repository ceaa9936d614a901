//! The flags and environment variables one part of the stack sets on another: the operator's
//! Deployments and `cargo xtask up` start the services with them, and each service's clap parser
//! declares them from here, so a renamed flag is renamed for both sides at once. A service's
//! other flags live in its own parser alone.

/// A flag with the environment variable that can stand in for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    /// The long name, without `--`.
    pub long: &'static str,
    pub env: &'static str,
}

impl Flag {
    /// `--<long>`, as it appears on a command line.
    pub fn arg(self) -> String {
        format!("--{}", self.long)
    }
}

const fn flag(long: &'static str, env: &'static str) -> Flag {
    Flag { long, env }
}

/// Every service's.
pub const LISTEN: Flag = flag("listen", "LISTEN");
pub const LOG_FORMAT: Flag = flag("log-format", "LOG_FORMAT");
/// The OCR and LLM services'.
pub const MLFLOW_URL: Flag = flag("mlflow-url", "MLFLOW_URL");

/// The backend's.
pub mod backend {
    use super::{Flag, flag};

    pub const DATABASE_URL: Flag = flag("database-url", "DATABASE_URL");
    pub const OCR_URL: Flag = flag("ocr-url", "OCR_URL");
    pub const LLM_URL: Flag = flag("llm-url", "LLM_URL");
    pub const REDIS_URL: Flag = flag("redis-url", "REDIS_URL");
    pub const ADMIN_EMAILS: Flag = flag("admin-emails", "ADMIN_EMAILS");
    pub const ALERTS_TOKEN: Flag = flag("alerts-token", "ALERTS_WEBHOOK_TOKEN");
    pub const SECURE_COOKIES: Flag = flag("secure-cookies", "SECURE_COOKIES");
}

/// The OCR service's.
pub mod ocr {
    use super::{Flag, flag};

    pub const DEFAULT_LANGUAGE: Flag = flag("default-language", "OCR_DEFAULT_LANGUAGE");
    pub const MIN_CONFIDENCE: Flag = flag("min-confidence", "OCR_MIN_CONFIDENCE");
}

/// The LLM service's.
pub mod llm {
    use super::{Flag, flag};

    pub const MODEL: Flag = flag("model", "MODEL");
    pub const UPSTREAM_URL: Flag = flag("upstream-url", "UPSTREAM_URL");
    pub const UPSTREAM_MODEL: Flag = flag("upstream-model", "UPSTREAM_MODEL");
    pub const UPSTREAM_API_KEY: Flag = flag("upstream-api-key", "UPSTREAM_API_KEY");
}

/// The web app's.
pub mod web {
    use super::{Flag, flag};

    pub const BACKEND_URL: Flag = flag("backend-url", "BACKEND_URL");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_is_written_with_two_dashes() {
        assert_eq!(backend::DATABASE_URL.arg(), "--database-url");
        assert_eq!(backend::ALERTS_TOKEN.env, "ALERTS_WEBHOOK_TOKEN");
    }
}
