//! Registration, login/logout with a session cookie, and API tokens for programmatic use.

mod admin;
mod cache;
mod current_user;
mod login_throttle;
pub mod password;
pub mod token;

use std::sync::LazyLock;

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{AppendHeaders, IntoResponse},
};
use flashcards_bootstrap::{
    ApiError,
    error::ErrorBody,
    extract::{Json, Path},
    openapi::{error_response, operations_mut},
};
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use tokio::sync::Semaphore;
use utoipa::{
    ToSchema,
    openapi::{
        OpenApi,
        security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        },
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};

pub use admin::{Admin, Admins};
pub use cache::{CACHE_TTL_MS, CredentialCache};
pub use current_user::{CurrentUser, SESSION_COOKIE};
pub use login_throttle::MAX_FAILURES as MAX_LOGIN_FAILURES;

use crate::{
    AppState,
    db::{Database, QueryResultExt, is_unique_violation, query_error},
    timestamp::rfc3339,
};

/// Says in the OpenAPI document how the API is signed in to (the session cookie, or an API token
/// as a bearer), and that every `/api` route but registration and login needs it (401 without).
pub fn document_sign_in(openapi: &mut OpenApi) {
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
    );
    components.add_security_scheme(
        "token",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    for (path, item) in &mut openapi.paths.paths {
        if !path.starts_with("/api/") || path == "/api/auth/register" || path == "/api/auth/login" {
            continue;
        }
        for operation in operations_mut(item) {
            operation.security = Some(vec![
                SecurityRequirement::new("session", Vec::<String>::new()),
                SecurityRequirement::new("token", Vec::<String>::new()),
            ]);
            operation
                .responses
                .responses
                .entry("401".to_owned())
                .or_insert_with(|| {
                    error_response("not signed in: no valid session cookie or bearer token")
                });
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(delete_token))
}

const MAX_EMAIL_LENGTH: usize = 254;
const MAX_TOKEN_NAME_LENGTH: usize = 100;
/// A hundred years: long enough for "until revoked", small enough to stay a date.
const MAX_TOKEN_DAYS: u32 = 36_500;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub user: User,
    /// When the session cookie stops working.
    pub expires_at: String,
}

/// Emails compare case-insensitively; surrounding spaces are dropped.
pub(crate) fn normalised(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A new account's email, normalised: one `@`, and nothing that hides what the address says (an
/// address with a zero-width or right-to-left character could pass for another on screen).
fn normalise_email(email: &str) -> Result<String, ApiError> {
    let email = normalised(email);
    let valid = email.len() <= MAX_EMAIL_LENGTH
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.chars().any(hides_text);
    if valid {
        Ok(email)
    } else {
        Err(ApiError::invalid("email", "must be an email address"))
    }
}

/// Spaces, control characters, and Unicode's default-ignorable code points (zero-width, joiners,
/// bidirectional marks and overrides, variation selectors, fillers, tags): all show as nothing or
/// change how the rest shows.
fn hides_text(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c,
            '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
            | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
            | '\u{ffa0}' | '\u{fff0}'..='\u{fff8}' | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e0fff}')
}

fn check_password(password: &str) -> Result<(), ApiError> {
    let length = password.chars().count();
    if !(password::MIN_LENGTH..=password::MAX_LENGTH).contains(&length) {
        return Err(ApiError::invalid(
            "password",
            format!(
                "must be {} to {} characters",
                password::MIN_LENGTH,
                password::MAX_LENGTH
            ),
        ));
    }
    Ok(())
}

/// Argon2 is deliberately slow and takes ~19 MiB per hash: it runs off the async workers, at most one
/// per core at a time, so a flood of logins queues instead of exhausting memory and threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    });
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|err| ApiError::internal("password hashing slot", err))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::internal("password hashing task", err))
}

