//! Cards: adding one to a deck, editing, deleting (after a confirmation), and the cloze preview
//! (`/cards/preview`), rendered by the backend's own cloze code so the preview is what studying
//! will show; `cloze.js` refreshes it as the learner types, with its maths typeset.

use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use flashcards_backend::cards::{
    cloze,
    model::{Card, CardChanges, CardKind, NewCard},
};
use maud::{Markup, html};
use reqwest::Method;
use serde::Deserialize;

use super::{
    PageError, PathId, SignedIn,
    decks::{self, CardFilter},
    layout::{self, Visitor},
    sentence,
};
use crate::{
    WebState,
    backend::BackendError,
    math::{self, has_math},
};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/decks/{id}/cards", axum::routing::post(create))
        .route("/cards/{id}/edit", get(edit_page).post(edit))
        .route("/cards/{id}/delete", get(confirm_delete).post(delete))
        .route("/cards/preview", get(preview))
}

/// What the card form sends; tags are one field, separated by commas or spaces.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct CardForm {
    pub kind: String,
    pub front: String,
    pub back: String,
    pub tags: String,
}

impl CardForm {
    fn from_card(card: &Card) -> Self {
        Self {
            kind: kind_value(card.kind).to_owned(),
            front: card.front.clone(),
            back: card.back.clone(),
            tags: card.tags.join(", "),
        }
    }

    fn kind(&self) -> CardKind {
        CardKind::parse(&self.kind).unwrap_or_default()
    }

    /// Whether the form, as the page first shows it, has maths to typeset: only its cloze
    /// preview shows text other than in a text box.
    pub fn shows_math(&self) -> bool {
        self.kind() == CardKind::Cloze && preview_has_math(&self.front)
    }

