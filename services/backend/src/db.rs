//! Connecting to SQLite or PostgreSQL through sqlx's `Any` driver, and migrating at start-up. The
//! migrations are written once in SQL both engines accept, so both behave the same.

use std::{path::PathBuf, time::Duration};

use flashcards_bootstrap::ApiError;
use sqlx::{
    Any, AnyPool, Executor, Transaction,
    any::{AnyPoolOptions, install_default_drivers},
    migrate::Migrator,
    sqlite::SqliteError,
};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL scheme in {0:?}: use sqlite://<file> or postgres://...")]
    UnsupportedScheme(String),
    #[error(
        "in-memory SQLite is not supported (every connection would see its own empty database): use sqlite://<file>"
    )]
    InMemorySqlite,
    #[error(
        "read-only SQLite (mode=ro, immutable) is not supported: the backend writes sessions, edits and \
         reviews; leave out `mode` or use mode=rwc"
    )]
    ReadOnlySqlite,
    #[error("connecting to {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("applying migrations to {target}: {source}")]
    Migrate {
        target: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("database ping failed: {0}")]
    Ping(sqlx::Error),
}

/// The URL with any password removed (in the authority or as a `password` parameter), safe for logs
/// and errors. The credentials end at the *last* `@`, wherever it is: a password with a raw `?`, `/`
/// or `#` is not a valid URL but is still a password, and masking too much of an odd URL only costs
/// a log line some detail.
pub fn redacted(url: &str) -> String {
    let (base, query) = match url.split_once("://") {
        Some((scheme, rest)) => {
            let (credentials, location) = match rest.rsplit_once('@') {
                Some((credentials, location)) => {
                    let user = credentials.split(':').next().unwrap_or_default();
                    (format!("{user}:***@"), location)
                }
                None => (String::new(), rest),
            };
            let (path, query) = match location.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (location, None),
            };
            (format!("{scheme}://{credentials}{path}"), query)
        }
        None => match url.split_once('?') {
            Some((base, query)) => (base.to_owned(), Some(query)),
            None => (url.to_owned(), None),
        },
    };
    match query {
        None => base,
        Some(query) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                        format!("{name}=***")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
    }
}

/// Maps a failed query to the API error: an unreachable or saturated database is a retryable 503,
/// anything else a 500 whose detail goes to the log only.
pub fn query_error(context: &str, err: &sqlx::Error) -> ApiError {
    match err {
        // PostgreSQL refuses NUL in text; SQLite stores it. Either way it is the client's input.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("22021") => {
            ApiError::BadRequest("text must not contain NUL (\\u0000) characters".to_owned())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            unavailable(context)
        }
        sqlx::Error::Database(db) if sqlite_code(db.as_ref()).is_some_and(sqlite_unavailable) => {
            unavailable(context)
        }
        other => ApiError::internal(context, other),
    }
}

/// A retryable 503: the database cannot be reached or written right now.
pub fn unavailable(context: &str) -> ApiError {
    ApiError::Unavailable {
        detail: format!("database unavailable while {context}"),
        retry_after_secs: Some(1),
    }
}

/// Whether a SQLite result code (primary or extended) means the database cannot be written now,
/// rather than a broken statement: another process kept the lock past the busy timeout
/// (`SQLITE_BUSY`, `SQLITE_LOCKED`), the disk failed or is full (`SQLITE_IOERR`, `SQLITE_FULL`),
/// or the file cannot be opened (`SQLITE_CANTOPEN`). Both the sqlx pools and the review writer's
/// rusqlite connection ask this.
pub fn sqlite_unavailable(code: i32) -> bool {
    const BUSY: i32 = 5;
    const LOCKED: i32 = 6;
    const IOERR: i32 = 10;
    const FULL: i32 = 13;
    const CANTOPEN: i32 = 14;
    matches!(code & 0xff, BUSY | LOCKED | IOERR | FULL | CANTOPEN)
}

/// The result code of a SQLite error through sqlx; `None` for other engines, whose codes are
/// SQLSTATEs (some of them numeric).
fn sqlite_code(err: &dyn sqlx::error::DatabaseError) -> Option<i32> {
    err.try_downcast_ref::<SqliteError>()?;
    err.code()?.parse().ok()
}

/// `.db("context")?` on a query result.
pub trait QueryResultExt<T> {
    fn db(self, context: &str) -> Result<T, ApiError>;
}

impl<T> QueryResultExt<T> for Result<T, sqlx::Error> {
    fn db(self, context: &str) -> Result<T, ApiError> {
        self.map_err(|err| query_error(context, &err))
    }
}

pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The database engine behind a URL; the few statements that cannot be written portably ask it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn of_url(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            if url.contains(":memory:") || has_query_pair(url, "mode", &["memory"]) {
                return Err(DbError::InMemorySqlite);
            }
            if has_query_pair(url, "mode", &["ro"])
                || has_query_pair(url, "immutable", &["1", "true"])
            {
                return Err(DbError::ReadOnlySqlite);
            }
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            Err(DbError::UnsupportedScheme(redacted(url)))
        }
    }

    /// Wraps `subquery` so its whole result comes back as one JSON array of objects with the given
    /// `columns`, ordered by `order_by`. sqlx's SQLite driver hands rows over one at a time from its
    /// worker thread; on two cores those thread hand-offs cost more than the query itself, so lists
    /// travel as one value instead. PostgreSQL is asked the same way, so both decode alike.
    pub fn json_rows(self, subquery: &str, columns: &[&str], order_by: &str) -> String {
        let pairs = columns
            .iter()
            .map(|column| format!("'{column}', {column}"))
            .collect::<Vec<_>>()
            .join(", ");
        match self {
            Self::Sqlite => format!(
                "SELECT json_group_array(json_object({pairs}) ORDER BY {order_by}) FROM ({subquery})"
            ),
            Self::Postgres => format!(
                "SELECT COALESCE(json_agg(json_build_object({pairs}) ORDER BY {order_by}), '[]'::json)::text \
                 FROM ({subquery}) AS selected"
            ),
        }
    }

    /// What a `SELECT` that a transaction will update appends: PostgreSQL locks the rows; a SQLite
    /// write transaction holds the database's write lock from its start (`Database::begin_write`).
    pub fn lock_rows(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR UPDATE",
        }
    }

    /// [`Engine::json_rows`] over `SELECT <columns> FROM <table> <tail>`, in id order.
    pub fn select_json(self, table: &str, columns: &[&str], tail: &str) -> String {
        let list = columns.join(", ");
        self.json_rows(&format!("SELECT {list} FROM {table} {tail}"), columns, "id")
    }
}

/// Runs a statement built with [`Engine::json_rows`] and decodes its rows.
pub async fn fetch_json_rows<'q, 'c, E, T>(
    query: sqlx::query::QueryScalar<'q, sqlx::Any, String, sqlx::any::AnyArguments<'q>>,
    executor: E,
    context: &str,
) -> Result<Vec<T>, ApiError>
where
    'c: 'q,
    E: 'q + sqlx::Executor<'c, Database = sqlx::Any>,
    T: serde::de::DeserializeOwned,
{
    let text = query.fetch_one(executor).await.db(context)?;
    serde_json::from_str(&text).map_err(|err| ApiError::internal(context, err))
}

/// SQLite files are created when missing unless the URL chooses a mode itself.
fn with_sqlite_defaults(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}mode=rwc")
    } else {
        url.to_owned()
    }
}

/// Whether the URL's query string sets `key` to one of `values`.
fn has_query_pair(url: &str, key: &str, values: &[&str]) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .any(|(k, v)| k == key && values.contains(&v))
    })
}

/// Where queries go. SQLite allows one writer at a time: writes get a pool of one connection, so
/// they queue in the application instead of sleeping in SQLite's busy handler, while reads use the
/// other pool concurrently (WAL). On PostgreSQL both are the same pool.
#[derive(Debug, Clone)]
pub struct Database {
    pub read: AnyPool,
    pub write: AnyPool,
    pub engine: Engine,
    /// The SQLite file, for the review writer's own connection (`study::review_queue`), which
    /// writes only while it holds the write pool's connection.
    pub sqlite_file: Option<PathBuf>,
}

impl Database {
    /// A write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): should
    /// another process write the same file, a deferred transaction that read before that write
    /// committed could not write at all (`SQLITE_BUSY_SNAPSHOT`, which no busy handler retries).
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.engine {
            Engine::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.write.begin().await,
        }
    }
}