#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = Credentials,
    responses((status = 201, body = User), (status = 409, body = ErrorBody, description = "email taken"),
              (status = 403, body = ErrorBody,
               description = "an administrator's email (ADMIN_EMAILS): those accounts are made with \
                              `flashcards-backend add-user`"),
              (status = 422, body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    Json(input): Json<Credentials>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    // Nobody proves they own an email, so whoever registered a listed address first would be an
    // administrator: those accounts are made by whoever runs the stack, on the command line.
    if state.admins.contains(&input.email) {
        return Err(ApiError::Forbidden(
            "this email is an administrator's: its account is made with `flashcards-backend \
             add-user`, by whoever runs the stack"
                .to_owned(),
        ));
    }
    let user = create_account(
        &state.db,
        state.clock.now_ms(),
        &input.email,
        input.password,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Makes an account: checks the email and password, hashes the password, stores the user. An email
/// already taken is a 409. Used by registration and by `flashcards-backend add-user`.
pub async fn create_account(
    db: &Database,
    now: i64,
    email: &str,
    password: String,
) -> Result<User, ApiError> {
    let email = normalise_email(email)?;
    check_password(&password)?;
    let hash = blocking(move || password::hash(&password))
        .await?
        .map_err(|err| ApiError::internal("hashing password", err))?;
    let id = uuid::Uuid::now_v7().to_string();
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(&email)
    .bind(&hash)
    .bind(now)
    .execute(&db.write)
    .await;
    match inserted {
        Ok(_) => {
            tracing::info!(user = %id, "user registered");
            Ok(User {
                id,
                email,
                created_at: rfc3339(now),
            })
        }
        Err(err) if is_unique_violation(&err) => Err(ApiError::Conflict(
            "an account with this email already exists".to_owned(),
        )),
        Err(err) => Err(query_error("registering user", &err)),
    }
}

/// The `Set-Cookie` value of a session (`Max-Age` 0 with an empty value clears it); the web app
/// clears it with this too when the backend cannot be reached.
pub fn session_cookie(
    value: &str,
    max_age_secs: i64,
    secure: bool,
) -> Result<HeaderValue, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .map_err(|err| ApiError::internal("building session cookie", err))
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = LoginResponse, description = "sets the session cookie"),
              (status = 401, body = ErrorBody, description = "unknown email or wrong password"),
              (status = 429, body = ErrorBody,
               description = "ten wrong passwords for the account within 15 minutes: wait \
                              `Retry-After` seconds")))]
async fn login(
    State(state): State<AppState>,
    Json(input): Json<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let wrong = || ApiError::Unauthorized("wrong email or password".to_owned());
    // Looked up as given (normalised, not checked): an account made before a check was added
    // still logs in, and an email that cannot exist answers exactly as an unknown one.
    let email = normalised(&input.email);
    let now = state.clock.now_ms();
    if let Some(secs) = login_throttle::refused_for(&state.limits, &email, now).await {
        tracing::warn!("login refused: too many wrong passwords for the account");
        return Err(ApiError::TooManyRequests {
            detail: format!("too many wrong passwords for this account: try again in {secs} s"),
            retry_after_secs: secs,
        });
    }
    let row = sqlx::query("SELECT id, password_hash, created_at FROM users WHERE email = $1")
        .bind(&email)
        .fetch_optional(&state.db.read)
        .await
        .db("looking up user")?;
    let stored: Option<(String, String, i64)> = row
        .map(|row| -> Result<_, sqlx::Error> {
            Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        })
        .transpose()
        .db("reading user")?;
    let hash = stored.as_ref().map(|(_, hash, _)| hash.clone());
    let password = input.password;
    if !blocking(move || password::verify(&password, hash.as_deref())).await? {
        login_throttle::failed(&state.limits, &email, now).await;
        return Err(wrong());
    }
    let (user_id, _, created_at) = stored.ok_or_else(wrong)?;
    login_throttle::succeeded(&state.limits, &email).await;

    let secret = token::generate(token::SESSION_PREFIX);
    let expires_at = now + state.sessions.ttl_ms;
    sqlx::query(
        "INSERT INTO auth_tokens (id, user_id, token_hash, kind, created_at, expires_at) \
         VALUES ($1, $2, $3, 'session', $4, $5)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&user_id)
    .bind(token::digest(&secret))
    .bind(now)
    .bind(expires_at)
    .execute(&state.db.write)
    .await
    .db("creating session")?;
    refresh_sessions_gauge(&state).await;
    tracing::info!(user = %user_id, "logged in");

    let cookie = session_cookie(
        &secret,
        state.sessions.ttl_ms / 1000,
        state.sessions.secure_cookies,
    )?;
    Ok((
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Json(LoginResponse {
            user: User {
                id: user_id,
                email,
                created_at: rfc3339(created_at),
            },
            expires_at: rfc3339(expires_at),
        }),
    ))
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    responses((status = 204, description = "the credential used for this request no longer works"),
              (status = 401, body = ErrorBody)))]
