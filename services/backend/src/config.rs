//! The backend's command line; every flag also reads an environment variable.

use clap::{Parser, Subcommand, builder::NonEmptyStringValueParser};
use flashcards_bootstrap::CommonArgs;
use flashcards_contracts::flags::backend as flags;

use crate::limits::rates::{DEFAULT_DOCUMENTS_PER_HOUR, DEFAULT_GENERATIONS_PER_HOUR};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "flashcards-backend",
    version,
    about = "The flashcards backend API"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Without a command, the backend serves its API.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Database: `sqlite://<file>` (created if missing, WAL mode; one replica only) or
    /// `postgres://user:password@host:port/database`. Its value is not shown in `--help`, as it may
    /// hold a password.
    #[arg(
        long = flags::DATABASE_URL.long,
        env = flags::DATABASE_URL.env,
        hide_env_values = true,
        global = true,
        default_value = "sqlite://flashcards.db"
    )]
    pub database_url: String,

    /// Size of the database connection pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,

    /// How long a login session lasts, in hours.
    #[arg(long, env = "SESSION_TTL_HOURS", default_value_t = 24 * 30)]
    pub session_ttl_hours: u32,

    /// Memory for card-list pages, in MiB (SQLite only, where this process sees every write; 0
    /// turns the cache off). A page larger than an eighth of it is not kept.
    #[arg(long, env = "PAGE_CACHE_MB", default_value_t = 64)]
    pub page_cache_mb: usize,

    /// The OCR service documents are sent to.
    #[arg(long = flags::OCR_URL.long, env = flags::OCR_URL.env, default_value = "http://127.0.0.1:8000")]
    pub ocr_url: String,

    /// Longest wait for the OCR service to read one document, in seconds.
    #[arg(long, env = "OCR_TIMEOUT_SECS", default_value_t = 120)]
    pub ocr_timeout_secs: u64,

    /// The LLM service draft cards are generated with.
    #[arg(long = flags::LLM_URL.long, env = flags::LLM_URL.env, default_value = "http://127.0.0.1:8001")]
    pub llm_url: String,

    /// Longest wait for the LLM service to answer for one page, in seconds.
    #[arg(long, env = "LLM_TIMEOUT_SECS", default_value_t = 600)]
    pub llm_timeout_secs: u64,

    /// Largest document upload accepted, in bytes.
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_upload_bytes: usize,

    /// Mark the session cookie `Secure` (set this when the backend is served over HTTPS).
    #[arg(long = flags::SECURE_COOKIES.long, env = flags::SECURE_COOKIES.env)]
    pub secure_cookies: bool,

    /// Secret that Alertmanager must send to `POST /alerts` as `Authorization: Bearer <token>`
    /// (its webhook_config `http_config.authorization.credentials`). Without it the webhook takes
    /// any caller that can reach the backend: in Kubernetes, whoever the NetworkPolicy lets in.
    #[arg(long = flags::ALERTS_TOKEN.long, env = flags::ALERTS_TOKEN.env, hide_env_values = true,
          value_parser = NonEmptyStringValueParser::new())]
    pub alerts_token: Option<String>,

    /// Redis that replicas share login throttling and rate limits through, e.g.
    /// `redis://redis:6379` (`redis://:password@host:port` with a password). Without it each
    /// replica counts alone; while it is down, each replica falls back to its own counts. Its value
    /// is not shown in `--help`, as it may hold a password.
    #[arg(long = flags::REDIS_URL.long, env = flags::REDIS_URL.env, hide_env_values = true,
          value_parser = NonEmptyStringValueParser::new())]
    pub redis_url: Option<String>,

    /// New documents to read (uploads and re-reads) an account may start an hour; 0 is no limit.
    #[arg(long, env = "DOCUMENTS_PER_HOUR", default_value_t = DEFAULT_DOCUMENTS_PER_HOUR)]
    pub documents_per_hour: u32,

    /// Generation jobs an account may start or continue an hour; 0 is no limit.
    #[arg(long, env = "GENERATIONS_PER_HOUR", default_value_t = DEFAULT_GENERATIONS_PER_HOUR)]
    pub generations_per_hour: u32,

    /// Emails of the accounts that may read the stack's alerts (`GET /api/alerts`),
    /// comma-separated, case-insensitive. Without any, nobody may.
    #[arg(long = flags::ADMIN_EMAILS.long, env = flags::ADMIN_EMAILS.env, value_delimiter = ',')]
    pub admin_emails: Vec<String>,
}

/// One-off tasks on the database the flags name; the backend does not serve while one runs.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Make an account, such as an administrator's (`ADMIN_EMAILS`), which registration refuses.
    /// Reads the password from the first line of standard input:
    /// `kubectl exec -i deploy/<stack>-backend -- flashcards-backend add-user --email a@b.org`.
    AddUser {
        /// The account's email.
        #[arg(long)]
        email: String,
    },
}
