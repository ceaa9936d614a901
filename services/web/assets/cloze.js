// The card form's cloze preview, kept current as the learner types: shown for cloze cards, its
// prompts rendered by the server (/cards/preview), which studying uses too.
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
    if (response.ok && ask === asked) prompts.innerHTML = await response.text();
  };
  source.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  });
  for (const kind of form.querySelectorAll('input[name="kind"]')) kind.addEventListener("change", refresh);
}