async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<impl IntoResponse, ApiError> {
    sqlx::query("DELETE FROM auth_tokens WHERE id = $1 AND user_id = $2")
        .bind(&user.token_id)
        .bind(&user.id)
        .execute(&state.db.write)
        .await
        .db("ending session")?;
    state
        .credentials
        .forget_token(&user.token_id, state.clock.now_ms());
    refresh_sessions_gauge(&state).await;
    let cleared = session_cookie("", 0, state.sessions.secure_cookies)?;
    Ok((
        StatusCode::NO_CONTENT,
        AppendHeaders([(header::SET_COOKIE, cleared)]),
    ))
}

#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, user: CurrentUser) -> Result<Json<User>, ApiError> {
    let row = sqlx::query("SELECT email, created_at FROM users WHERE id = $1")
        .bind(&user.id)
        .fetch_one(&state.db.read)
        .await
        .db("loading user")?;
    Ok(Json(User {
        email: row.try_get("email").db("reading user")?,
        created_at: rfc3339(row.try_get("created_at").db("reading user")?),
        id: user.id,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, e.g. "anki sync script".
    pub name: String,
    /// Days until it expires; without it the token works until deleted.
    #[schema(minimum = 1, maximum = 36_500)]
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// The secret, shown only in the response that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/tokens", tag = "auth", request_body = NewToken,
    responses((status = 201, body = ApiToken), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    user: CurrentUser,
    Json(input): Json<NewToken>,
) -> Result<(StatusCode, Json<ApiToken>), ApiError> {
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_LENGTH {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1 to {MAX_TOKEN_NAME_LENGTH} characters"),
        ));
    }
    let now = state.clock.now_ms();
    let expires_at = match input.expires_in_days {
        Some(days) if days == 0 || days > MAX_TOKEN_DAYS => {
            return Err(ApiError::invalid(
                "expires_in_days",
                format!("must be between 1 and {MAX_TOKEN_DAYS}"),
            ));
        }
        Some(days) => Some(now + i64::from(days) * crate::study::scheduler::DAY_MS),
        None => None,
    };
    let secret = token::generate(token::API_PREFIX);
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO auth_tokens (id, user_id, token_hash, kind, name, created_at, expires_at) \
         VALUES ($1, $2, $3, 'api', $4, $5, $6)",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(token::digest(&secret))
    .bind(&name)
    .bind(now)
    .bind(expires_at)
    .execute(&state.db.write)
    .await
    .db("creating API token")?;
    Ok((
        StatusCode::CREATED,
        Json(ApiToken {
            id,
            name,
            created_at: rfc3339(now),
            expires_at: expires_at.map(rfc3339),
            token: Some(secret),
        }),
    ))
}

#[utoipa::path(get, path = "/api/auth/tokens", tag = "auth",
    responses((status = 200, body = Vec<ApiToken>), (status = 401, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    let rows = sqlx::query(
        "SELECT id, name, created_at, expires_at FROM auth_tokens \
         WHERE user_id = $1 AND kind = 'api' ORDER BY id",
    )
    .bind(&user.id)
    .fetch_all(&state.db.read)
    .await
    .db("listing API tokens")?;
    let tokens = rows
        .iter()
        .map(|row| -> Result<ApiToken, sqlx::Error> {
            Ok(ApiToken {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                created_at: rfc3339(row.try_get("created_at")?),
                expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(rfc3339),
                token: None,
            })
        })
        .collect::<Result<_, _>>()
        .db("reading API tokens")?;
    Ok(Json(tokens))
}

#[utoipa::path(delete, path = "/api/auth/tokens/{id}", tag = "auth",
    params(("id" = String, Path, description = "token id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_token(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted =
        sqlx::query("DELETE FROM auth_tokens WHERE id = $1 AND user_id = $2 AND kind = 'api'")
            .bind(&id)
            .bind(&user.id)
            .execute(&state.db.write)
            .await
            .db("deleting API token")?;
    if deleted.rows_affected() == 0 {
        return Err(ApiError::NotFound("no such API token".to_owned()));
    }
    state.credentials.forget_token(&id, state.clock.now_ms());
    Ok(StatusCode::NO_CONTENT)
}

/// Sets `user_sessions_active` to the number of live sessions. A failure only logs: the gauge is
/// refreshed again on the next login, logout or sweep.
pub async fn refresh_sessions_gauge(state: &AppState) {
    match count_live_sessions(&state.db.read, state.clock.now_ms()).await {
        Ok(count) => state.metrics.set_sessions_active(count),
        Err(err) => tracing::warn!(%err, "cannot count active sessions"),
    }
}

async fn count_live_sessions(db: &AnyPool, now_ms: i64) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) FROM auth_tokens WHERE kind = 'session' AND expires_at > $1")
        .bind(now_ms)
        .fetch_one(db)
        .await?
        .try_get(0)
}

/// Deletes expired sessions and API tokens, then refreshes the gauge; run periodically.
pub async fn sweep_expired(state: &AppState) {
    let swept =
        sqlx::query("DELETE FROM auth_tokens WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(state.clock.now_ms())
            .execute(&state.db.write)
            .await;
    if let Err(err) = swept {
        tracing::warn!(%err, "cannot delete expired sessions");
    }
    refresh_sessions_gauge(state).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email("  Ada@Example.ORG ").ok().as_deref(),
            Some("ada@example.org")
        );
        for bad in [
            "",
            "ada",
            "@example.org",
            "ada@",
            "a da@example.org",
            "a@b@example.org",
            "ada\u{7}@example.org",
            "gro.elpmaxe@\u{202e}ada",
            "ada\u{2066}@example.org",
            "ada\u{200b}@example.org",
            "ada\u{feff}@example.org",
            "ada\u{61c}@example.org",
            "ada\u{3164}@example.org",
            "ada\u{e0041}@example.org",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
        assert!(normalise_email(&format!("{}@x.org", "a".repeat(260))).is_err());
    }

    #[test]
    fn the_documented_token_lifetime_is_the_checked_one() {
        let schema =
            serde_json::to_value(<NewToken as utoipa::PartialSchema>::schema()).expect("schema");
        let days = &schema["properties"]["expires_in_days"];
        assert_eq!(days["minimum"], 1, "{schema}");
        assert_eq!(days["maximum"], MAX_TOKEN_DAYS, "{schema}");
    }

    #[test]
    fn password_length_is_bounded_both_ways() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password(&"x".repeat(password::MAX_LENGTH + 1)).is_err());
    }

    #[test]
    fn the_session_cookie_is_http_only_and_lax() {
        let cookie = session_cookie("fcs_x", 60, false).expect("cookie");
        let cookie = cookie.to_str().expect("ascii");
        assert!(cookie.contains("HttpOnly"));
        assert!(cookie.contains("SameSite=Lax"));
        assert!(cookie.contains("Max-Age=60"));
        assert!(!cookie.contains("Secure"));
        assert!(
            session_cookie("fcs_x", 60, true)
                .expect("cookie")
                .to_str()
                .expect("ascii")
                .ends_with("; Secure")
        );
    }
}
