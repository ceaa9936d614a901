//! The decks: the list a learner starts from, making a deck, and a deck's cards.

use axum::{
    Form, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use flashcards_backend::{
    auth::User,
    cards::model::Card,
    decks::{Deck, NewDeck},
    pagination::Page,
    study::StudyQueue,
};
use maud::{Markup, html};
use reqwest::Method;
use serde::Deserialize;

use super::{
    PageError,
    layout::{self, Visitor},
    sentence,
};
use crate::{
    WebState,
    backend::{self, BackendError},
};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/decks", get(list).post(create))
        .route("/decks/{id}", get(deck))
}

/// The signed-in visitor's session and account; without a session, straight to signing in.
pub(super) async fn visitor(
    state: &WebState,
    headers: &HeaderMap,
) -> Result<(String, User), PageError> {
    let session = backend::session(headers)
        .ok_or(PageError(BackendError::Refused {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized".to_owned(),
            detail: "not signed in".to_owned(),
        }))?
        .to_owned();
    let user = state
        .backend
        .call::<User>(Method::GET, "/api/auth/me", Some(&session), None::<&()>)
        .await?
        .body;
    Ok((session, user))
}

/// The decks page: every deck, and the form for a new one with its values and error, if any.
pub fn decks_page(user: &User, decks: &[Deck], name: &str, error: Option<&str>) -> Markup {
    let described = error.map(|_| "deck-error");
    let main = html! {
        h1 { "Your decks" }
        @if decks.is_empty() {
            p { "No decks yet: make one below, then add cards or upload a page of notes." }
        } @else {
            ul class="decks" {
                @for deck in decks {
                    li {
                        a href={ "/decks/" (deck.id) } { (deck.name) }
                        @if !deck.description.is_empty() {
                            p class="hint" { (deck.description) }
                        }
                    }
                }
            }
        }
        h2 { "New deck" }
        (layout::form_error("deck-error", error))
        form class="stack" method="post" action="/decks" {
            label for="deck-name" { "Name" }
            input id="deck-name" name="name" required maxlength="200" value=(name)
                aria-describedby=[described] aria-invalid=[described.map(|_| "true")];
            button type="submit" { "Create deck" }
        }
    };
    layout::page("Decks", Some(&Visitor { email: &user.email }), &main)
}

async fn all_decks(state: &WebState, session: &str) -> Result<Vec<Deck>, BackendError> {
    let mut decks = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/api/decks?limit=200&after={}", encode_query_value(after)),
            None => "/api/decks?limit=200".to_owned(),
        };
        let page = state
            .backend
            .call::<Page<Deck>>(Method::GET, &path, Some(session), None::<&()>)
            .await?
            .body;
        decks.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(decks),
        }
    }
}

async fn list(State(state): State<WebState>, headers: HeaderMap) -> Result<Markup, PageError> {
    let (session, user) = visitor(&state, &headers).await?;
    let decks = all_decks(&state, &session).await?;
    Ok(decks_page(&user, &decks, "", None))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeckForm {
    name: String,
}

async fn create(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<DeckForm>,
) -> Result<Response, PageError> {
    let (session, user) = visitor(&state, &headers).await?;
    let new = NewDeck {
        name: form.name.clone(),
        description: String::new(),
    };
    match state
        .backend
        .call::<Deck>(Method::POST, "/api/decks", Some(&session), Some(&new))
        .await
    {
        Ok(answer) => Ok(Redirect::to(&format!("/decks/{}", answer.body.id)).into_response()),
        Err(BackendError::Refused { status, detail, .. }) if status.is_client_error() => {
            let decks = all_decks(&state, &session).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                decks_page(&user, &decks, &form.name, Some(&sentence(&detail))),
            )
                .into_response())
        }
        Err(err) => Err(err.into()),
    }
}

/// One deck, how many of its items are due, and its cards.
pub fn deck_page(user: &User, deck: &Deck, due: usize, cards: &[Card]) -> Markup {
    let main = html! {
        p { a href="/decks" { "← All decks" } }
        h1 { (deck.name) }
        p class="due" {
            @if due == 0 {
                "Nothing due right now."
            } @else {
                a class="button" href={ "/decks/" (deck.id) "/study" } {
                    "Study now (" (due) " due)"
                }
            }
        }
        @if cards.is_empty() {
            p { "No cards in this deck yet." }
        } @else {
            table class="cards" {
                caption {
                    (cards.len())
                    @if cards.len() == 1 { " card" } @else { " cards" }
                }
                thead { tr { th scope="col" { "Front" } th scope="col" { "Back" } th scope="col" { "Tags" } } }
                tbody {
                    @for card in cards {
                        tr {
                            td { (card.front) }
                            td { (card.back) }
                            td { (card.tags.join(", ")) }
                        }
                    }
                }
            }
        }
    };
    layout::page(&deck.name, Some(&Visitor { email: &user.email }), &main)
}

async fn deck(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let (session, user) = visitor(&state, &headers).await?;
    if !is_id(&id) {
        return Err(not_found());
    }
    let deck = state
        .backend
        .call::<Deck>(
            Method::GET,
            &format!("/api/decks/{id}"),
            Some(&session),
            None::<&()>,
        )
        .await?
        .body;
    let mut cards = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/api/decks/{id}/cards?limit=200");
        if let Some(after) = &after {
            path.push_str(&format!("&after={}", encode_query_value(after)));
        }
        let page = state
            .backend
            .call::<Page<Card>>(Method::GET, &path, Some(&session), None::<&()>)
            .await?
            .body;
        cards.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let due = state
        .backend
        .call::<StudyQueue>(
            Method::GET,
            &format!("/api/decks/{id}/study?limit=500"),
            Some(&session),
            None::<&()>,
        )
        .await?
        .body
        .items
        .len();
    Ok(deck_page(&user, &deck, due, &cards))
}

/// Whether `value` looks like the backend's ids (letters, digits, `-`, `_`): anything else from
/// the address bar is no deck, and never becomes part of a backend path.
pub fn is_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// A query value with everything but unreserved characters percent-encoded.
pub fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

pub(super) fn not_found() -> PageError {
    PageError(BackendError::Refused {
        status: StatusCode::NOT_FOUND,
        code: "not_found".to_owned(),
        detail: "no such deck".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_id_shaped_values_reach_a_backend_path() {
        assert!(is_id("0193a0b2-7c1e-7d3f-9a55-0123456789ab"));
        for hostile in ["", "..", "../auth/me", "a?b", "a%2F", &"x".repeat(65)] {
            assert!(!is_id(hostile), "{hostile}");
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("d-01_x.~"), "d-01_x.~");
        assert_eq!(encode_query_value("a&b=c d"), "a%26b%3Dc%20d");
    }
}