    /// The tags as the backend takes them.
    pub fn tag_list(&self) -> Vec<String> {
        self.tags
            .split([',', ' '])
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

fn kind_value(kind: CardKind) -> &'static str {
    match kind {
        CardKind::Basic => "basic",
        CardKind::Cloze => "cloze",
    }
}

/// Each cloze deletion's prompt, as studying shows it, or why the text has none.
pub fn cloze_preview(front: &str) -> Result<Vec<(u32, String)>, String> {
    let ordinals = cloze::ordinals(front).map_err(|err| sentence(&err.to_string()))?;
    if ordinals.is_empty() {
        return Err("Mark what to hide like this: {{c1::Lima}} is the capital of Peru.".to_owned());
    }
    ordinals
        .into_iter()
        .map(|ordinal| {
            cloze::render(front, ordinal)
                .map(|(prompt, _)| (ordinal, prompt))
                .map_err(|err| sentence(&err.to_string()))
        })
        .collect()
}

/// Whether any of `front`'s cloze prompts has maths.
fn preview_has_math(front: &str) -> bool {
    cloze_preview(front).is_ok_and(|prompts| prompts.iter().any(|(_, prompt)| has_math(prompt)))
}

/// The preview's inner markup (also the answer to `/cards/preview`); its list is marked
/// `data-math` when a prompt has maths, which tells `cloze.js` to have it typeset.
pub fn preview_markup(front: &str) -> Markup {
    html! {
        @match cloze_preview(front) {
            Ok(prompts) => {
                ol class="cloze-prompts"
                    data-math[prompts.iter().any(|(_, prompt)| has_math(prompt))] {
                    @for (ordinal, prompt) in prompts {
                        li { span class="hint" { "c" (ordinal) ": " } (prompt) }
                    }
                }
            }
            Err(problem) => { p class="hint" { (problem) } }
        }
    }
}

/// The card form, posting to `action`, with the values as typed and the error, if any.
pub fn card_form(action: &str, form: &CardForm, error: Option<&str>, submit: &str) -> Markup {
    let described = error.map(|_| "card-error");
    let cloze = form.kind() == CardKind::Cloze;
    html! {
        (layout::form_error("card-error", error))
        form class="stack card-form" method="post" action=(action) {
            fieldset class="kinds" {
                legend { "Kind" }
                label {
                    input type="radio" name="kind" value="basic" checked[!cloze];
                    " Basic (front and back)"
                }
                label {
                    input type="radio" name="kind" value="cloze" checked[cloze];
                    " Cloze (hide parts of a sentence)"
                }
            }
            label for="front" { "Front" }
            textarea id="front" name="front" rows="3" required maxlength="10000"
                aria-describedby={ "front-hint" @if let Some(id) = described { " " (id) } }
                aria-invalid=[described.map(|_| "true")] data-cloze-source { (form.front) }
            p class="hint" id="front-hint" {
                "For a cloze card, wrap each hidden part: " code { "{{c1::Lima}}" } "."
            }
            // The maths scripts are named for `cloze.js`, which loads them when maths is typed
            // into a page that had none.
            section class="cloze-preview" aria-live="polite" aria-label="Cloze preview"
                data-cloze-preview hidden[!cloze]
                data-math-style=(math::stylesheet()) data-math-scripts=(math::scripts().join(" ")) {
                h3 { "Preview" }
                div data-cloze-prompts { (preview_markup(&form.front)) }
            }
            label for="back" { "Back" span class="hint" { " (for a cloze card: extra notes, optional)" } }
            textarea id="back" name="back" rows="3" maxlength="10000" { (form.back) }
            label for="tags" { "Tags" span class="hint" { " (separated by commas)" } }
            input id="tags" name="tags" value=(form.tags);
            button type="submit" { (submit) }
        }
    }
}

async fn create(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    PathId(id): PathId,
    Form(form): Form<CardForm>,
) -> Result<Response, PageError> {
    let new = NewCard {
        kind: form.kind(),
        front: form.front.clone(),
        back: form.back.clone(),
        tags: form.tag_list(),
        source: None,
    };
    match state
        .backend
        .call::<Card>(
            Method::POST,
            &format!("/api/decks/{id}/cards"),
            Some(&session),
            Some(&new),
        )
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/decks/{id}#new-card")).into_response()),
        Err(BackendError::Refused { status, detail, .. }) if status.is_client_error() => {
            let deck = decks::load_deck(&state, &session, &id).await?;
            let message = sentence(&detail);
            let forms = decks::DeckForms {
                new_card: Some(&form),
                card_error: Some(&message),
                ..decks::DeckForms::default()
            };
            let page = decks::render_deck(
                &state,
                &session,
                &user,
                &deck,
                &CardFilter::default(),
                &forms,
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(err) => Err(err.into()),
    }
}

async fn load_card(state: &WebState, session: &str, id: &str) -> Result<Card, PageError> {
    super::fetch_by_id(state, session, "/api/cards", id).await
}

fn edit_markup(visitor: &Visitor, card: &Card, form: &CardForm, error: Option<&str>) -> Markup {
    let main = html! {
        p { a href={ "/decks/" (card.deck_id) } { "← Back to the deck" } }
        h1 { "Edit card" }
        (card_form(&format!("/cards/{}/edit", card.id), form, error, "Save card"))
        script src=(crate::assets::href("cloze.js")) defer {}
    };
    layout::page_with_math("Edit card", Some(visitor), &main, form.shows_math())
}

async fn edit_page(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let card = load_card(&state, &session, &id).await?;
    Ok(edit_markup(
        &Visitor { email: &user.email },
        &card,
        &CardForm::from_card(&card),
        None,
    ))
}

async fn edit(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<CardForm>,
) -> Result<Response, PageError> {
    let card = load_card(&state, &session, &id).await?;
    // A card's kind is fixed once made (its study items hang on it); the form shows it, and
    // a change of kind is refused with a reason rather than dropped.
    if form.kind() != card.kind {
        let page = edit_markup(
            &Visitor { email: &user.email },
            &card,
            &form,
            Some("A card's kind cannot change: make a new card of the other kind instead."),
        );
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let changes = CardChanges {
        front: Some(form.front.clone()),
        back: Some(form.back.clone()),
        tags: Some(form.tag_list()),
        ..CardChanges::default()
    };
    match state
        .backend
        .call::<Card>(
            Method::PATCH,
            &format!("/api/cards/{id}"),
            Some(&session),
            Some(&changes),
        )
        .await
    {
        Ok(saved) => Ok(Redirect::to(&format!("/decks/{}", saved.body.deck_id)).into_response()),
        Err(BackendError::Refused { status, detail, .. }) if status.is_client_error() => {
            let page = edit_markup(
                &Visitor { email: &user.email },
                &card,
                &form,
                Some(&sentence(&detail)),
            );
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(err) => Err(err.into()),
    }
}

async fn confirm_delete(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let card = load_card(&state, &session, &id).await?;
    Ok(layout::confirm_page(
        Some(&Visitor { email: &user.email }),
        "Delete this card?",
        &format!(
            "“{}” will be gone for good; its review history is kept.",
            card.front
        ),
        &format!("/cards/{id}/delete"),
        "Delete card",
        &format!("/decks/{}", card.deck_id),
    ))
}

async fn delete(
    State(state): State<WebState>,
    SignedIn { session, .. }: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let card = load_card(&state, &session, &id).await?;
    state
        .backend
        .act(Method::DELETE, &format!("/api/cards/{id}"), &session)
        .await?;
    Ok(Redirect::to(&format!("/decks/{}", card.deck_id)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PreviewQuery {
    front: String,
}

/// The cloze preview for `front`, for `cloze.js`; needs no session, as it only renders the text
/// it is given.
async fn preview(Query(query): Query<PreviewQuery>) -> Markup {
    preview_markup(&query.front)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_shows_each_deletion_hidden_in_turn() {
        let prompts =
            cloze_preview("{{c1::Paris}} is on the {{c2::Seine::river}}.").expect("two deletions");
        assert_eq!(
            prompts,
            [
                (1, "[...] is on the Seine.".to_owned()),
                (2, "Paris is on the [river].".to_owned())
            ]
        );
        assert!(cloze_preview("no deletions").is_err());
    }

    #[test]
    fn the_preview_is_marked_for_typesetting_only_when_a_prompt_has_maths() {
        let maths = preview_markup(r"{{c1::Euler}}: \(e^{i\pi} + 1 = 0\)").into_string();
        assert!(maths.contains("data-math"), "{maths}");
        let hidden = r"Euler: {{c1::\(e^{i\pi} + 1 = 0\)}}";
        assert!(!preview_markup(hidden).into_string().contains("data-math"));
        let prices = preview_markup("{{c1::$5}} and $10").into_string();
        assert!(!prices.contains("data-math"), "{prices}");
        let form = |kind: &str| CardForm {
            kind: kind.to_owned(),
            front: r"{{c1::x}} is \(x^2\)".to_owned(),
            ..CardForm::default()
        };
        assert!(form("cloze").shows_math());
        assert!(
            !form("basic").shows_math(),
            "a basic card's front is only in its text box"
        );
    }

    #[test]
    fn tags_split_on_commas_and_spaces() {
        let form = CardForm {
            tags: "geo, capitals  south-america,".to_owned(),
            ..CardForm::default()
        };
        assert_eq!(form.tag_list(), ["geo", "capitals", "south-america"]);
    }
}
