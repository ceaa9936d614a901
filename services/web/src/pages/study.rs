//! Studying a deck: the front of the most overdue item, its answer on request (Space), and the four
//! ratings (keys 1–4), each showing the interval it would give. Works without scripts: revealing
//! is a link and rating a form; `study.js` only adds the keys. Revealing loads a new page, so
//! `math.js` typesets the answer's maths as it did the question's (KaTeX comes only with a card
//! that has maths). The session's tally travels in the address, so the summary at the end needs
//! no state on the server.

use axum::{
    Form, Router,
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use flashcards_backend::{
    auth::User,
    study::{ReviewInput, ReviewOutcome, StudyQueue, scheduler::Rating},
};
use maud::{Markup, html};
use reqwest::Method;
use serde::Deserialize;

use super::{
    PageError, PathId, SignedIn, is_id,
    layout::{self, Visitor},
    not_found,
};
use crate::{WebState, assets, math::has_math};

pub fn router() -> Router<WebState> {
    Router::new().route("/decks/{id}/study", get(study).post(rate))
}

/// The most items one page asks for: enough for the counts of what is left.
const QUEUE_LIMIT: u32 = 500;

/// Reviews made so far in this sitting, per rating.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Tally {
    pub again: u32,
    pub hard: u32,
    pub good: u32,
    pub easy: u32,
}

impl Tally {
    pub fn total(self) -> u32 {
        self.again + self.hard + self.good + self.easy
    }

    /// The tally with one more `rating`.
    pub fn with(mut self, rating: Rating) -> Self {
        let slot = match rating {
            Rating::Again => &mut self.again,
            Rating::Hard => &mut self.hard,
            Rating::Good => &mut self.good,
            Rating::Easy => &mut self.easy,
        };
        *slot = slot.saturating_add(1);
        self
    }

    /// As a query string, for the next page's address.
    pub fn query(self) -> String {
        format!(
            "again={}&hard={}&good={}&easy={}",
            self.again, self.hard, self.good, self.easy
        )
    }
}

/// An interval as a study button shows it: minutes, hours, days, months or years, like Anki.
pub fn interval_label(secs: i64) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    #[allow(clippy::cast_precision_loss)]
    let tenths = |unit: i64| {
        let value = secs as f64 / unit as f64;
        let rounded = (value * 10.0).round() / 10.0;
        if rounded.fract() == 0.0 {
            format!("{rounded:.0}")
        } else {
            format!("{rounded:.1}")
        }
    };
    match secs {
        s if s < HOUR => format!("{} min", (s / MINUTE).max(1)),
        s if s < DAY => format!("{} h", s / HOUR),
        s if s < 30 * DAY => format!("{} d", s / DAY),
        s if s < 365 * DAY => format!("{} mo", tenths(30 * DAY)),
        _ => format!("{} y", tenths(365 * DAY)),
    }
}

fn rating_name(rating: Rating) -> &'static str {
    match rating {
        Rating::Again => "Again",
        Rating::Hard => "Hard",
        Rating::Good => "Good",
        Rating::Easy => "Easy",
    }
}

fn rating_value(rating: Rating) -> &'static str {
    match rating {
        Rating::Again => "again",
        Rating::Hard => "hard",
        Rating::Good => "good",
        Rating::Easy => "easy",
    }
}

