// The card form's cloze preview, kept current as the learner types: shown for cloze cards, its
// prompts rendered by the server (/cards/preview), which studying uses too. Prompts with maths
// come marked data-math and are typeset by math.js.
let mathRequested = false;

// math.js typesets the new prompts; on a page that showed no maths it is not there yet, so it is
// loaded, with KaTeX, from the addresses the preview names, and typesets the page when it runs.
function typesetMath(preview, prompts) {
  if (!prompts.querySelector("[data-math]")) return;
  if (window.flashcardsMath) {
    window.flashcardsMath.typeset(prompts);
    return;
  }
  if (mathRequested) return;
  mathRequested = true;
  const style = document.createElement("link");
  style.rel = "stylesheet";
  style.href = preview.dataset.mathStyle;
  document.head.append(style);
  for (const source of preview.dataset.mathScripts.split(" ")) {
    const script = document.createElement("script");
    script.src = source;
    // In the order given: KaTeX, auto-render, math.js.
    script.async = false;
    document.head.append(script);
  }
}

for (const form of document.querySelectorAll(".card-form")) {
  const source = form.querySelector("[data-cloze-source]");
  const preview = form.querySelector("[data-cloze-preview]");
  const prompts = form.querySelector("[data-cloze-prompts]");
  if (!source || !preview || !prompts) continue;
  let timer = null;
  let asked = 0;
  const isCloze = () => form.querySelector('input[name="kind"]:checked')?.value === "cloze";
  const refresh = async () => {
    preview.hidden = !isCloze();
    if (preview.hidden) return;
    const ask = ++asked;
    const response = await fetch(`/cards/preview?${new URLSearchParams({ front: source.value })}`);
    // Only the latest answer is shown, whatever order they arrive in.
    if (response.ok && ask === asked) {
      prompts.innerHTML = await response.text();
      typesetMath(preview, prompts);
    }
  };
  source.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  });
  for (const kind of form.querySelectorAll('input[name="kind"]')) kind.addEventListener("change", refresh);
}
