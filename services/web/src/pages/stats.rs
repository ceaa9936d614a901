//! A deck's statistics as charts drawn on the server in SVG (no chart library, no script):
//! reviews per day, true retention, and what falls due in the days ahead.

use axum::{
    Router,
    extract::{Path, State},
    routing::get,
};
use flashcards_backend::{
    decks::Deck,
    study::stats::{DayCount, DeckStats},
};
use maud::{Markup, html};

use super::{
    PageError, SignedIn,
    decks::load_deck,
    layout::{self, Visitor},
};
use crate::WebState;

pub fn router() -> Router<WebState> {
    Router::new().route("/decks/{id}/stats", get(stats))
}

/// The chart's drawing box, in SVG units; it scales to the page's width.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 220.0;
const AXIS: f64 = 24.0;
const PAD: f64 = 24.0;

/// A bar per day, labelled every week, with the largest value marked on the axis. `describe`
/// says in words what the chart shows, for screen readers (the bars carry their own titles too).
pub fn bar_chart(id: &str, title: &str, days: &[DayCount], describe: &str) -> Markup {
    let top = days.iter().map(|day| day.count).max().unwrap_or(0).max(1);
    #[allow(clippy::cast_precision_loss)]
    let (slot, top_f) = (WIDTH / days.len().max(1) as f64, top as f64);
    let bar = slot * 0.7;
    let plot = HEIGHT - AXIS;
    html! {
        figure class="chart" {
            figcaption id={ (id) "-title" } { (title) }
            // Room either side for the first and last day's labels.
            svg viewBox={ (-PAD) " 0 " (WIDTH + 2.0 * PAD) " " (HEIGHT) } role="img"
                aria-labelledby={ (id) "-title " (id) "-desc" } {
                desc id={ (id) "-desc" } { (describe) }
                line class="axis" x1="0" y1=(plot) x2=(WIDTH) y2=(plot) {}
                text class="tick" x="2" y="12" { (top) }
                @for (n, day) in days.iter().enumerate() {
                    @let x = {
                        #[allow(clippy::cast_precision_loss)]
                        let n = n as f64;
                        n * slot + (slot - bar) / 2.0
                    };
                    @let height = {
                        #[allow(clippy::cast_precision_loss)]
                        let count = day.count as f64;
                        count / top_f * (plot - 16.0)
                    };
                    rect class="bar" x=(format!("{x:.1}")) y=(format!("{:.1}", plot - height))
                        width=(format!("{bar:.1}")) height=(format!("{height:.1}")) {
                        title { (day_label(day.day)) ": " (day.count) }
                    }
                    @if day.day % 7 == 0 {
                        text class="tick" x=(format!("{:.1}", x + bar / 2.0)) y=(HEIGHT - 6.0)
                            text-anchor="middle" { (day_label(day.day)) }
                    }
                }
            }
        }
    }
}

/// "today", "-7 d", "+14 d".
pub fn day_label(day: i64) -> String {
    match day {
        0 => "today".to_owned(),
        d if d < 0 => format!("{d} d"),
        d => format!("+{d} d"),
    }
}

/// In words, what a series holds: its total and its busiest day.
pub fn summary(days: &[DayCount], what: &str) -> String {
    let total: i64 = days.iter().map(|day| day.count).sum();
    match days
        .iter()
        .filter(|day| day.count > 0)
        .max_by_key(|day| day.count)
    {
        Some(busiest) => format!(
            "{total} {what} in all; the most, {}, {}.",
            busiest.count,
            match busiest.day {
                0 => "today".to_owned(),
                -1 => "yesterday".to_owned(),
                1 => "tomorrow".to_owned(),
                d if d < 0 => format!("{} days ago", -d),
                d => format!("in {d} days"),
            }
        ),
        None => format!("No {what}."),
    }
}

pub fn stats_page(visitor: &Visitor, deck: &Deck, stats: &DeckStats) -> Markup {
    let main = html! {
        p { a href={ "/decks/" (deck.id) } { "← " (deck.name) } }
        h1 { "Statistics: " (deck.name) }
        dl class="figures" {
            div {
                dt { "True retention" }
                dd {
                    @match stats.retention.rate {
                        Some(rate) => { (format!("{:.0}%", rate * 100.0)) }
                        None => { "–" }
                    }
                }
                dd class="hint" {
                    (stats.retention.remembered) " of " (stats.retention.reviews)
                    " reviews of learned cards remembered, last " (stats.days) " days"
                }
            }
            div {
                dt { "Items" }
                dd { (stats.items) }
                dd class="hint" { (stats.new_items) " not studied yet" }
            }
        }
        (bar_chart(
            "reviews",
            &format!("Reviews per day, last {} days", stats.days),
            &stats.reviews_per_day,
            &summary(&stats.reviews_per_day, "reviews"),
        ))
        (bar_chart(
            "forecast",
            &format!("Due in the next {} days", stats.days),
            &stats.due_forecast,
            &summary(&stats.due_forecast, "items due"),
        ))
    };
    layout::page(&format!("Statistics: {}", deck.name), Some(visitor), &main)
}

async fn stats(
    State(state): State<WebState>,
    SignedIn { session, user }: SignedIn,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let deck = load_deck(&state, &session, &id).await?;
    let stats = state
        .backend
        .get::<DeckStats>(&format!("/api/decks/{id}/stats?days=30"), &session)
        .await?;
    Ok(stats_page(&Visitor { email: &user.email }, &deck, &stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(counts: &[i64]) -> Vec<DayCount> {
        let first = 1 - i64::try_from(counts.len()).unwrap_or(0);
        (first..=0)
            .zip(counts)
            .map(|(day, count)| DayCount { day, count: *count })
            .collect()
    }

    #[test]
    fn bars_are_as_tall_as_their_share_of_the_largest() {
        let chart = bar_chart("r", "Reviews", &days(&[0, 2, 4]), "six").into_string();
        assert_eq!(chart.matches("<rect").count(), 3);
        assert!(
            chart.contains(r#"height="180.0""#),
            "the largest fills the plot: {chart}"
        );
        assert!(chart.contains(r#"height="90.0""#), "half of it: {chart}");
        assert!(chart.contains("<title>today: 4</title>"), "{chart}");
        assert!(
            chart.contains(r#"aria-labelledby="r-title r-desc""#),
            "{chart}"
        );
    }

    #[test]
    fn the_summary_names_the_total_and_the_busiest_day() {
        assert_eq!(
            summary(&days(&[1, 5, 2]), "reviews"),
            "8 reviews in all; the most, 5, yesterday."
        );
        assert_eq!(summary(&days(&[0, 0]), "reviews"), "No reviews.");
    }
}
