//! The account page: API tokens (made, listed, deleted; a new one's secret shown once), and for
//! administrators the alerts Alertmanager sent to the backend.

use axum::{
    Form, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use flashcards_backend::{
    alerts::{Alert, AlertStatus},
    auth::{ApiToken, NewToken, User},
    pagination::Page,
};
use maud::{Markup, html};
use reqwest::Method;
use serde::Deserialize;

use super::{
    PageError, PathId, SignedIn,
    layout::{self, Visitor},
    sentence,
};
use crate::{WebState, backend::BackendError};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/account", get(account).post(create_token))
        .route("/account/tokens/{id}/delete", post(delete_token))
        .route("/admin/alerts", get(alerts))
}

/// What the account page shows besides the tokens: a token just made (its secret, once), or the
/// new-token form as typed with its error.
#[derive(Debug, Default)]
pub struct TokenNews<'a> {
    pub made: Option<&'a ApiToken>,
    pub name: &'a str,
    pub error: Option<&'a str>,
}

pub fn account_page(
    user: &User,
    tokens: &[ApiToken],
    news: &TokenNews,
    administrator: bool,
) -> Markup {
    let main = html! {
        h1 { "Your account" }
        p { "Signed in as " strong { (user.email) } "." }
        @if administrator {
            p { a href="/admin/alerts" { "Alerts from the monitoring" } }
        }
        h2 { "API tokens" }
        p { "A token lets a script use the API as you (" code { "Authorization: Bearer …" } ")." }
        @if let Some(made) = news.made {
            div class="notice" role="status" {
                p { "Your new token “" (made.name) "”. Copy it now: it is not shown again." }
                @if let Some(secret) = &made.token {
                    p { code class="secret" { (secret) } }
                }
            }
        }
        @if tokens.is_empty() {
            p { "No tokens yet." }
        } @else {
            table class="cards" {
                caption { "Your tokens" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Made" } th scope="col" { "Expires" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
                tbody {
                    @for token in tokens {
                        tr {
                            td { (token.name) }
                            td { (token.created_at.get(..10).unwrap_or(&token.created_at)) }
                            td { (token.expires_at.as_deref().map_or("never", |at| at.get(..10).unwrap_or(at))) }
                            td {
                                form method="post" action={ "/account/tokens/" (token.id) "/delete" } {
                                    button type="submit" class="secondary" {
                                        "Delete" span class="visually-hidden" { " token “" (token.name) "”" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h3 { "New token" }
        (layout::form_error("token-error", news.error))
        form class="stack" method="post" action="/account" {
            label for="token-name" { "What it is for" }
            input id="token-name" name="name" required maxlength="200" value=(news.name)
                aria-describedby=[news.error.map(|_| "token-error")];
            label for="token-days" { "Days until it expires" span class="hint" { " (empty: never)" } }
            input id="token-days" name="expires_in_days" type="number" min="1" max="36500";
            button type="submit" { "Make token" }
        }
    };
    layout::page("Account", Some(&Visitor { email: &user.email }), &main)
}

async fn tokens(state: &WebState, session: &str) -> Result<Vec<ApiToken>, BackendError> {
    state
        .backend
        .get::<Vec<ApiToken>>("/api/auth/tokens", session)
        .await
}

/// Whether the backend lets this visitor read the alerts.
async fn is_administrator(state: &WebState, session: &str) -> Result<bool, BackendError> {
    match state
        .backend
        .call::<Page<Alert>>(
            Method::GET,
            "/api/alerts?limit=1",
            Some(session),
            None::<&()>,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(BackendError::Refused { status, .. }) if status == StatusCode::FORBIDDEN => Ok(false),
        Err(err) => Err(err),
    }
}

async fn account(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
) -> Result<Markup, PageError> {
    let tokens = tokens(&state, &session).await?;
    let administrator = is_administrator(&state, &session).await?;
    Ok(account_page(
        &user,
        &tokens,
        &TokenNews::default(),
        administrator,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenForm {
    name: String,
    expires_in_days: String,
}

async fn create_token(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Form(form): Form<TokenForm>,
) -> Result<Response, PageError> {
    let new = NewToken {
        name: form.name.clone(),
        expires_in_days: form.expires_in_days.trim().parse().ok(),
    };
    let made = state
        .backend
        .call::<ApiToken>(Method::POST, "/api/auth/tokens", Some(&session), Some(&new))
        .await;
    let administrator = is_administrator(&state, &session).await?;
    match made {
        // The secret is shown in the answer to this post only; it is never in an address.
        Ok(answer) => {
            let tokens = tokens(&state, &session).await?;
            let news = TokenNews {
                made: Some(&answer.body),
                ..TokenNews::default()
            };
            Ok((
                StatusCode::CREATED,
                account_page(&user, &tokens, &news, administrator),
            )
                .into_response())
        }
        Err(BackendError::Refused { status, detail, .. }) if status.is_client_error() => {
            let tokens = tokens(&state, &session).await?;
            let message = sentence(&detail);
            let news = TokenNews {
                made: None,
                name: &form.name,
                error: Some(&message),
            };
            Ok((status, account_page(&user, &tokens, &news, administrator)).into_response())
        }
        Err(err) => Err(err.into()),
    }
}

async fn delete_token(
    State(state): State<WebState>,
    SignedIn { session, .. }: SignedIn,
    PathId(id): PathId,
) -> Result<Response, PageError> {
    state
        .backend
        .act(Method::DELETE, &format!("/api/auth/tokens/{id}"), &session)
        .await?;
    Ok(Redirect::to("/account").into_response())
}

pub fn alerts_page(user: &User, alerts: &[Alert]) -> Markup {
    let main = html! {
        p { a href="/account" { "← Account" } }
        h1 { "Alerts" }
        p { "What Alertmanager sent to the backend, the latest to start first." }
        @if alerts.is_empty() {
            p { "No alerts received." }
        } @else {
            ul class="alerts" {
                @for alert in alerts {
                    li class={ "alert " @if alert.status == AlertStatus::Firing { "firing" } @else { "resolved" } } {
                        h2 {
                            (alert.alertname)
                            span class="badge" {
                                @if alert.status == AlertStatus::Firing { "firing" } @else { "resolved" }
                            }
                            @if let Some(severity) = &alert.severity { span class="badge" { (severity) } }
                        }
                        @if let Some(summary) = &alert.summary { p { (summary) } }
                        @if let Some(description) = &alert.description { p class="hint" { (description) } }
                        p class="hint" {
                            "Since " (alert.starts_at)
                            @if let Some(ends) = &alert.ends_at { ", resolved " (ends) }
                            "; " (alert.notifications) " notifications."
                        }
                        @if let Some(runbook) = &alert.runbook_url {
                            @if runbook.starts_with("https://") || runbook.starts_with("http://") {
                                p { a href=(runbook) rel="noreferrer" { "Runbook" } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page("Alerts", Some(&Visitor { email: &user.email }), &main)
}

async fn alerts(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
) -> Result<Response, PageError> {
    match state
        .backend
        .call::<Page<Alert>>(
            Method::GET,
            "/api/alerts?limit=200",
            Some(&session),
            None::<&()>,
        )
        .await
    {
        Ok(page) => Ok(alerts_page(&user, &page.body.items).into_response()),
        Err(BackendError::Refused { status, .. }) if status == StatusCode::FORBIDDEN => Ok((
            StatusCode::FORBIDDEN,
            layout::message_page(
                "For administrators",
                "Only the accounts that run this flashcards server see its alerts.",
            ),
        )
            .into_response()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: "u".to_owned(),
            email: "ada@example.org".to_owned(),
            created_at: String::new(),
        }
    }

    #[test]
    fn a_new_tokens_secret_shows_once_with_a_warning() {
        let made = ApiToken {
            id: "t".to_owned(),
            name: "script".to_owned(),
            created_at: "2026-12-04T10:00:00Z".to_owned(),
            expires_at: None,
            token: Some("fct_secret".to_owned()),
        };
        let news = TokenNews {
            made: Some(&made),
            ..TokenNews::default()
        };
        let page = account_page(&user(), &[], &news, false).into_string();
        assert!(
            page.contains("fct_secret") && page.contains("not shown again"),
            "{page}"
        );
        assert!(
            !page.contains("/admin/alerts"),
            "no alerts link for a learner"
        );
        let later = account_page(&user(), &[made], &TokenNews::default(), true).into_string();
        assert!(!later.contains("fct_secret"), "{later}");
        assert!(later.contains("/admin/alerts"));
    }
}