/// The study page for deck `deck_id`: the first item of `queue` (its answer if `revealed`), or
/// the end of the sitting with `tally`.
pub fn study_page(
    user: &User,
    deck_id: &str,
    queue: &StudyQueue,
    revealed: bool,
    tally: Tally,
) -> Markup {
    let base = format!("/decks/{deck_id}/study");
    let deck_name = &queue.deck_name;
    let queue = &queue.items;
    let new = queue.iter().filter(|item| item.new).count();
    let shows_math = queue.first().is_some_and(|item| {
        has_math(&item.prompt) || revealed && (has_math(&item.answer) || has_math(&item.extra))
    });
    let main = html! {
        p { a href={ "/decks/" (deck_id) } { "← " (deck_name) } }
        h1 { "Studying " (deck_name) }
        @if let Some(item) = queue.first() {
            p class="counts" aria-live="polite" {
                (queue.len()) " left: " (new) " new, " (queue.len() - new) " to review"
            }
            section class="study" data-study aria-label="Card" {
                div class="face" {
                    h2 class="visually-hidden" { "Question" }
                    p class="prompt" data-math[has_math(&item.prompt)] { (item.prompt) }
                }
                @if revealed {
                    div class="face answer" {
                        h2 class="visually-hidden" { "Answer" }
                        p data-math[has_math(&item.answer)] { (item.answer) }
                        @if !item.extra.is_empty() && item.extra != item.answer {
                            p class="hint" data-math[has_math(&item.extra)] { (item.extra) }
                        }
                    }
                    div class="ratings" role="group" aria-label="How well did you know it?" {
                        @for (key, rating) in (1..).zip(Rating::ALL) {
                            form method="post" action=(base) {
                                input type="hidden" name="card_id" value=(item.card_id);
                                input type="hidden" name="ordinal" value=(item.ordinal);
                                input type="hidden" name="rating" value=(rating_value(rating));
                                input type="hidden" name="again" value=(tally.again);
                                input type="hidden" name="hard" value=(tally.hard);
                                input type="hidden" name="good" value=(tally.good);
                                input type="hidden" name="easy" value=(tally.easy);
                                button type="submit" class={ "rate " (rating_value(rating)) }
                                    data-rating-key=(key) aria-keyshortcuts=(key) {
                                    span { (rating_name(rating)) }
                                    span class="when" { (interval_label(item.intervals.of(rating))) }
                                    kbd { (key) }
                                }
                            }
                        }
                    }
                } @else {
                    a class="button reveal" data-reveal aria-keyshortcuts="Space"
                        href={ (base) "?reveal=1&" (tally.query()) } {
                        "Show answer " kbd { "Space" }
                    }
                }
            }
        } @else {
            section class="summary" aria-label="Summary" {
                @if tally.total() == 0 {
                    p { "Nothing is due in this deck right now. Come back later, or add cards." }
                } @else {
                    p {
                        "Done for now: " (tally.total())
                        @if tally.total() == 1 { " review" } @else { " reviews" }
                        " in this sitting."
                    }
                    dl class="tally" {
                        @for rating in Rating::ALL {
                            dt { (rating_name(rating)) }
                            dd { (match rating {
                                Rating::Again => tally.again,
                                Rating::Hard => tally.hard,
                                Rating::Good => tally.good,
                                Rating::Easy => tally.easy,
                            }) }
                        }
                    }
                }
                p { a href={ "/decks/" (deck_id) } { "Back to the deck" } }
            }
        }
        script src=(assets::href("study.js")) defer {}
    };
    layout::page_with_math(
        &format!("Study {deck_name}"),
        Some(&Visitor { email: &user.email }),
        &main,
        shows_math,
    )
}

/// The page's address: whether the answer shows, and the tally so far (its fields spelled out:
/// `serde(flatten)` cannot read numbers from a query string).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StudyQuery {
    reveal: Option<String>,
    again: u32,
    hard: u32,
    good: u32,
    easy: u32,
}

async fn study(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    PathId(id): PathId,
    Query(query): Query<StudyQuery>,
) -> Result<Markup, PageError> {
    // One call: the queue carries the deck's name.
    let queue = state
        .backend
        .get::<StudyQueue>(
            &format!("/api/decks/{id}/study?limit={QUEUE_LIMIT}"),
            &session,
        )
        .await?;
    Ok(study_page(
        &user,
        &id,
        &queue,
        query.reveal.is_some(),
        Tally {
            again: query.again,
            hard: query.hard,
            good: query.good,
            easy: query.easy,
        },
    ))
}

/// One rating button's form: the item, the rating and the tally before it.
#[derive(Debug, Deserialize)]
struct RatingForm {
    card_id: String,
    ordinal: u32,
    rating: Rating,
    #[serde(default)]
    again: u32,
    #[serde(default)]
    hard: u32,
    #[serde(default)]
    good: u32,
    #[serde(default)]
    easy: u32,
}

async fn rate(
    State(state): State<WebState>,
    SignedIn { session, .. }: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<RatingForm>,
) -> Result<Response, PageError> {
    if !is_id(&id) || !is_id(&form.card_id) {
        return Err(not_found());
    }
    let review = ReviewInput {
        rating: form.rating,
        ordinal: Some(form.ordinal),
    };
    state
        .backend
        .send::<ReviewOutcome>(
            Method::POST,
            &format!("/api/cards/{}/review", form.card_id),
            &session,
            &review,
        )
        .await?;
    let tally = Tally {
        again: form.again,
        hard: form.hard,
        good: form.good,
        easy: form.easy,
    }
    .with(form.rating);
    Ok(Redirect::to(&format!("/decks/{id}/study?{}", tally.query())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_like_ankis() {
        assert_eq!(interval_label(600), "10 min");
        assert_eq!(interval_label(20), "1 min");
        assert_eq!(interval_label(5 * 3600), "5 h");
        assert_eq!(interval_label(86_400), "1 d");
        assert_eq!(interval_label(12 * 86_400), "12 d");
        assert_eq!(interval_label(45 * 86_400), "1.5 mo");
        assert_eq!(interval_label(60 * 86_400), "2 mo");
        assert_eq!(interval_label(800 * 86_400), "2.2 y");
    }

    #[test]
    fn the_tally_counts_each_rating_and_travels_in_the_address() {
        let tally = Tally::default()
            .with(Rating::Good)
            .with(Rating::Good)
            .with(Rating::Again);
        assert_eq!(tally.total(), 3);
        assert_eq!(tally.query(), "again=1&hard=0&good=2&easy=0");
    }
}
