//! The frame every page shares, and the pages that only say something.

use maud::{DOCTYPE, Markup, html};

use crate::{assets, math};

/// Who is signed in, as the header shows it.
pub struct Visitor<'a> {
    pub email: &'a str,
}

/// A whole page: `title` in the tab and as the heading's context, the header with the visitor's
/// account (or the way in), then `main`.
pub fn page(title: &str, visitor: Option<&Visitor>, main: &Markup) -> Markup {
    page_with_math(title, visitor, main, false)
}

/// [`page`], with KaTeX's stylesheet and scripts and a credit linking to its licence when
/// `shows_math` (see [`math::has_math`]); other pages do without them.
pub fn page_with_math(
    title: &str,
    visitor: Option<&Visitor>,
    main: &Markup,
    shows_math: bool,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="description" content="Flashcards from your notes, studied with spaced repetition";
                title { (title) " · flashcards" }
                link rel="icon" type="image/svg+xml" href=(assets::href("icon.svg"));
                link rel="stylesheet" href=(assets::href("app.css"));
                @if shows_math {
                    link rel="stylesheet" href=(math::stylesheet());
                }
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/" { "flashcards" }
                    @if let Some(visitor) = visitor {
                        nav aria-label="Main" {
                            a href="/decks" { "Decks" }
                            a href="/documents" { "Notes" }
                        }
                        form class="account" method="post" action="/sign-out" {
                            a class="who" href="/account" { (visitor.email) }
                            button type="submit" { "Sign out" }
                        }
                    } @else {
                        nav aria-label="Account" {
                            a href="/sign-in" { "Sign in" }
                            a href="/sign-up" { "Sign up" }
                        }
                    }
                }
                main id="main" { (main) }
                @if shows_math {
                    footer class="credits" {
                        "Maths typeset by KaTeX ("
                        a href=(assets::href("katex/LICENSE")) { "MIT licence" }
                        ")"
                    }
                    @for script in math::scripts() {
                        script src=(script) defer {}
                    }
                }
            }
        }
    }
}

/// A page with one heading and one paragraph, for the visitor (a refused form, a backend that is
/// down): never a blank page.
pub fn message_page(title: &str, message: &str) -> Markup {
    page(
        title,
        None,
        &html! {
            h1 { (title) }
            p role="alert" { (message) }
            p { a href="/" { "Back to flashcards" } }
        },
    )
}

/// "Are you sure?": what will happen, a button that does it (posting to `action`) and a way back.
pub fn confirm_page(
    visitor: Option<&Visitor>,
    title: &str,
    message: &str,
    action: &str,
    confirm: &str,
    back: &str,
) -> Markup {
    page(
        title,
        visitor,
        &html! {
            h1 { (title) }
            p { (message) }
            form class="confirm" method="post" action=(action) {
                button type="submit" class="danger" { (confirm) }
                a href=(back) { "Cancel" }
            }
        },
    )
}

/// An error next to the form it belongs to, announced to screen readers.
pub fn form_error(id: &str, message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p class="error" id=(id) role="alert" { (message) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn katex_comes_only_with_maths_its_scripts_deferred_in_order() {
        let main = html! { p { "x" } };
        let plain = page("Deck", None, &main).into_string();
        assert!(
            !plain.contains("katex") && !plain.contains("math."),
            "{plain}"
        );
        let with = page_with_math("Deck", None, &main, true).into_string();
        let head = with.split("</head>").next().expect("a head");
        assert!(
            head.contains(&format!(
                r#"rel="stylesheet" href="{}""#,
                math::stylesheet()
            )),
            "{head}"
        );
        let mut after = with.as_str();
        for script in math::scripts() {
            let tag = format!(r#"<script src="{script}" defer>"#);
            let at = after
                .find(&tag)
                .unwrap_or_else(|| panic!("{tag} in order: {with}"));
            after = &after[at + tag.len()..];
        }
        assert!(
            with.contains(&format!(r#"href="{}""#, assets::href("katex/LICENSE"))),
            "the licence is linked: {with}"
        );
    }
}
