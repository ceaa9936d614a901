// Pages that show work under way (a document being read, cards being made) carry
// data-watch="<API URL>" and data-watch-state="<state as rendered>": the state is asked for every
// two seconds and the page reloads when it changes, so progress shows without a timed refresh.
const watched = document.querySelector("[data-watch]");
if (watched) {
  const url = watched.dataset.watch;
  const rendered = watched.dataset.watchState;
  const ask = async () => {
    try {
      const response = await fetch(url, { headers: { accept: "application/json" } });
      if (response.ok) {
        const body = await response.json();
        const state = `${body.status}:${body.pages_done ?? ""}:${body.drafts_created ?? ""}`;
        if (state !== rendered) {
          window.location.reload();
          return;
        }
      }
    } catch {
      // The server is unreachable for a moment: ask again.
    }
    setTimeout(ask, 2000);
  };
  setTimeout(ask, 2000);
}