async fn open_pool(url: &str, target: &str, max_connections: u32) -> Result<AnyPool, DbError> {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                if conn.backend_name() == "SQLite" {
                    // WAL lets readers proceed during a write; NORMAL sync is durable in WAL mode
                    // except for the last transactions on power loss; writers wait instead of failing.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .connect(&with_sqlite_defaults(url))
        .await
        .map_err(|source| DbError::Connect {
            target: target.to_owned(),
            source,
        })
}

/// Opens the pools and applies pending migrations.
pub async fn connect(url: &str, max_connections: u32) -> Result<Database, DbError> {
    let engine = Engine::of_url(url)?;
    install_default_drivers();
    let target = redacted(url);
    let writers = match engine {
        Engine::Sqlite => 1,
        Engine::Postgres => max_connections,
    };
    let write = open_pool(url, &target, writers).await?;
    MIGRATOR
        .run(&write)
        .await
        .map_err(|source| DbError::Migrate {
            target: target.clone(),
            source,
        })?;
    let (read, sqlite_file) = match engine {
        Engine::Sqlite => (
            open_pool(url, &target, max_connections).await?,
            Some(sqlite_file(&write, &target).await?),
        ),
        Engine::Postgres => (write.clone(), None),
    };
    Ok(Database {
        read,
        write,
        engine,
        sqlite_file,
    })
}

/// The file SQLite opened for the pool (absolute), as SQLite itself reports it.
async fn sqlite_file(pool: &AnyPool, target: &str) -> Result<PathBuf, DbError> {
    sqlx::query_scalar::<_, String>("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .fetch_one(pool)
        .await
        .map(PathBuf::from)
        .map_err(|source| DbError::Connect {
            target: target.to_owned(),
            source,
        })
}

pub async fn ping(pool: &AnyPool) -> Result<(), DbError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(drop)
        .map_err(DbError::Ping)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_are_told_by_scheme() {
        assert_eq!(Engine::of_url("sqlite://a.db").ok(), Some(Engine::Sqlite));
        assert_eq!(
            Engine::of_url("postgresql://h/d").ok(),
            Some(Engine::Postgres)
        );
        assert!(Engine::of_url("mysql://u:p@h/d").is_err());
        assert!(Engine::of_url("sqlite::memory:").is_err());
        assert!(Engine::of_url("sqlite://x.db?mode=memory").is_err());
        assert!(Engine::of_url("sqlite://x.db?cache=shared&mode=ro").is_err());
        assert!(Engine::of_url("sqlite://x.db?immutable=1").is_err());
        assert!(Engine::of_url("sqlite://x.db?mode=rwc").is_ok());
        assert!(Engine::of_url("sqlite://x.db?immutable=0").is_ok());
    }

    #[test]
    fn sqlite_locks_and_disk_failures_are_unavailable_and_broken_statements_are_not() {
        // SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT (extended), SQLITE_LOCKED, SQLITE_IOERR_WRITE, SQLITE_FULL.
        for code in [5, 517, 6, 778, 13, 14] {
            assert!(sqlite_unavailable(code), "{code}");
        }
        // SQLITE_ERROR, SQLITE_CONSTRAINT_UNIQUE, SQLITE_READONLY.
        for code in [1, 2067, 8] {
            assert!(!sqlite_unavailable(code), "{code}");
        }
    }

    #[test]
    fn json_rows_wraps_the_subquery_for_each_engine() {
        let sql = Engine::Sqlite.json_rows("SELECT id, name FROM decks", &["id", "name"], "id");
        assert_eq!(
            sql,
            "SELECT json_group_array(json_object('id', id, 'name', name) ORDER BY id) \
             FROM (SELECT id, name FROM decks)"
        );
        let sql = Engine::Postgres.json_rows("SELECT id FROM decks", &["id"], "id");
        assert!(
            sql.starts_with("SELECT COALESCE(json_agg(json_build_object('id', id) ORDER BY id)"),
            "{sql}"
        );
    }

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redacted("postgres://app:s3cret@db:5432/cards"),
            "postgres://app:***@db:5432/cards"
        );
        assert_eq!(redacted("sqlite://cards.db"), "sqlite://cards.db");
        assert_eq!(redacted("a@b://x:y@h"), "a@b://x:***@h");
        for raw in ["PG?SECRET", "PG/SECRET", "PG#SECRET", "PG@SECRET"] {
            let shown = redacted(&format!("postgres://app:{raw}@db:1/cards?sslmode=disable"));
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(shown.ends_with("@db:1/cards?sslmode=disable"), "{shown}");
        }
        assert_eq!(
            redacted("postgres://db/cards?user=app&password=s3cret&sslpassword=x"),
            "postgres://db/cards?user=app&password=***&sslpassword=***"
        );
    }

    #[test]
    fn sqlite_files_are_created_unless_told_otherwise() {
        assert_eq!(
            with_sqlite_defaults("sqlite://a.db"),
            "sqlite://a.db?mode=rwc"
        );
        assert_eq!(
            with_sqlite_defaults("sqlite://a.db?cache=shared"),
            "sqlite://a.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            with_sqlite_defaults("sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
        assert_eq!(with_sqlite_defaults("postgres://h/d"), "postgres://h/d");
    }
}
