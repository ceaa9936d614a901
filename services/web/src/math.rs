//! Maths in card text, typeset in the browser by KaTeX (embedded, see [`crate::assets`]).
//!
//! The syntax is Anki's, so imported decks keep working: `\(...\)` inline and `\[...\]` on a line
//! of its own, and also `$$...$$` on its own line. A single `$` is never maths, so prices
//! ("$5 and $10") stay text. KaTeX's auto-render finds the maths in the elements pages mark with
//! `data-math` (`assets/math.js`, whose delimiters are [`DELIMITERS`]), building the formula's
//! nodes itself, so the strict Content-Security-Policy holds. Pages load KaTeX only when what they
//! show has maths ([`has_math`]): the others are as light as without it.

use crate::assets;

/// Where maths starts and ends, and whether it is displayed on a line of its own.
#[derive(Debug, Clone, Copy)]
pub struct Delimiter {
    pub left: &'static str,
    pub right: &'static str,
    pub display: bool,
}

/// In the order auto-render tries them where two could start at the same place.
pub const DELIMITERS: [Delimiter; 3] = [
    Delimiter {
        left: "$$",
        right: "$$",
        display: true,
    },
    Delimiter {
        left: "\\(",
        right: "\\)",
        display: false,
    },
    Delimiter {
        left: "\\[",
        right: "\\]",
        display: true,
    },
];

/// Whether KaTeX's auto-render would typeset something in `text`. Like auto-render, it reads from
/// the first opening delimiter: maths if that one is closed (outside braces, and not by an
/// escaped character), and nothing at all if not, as auto-render then leaves the rest as text.
pub fn has_math(text: &str) -> bool {
    let bytes = text.as_bytes();
    let opening = (0..bytes.len()).find_map(|at| {
        DELIMITERS
            .iter()
            .find(|delimiter| bytes[at..].starts_with(delimiter.left.as_bytes()))
            .map(|delimiter| (at + delimiter.left.len(), delimiter.right.as_bytes()))
    });
    opening.is_some_and(|(start, right)| is_closed(&bytes[start..], right))
}

/// Whether `right` closes the maths in `rest`, found as auto-render finds it: the braces opened
/// since are closed, and the character after a backslash is skipped.
fn is_closed(rest: &[u8], right: &[u8]) -> bool {
    let mut depth = 0_i32;
    let mut at = 0;
    while at < rest.len() {
        if depth <= 0 && rest[at..].starts_with(right) {
            return true;
        }
        match rest[at] {
            b'\\' => at += 1,
            b'{' => depth += 1,
            b'}' => depth -= 1,
            _ => {}
        }
        at += 1;
    }
    false
}

/// KaTeX's stylesheet, for a page's head.
pub fn stylesheet() -> String {
    assets::href("katex/katex.min.css")
}

/// The scripts that typeset, in the order they must run: KaTeX, its auto-render, `math.js`.
pub fn scripts() -> [String; 3] {
    [
        assets::href("katex/katex.min.js"),
        assets::href("katex/contrib/auto-render.min.js"),
        assets::href("math.js"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anki_delimiters_and_double_dollars_are_maths() {
        assert!(has_math(r"The area is \(\pi r^2\)."));
        assert!(has_math(r"\[\int_0^1 x\,dx = \frac{1}{2}\]"));
        assert!(has_math("$$e^{i\\pi} + 1 = 0$$"));
        assert!(has_math(r"empty \(\) still typesets"));
    }

    #[test]
    fn prices_and_plain_text_are_not() {
        assert!(!has_math("It costs $5 and $10."));
        assert!(!has_math("$x$ is not maths here"));
        assert!(!has_math("Capital of Peru?"));
        assert!(!has_math(""));
        assert!(!has_math("{{c1::Lima}} is the capital of Peru."));
    }

    #[test]
    fn an_unclosed_opening_hides_everything_after_it_as_auto_render_does() {
        assert!(!has_math(r"\( never closed"));
        assert!(!has_math(r"\( never closed, then $$x$$"));
        assert!(!has_math(r"\(x\] mixed"));
        assert!(has_math(r"$5 then \(x\)"));
    }

    #[test]
    fn closings_inside_braces_or_escaped_do_not_count() {
        assert!(!has_math(r"\(\text{\)}"), "inside braces");
        assert!(has_math(r"\(\text{\)} x\)"));
        assert!(!has_math(r"$$ \$$"), "an escaped dollar");
        assert!(has_math("\\(é\\)"), "whatever the letters");
    }

    #[test]
    fn math_js_uses_the_same_delimiters() {
        let script = include_str!("../assets/math.js");
        for delimiter in DELIMITERS {
            let json = |text: &str| serde_json::to_string(text).expect("a string is JSON");
            let line = format!(
                "{{ left: {}, right: {}, display: {} }}",
                json(delimiter.left),
                json(delimiter.right),
                delimiter.display
            );
            assert!(script.contains(&line), "math.js lacks {line}");
        }
    }
}
