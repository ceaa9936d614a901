//! The web app as a browser meets it, against the real backend binary on a fresh SQLite file:
//! signing up, in and out, decks, the API on the same origin, the security headers, refused
//! forms, and a backend that is down. (The full walk through in Chromium is its own test.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{PASSWORD, Stack, web_before};
use reqwest::{
    Client, Method, RequestBuilder, Response, StatusCode, header,
    multipart::{Form, Part},
    redirect::Policy,
};
use serde_json::json;

/// Someone at one browser on the web app: it keeps its cookies, as a browser does, but follows no
/// redirect, so that each answer can be checked.
struct Learner {
    web_url: String,
    browser: Client,
}

impl Learner {
    /// Signed in as no one, at the web app on `web_url`.
    fn at(web_url: String) -> Self {
        let browser = Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .unwrap();
        Self { web_url, browser }
    }

    /// A new account on `stack`, signed in.
    async fn signed_up(stack: &Stack, email: &str) -> Self {
        let learner = Self::at(stack.web.url());
        learner.sign_up(email).await;
        learner
    }

    async fn sign_up(&self, email: &str) {
        let response = self
            .post_form("/sign-up", &[("email", email), ("password", PASSWORD)])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/decks");
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(
            cookie.starts_with("flashcards_session=") && cookie.contains("HttpOnly"),
            "{cookie}"
        );
    }

    /// For a request the methods below do not make: one with a header of its own, or a raw body.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.browser
            .request(method, format!("{}{path}", self.web_url))
    }

    async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    /// The page at `path`, whatever its status.
    async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.request(Method::POST, path)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `bytes` as the file field of a multipart form, as the upload and import forms send it.
    async fn upload(
        &self,
        path: &str,
        file_name: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Response {
        let file = Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str(media_type)
            .unwrap();
        self.request(Method::POST, path)
            .multipart(Form::new().part("file", file))
            .send()
            .await
            .unwrap()
    }

    /// The new deck's page, where making it through the form sends the learner.
    async fn make_deck(&self, name: &str) -> String {
        let made = self.post_form("/decks", &[("name", name)]).await;
        location(&made).to_owned()
    }

    /// A basic card in the deck at `deck_url`, through the API.
    async fn add_card(&self, deck_url: &str, front: &str, back: &str) {
        let card = self
            .post_json(
                &format!("/api{deck_url}/cards"),
                &json!({"front": front, "back": back}),
            )
            .await;
        assert_eq!(card.status(), StatusCode::CREATED);
    }
}

fn location(response: &Response) -> &str {
    response.headers()[header::LOCATION].to_str().unwrap()
}

