//! Signing up, in and out. The backend's session cookie comes back through these pages as it
//! was set (`HttpOnly`, `SameSite=Lax`), so the browser holds it for this origin. A form that
//! fails comes back with the email as typed; a password is never written into a page.

use axum::{
    Form, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use flashcards_backend::auth::{Credentials, LoginResponse, User, session_cookie};
use maud::{Markup, html};
use reqwest::Method;
use serde::Deserialize;

use super::{PageError, layout, sentence};
use crate::{
    WebState,
    backend::{self, BackendError},
};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-up", get(sign_up_page).post(sign_up))
        .route("/sign-out", post(sign_out))
}

/// What the sign-in and sign-up forms send; a missing field is an empty one, which the backend
/// then names.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AccountForm {
    pub email: String,
    pub password: String,
}

/// Which of the two forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    SignIn,
    SignUp,
}

impl Door {
    fn title(self) -> &'static str {
        match self {
            Self::SignIn => "Sign in",
            Self::SignUp => "Sign up",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Self::SignIn => "/sign-in",
            Self::SignUp => "/sign-up",
        }
    }
}

/// The form, with the email as typed and the error, if any, above the fields it concerns.
pub fn account_page(door: Door, email: &str, error: Option<&str>) -> Markup {
    let described = error.map(|_| "account-error");
    let main = html! {
        h1 { (door.title()) }
        (layout::form_error("account-error", error))
        form class="stack" method="post" action=(door.action()) {
            label for="email" { "Email" }
            input id="email" name="email" type="email" autocomplete="email" required
                value=(email) aria-describedby=[described] aria-invalid=[described.map(|_| "true")];
            label for="password" { "Password" }
            @if door == Door::SignUp {
                input id="password" name="password" type="password" autocomplete="new-password"
                    required minlength="8" aria-describedby="password-rule";
                p class="hint" id="password-rule" { "At least 8 characters." }
            } @else {
                input id="password" name="password" type="password"
                    autocomplete="current-password" required;
            }
            button type="submit" { (door.title()) }
        }
        @if door == Door::SignIn {
            p { "New here? " a href="/sign-up" { "Make an account" } "." }
        } @else {
            p { "Have an account? " a href="/sign-in" { "Sign in" } "." }
        }
    };
    layout::page(door.title(), None, &main)
}

async fn sign_in_page() -> Markup {
    account_page(Door::SignIn, "", None)
}

async fn sign_up_page() -> Markup {
    account_page(Door::SignUp, "", None)
}

/// A refused or failed form: the same form again with the reason, the email kept.
fn refused(door: Door, email: &str, err: BackendError) -> Response {
    match err {
        BackendError::Refused { status, detail, .. } => {
            (status, account_page(door, email, Some(&sentence(&detail)))).into_response()
        }
        BackendError::Unreachable(problem) => {
            tracing::warn!(%problem, "the backend cannot be reached");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                account_page(
                    door,
                    email,
                    Some(
                        "The flashcards server cannot be reached right now. Try again in a \
                         minute.",
                    ),
                ),
            )
                .into_response()
        }
        err => PageError(err).into_response(),
    }
}

/// To `location`, with the cookies the backend set.
fn see_other(location: &'static str, cookies: Vec<HeaderValue>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, HeaderValue::from_static(location));
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    (StatusCode::SEE_OTHER, headers).into_response()
}

async fn log_in(state: &WebState, form: AccountForm) -> Result<Vec<HeaderValue>, BackendError> {
    let credentials = Credentials {
        email: form.email,
        password: form.password,
    };
    let answer = state
        .backend
        .call::<LoginResponse>(Method::POST, "/api/auth/login", None, Some(&credentials))
        .await?;
    Ok(answer.set_cookies)
}

async fn sign_in(State(state): State<WebState>, Form(form): Form<AccountForm>) -> Response {
    let email = form.email.clone();
    match log_in(&state, form).await {
        Ok(cookies) => see_other("/decks", cookies),
        Err(err) => refused(Door::SignIn, &email, err),
    }
}

async fn sign_up(State(state): State<WebState>, Form(form): Form<AccountForm>) -> Response {
    let email = form.email.clone();
    let credentials = Credentials {
        email: form.email.clone(),
        password: form.password.clone(),
    };
    if let Err(err) = state
        .backend
        .call::<User>(Method::POST, "/api/auth/register", None, Some(&credentials))
        .await
    {
        return refused(Door::SignUp, &email, err);
    }
    match log_in(&state, form).await {
        Ok(cookies) => see_other("/decks", cookies),
        Err(err) => refused(Door::SignIn, &email, err),
    }
}

/// Ends the session at the backend and clears the cookie here even when the backend cannot be
/// told, so a shared computer is left signed out either way.
async fn sign_out(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let mut cookies = Vec::new();
    if let Some(session) = backend::session(&headers) {
        state.visitors.forget(session);
        match state
            .backend
            .call::<serde_json::Value>(Method::POST, "/api/auth/logout", Some(session), None::<&()>)
            .await
        {
            Ok(answer) => cookies = answer.set_cookies,
            Err(err) => tracing::warn!(error = %err, "the backend did not end the session"),
        }
    }
    if cookies.is_empty() {
        cookies.extend(session_cookie("", 0, false).ok());
    }
    see_other("/sign-in", cookies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_form_keeps_the_email_and_never_the_password() {
        let page = account_page(
            Door::SignIn,
            "ada@example.org",
            Some("Wrong email or password."),
        )
        .into_string();
        assert!(page.contains(r#"value="ada@example.org""#), "{page}");
        assert!(page.contains(r#"role="alert""#), "{page}");
        assert!(
            page.contains(r#"aria-describedby="account-error""#),
            "{page}"
        );
        assert!(!page.contains("name=\"password\" value"), "{page}");
    }

    #[test]
    fn typed_text_is_escaped() {
        let page = account_page(Door::SignUp, "\"><script>x</script>", None).into_string();
        assert!(!page.contains("<script>x"), "{page}");
    }
}
