//! The web app as a browser meets it, against the real backend binary on a fresh SQLite file:
//! signing up, in and out, decks, the API on the same origin, the security headers, refused
//! forms, and a backend that is down. (The full walk through in Chromium is its own test.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{PASSWORD, Stack, web_before};
use reqwest::{Client, StatusCode, header, redirect::Policy};

/// A browser's way with cookies, without following redirects, so each answer can be checked.
fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn location(response: &reqwest::Response) -> &str {
    response.headers()[header::LOCATION].to_str().unwrap()
}

async fn sign_up(stack: &Stack, browser: &Client, email: &str) {
    let response = browser
        .post(stack.url("/sign-up"))
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/decks");
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with("flashcards_session=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

#[tokio::test]
async fn a_learner_signs_up_makes_a_deck_and_signs_out() {
    let stack = Stack::start("journey");
    let browser = browser();

    let decks = browser.get(stack.url("/decks")).send().await.unwrap();
    assert_eq!(
        decks.status(),
        StatusCode::SEE_OTHER,
        "signed out, sent to sign in"
    );
    assert_eq!(location(&decks), "/sign-in");

    sign_up(&stack, &browser, "ada@example.org").await;
    let page = browser.get(stack.url("/decks")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("ada@example.org") && page.contains("No decks yet"),
        "{page}"
    );

    let made = browser
        .post(stack.url("/decks"))
        .form(&[("name", "Biology <cells> & more")])
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let deck_url = location(&made).to_owned();
    assert!(deck_url.starts_with("/decks/"), "{deck_url}");
    let deck = browser.get(stack.url(&deck_url)).send().await.unwrap();
    assert_eq!(deck.status(), StatusCode::OK);
    let deck = deck.text().await.unwrap();
    assert!(
        deck.contains("Biology &lt;cells&gt; &amp; more"),
        "escaped: {deck}"
    );
    let list = browser
        .get(stack.url("/decks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains(&format!(r#"href="{deck_url}""#)), "{list}");

    let empty = browser
        .post(stack.url("/decks"))
        .form(&[("name", "   ")])
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let empty = empty.text().await.unwrap();
    assert!(
        empty.contains(r#"role="alert""#) && empty.contains("Name"),
        "{empty}"
    );

    let out = browser.post(stack.url("/sign-out")).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/sign-in");
    let after = browser.get(stack.url("/decks")).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "the session is over");
}

#[tokio::test]
async fn another_learners_deck_is_not_found() {
    let stack = Stack::start("isolation");
    let (ada, bob) = (browser(), browser());
    sign_up(&stack, &ada, "ada@example.org").await;
    sign_up(&stack, &bob, "bob@example.org").await;
    let made = ada
        .post(stack.url("/decks"))
        .form(&[("name", "Private")])
        .send()
        .await
        .unwrap();
    let deck_url = location(&made).to_owned();
    let seen = bob.get(stack.url(&deck_url)).send().await.unwrap();
    assert_eq!(seen.status(), StatusCode::NOT_FOUND);
    assert!(!seen.text().await.unwrap().contains("Private"));
    for hostile in ["/decks/..%2Fauth%2Fme", "/decks/a%3Fb", "/decks/a%20b"] {
        let answer = bob.get(stack.url(hostile)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{hostile}");
    }
}

#[tokio::test]
async fn a_wrong_password_says_so_and_keeps_the_email() {
    let stack = Stack::start("wrong-password");
    sign_up(&stack, &browser(), "ada@example.org").await;
    let answer = browser()
        .post(stack.url("/sign-in"))
        .form(&[
            ("email", "ada@example.org"),
            ("password", "not the password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let page = answer.text().await.unwrap();
    assert!(page.contains("Wrong email or password."), "{page}");
    assert!(page.contains(r#"value="ada@example.org""#), "{page}");
    assert!(!page.contains("not the password"), "{page}");
}

#[tokio::test]
async fn the_api_is_the_backends_on_the_same_origin() {
    let stack = Stack::start("api");
    let client = browser();
    let made = client
        .post(stack.url("/api/auth/register"))
        .json(&serde_json::json!({"email": "ada@example.org", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let login = client
        .post(stack.url("/api/auth/login"))
        .json(&serde_json::json!({"email": "ada@example.org", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let me: serde_json::Value = client
        .get(stack.url("/api/auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ada@example.org");
    // The backend's own refusal of a change from another site reaches the browser unchanged.
    let foreign = client
        .post(stack.url("/api/decks"))
        .header("sec-fetch-site", "cross-site")
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let malformed = client
        .post(stack.url("/api/decks"))
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
    let page = browser().get(stack.url("/sign-in")).send().await.unwrap();
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
    let css = browser().get(stack.url(&stylesheet)).send().await.unwrap();
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
        browser()
            .get(stack.url("/assets/app.css"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND,
        "only hashed names are served"
    );
    let missing = browser()
        .get(stack.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("Page not found"));
}

#[tokio::test]
async fn a_form_from_another_site_is_refused() {
    let stack = Stack::start("cross-site");
    let browser = browser();
    sign_up(&stack, &browser, "ada@example.org").await;
    let forged = browser
        .post(stack.url("/decks"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("name", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let list = browser
        .get(stack.url("/decks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains("forged"), "{list}");
}

#[tokio::test]
async fn a_backend_that_is_down_is_a_clear_message_and_the_form_keeps_its_values() {
    // The discard port: nothing answers there.
    let web = web_before("http://127.0.0.1:9");
    let client = browser();
    let sign_in = client
        .get(format!("{}/sign-in", web.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        sign_in.status(),
        StatusCode::OK,
        "pages that need no data still render"
    );
    let refused = client
        .post(format!("{}/sign-in", web.url()))
        .form(&[("email", "ada@example.org"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = refused.text().await.unwrap();
    assert!(page.contains("cannot be reached"), "{page}");
    assert!(page.contains(r#"value="ada@example.org""#), "{page}");
    let decks = client
        .get(format!("{}/decks", web.url()))
        .header(header::COOKIE, "flashcards_session=fcs_x")
        .send()
        .await
        .unwrap();
    assert_eq!(decks.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(decks.text().await.unwrap().contains("cannot be reached"));
    let api = client
        .get(format!("{}/api/decks", web.url()))
        .send()
        .await
        .unwrap();
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
    let browser = browser();
    sign_up(&stack, &browser, "ada@example.org").await;
    let made = browser
        .post(stack.url("/decks"))
        .form(&[("name", "Capitals")])
        .send()
        .await
        .unwrap();
    let deck_url = location(&made).to_owned();
    let deck_id = deck_url.trim_start_matches("/decks/").to_owned();
    let card = browser
        .post(stack.url(&format!("/api/decks/{deck_id}/cards")))
        .json(&serde_json::json!({"front": "Capital of Peru?", "back": "Lima"}))
        .send()
        .await
        .unwrap();
    assert_eq!(card.status(), StatusCode::CREATED);

    let deck = browser
        .get(stack.url(&deck_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(deck.contains("Study now (1 due)"), "{deck}");

    let study_url = format!("{deck_url}/study");
    let front = browser
        .get(stack.url(&study_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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

    let back = browser
        .get(stack.url(&format!("{study_url}?reveal=1")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    let rated = browser
        .post(stack.url(&study_url))
        .form(&[
            ("card_id", card_id.as_str()),
            ("ordinal", "1"),
            ("rating", "good"),
            ("good", "0"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(rated.status(), StatusCode::SEE_OTHER);
    let next = location(&rated).to_owned();
    assert!(next.ends_with("again=0&hard=0&good=1&easy=0"), "{next}");
    let summary = browser
        .get(stack.url(&next))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        summary.contains("Done for now: 1 review in this sitting."),
        "{summary}"
    );
    let deck = browser
        .get(stack.url(&deck_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    let browser = browser();
    sign_up(&stack, &browser, "ada@example.org").await;
    let made = browser
        .post(stack.url("/decks"))
        .form(&[("name", "Geography")])
        .send()
        .await
        .unwrap();
    let deck_url = location(&made).to_owned();
    let get = |path: String| {
        let browser = browser.clone();
        let url = stack.url(&path);
        async move { browser.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let post = |path: String, form: Vec<(&'static str, &'static str)>| {
        let browser = browser.clone();
        let url = stack.url(&path);
        async move { browser.post(url).form(&form).send().await.unwrap() }
    };

    // A basic card and a cloze card through the deck page's form.
    let added = post(
        format!("{deck_url}/cards"),
        vec![
            ("kind", "basic"),
            ("front", "Capital of Peru?"),
            ("back", "Lima"),
            ("tags", "capitals, south-america"),
        ],
    )
    .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let added = post(
        format!("{deck_url}/cards"),
        vec![
            ("kind", "cloze"),
            ("front", "{{c1::Paris}} is on the {{c2::Seine}}."),
            ("tags", "europe"),
        ],
    )
    .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let page = get(deck_url.clone()).await;
    assert!(
        page.contains("2 cards") && page.contains("Study now (3 due)"),
        "{page}"
    );
    let list = get("/decks".to_owned()).await;
    assert!(
        list.contains("3 due"),
        "the list shows each deck's due count: {list}"
    );

    // A cloze card without deletions is refused beside the form, with what was typed kept.
    let refused = post(
        format!("{deck_url}/cards"),
        vec![
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
    let found = get(format!("{deck_url}?q=peru&tag=")).await;
    assert!(
        found.contains("1 of 2 cards match") && found.contains("Capital of Peru?"),
        "{found}"
    );
    assert!(!found.contains("is on the"), "{found}");
    let tagged = get(format!("{deck_url}?q=&tag=europe")).await;
    assert!(
        tagged.contains("1 of 2 cards match") && tagged.contains("Seine"),
        "{tagged}"
    );

    // The cloze preview is the backend's rendering.
    let preview =
        get("/cards/preview?front=%7B%7Bc1%3A%3AParis%7D%7D%20is%20nice".to_owned()).await;
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
    let form = get(edit_url.clone()).await;
    assert!(form.contains(">Capital of Peru?</textarea>"), "{form}");
    let saved = post(
        edit_url.clone(),
        vec![
            ("kind", "basic"),
            ("front", "Capital of Peru?"),
            ("back", "Lima (since 1535)"),
            ("tags", "capitals"),
        ],
    )
    .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert!(get(deck_url.clone()).await.contains("Lima (since 1535)"));
    let kind_change = post(edit_url.clone(), vec![("kind", "cloze"), ("front", "x")]).await;
    assert_eq!(kind_change.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Deleting a card asks first.
    let delete_url = edit_url.replace("/edit", "/delete");
    let confirm = get(delete_url.clone()).await;
    assert!(
        confirm.contains("Delete this card?") && confirm.contains("Cancel"),
        "{confirm}"
    );
    assert_eq!(
        post(delete_url, vec![]).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(
        get(deck_url.clone()).await.contains("1 card<"),
        "one card left"
    );

    // Renaming: an empty name is refused and the deck keeps its name.
    let empty = post(format!("{deck_url}/rename"), vec![("name", "  ")]).await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.text().await.unwrap().contains(r#"id="rename-error""#));
    let renamed = post(
        format!("{deck_url}/rename"),
        vec![("name", "World geography")],
    )
    .await;
    assert_eq!(renamed.status(), StatusCode::SEE_OTHER);
    assert!(
        get(deck_url.clone())
            .await
            .contains("<h1>World geography</h1>")
    );

    // Export as CSV through the same origin, and import it back: the page says how many.
    let csv = browser
        .get(stack.url(&format!("/api{deck_url}/export.csv")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("kind,front,back,tags\n") && csv.contains("{{c2::Seine}}"),
        "{csv}"
    );
    let import = |body: &'static str| {
        let browser = browser.clone();
        let url = stack.url(&format!("{deck_url}/import"));
        async move {
            let file = reqwest::multipart::Part::bytes(body.as_bytes().to_vec())
                .file_name("cards.csv")
                .mime_str("text/csv")
                .unwrap();
            browser
                .post(url)
                .multipart(reqwest::multipart::Form::new().part("file", file))
                .send()
                .await
                .unwrap()
        }
    };
    let imported =
        import("front,back,tags\nCapital of Chile?,Santiago,geo\nCapital of Peru?,Lima,geo\n")
            .await;
    assert_eq!(imported.status(), StatusCode::SEE_OTHER);
    let after = location(&imported).to_owned();
    assert!(after.ends_with("?imported=2&reviews=0"), "{after}");
    let page = get(after).await;
    assert!(
        page.contains("Imported 2 cards.") && page.contains("Santiago"),
        "{page}"
    );
    // The deck's own Anki package, imported back through the same form, doubles its cards and
    // brings the review one of them had.
    let cards: serde_json::Value = browser
        .get(stack.url(&format!("/api{deck_url}/cards")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reviewed = &cards["items"][0];
    let review = browser
        .post(stack.url(&format!(
            "/api/cards/{}/review",
            reviewed["id"].as_str().unwrap()
        )))
        .json(&serde_json::json!({"rating": "good", "ordinal": reviewed["ordinals"][0]}))
        .send()
        .await
        .unwrap();
    assert_eq!(review.status(), StatusCode::OK);
    let package = browser
        .get(stack.url(&format!("/api{deck_url}/export.apkg")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = reqwest::multipart::Part::bytes(package.to_vec())
        .file_name("deck.apkg")
        .mime_str("application/apkg")
        .unwrap();
    let imported = browser
        .post(stack.url(&format!("{deck_url}/import")))
        .multipart(reqwest::multipart::Form::new().part("file", file))
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), StatusCode::SEE_OTHER);
    let after = location(&imported).to_owned();
    assert!(after.ends_with("?imported=3&reviews=1"), "{after}");
    let page = get(after).await;
    assert!(
        page.contains("Imported 3 cards with 1 past review, which set when each comes up."),
        "{page}"
    );
    let bad = import("front,back\nonly a front,\n").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad = bad.text().await.unwrap();
    assert!(
        bad.contains(r#"id="import-error" role="alert""#) && bad.contains("Row 2"),
        "{bad}"
    );

    // Deleting the deck asks first, naming what goes with it.
    let confirm = get(format!("{deck_url}/delete")).await;
    assert!(
        confirm.contains("Delete “World geography”?")
            && confirm.contains("its 6 cards will be gone"),
        "{confirm}"
    );
    let gone = post(format!("{deck_url}/delete"), vec![]).await;
    assert_eq!(gone.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&gone), "/decks");
    assert_eq!(
        browser
            .get(stack.url(&deck_url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_learner_makes_uses_and_deletes_an_api_token() {
    let stack = Stack::start("tokens");
    let browser = browser();
    sign_up(&stack, &browser, "ada@example.org").await;
    let account = browser
        .get(stack.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        account.contains("No tokens yet.") && !account.contains("/admin/alerts"),
        "{account}"
    );

    let made = browser
        .post(stack.url("/account"))
        .form(&[("name", "sync script"), ("expires_in_days", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let made = made.text().await.unwrap();
    let secret = made
        .split(r#"<code class="secret">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the secret, shown once")
        .to_owned();
    let me = Client::new()
        .get(stack.url("/api/auth/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the token works through the web app's /api"
    );

    let account = browser
        .get(stack.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    let deleted = browser
        .post(stack.url(&format!("/account/tokens/{delete}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    let refused = Client::new()
        .get(stack.url("/api/auth/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let alerts = browser
        .get(stack.url("/admin/alerts"))
        .send()
        .await
        .unwrap();
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

    let browser = browser();
    let signed_in = browser
        .post(stack.url("/sign-in"))
        .form(&[("email", "ops@example.org"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let account = browser
        .get(stack.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        account.contains(r#"href="/admin/alerts""#),
        "administrators get the link: {account}"
    );
    let alerts = browser
        .get(stack.url("/admin/alerts"))
        .send()
        .await
        .unwrap();
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
    let browser = browser();
    sign_up(&stack, &browser, "ada@example.org").await;
    let get = |path: String| {
        let browser = browser.clone();
        let url = stack.url(&path);
        async move { browser.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let deck_with = |name: &'static str, front: &'static str, back: &'static str| {
        let browser = browser.clone();
        let decks = stack.url("/decks");
        let api = stack.url("/api/decks");
        async move {
            let made = browser
                .post(decks)
                .form(&[("name", name)])
                .send()
                .await
                .unwrap();
            let deck_url = location(&made).to_owned();
            let id = deck_url.trim_start_matches("/decks/");
            let card = browser
                .post(format!("{api}/{id}/cards"))
                .json(&serde_json::json!({"front": front, "back": back}))
                .send()
                .await
                .unwrap();
            assert_eq!(card.status(), StatusCode::CREATED);
            deck_url
        }
    };
    let maths = deck_with("Algebra", r"What is \(x^2\) at \(x = 3\)?", "9").await;
    let prices = deck_with("Shopping", "Which costs more, $5 or $10?", "$10").await;

    for page in [
        get(maths.clone()).await,
        get(format!("{maths}/study")).await,
        get(format!("{maths}/study?reveal=1")).await,
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
        get(prices.clone()).await,
        get(format!("{prices}/study")).await,
        get(format!("{prices}/study?reveal=1")).await,
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
    let page = get(format!("{maths}/study")).await;
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
        let answer = browser.get(stack.url(&path)).send().await.unwrap();
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
    let compressed = browser
        .get(stack.url(&script))
        .header(header::ACCEPT_ENCODING, "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(compressed.headers()[header::VARY], "accept-encoding");
    let plain = browser.get(stack.url(&script)).send().await.unwrap();
    assert!(!plain.headers().contains_key(header::CONTENT_ENCODING));
    assert!(
        compressed.bytes().await.unwrap().len() * 3 < plain.bytes().await.unwrap().len(),
        "gzip pays"
    );
    let elsewhere = browser
        .get(stack.url("/assets/katex.0000000000000000/katex.min.css"))
        .send()
        .await
        .unwrap();
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
    let browser = browser();
    sign_up(&stack, &browser, "ada@example.org").await;
    let part = reqwest::multipart::Part::bytes(b"\x89PNG not really".to_vec())
        .file_name("notes.png")
        .mime_str("image/png")
        .unwrap();
    let uploaded = browser
        .post(stack.url("/documents"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::SEE_OTHER);
    let page_url = location(&uploaded).to_owned();
    let id = page_url.trim_start_matches("/documents/").to_owned();

    // The backend's events come through the web app's origin and end when reading does.
    let mut events = browser
        .get(stack.url(&format!("/api/documents/{id}/events")))
        .send()
        .await
        .unwrap();
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

    let page = browser.get(stack.url(&page_url)).send().await.unwrap();
    let page = page.text().await.unwrap();
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

    let again = browser
        .post(stack.url(&format!("/documents/{id}/read-again")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&again), page_url);
}