#[tokio::test]
async fn a_learner_signs_up_makes_a_deck_and_signs_out() {
    let stack = Stack::start("journey");
    let ada = Learner::at(stack.web.url());

    let decks = ada.get("/decks").await;
    assert_eq!(
        decks.status(),
        StatusCode::SEE_OTHER,
        "signed out, sent to sign in"
    );
    assert_eq!(location(&decks), "/sign-in");

    ada.sign_up("ada@example.org").await;
    let page = ada.get("/decks").await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("ada@example.org") && page.contains("No decks yet"),
        "{page}"
    );

    let made = ada
        .post_form("/decks", &[("name", "Biology <cells> & more")])
        .await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let deck_url = location(&made).to_owned();
    assert!(deck_url.starts_with("/decks/"), "{deck_url}");
    let deck = ada.get(&deck_url).await;
    assert_eq!(deck.status(), StatusCode::OK);
    let deck = deck.text().await.unwrap();
    assert!(
        deck.contains("Biology &lt;cells&gt; &amp; more"),
        "escaped: {deck}"
    );
    let list = ada.get_text("/decks").await;
    assert!(list.contains(&format!(r#"href="{deck_url}""#)), "{list}");

    let empty = ada.post_form("/decks", &[("name", "   ")]).await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let empty = empty.text().await.unwrap();
    assert!(
        empty.contains(r#"role="alert""#) && empty.contains("Name"),
        "{empty}"
    );

    let out = ada.post_form("/sign-out", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/sign-in");
    let after = ada.get("/decks").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "the session is over");
}

#[tokio::test]
async fn another_learners_deck_is_not_found() {
    let stack = Stack::start("isolation");
    let ada = Learner::signed_up(&stack, "ada@example.org").await;
    let bob = Learner::signed_up(&stack, "bob@example.org").await;
    let deck_url = ada.make_deck("Private").await;
    let seen = bob.get(&deck_url).await;
    assert_eq!(seen.status(), StatusCode::NOT_FOUND);
    assert!(!seen.text().await.unwrap().contains("Private"));
    for hostile in ["/decks/..%2Fauth%2Fme", "/decks/a%3Fb", "/decks/a%20b"] {
        let answer = bob.get(hostile).await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{hostile}");
    }
}

#[tokio::test]
async fn a_wrong_password_says_so_and_keeps_the_email() {
    let stack = Stack::start("wrong-password");
    Learner::signed_up(&stack, "ada@example.org").await;
    let answer = Learner::at(stack.web.url())
        .post_form(
            "/sign-in",
            &[
                ("email", "ada@example.org"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let page = answer.text().await.unwrap();
    assert!(page.contains("Wrong email or password."), "{page}");
    assert!(page.contains(r#"value="ada@example.org""#), "{page}");
    assert!(!page.contains("not the password"), "{page}");
}

#[tokio::test]
async fn the_api_is_the_backends_on_the_same_origin() {
    let stack = Stack::start("api");
    let ada = Learner::at(stack.web.url());
    let account = json!({"email": "ada@example.org", "password": PASSWORD});
    let made = ada.post_json("/api/auth/register", &account).await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let login = ada.post_json("/api/auth/login", &account).await;
    assert_eq!(login.status(), StatusCode::OK);
    let me: serde_json::Value = ada.get("/api/auth/me").await.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.org");
    // The backend's own refusal of a change from another site reaches the browser unchanged.
    let foreign = ada
        .request(Method::POST, "/api/decks")
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let malformed = ada
        .request(Method::POST, "/api/decks")
        .header(header::CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_assets_are_cached() {
    let stack = Stack::start("headers");
    let visitor = Learner::at(stack.web.url());
    let page = visitor.get("/sign-in").await;
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    for rule in [
        "frame-ancestors 'none'",
        "script-src 'self'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(rule), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::REFERRER_POLICY], "same-origin");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let body = page.text().await.unwrap();
    let stylesheet = body
        .split(r#"rel="stylesheet" href=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a stylesheet link")
        .to_owned();
    assert!(stylesheet.starts_with("/assets/app.") && stylesheet.ends_with(".css"));
    let css = visitor.get(&stylesheet).await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(
        css.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(
        css.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(
        visitor.get("/assets/app.css").await.status(),
        StatusCode::NOT_FOUND,
        "only hashed names are served"
    );
    let missing = visitor.get("/no/such/page").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("Page not found"));
}

#[tokio::test]
async fn a_form_from_another_site_is_refused() {
    let stack = Stack::start("cross-site");
    let ada = Learner::signed_up(&stack, "ada@example.org").await;
    let forged = ada
        .request(Method::POST, "/decks")
        .header("sec-fetch-site", "cross-site")
        .form(&[("name", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let list = ada.get_text("/decks").await;
    assert!(!list.contains("forged"), "{list}");
}

#[tokio::test]
async fn a_backend_that_is_down_is_a_clear_message_and_the_form_keeps_its_values() {
    // The discard port: nothing answers there.
    let web = web_before("http://127.0.0.1:9");
    let ada = Learner::at(web.url());
    let sign_in = ada.get("/sign-in").await;
    assert_eq!(
        sign_in.status(),
        StatusCode::OK,
        "pages that need no data still render"
    );
    let refused = ada
        .post_form(
            "/sign-in",
            &[("email", "ada@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = refused.text().await.unwrap();
    assert!(page.contains("cannot be reached"), "{page}");
    assert!(page.contains(r#"value="ada@example.org""#), "{page}");
    let decks = ada
        .request(Method::GET, "/decks")
        .header(header::COOKIE, "flashcards_session=fcs_x")
        .send()
        .await
        .unwrap();
    assert_eq!(decks.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(decks.text().await.unwrap().contains("cannot be reached"));
    let api = ada.get("/api/decks").await;
    assert_eq!(api.status(), StatusCode::BAD_GATEWAY);
    let body: serde_json::Value = api.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{body}"
    );
}

#[tokio::test]
async fn a_learner_studies_a_card_sees_each_ratings_interval_and_the_summary() {
    let stack = Stack::start("study");
    let ada = Learner::signed_up(&stack, "ada@example.org").await;
    let deck_url = ada.make_deck("Capitals").await;
    ada.add_card(&deck_url, "Capital of Peru?", "Lima").await;

    let deck = ada.get_text(&deck_url).await;
    assert!(deck.contains("Study now (1 due)"), "{deck}");

    let study_url = format!("{deck_url}/study");
    let front = ada.get_text(&study_url).await;
    assert!(
        front.contains("Capital of Peru?") && front.contains("1 left: 1 new"),
        "{front}"
    );
    assert!(!front.contains("Lima"), "the answer waits: {front}");
    assert!(front.contains("data-reveal"), "{front}");
    assert!(
        front.contains("/assets/study."),
        "the keys' script: {front}"
    );

    let back = ada.get_text(&format!("{study_url}?reveal=1")).await;
    assert!(back.contains("Lima"), "{back}");
    for (key, label) in [("1", "Again"), ("2", "Hard"), ("3", "Good"), ("4", "Easy")] {
        assert!(
            back.contains(&format!(r#"data-rating-key="{key}""#)),
            "{back}"
        );
        assert!(back.contains(&format!("<span>{label}</span>")), "{back}");
    }
    assert!(
        back.contains("10 min"),
        "again comes back in ten minutes: {back}"
    );

    let card_id = card_id_in(&back);
    let rated = ada
        .post_form(
            &study_url,
            &[
                ("card_id", card_id.as_str()),
                ("ordinal", "1"),
                ("rating", "good"),
                ("good", "0"),
            ],
        )
        .await;
    assert_eq!(rated.status(), StatusCode::SEE_OTHER);
    let next = location(&rated).to_owned();
    assert!(next.ends_with("again=0&hard=0&good=1&easy=0"), "{next}");
    let summary = ada.get_text(&next).await;
    assert!(
        summary.contains("Done for now: 1 review in this sitting."),
        "{summary}"
    );
    let deck = ada.get_text(&deck_url).await;
    assert!(deck.contains("Nothing due right now."), "{deck}");
}

/// The card id in a study page's rating form.
fn card_id_in(page: &str) -> String {
    page.split(r#"name="card_id" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a rating form")
        .to_owned()
}

#[tokio::test]
async fn a_learner_manages_decks_and_cards_through_forms() {
    let stack = Stack::start("manage");
    let ada = Learner::signed_up(&stack, "ada@example.org").await;
    let deck_url = ada.make_deck("Geography").await;

    // A basic card and a cloze card through the deck page's form.
    let cards_url = format!("{deck_url}/cards");
    let added = ada
        .post_form(
            &cards_url,
            &[
                ("kind", "basic"),
                ("front", "Capital of Peru?"),
                ("back", "Lima"),
                ("tags", "capitals, south-america"),
            ],
        )
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let added = ada
        .post_form(
            &cards_url,
            &[
                ("kind", "cloze"),
                ("front", "{{c1::Paris}} is on the {{c2::Seine}}."),
                ("tags", "europe"),
            ],
        )
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let page = ada.get_text(&deck_url).await;
    assert!(
        page.contains("2 cards") && page.contains("Study now (3 due)"),
        "{page}"
    );
    let list = ada.get_text("/decks").await;
    assert!(
        list.contains("3 due"),
        "the list shows each deck's due count: {list}"
    );

    // A cloze card without deletions is refused beside the form, with what was typed kept.
    let refused = ada
        .post_form(
            &cards_url,
            &[
                ("kind", "cloze"),
                ("front", "no deletions here"),
                ("back", "kept back"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = refused.text().await.unwrap();
    assert!(
        refused.contains(r#"id="card-error" role="alert""#),
        "{refused}"
    );
    assert!(
        refused.contains(">no deletions here</textarea>")
            && refused.contains(">kept back</textarea>"),
        "{refused}"
    );

    // Search and tag filter.
    let found = ada.get_text(&format!("{deck_url}?q=peru&tag=")).await;
    assert!(
        found.contains("1 of 2 cards match") && found.contains("Capital of Peru?"),
        "{found}"
    );
    assert!(!found.contains("is on the"), "{found}");
    let tagged = ada.get_text(&format!("{deck_url}?q=&tag=europe")).await;
    assert!(
        tagged.contains("1 of 2 cards match") && tagged.contains("Seine"),
        "{tagged}"
    );

    // The cloze preview is the backend's rendering.
    let preview = ada
        .get_text("/cards/preview?front=%7B%7Bc1%3A%3AParis%7D%7D%20is%20nice")
        .await;
    assert!(preview.contains("[...] is nice"), "{preview}");

    // Editing keeps the kind and saves the rest.
    let edit_link = found
        .split(r#"href="/cards/"#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let edit_url = format!("/cards/{edit_link}");
    assert!(edit_url.ends_with("/edit"), "{edit_url}");
    let form = ada.get_text(&edit_url).await;
    assert!(form.contains(">Capital of Peru?</textarea>"), "{form}");
    let saved = ada
        .post_form(
            &edit_url,
            &[
                ("kind", "basic"),
                ("front", "Capital of Peru?"),
                ("back", "Lima (since 1535)"),
                ("tags", "capitals"),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert!(ada.get_text(&deck_url).await.contains("Lima (since 1535)"));
    let kind_change = ada
        .post_form(&edit_url, &[("kind", "cloze"), ("front", "x")])
        .await;
    assert_eq!(kind_change.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Deleting a card asks first.
    let delete_url = edit_url.replace("/edit", "/delete");
    let confirm = ada.get_text(&delete_url).await;
    assert!(
        confirm.contains("Delete this card?") && confirm.contains("Cancel"),
        "{confirm}"
    );
    assert_eq!(
        ada.post_form(&delete_url, &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(
        ada.get_text(&deck_url).await.contains("1 card<"),
        "one card left"
    );

    // Renaming: an empty name is refused and the deck keeps its name.
    let rename_url = format!("{deck_url}/rename");
    let empty = ada.post_form(&rename_url, &[("name", "  ")]).await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.text().await.unwrap().contains(r#"id="rename-error""#));
    let renamed = ada
        .post_form(&rename_url, &[("name", "World geography")])
        .await;
    assert_eq!(renamed.status(), StatusCode::SEE_OTHER);
    assert!(
        ada.get_text(&deck_url)
            .await
            .contains("<h1>World geography</h1>")
    );

    // Export as CSV through the same origin, and import it back: the page says how many.
    let csv = ada.get_text(&format!("/api{deck_url}/export.csv")).await;
    assert!(
        csv.starts_with("kind,front,back,tags\n") && csv.contains("{{c2::Seine}}"),
        "{csv}"
    );
    let import_url = format!("{deck_url}/import");
    let import_csv = |csv: &str| {
        ada.upload(
            &import_url,
            "cards.csv",
            "text/csv",
            csv.as_bytes().to_vec(),
        )
    };
    let imported =
        import_csv("front,back,tags\nCapital of Chile?,Santiago,geo\nCapital of Peru?,Lima,geo\n")
            .await;
    assert_eq!(imported.status(), StatusCode::SEE_OTHER);
    let after = location(&imported).to_owned();
    assert!(after.ends_with("?imported=2&reviews=0"), "{after}");
    let page = ada.get_text(&after).await;
    assert!(
        page.contains("Imported 2 cards.") && page.contains("Santiago"),
        "{page}"
    );
    // The deck's own Anki package, imported back through the same form, doubles its cards and
    // brings the review one of them had.
    let cards: serde_json::Value = ada
        .get(&format!("/api{deck_url}/cards"))
        .await
        .json()
        .await
        .unwrap();
    let reviewed = &cards["items"][0];
    let review = ada
        .post_json(
            &format!("/api/cards/{}/review", reviewed["id"].as_str().unwrap()),
            &json!({"rating": "good", "ordinal": reviewed["ordinals"][0]}),
        )
        .await;
    assert_eq!(review.status(), StatusCode::OK);
    let package = ada
        .get(&format!("/api{deck_url}/export.apkg"))
        .await
        .bytes()
        .await
        .unwrap();
    let imported = ada
        .upload(
            &import_url,
            "deck.apkg",
            "application/apkg",
            package.to_vec(),
        )
        .await;
    assert_eq!(imported.status(), StatusCode::SEE_OTHER);
    let after = location(&imported).to_owned();
    assert!(after.ends_with("?imported=3&reviews=1"), "{after}");
    let page = ada.get_text(&after).await;
    assert!(
        page.contains("Imported 3 cards with 1 past review, which set when each comes up."),
        "{page}"
    );
    let bad = import_csv("front,back\nonly a front,\n").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad = bad.text().await.unwrap();
    assert!(
        bad.contains(r#"id="import-error" role="alert""#) && bad.contains("Row 2"),
        "{bad}"
    );

    // Deleting the deck asks first, naming what goes with it.
    let delete_url = format!("{deck_url}/delete");
    let confirm = ada.get_text(&delete_url).await;
    assert!(
        confirm.contains("Delete “World geography”?")
            && confirm.contains("its 6 cards will be gone"),
        "{confirm}"
    );
    let gone = ada.post_form(&delete_url, &[]).await;
    assert_eq!(gone.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&gone), "/decks");
    assert_eq!(ada.get(&deck_url).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_learner_makes_uses_and_deletes_an_api_token() {
    let stack = Stack::start("tokens");
    let ada = Learner::signed_up(&stack, "ada@example.org").await;
    let account = ada.get_text("/account").await;
    assert!(
        account.contains("No tokens yet.") && !account.contains("/admin/alerts"),
        "{account}"
    );

    let made = ada
        .post_form(
            "/account",
            &[("name", "sync script"), ("expires_in_days", "")],
        )
        .await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let made = made.text().await.unwrap();
    let secret = made
        .split(r#"<code class="secret">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the secret, shown once")
        .to_owned();
    // A client with no session: only the token speaks for it.
    let me_by_token = || {
        Client::new()
            .get(stack.url("/api/auth/me"))
            .bearer_auth(&secret)
            .send()
    };
    let me = me_by_token().await.unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the token works through the web app's /api"
    );

    let account = ada.get_text("/account").await;
    assert!(
        account.contains("sync script") && !account.contains(&secret),
        "{account}"
    );
    let delete = account
        .split(r#"action="/account/tokens/"#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let deleted = ada
        .post_form(&format!("/account/tokens/{delete}"), &[])
        .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    let refused = me_by_token().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let alerts = ada.get("/admin/alerts").await;
    assert_eq!(
        alerts.status(),
        StatusCode::FORBIDDEN,
        "alerts are for administrators"
    );
    assert!(alerts.text().await.unwrap().contains("For administrators"));
}

#[tokio::test]
async fn an_administrator_sees_the_alerts_alertmanager_sent() {
    let stack = Stack::start_with_administrator("alerts", "ops@example.org", PASSWORD);
    let sent = Client::new()
        .post(format!("{}/alerts", stack.backend.url()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(include_str!(
            "../../backend/tests/fixtures/alertmanager-firing.json"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::NO_CONTENT);

    let ops = Learner::at(stack.web.url());
    let signed_in = ops
        .post_form(
            "/sign-in",
            &[("email", "ops@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let account = ops.get_text("/account").await;
    assert!(
        account.contains(r#"href="/admin/alerts""#),
        "administrators get the link: {account}"
    );
    let alerts = ops.get("/admin/alerts").await;
    assert_eq!(alerts.status(), StatusCode::OK);
    let alerts = alerts.text().await.unwrap();
    assert_eq!(
        alerts.matches("<li class=\"alert firing\"").count(),
        2,
        "{alerts}"
    );
    assert!(
        alerts.contains("backend: more than 5% of requests fail"),
        "{alerts}"
    );
    assert!(alerts.contains(">Runbook</a>"), "{alerts}");
}

/// The first `href` or `src` in `page` that starts with `prefix`.
fn link_in(page: &str, prefix: &str) -> Option<String> {
    page.split('"')
        .find(|value| value.starts_with(prefix))
        .map(str::to_owned)
}

#[tokio::test]
async fn katex_comes_with_cards_that_have_maths_and_only_with_them() {
    let stack = Stack::start("maths");
    let ada = Learner::signed_up(&stack, "ada@example.org").await;
    let maths = ada.make_deck("Algebra").await;
    ada.add_card(&maths, r"What is \(x^2\) at \(x = 3\)?", "9")
        .await;
    let prices = ada.make_deck("Shopping").await;
    ada.add_card(&prices, "Which costs more, $5 or $10?", "$10")
        .await;

    for page in [
        ada.get_text(&maths).await,
        ada.get_text(&format!("{maths}/study")).await,
        ada.get_text(&format!("{maths}/study?reveal=1")).await,
    ] {
        let stylesheet = link_in(&page, "/assets/katex.").expect("KaTeX's stylesheet");
        assert!(stylesheet.ends_with("/katex.min.css"), "{stylesheet}");
        for script in ["/katex.min.js", "/contrib/auto-render.min.js"] {
            assert!(
                page.contains(&format!(
                    "{}{script}\" defer",
                    stylesheet.trim_end_matches("/katex.min.css")
                )),
                "{script}: {page}"
            );
        }
        let math_js = link_in(&page, "/assets/math.").expect("math.js");
        assert!(
            page.contains(&format!(r#"src="{math_js}" defer"#)),
            "{page}"
        );
        assert!(page.contains(r"data-math>What is \(x^2\)"), "{page}");
    }
    for page in [
        ada.get_text(&prices).await,
        ada.get_text(&format!("{prices}/study")).await,
        ada.get_text(&format!("{prices}/study?reveal=1")).await,
    ] {
        assert!(page.contains("$5 or $10"), "{page}");
        // (The card form names the scripts, for when maths is typed, but does not load them.)
        for loaded in [
            r#"<link rel="stylesheet" href="/assets/katex."#,
            r#"<script src="/assets/katex."#,
            r#"<script src="/assets/math."#,
            "data-math>",
        ] {
            assert!(
                !page.contains(loaded),
                "prices are not maths: {loaded} in {page}"
            );
        }
    }

    // What those links name is served, for a year, from the folder the stylesheet's relative
    // font paths resolve in.
    let page = ada.get_text(&format!("{maths}/study")).await;
    let stylesheet = link_in(&page, "/assets/katex.").unwrap();
    let folder = stylesheet.trim_end_matches("katex.min.css");
    let licence = link_in(&page, &format!("{folder}LICENSE")).expect("the licence is linked");
    for (path, media_type) in [
        (stylesheet.clone(), "text/css"),
        (
            format!("{folder}fonts/KaTeX_Main-Regular.woff2"),
            "font/woff2",
        ),
        (licence, "text/plain"),
    ] {
        let answer = ada.get(&path).await;
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        assert_eq!(
            answer.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable",
            "{path}"
        );
        let served = answer.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(served.starts_with(media_type), "{path}: {served}");
        let body = answer.bytes().await.unwrap();
        if media_type == "text/plain" {
            assert!(
                String::from_utf8_lossy(&body).contains("MIT License"),
                "the licence's text"
            );
        }
    }
    // Sent compressed to a browser that takes it.
    let script = format!("{folder}katex.min.js");
    let compressed = ada
        .request(Method::GET, &script)
        .header(header::ACCEPT_ENCODING, "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(compressed.headers()[header::VARY], "accept-encoding");
    let plain = ada.get(&script).await;
    assert!(!plain.headers().contains_key(header::CONTENT_ENCODING));
    assert!(
        compressed.bytes().await.unwrap().len() * 3 < plain.bytes().await.unwrap().len(),
        "gzip pays"
    );
    let elsewhere = ada
        .get("/assets/katex.0000000000000000/katex.min.css")
        .await;
    assert_eq!(
        elsewhere.status(),
        StatusCode::NOT_FOUND,
        "only the hashed folder"
    );
}

#[tokio::test]
async fn an_upload_is_answered_at_once_and_followed_until_the_reader_gives_up() {
    // No OCR service answers this stack: the upload is kept and offered for another try.
    let stack = Stack::start("reading");
    let ada = Learner::signed_up(&stack, "ada@example.org").await;
    let uploaded = ada
        .upload(
            "/documents",
            "notes.png",
            "image/png",
            b"\x89PNG not really".to_vec(),
        )
        .await;
    assert_eq!(uploaded.status(), StatusCode::SEE_OTHER);
    let page_url = location(&uploaded).to_owned();
    let id = page_url.trim_start_matches("/documents/").to_owned();

    // The backend's events come through the web app's origin and end when reading does.
    let mut events = ada.get(&format!("/api/documents/{id}/events")).await;
    assert_eq!(events.status(), StatusCode::OK);
    assert_eq!(events.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut stream = String::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(chunk) = events.chunk().await.unwrap() {
            stream.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    });
    assert!(read.await.is_ok(), "the stream ended: {stream}");
    assert!(stream.starts_with("event: document\n"), "{stream}");
    assert!(
        stream.contains("\"status\":\"failed_retryable\""),
        "{stream}"
    );

    let page = ada.get_text(&page_url).await;
    assert!(
        page.contains("could not be read yet") && page.contains("Your file is kept"),
        "{page}"
    );
    assert!(
        page.contains(&format!("action=\"/documents/{id}/read-again\"")),
        "{page}"
    );
    assert!(
        !page.contains("/api/documents/"),
        "no API talk for a learner: {page}"
    );

    let again = ada
        .post_form(&format!("/documents/{id}/read-again"), &[])
        .await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&again), page_url);
}
