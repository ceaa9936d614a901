// Pages that show work under way (a document being read, cards being made) carry
// data-watch="<API URL>" and data-watch-state="<state as rendered>". The backend's server-sent
// events at <API URL>/events say each change as it happens; the page reloads when the state differs
// from what it shows, so progress appears without polling or a timed refresh.
const watched = document.querySelector("[data-watch]");
if (watched) {
  const rendered = watched.dataset.watchState;
  const events = new EventSource(`${watched.dataset.watch}/events`);
  const reload = () => {
    events.close();
    window.location.reload();
  };
  const changed = (message) => {
    const body = JSON.parse(message.data);
    const state = `${body.status}:${body.pages_done ?? ""}:${body.drafts_created ?? ""}`;
    if (state !== rendered) {
      reload();
    }
  };
  events.addEventListener("document", changed);
  events.addEventListener("job", changed);
  // The thing followed is gone or cannot be read: the page, rendered again, says why.
  events.addEventListener("error", (event) => {
    if (event.data !== undefined || events.readyState === EventSource.CLOSED) {
      setTimeout(reload, event.data === undefined ? 5000 : 0);
    }
  });
}
