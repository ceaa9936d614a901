//! The decks: the list a learner starts from (with what is due in each), making, renaming and
//! deleting a deck, and a deck's page with its cards, searchable and filtered by tag.

use axum::{
    Form, Router,
    extract::{Multipart, Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use flashcards_backend::{
    auth::User,
    cards::{
        model::Card,
        transfer::{APKG_MEDIA_TYPE, CSV_MEDIA_TYPE, ImportOutcome},
    },
    decks::{Deck, DeckChanges, NewDeck},
    study::{DueCount, StudyQueue},
};
use maud::{Markup, html};
use reqwest::Method;
use serde::Deserialize;

use super::{
    PageError, PathId, SignedIn,
    cards::{self, CardForm},
    layout::{self, Visitor},
    sentence,
};
use crate::{WebState, backend::BackendError, math::has_math};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/decks", get(list).post(create))
        .route("/decks/{id}", get(deck))
        .route("/decks/{id}/rename", axum::routing::post(rename))
        .route("/decks/{id}/import", axum::routing::post(import))
        .route("/decks/{id}/delete", get(confirm_delete).post(delete))
}

fn signed_in(user: &User) -> Visitor<'_> {
    Visitor { email: &user.email }
}

/// The decks page: every deck with its due count, and the form for a new one with its values and
/// error, if any.
pub fn decks_page(user: &User, decks: &[(Deck, i64)], name: &str, error: Option<&str>) -> Markup {
    let described = error.map(|_| "deck-error");
    let main = html! {
        h1 { "Your decks" }
        @if decks.is_empty() {
            p { "No decks yet: make one below, then add cards or upload a page of notes." }
        } @else {
            ul class="decks" {
                @for (deck, due) in decks {
                    li {
                        a href={ "/decks/" (deck.id) } { (deck.name) }
                        span class="due-count" {
                            @if *due == 0 { "nothing due" } @else { (due) " due" }
                        }
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
    layout::page("Decks", Some(&signed_in(user)), &main)
}

/// Each deck with how many of its items are due (one backend call for all of them).
async fn decks_with_due(state: &WebState, session: &str) -> Result<Vec<(Deck, i64)>, BackendError> {
    let decks = state
        .backend
        .all_pages::<Deck>("/api/decks", session)
        .await?;
    let counts = state
        .backend
        .get::<Vec<DueCount>>("/api/study/due", session)
        .await?;
    Ok(decks
        .into_iter()
        .map(|deck| {
            let due = counts
                .iter()
                .find(|count| count.deck_id == deck.id)
                .map_or(0, |count| count.due);
            (deck, due)
        })
        .collect())
}

async fn list(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
) -> Result<Markup, PageError> {
    let decks = decks_with_due(&state, &session).await?;
    Ok(decks_page(&user, &decks, "", None))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeckForm {
    name: String,
}

async fn create(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Form(form): Form<DeckForm>,
) -> Result<Response, PageError> {
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
            let decks = decks_with_due(&state, &session).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                decks_page(&user, &decks, &form.name, Some(&sentence(&detail))),
            )
                .into_response())
        }
        Err(err) => Err(err.into()),
    }
}

/// What the deck page's search form asks for.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct CardFilter {
    /// Words that must all appear in the front, back or tags (any case).
    pub q: String,
    /// A tag the card must carry; empty for any.
    pub tag: String,
}

impl CardFilter {
    /// Whether `card` passes: every word of `q` somewhere in it, and `tag` among its tags.
    pub fn keeps(&self, card: &Card) -> bool {
        let tag = self.tag.trim();
        if !tag.is_empty() && !card.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            return false;
        }
        let haystack =
            format!("{} {} {}", card.front, card.back, card.tags.join(" ")).to_lowercase();
        self.q
            .split_whitespace()
            .all(|word| haystack.contains(&word.to_lowercase()))
    }
}

/// Every tag in `cards`, sorted, once each.
pub fn tags_of(cards: &[Card]) -> Vec<&str> {
    let mut tags: Vec<&str> = cards
        .iter()
        .flat_map(|card| card.tags.iter().map(String::as_str))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags
}

