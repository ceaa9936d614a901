// Study keys: Space shows the answer, 1-4 rate it (Again, Hard, Good, Easy). The page works
// without this script: the keys press the link and buttons that are already there.
document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.target instanceof Element && event.target.closest("input, textarea, select, [contenteditable]")) return;
  const study = document.querySelector("[data-study]");
  if (!study) return;
  let control = null;
  if (event.key === " ") {
    control = study.querySelector("[data-reveal]");
  } else if (["1", "2", "3", "4"].includes(event.key)) {
    control = study.querySelector(`[data-rating-key="${event.key}"]`);
  }
  if (control) {
    event.preventDefault();
    control.click();
  }
});
