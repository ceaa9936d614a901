// Typesets the maths in card text with KaTeX, loaded before this script: in the elements marked
// data-math, between \( \) (inline), \[ \] or $$ $$ (displayed), never a single $, so prices stay
// text. The delimiters are src/math.rs's DELIMITERS, which a test there compares with these.
// Scripts that put new card text on the page (the cloze preview) call
// window.flashcardsMath.typeset(element) afterwards.
const DELIMITERS = [
  { left: "$$", right: "$$", display: true },
  { left: "\\(", right: "\\)", display: false },
  { left: "\\[", right: "\\]", display: true },
];

function typeset(root) {
  for (const element of root.querySelectorAll("[data-math]")) {
    renderMathInElement(element, {
      delimiters: DELIMITERS,
      // Maths KaTeX cannot read stays as typed; a warning, as the page still works.
      errorCallback: (message, error) => console.warn(message, error),
    });
  }
}

window.flashcardsMath = { typeset };
typeset(document);