/// The deck page's forms as typed, with their errors, when a post came back refused; and how many
/// cards an import just added.
#[derive(Debug, Default)]
pub struct DeckForms<'a> {
    pub new_card: Option<&'a CardForm>,
    pub card_error: Option<&'a str>,
    /// The rename field as typed; the deck's name when `None`.
    pub name: Option<&'a str>,
    pub rename_error: Option<&'a str>,
    pub import_error: Option<&'a str>,
    /// Cards just imported, and the past reviews that came with them.
    pub imported: Option<(u32, u32)>,
}

/// What the deck page shows: the deck, its due count, its cards, the filter and the forms.
pub struct DeckView<'a> {
    pub deck: &'a Deck,
    pub due: usize,
    pub cards: &'a [Card],
    pub filter: &'a CardFilter,
    pub forms: &'a DeckForms<'a>,
}

/// One deck: study link, the cards (filtered), a form for a new card, renaming and deleting.
pub fn deck_page(user: &User, view: &DeckView) -> Markup {
    let deck = view.deck;
    let shown: Vec<&Card> = view
        .cards
        .iter()
        .filter(|card| view.filter.keeps(card))
        .collect();
    let tags = tags_of(view.cards);
    let filtering = !view.filter.q.trim().is_empty() || !view.filter.tag.trim().is_empty();
    let forms = view.forms;
    let rename_described = forms.rename_error.map(|_| "rename-error");
    let blank = CardForm::default();
    let new_card = forms.new_card.unwrap_or(&blank);
    let shows_math = new_card.shows_math()
        || shown
            .iter()
            .any(|card| has_math(&card.front) || has_math(&card.back));
    let main = html! {
        p { a href="/decks" { "← All decks" } }
        h1 { (deck.name) }
        p class="due" {
            @if view.due == 0 {
                "Nothing due right now."
            } @else {
                a class="button" href={ "/decks/" (deck.id) "/study" } {
                    "Study now (" (view.due) " due)"
                }
            }
            " "
            a href={ "/decks/" (deck.id) "/stats" } { "Statistics" }
        }
        h2 { "Cards" }
        @if view.cards.is_empty() {
            p { "No cards in this deck yet: add one below." }
        } @else {
            form class="filter" method="get" action={ "/decks/" (deck.id) } role="search" {
                label for="q" { "Search" }
                input id="q" name="q" type="search" value=(view.filter.q);
                label for="tag" { "Tag" }
                select id="tag" name="tag" {
                    option value="" { "Any tag" }
                    @for tag in &tags {
                        option value=(tag) selected[view.filter.tag == *tag] { (tag) }
                    }
                }
                button type="submit" { "Filter" }
                @if filtering {
                    a href={ "/decks/" (deck.id) } { "Show all" }
                }
            }
            table class="cards" {
                caption {
                    @if filtering {
                        (shown.len()) " of " (view.cards.len()) " cards match"
                    } @else {
                        (view.cards.len())
                        @if view.cards.len() == 1 { " card" } @else { " cards" }
                    }
                }
                thead {
                    tr {
                        th scope="col" { "Front" }
                        th scope="col" { "Back" }
                        th scope="col" { "Tags" }
                        th scope="col" { span class="visually-hidden" { "Actions" } }
                    }
                }
                tbody {
                    @for card in &shown {
                        tr {
                            td data-math[has_math(&card.front)] { (card.front) }
                            td data-math[has_math(&card.back)] { (card.back) }
                            td { (card.tags.join(", ")) }
                            td class="actions" {
                                a href={ "/cards/" (card.id) "/edit" } {
                                    "Edit" span class="visually-hidden" { " “" (card.front) "”" }
                                }
                                a href={ "/cards/" (card.id) "/delete" } {
                                    "Delete" span class="visually-hidden" { " “" (card.front) "”" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 id="new-card" { "New card" }
        (cards::card_form(
            &format!("/decks/{}/cards", deck.id),
            new_card,
            forms.card_error,
            "Add card",
        ))
        h2 { "Import and export" }
        @if let Some((imported, reviews)) = forms.imported {
            p class="notice" role="status" {
                "Imported " (imported) @if imported == 1 { " card" } @else { " cards" }
                @if reviews > 0 {
                    " with " (reviews) @if reviews == 1 { " past review" } @else { " past reviews" }
                    ", which set when each comes up"
                }
                "."
            }
        }
        p class="exports" {
            a href={ "/api/decks/" (deck.id) "/export.apkg" } download={ (deck.name) ".apkg" } {
                "Export for Anki (.apkg)"
            }
            a href={ "/api/decks/" (deck.id) "/export.csv" } download={ (deck.name) ".csv" } {
                "Export as CSV"
            }
        }
        (layout::form_error("import-error", forms.import_error))
        form class="stack" method="post" action={ "/decks/" (deck.id) "/import" }
            enctype="multipart/form-data" {
            label for="import-file" { "Import cards from Anki (.apkg) or CSV" }
            input id="import-file" name="file" type="file" required accept=".apkg,.csv,text/csv"
                aria-describedby={ "import-hint" @if forms.import_error.is_some() { " import-error" } };
            p class="hint" id="import-hint" {
                "An Anki package adds its notes as cards with their review history, so each \
                 comes up when it would have in Anki. A CSV has the columns kind, front, back, \
                 tags and a header row. A bad note or row stops the whole import and is named."
            }
            button type="submit" { "Import" }
        }
        h2 { "Deck settings" }
        (layout::form_error("rename-error", forms.rename_error))
        form class="stack" method="post" action={ "/decks/" (deck.id) "/rename" } {
            label for="rename" { "Name" }
            input id="rename" name="name" required maxlength="200"
                value=(forms.name.unwrap_or(&deck.name))
                aria-describedby=[rename_described]
                aria-invalid=[rename_described.map(|_| "true")];
            button type="submit" { "Rename deck" }
        }
        p { a class="danger" href={ "/decks/" (deck.id) "/delete" } { "Delete this deck…" } }
        script src=(crate::assets::href("cloze.js")) defer {}
    };
    layout::page_with_math(&deck.name, Some(&signed_in(user)), &main, shows_math)
}

pub(super) async fn load_deck(
    state: &WebState,
    session: &str,
    id: &str,
) -> Result<Deck, PageError> {
    super::fetch_by_id(state, session, "/api/decks", id).await
}

async fn due_in(state: &WebState, session: &str, id: &str) -> Result<usize, BackendError> {
    Ok(state
        .backend
        .get::<StudyQueue>(&format!("/api/decks/{id}/study?limit=500"), session)
        .await?
        .items
        .len())
}

/// The deck page with `forms` (as typed, with their errors, if a post came back refused).
pub(super) async fn render_deck(
    state: &WebState,
    session: &str,
    user: &User,
    deck: &Deck,
    filter: &CardFilter,
    forms: &DeckForms<'_>,
) -> Result<Markup, PageError> {
    let cards = state
        .backend
        .all_pages::<Card>(&format!("/api/decks/{}/cards", deck.id), session)
        .await?;
    let due = due_in(state, session, &deck.id).await?;
    Ok(deck_page(
        user,
        &DeckView {
            deck,
            due,
            cards: &cards,
            filter,
            forms,
        },
    ))
}

/// The deck page's address: the filter, and how many cards an import just added.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeckQuery {
    q: String,
    tag: String,
    imported: Option<u32>,
    reviews: Option<u32>,
}

async fn deck(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<DeckQuery>,
) -> Result<Markup, PageError> {
    let deck = load_deck(&state, &session, &id).await?;
    let filter = CardFilter {
        q: query.q,
        tag: query.tag,
    };
    let forms = DeckForms {
        imported: query
            .imported
            .map(|imported| (imported, query.reviews.unwrap_or(0))),
        ..DeckForms::default()
    };
    render_deck(&state, &session, &user, &deck, &filter, &forms).await
}

/// Sends a CSV file from the import form to the backend, which adds its cards or names the bad
/// row; the page then says how many were added, or shows the reason beside the form.
async fn import(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Path(id): Path<String>,
    mut form: Multipart,
) -> Result<Response, PageError> {
    let deck = load_deck(&state, &session, &id).await?;
    let mut file = None;
    let mut problem = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => match field.bytes().await {
                Ok(bytes) => file = Some(bytes),
                Err(err) => problem = Some(err.body_text()),
            },
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(err) => {
                problem = Some(err.body_text());
                break;
            }
        }
    }
    let outcome = match (file, problem) {
        (Some(bytes), None) => {
            // An Anki package is a zip file; anything else is read as CSV.
            let (route, media_type) = if bytes.starts_with(b"PK\x03\x04") {
                ("import.apkg", APKG_MEDIA_TYPE)
            } else {
                ("import.csv", CSV_MEDIA_TYPE)
            };
            state
                .backend
                .post_raw::<ImportOutcome>(
                    &format!("/api/decks/{id}/{route}"),
                    &session,
                    media_type,
                    reqwest::Body::from(bytes),
                )
                .await
                .map_err(|err| match err {
                    BackendError::Refused { status, detail, .. } if status.is_client_error() => {
                        Ok((status, sentence(&detail)))
                    }
                    err => Err(err),
                })
        }
        (_, problem) => Err(Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "The file could not be read: {}",
                problem.unwrap_or_else(|| "choose a CSV file".to_owned())
            ),
        ))),
    };
    match outcome {
        Ok(answer) => Ok(Redirect::to(&format!(
            "/decks/{id}?imported={}&reviews={}",
            answer.body.imported, answer.body.reviews
        ))
        .into_response()),
        Err(Ok((status, message))) => {
            let forms = DeckForms {
                import_error: Some(&message),
                ..DeckForms::default()
            };
            let page = render_deck(
                &state,
                &session,
                &user,
                &deck,
                &CardFilter::default(),
                &forms,
            )
            .await?;
            Ok((status, page).into_response())
        }
        Err(Err(err)) => Err(err.into()),
    }
}

async fn rename(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<DeckForm>,
) -> Result<Response, PageError> {
    let deck = load_deck(&state, &session, &id).await?;
    let changes = DeckChanges {
        name: Some(form.name.clone()),
        description: None,
    };
    match state
        .backend
        .call::<Deck>(
            Method::PATCH,
            &format!("/api/decks/{id}"),
            Some(&session),
            Some(&changes),
        )
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/decks/{id}")).into_response()),
        Err(BackendError::Refused { status, detail, .. }) if status.is_client_error() => {
            let message = sentence(&detail);
            let forms = DeckForms {
                name: Some(&form.name),
                rename_error: Some(&message),
                ..DeckForms::default()
            };
            let page = render_deck(
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

async fn confirm_delete(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let deck = load_deck(&state, &session, &id).await?;
    let count = state
        .backend
        .all_pages::<Card>(&format!("/api/decks/{id}/cards"), &session)
        .await?
        .len();
    Ok(layout::confirm_page(
        Some(&signed_in(&user)),
        &format!("Delete “{}”?", deck.name),
        &format!(
            "The deck and its {count} {} will be gone for good; their review history is kept.",
            if count == 1 { "card" } else { "cards" }
        ),
        &format!("/decks/{id}/delete"),
        "Delete deck",
        &format!("/decks/{id}"),
    ))
}

async fn delete(
    State(state): State<WebState>,
    SignedIn { session, .. }: SignedIn,
    PathId(id): PathId,
) -> Result<Response, PageError> {
    state
        .backend
        .act(Method::DELETE, &format!("/api/decks/{id}"), &session)
        .await?;
    Ok(Redirect::to("/decks").into_response())
}

#[cfg(test)]
mod tests {
    use flashcards_backend::cards::model::CardKind;

    use super::*;

    fn card(front: &str, back: &str, tags: &[&str]) -> Card {
        Card {
            id: "c".to_owned(),
            deck_id: "d".to_owned(),
            kind: CardKind::Basic,
            front: front.to_owned(),
            back: back.to_owned(),
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            source: None,
            ordinals: vec![1],
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn the_filter_wants_every_word_and_the_tag() {
        let peru = card("Capital of Peru?", "Lima", &["geo", "south-america"]);
        let keep = |q: &str, tag: &str| {
            CardFilter {
                q: q.to_owned(),
                tag: tag.to_owned(),
            }
            .keeps(&peru)
        };
        assert!(keep("", ""));
        assert!(keep("peru lima", ""));
        assert!(keep("AMERICA", "geo"));
        assert!(!keep("peru chile", ""));
        assert!(!keep("", "history"));
    }

    #[test]
    fn tags_are_listed_once_in_order() {
        let cards = [card("a", "", &["b", "a"]), card("c", "", &["a"])];
        assert_eq!(tags_of(&cards), ["a", "b"]);
    }
}
