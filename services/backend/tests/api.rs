//! The HTTP API against real databases: every scenario runs on a SQLite file and on PostgreSQL.

#![allow(clippy::unwrap_used)]

mod support;

use flashcards_backend::auth::MAX_LOGIN_FAILURES;
use fsrs::{FSRS, MemoryState};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;
use support::{PASSWORD, SESSION_TTL_MS, TestServer};

on_both_databases!(
    registration_and_login,
    wrong_passwords_hold_off_an_accounts_logins,
    cookie_changes_from_other_origins_are_refused,
    sessions_expire_and_logout_ends_them,
    api_tokens_authenticate_until_deleted,
    users_never_see_each_others_objects,
    deck_crud_and_pagination,
    card_crud_with_tags_and_source,
    cloze_cards_make_one_item_per_deletion,
    concurrent_edits_of_one_card_both_land,
    card_lists_reflect_every_change,
    concurrent_reviews_are_each_recorded_once,
    reviews_and_card_edits_write_side_by_side,
    a_write_that_read_first_survives_a_review_committing,
    reviews_follow_fsrs_and_are_logged,
    due_counts_are_per_deck_and_per_user,
    deck_statistics_count_reviews_retention_and_the_forecast,
    decks_go_out_and_come_back_as_csv,
    bad_input_is_rejected_and_changes_nothing,
    metrics_count_known_traffic,
    a_database_outage_answers_503_and_logs_nobody_out,
);

async fn registration_and_login(server: TestServer) {
    let created = server.register("Ada@Example.org").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let user: Value = created.json().await.unwrap();
    assert_eq!(user["email"], "ada@example.org");

    let duplicate = server.register(" ada@example.ORG ").await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);

    let wrong_password = server
        .attempt_login("ada@example.org", "not the password")
        .await;
    let unknown_user = server
        .attempt_login("nobody@example.org", "not the password")
        .await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_user.status(), StatusCode::UNAUTHORIZED);
    let wrong_body = wrong_password.text().await.unwrap();
    assert_eq!(wrong_body, unknown_user.text().await.unwrap());
    assert!(!wrong_body.contains("ada"));

    let ok = server.attempt_login("ada@example.org", PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let cookie = ok
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("flashcards_session=fcs_"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        cookie.contains(&format!("Max-Age={}", SESSION_TTL_MS / 1000)),
        "{cookie}"
    );

    let ada = server.login("ada@example.org").await;
    let (status, me) = ada.get("/api/auth/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "ada@example.org");
    assert_eq!(me["id"], user["id"]);

    let stored: String = sqlx::query("SELECT password_hash FROM users WHERE email = $1")
        .bind("ada@example.org")
        .fetch_one(&server.state.db.read)
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("$argon2id$") && !stored.contains(PASSWORD));

    let (status, body) = into(server.anonymous().get(server.url("/api/auth/me"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
}

/// Ten wrong passwords hold off the account's logins, the right one included, for 15 minutes;
/// other accounts and existing sessions are untouched.
async fn wrong_passwords_hold_off_an_accounts_logins(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let bob = server.register("bob@example.org").await;
    assert_eq!(bob.status(), StatusCode::CREATED);
    for _ in 0..MAX_LOGIN_FAILURES {
        let wrong = server
            .attempt_login("ada@example.org", "not the password")
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let held = server.attempt_login("Ada@example.org", PASSWORD).await;
    assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(held.headers()["retry-after"], "900");
    let body: Value = held.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests", "{body}");

    assert_eq!(
        server
            .attempt_login("bob@example.org", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(ada.get("/api/auth/me").await.0, StatusCode::OK);

    server.state.clock.advance_ms(15 * 60_000);
    assert_eq!(
        server
            .attempt_login("ada@example.org", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}

/// A browser page of another origin (a sibling subdomain gets past SameSite=Lax) cannot change
/// anything with the session cookie; the app's own pages, reads and bearer tokens can.
async fn cookie_changes_from_other_origins_are_refused(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let decks = format!("{}/api/decks", ada.base);
    let create = |site: &'static str| {
        ada.client
            .post(&decks)
            .header("Sec-Fetch-Site", site)
            .json(&json!({"name": site}))
    };
    for site in ["same-site", "cross-site"] {
        let (status, body) = into(create(site)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{site}: {body}");
        assert_eq!(body["error"], "forbidden");
    }
    let (status, _) = into(create("same-origin")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, listed) = into(
        ada.client
            .get(&decks)
            .header("Sec-Fetch-Site", "cross-site"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");

    let (_, token) = ada
        .post("/api/auth/tokens", json!({"name": "script"}))
        .await;
    let (status, _) = into(
        server
            .anonymous()
            .post(&decks)
            .bearer_auth(token["token"].as_str().unwrap())
            .header("Sec-Fetch-Site", "cross-site")
            .json(&json!({"name": "by token"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a bearer token is not a browser's own"
    );
}

async fn into(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    support::into_parts(request.send().await.unwrap()).await
}

async fn sessions_expire_and_logout_ends_them(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let ada_again = server.login("ada@example.org").await;
    assert_eq!(ada.get("/api/auth/me").await.0, StatusCode::OK);

    let (status, _) = ada.post("/api/auth/logout", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(ada.get("/api/auth/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        ada_again.get("/api/auth/me").await.0,
        StatusCode::OK,
        "other sessions live on"
    );

    server.state.clock.advance_ms(SESSION_TTL_MS + 1);
    assert_eq!(
        ada_again.get("/api/auth/me").await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn api_tokens_authenticate_until_deleted(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let (status, created) = ada
        .post("/api/auth/tokens", json!({"name": "script"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("fct_"));

    let bearer = |path: &str| {
        server
            .anonymous()
            .get(server.url(path))
            .bearer_auth(&secret)
    };
    let (status, me) = into(bearer("/api/auth/me")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], ada.id.as_str());

    let (_, listed) = ada.get("/api/auth/tokens").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("token").is_none(), "secrets are shown once");

    let stored: String = sqlx::query("SELECT token_hash FROM auth_tokens WHERE kind = 'api'")
        .fetch_one(&server.state.db.read)
        .await
        .unwrap()
        .get(0);
    assert!(!stored.contains(&secret[4..]));

    let id = created["id"].as_str().unwrap();
    assert_eq!(
        ada.delete(&format!("/api/auth/tokens/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        into(bearer("/api/auth/me")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ada.delete(&format!("/api/auth/tokens/{id}")).await.0,
        StatusCode::NOT_FOUND
    );

    // Revoked by another replica (the row deleted behind this one's back): refused once the
    // credential cache's lifetime has passed.
    let (_, other) = ada
        .post("/api/auth/tokens", json!({"name": "elsewhere"}))
        .await;
    let other_secret = other["token"].as_str().unwrap().to_owned();
    let other_me = || {
        server
            .anonymous()
            .get(server.url("/api/auth/me"))
            .bearer_auth(&other_secret)
    };
    assert_eq!(into(other_me()).await.0, StatusCode::OK);
    sqlx::query("DELETE FROM auth_tokens WHERE id = $1")
        .bind(other["id"].as_str().unwrap())
        .execute(&server.state.db.write)
        .await
        .unwrap();
    server
        .state
        .clock
        .advance_ms(flashcards_backend::auth::CACHE_TTL_MS);
    assert_eq!(into(other_me()).await.0, StatusCode::UNAUTHORIZED);

    let (status, body) = into(
        server
            .anonymous()
            .get(server.url("/api/auth/me"))
            .bearer_auth("fct_made-up"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
}

async fn users_never_see_each_others_objects(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let bob = server.user("bob@example.org").await;
    for (owner, other) in [(&ada, &bob), (&bob, &ada)] {
        let deck = owner.deck("private").await;
        let card = owner.basic(&deck, "secret question", "secret answer").await;
        let deck_path = format!("/api/decks/{deck}");
        let card_path = format!("/api/cards/{card}");

        let attempts = [
            other.get(&deck_path).await,
            other.get(&format!("{deck_path}/cards")).await,
            other.get(&format!("{deck_path}/study")).await,
            other.get(&card_path).await,
            other.patch(&deck_path, json!({"name": "mine now"})).await,
            other.patch(&card_path, json!({"front": "mine now"})).await,
            other
                .post(
                    &format!("{deck_path}/cards"),
                    json!({"front": "q", "back": "a"}),
                )
                .await,
            other
                .post(&format!("{card_path}/review"), json!({"rating": "easy"}))
                .await,
            other.delete(&card_path).await,
            other.delete(&deck_path).await,
        ];
        for (status, body) in attempts {
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
            assert!(!body.to_string().contains("secret"), "{body}");
        }
        let (_, others_decks) = other.get("/api/decks").await;
        assert!(
            others_decks["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["id"] != deck.as_str())
        );
        // Moving one's own card into someone else's deck is refused too.
        let own_deck = other.deck("own").await;
        let own_card = other.basic(&own_deck, "q", "a").await;
        let (status, _) = other
            .patch(&format!("/api/cards/{own_card}"), json!({"deck_id": deck}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let (status, still) = owner.get(&card_path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(still["front"], "secret question");
        assert_eq!(owner.get(&deck_path).await.1["name"], "private");
        let (_, study) = owner.get(&format!("{deck_path}/study")).await;
        assert_eq!(
            study["items"][0]["reps"], 0,
            "the other user's review did not count"
        );
    }
}

async fn deck_crud_and_pagination(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(ada.deck(&format!("deck {n}")).await);
    }
    let mut seen = Vec::new();
    let mut path = "/api/decks?limit=2".to_owned();
    loop {
        let (status, page) = ada.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|d| d["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/decks?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "pages cover every deck once, in creation order");

    let deck = &ids[0];
    let (status, patched) = ada
        .patch(
            &format!("/api/decks/{deck}"),
            json!({"name": "  Biology  ", "description": "cells"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["name"], "Biology");
    assert_eq!(patched["description"], "cells");
    let (_, fetched) = ada.get(&format!("/api/decks/{deck}")).await;
    assert_eq!(fetched["name"], "Biology");

    let card = ada.basic(deck, "q", "a").await;
    assert_eq!(
        ada.delete(&format!("/api/decks/{deck}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ada.get(&format!("/api/decks/{deck}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ada.get(&format!("/api/cards/{card}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ada.delete(&format!("/api/decks/{deck}")).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn card_crud_with_tags_and_source(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("bio").await;
    let other_deck = ada.deck("chem").await;
    let created = ada
        .card(
            &deck,
            json!({
                "front": "What does the mitochondrion make?",
                "back": "ATP",
                "tags": ["cell", "cell", "energy"],
                "source": {"document_id": "doc-1", "page": 3, "start": 120, "end": 164,
                           "bbox": [10.5, 20.0, 300.0, 40.0]}
            }),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["kind"], "basic");
    assert_eq!(created["tags"], json!(["cell", "energy"]));
    assert_eq!(created["ordinals"], json!([1]));

    let (status, fetched) = ada.get(&format!("/api/cards/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["source"]["page"], 3);
    assert_eq!(fetched["source"]["start"], 120);
    assert_eq!(fetched["source"]["end"], 164);
    assert_eq!(fetched["source"]["bbox"], json!([10.5, 20.0, 300.0, 40.0]));
    assert_eq!(fetched["back"], "ATP");

    let (status, patched) = ada
        .patch(
            &format!("/api/cards/{id}"),
            json!({"back": "ATP (adenosine triphosphate)", "tags": ["bio"], "source": null,
                   "deck_id": other_deck}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["front"], "What does the mitochondrion make?");
    assert_eq!(patched["source"], Value::Null);
    let (_, fetched) = ada.get(&format!("/api/cards/{id}")).await;
    assert_eq!(fetched["back"], "ATP (adenosine triphosphate)");
    assert_eq!(fetched["tags"], json!(["bio"]));
    assert_eq!(fetched["deck_id"], other_deck.as_str());
    assert_eq!(fetched["source"], Value::Null);
    let (_, moved) = ada.get(&format!("/api/decks/{other_deck}/study")).await;
    assert_eq!(
        moved["items"].as_array().unwrap().len(),
        1,
        "its study item moved too"
    );
    let (_, old) = ada.get(&format!("/api/decks/{deck}/cards")).await;
    assert_eq!(old["items"], json!([]));

    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(ada.basic(&deck, &format!("q{n}"), "a").await);
    }
    let (_, first) = ada.get(&format!("/api/decks/{deck}/cards?limit=4")).await;
    let next = first["next"].as_str().unwrap();
    let (_, second) = ada
        .get(&format!("/api/decks/{deck}/cards?limit=4&after={next}"))
        .await;
    let listed: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);
    assert!(second.get("next").is_none());

    assert_eq!(
        ada.delete(&format!("/api/cards/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ada.get(&format!("/api/cards/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ada.delete(&format!("/api/cards/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn concurrent_edits_of_one_card_both_land(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("d").await;
    let card = ada.basic(&deck, "q", "a").await;
    let path = format!("/api/cards/{card}");
    for round in 0..10 {
        let (front, tags) = tokio::join!(
            ada.patch(&path, json!({"front": format!("q{round}")})),
            ada.patch(&path, json!({"tags": [format!("t{round}")]})),
        );
        assert_eq!(front.0, StatusCode::OK);
        assert_eq!(tags.0, StatusCode::OK);
        let (_, now) = ada.get(&path).await;
        assert_eq!(now["front"], format!("q{round}"), "round {round}");
        assert_eq!(now["tags"], json!([format!("t{round}")]), "round {round}");
    }
}

/// Lists are cached on SQLite: every kind of change must show in the next read of the same page.
async fn card_lists_reflect_every_change(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("a").await;
    let other = ada.deck("b").await;
    let list = |deck: String| {
        let ada = &ada;
        async move {
            let (status, page) = ada.get(&format!("/api/decks/{deck}/cards")).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["front"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(list(deck.clone()).await.is_empty());
    let card = ada.basic(&deck, "one", "1").await;
    assert_eq!(list(deck.clone()).await, ["one"]);
    assert_eq!(list(deck.clone()).await, ["one"], "a repeated read");
    ada.patch(&format!("/api/cards/{card}"), json!({"front": "uno"}))
        .await;
    assert_eq!(list(deck.clone()).await, ["uno"]);
    assert!(list(other.clone()).await.is_empty());
    ada.patch(&format!("/api/cards/{card}"), json!({"deck_id": other}))
        .await;
    assert!(list(deck.clone()).await.is_empty());
    assert_eq!(list(other.clone()).await, ["uno"]);
    ada.delete(&format!("/api/cards/{card}")).await;
    assert!(list(other.clone()).await.is_empty());
    ada.basic(&other, "two", "2").await;
    assert_eq!(list(other.clone()).await, ["two"]);
    ada.delete(&format!("/api/decks/{other}")).await;
    let (status, _) = ada.get(&format!("/api/decks/{other}/cards")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another user asking for the same page never gets the cached one.
    let bob = server.user("bob@example.org").await;
    let (status, _) = bob.get(&format!("/api/decks/{deck}/cards")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn concurrent_reviews_are_each_recorded_once(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("d").await;
    let first = ada.basic(&deck, "q1", "a").await;
    let second = ada.basic(&deck, "q2", "a").await;
    let requests: Vec<_> = (0..40)
        .map(|n| {
            let card = if n % 2 == 0 { &first } else { &second };
            let request = ada
                .client
                .post(server.url(&format!("/api/cards/{card}/review")))
                .json(&json!({"rating": "good"}));
            tokio::spawn(async move { support::into_parts(request.send().await.unwrap()).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for request in requests {
        outcomes.push(request.await.unwrap());
    }
    let mut reps: Vec<i64> = Vec::new();
    for (status, outcome) in &outcomes {
        assert_eq!(*status, StatusCode::OK, "{outcome}");
        reps.push(outcome["reps"].as_i64().unwrap());
    }
    reps.sort_unstable();
    let expected: Vec<i64> = (1..=20).flat_map(|n| [n, n]).collect();
    assert_eq!(reps, expected, "every review saw the one before it");
    let logged: i64 = sqlx::query("SELECT COUNT(*) FROM review_logs")
        .fetch_one(&server.state.db.read)
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 40);
}

/// On SQLite reviews have a writer connection of their own next to the pool's: card edits, which
/// read before they write, must neither fail nor be lost while reviews are being written.
async fn reviews_and_card_edits_write_side_by_side(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("d").await;
    let reviewed = ada.basic(&deck, "reviewed", "a").await;
    let edited = ada.basic(&deck, "edited", "a").await;
    let mut requests = Vec::new();
    for n in 0..30 {
        let review = ada
            .client
            .post(server.url(&format!("/api/cards/{reviewed}/review")))
            .json(&json!({"rating": "good"}));
        let edit = ada
            .client
            .patch(server.url(&format!("/api/cards/{edited}")))
            .json(&json!({"back": format!("edit {n}"), "tags": [format!("t{n}")]}));
        let create = ada
            .client
            .post(server.url(&format!("/api/decks/{deck}/cards")))
            .json(&json!({"front": format!("new {n}"), "back": "a"}));
        for request in [review, edit, create] {
            requests.push(tokio::spawn(async move {
                support::into_parts(request.send().await.unwrap()).await
            }));
        }
    }
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert!(status.is_success(), "{status}: {body}");
    }
    let reps: i64 = sqlx::query("SELECT reps FROM study_items WHERE card_id = $1")
        .bind(&reviewed)
        .fetch_one(&server.state.db.read)
        .await
        .unwrap()
        .get(0);
    assert_eq!(reps, 30, "every review saw the one before it");
    let (_, card) = ada.get(&format!("/api/cards/{edited}")).await;
    assert!(
        card["back"].as_str().unwrap().starts_with("edit "),
        "{card}"
    );
    let (_, cards) = ada.get(&format!("/api/decks/{deck}/cards?limit=100")).await;
    assert_eq!(cards["items"].as_array().unwrap().len(), 32, "{cards}");
    let logged: i64 = sqlx::query("SELECT COUNT(*) FROM review_logs")
        .fetch_one(&server.state.db.read)
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 30);
}

/// A write transaction that has read is not undone by a review committing before its write. On
/// SQLite the review writer waits for the write pool's connection, which the transaction holds;
/// had the review gone first, the transaction's write would fail on its outdated snapshot.
async fn a_write_that_read_first_survives_a_review_committing(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("d").await;
    let card = ada.basic(&deck, "q", "a").await;
    let mut tx = server.state.db.begin_write().await.unwrap();
    let back: String = sqlx::query("SELECT back FROM cards WHERE id = $1")
        .bind(&card)
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .get(0);
    let review = ada
        .client
        .post(server.url(&format!("/api/cards/{card}/review")))
        .json(&json!({"rating": "good"}));
    let mut review =
        tokio::spawn(async move { support::into_parts(review.send().await.unwrap()).await });
    // Time for the review to commit, were it not made to wait.
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut review).await;
    sqlx::query("UPDATE cards SET back = $1 WHERE id = $2")
        .bind(format!("{back}, edited"))
        .bind(&card)
        .execute(&mut *tx)
        .await
        .expect("the write after the read");
    tx.commit().await.unwrap();
    let (status, body) = match early {
        Ok(finished) => finished.unwrap(),
        Err(_) => review.await.unwrap(),
    };
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, stored) = ada.get(&format!("/api/cards/{card}")).await;
    assert_eq!(stored["back"], "a, edited");
}

async fn cloze_cards_make_one_item_per_deletion(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("geo").await;
    let card = ada
        .card(
            &deck,
            json!({"kind": "cloze",
                   "front": "{{c1::Paris}} is the capital of {{c2::France::country}}, on the {{c3::Seine}}.",
                   "back": "Since 508."}),
        )
        .await;
    assert_eq!(card["ordinals"], json!([1, 2, 3]));
    let id = card["id"].as_str().unwrap();

    let (_, queue) = ada.get(&format!("/api/decks/{deck}/study")).await;
    let items = queue["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[0]["prompt"],
        "[...] is the capital of France, on the Seine."
    );
    assert_eq!(
        items[1]["prompt"],
        "Paris is the capital of [country], on the Seine."
    );
    assert_eq!(
        items[2]["prompt"],
        "Paris is the capital of France, on the [...]."
    );
    for item in items {
        assert_eq!(
            item["answer"],
            "Paris is the capital of France, on the Seine."
        );
        assert_eq!(item["extra"], "Since 508.");
        assert_eq!(item["new"], true);
    }

    let (status, body) = ada
        .post(
            &format!("/api/cards/{id}/review"),
            json!({"rating": "good"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().starts_with("ordinal:"),
        "{body}"
    );
    let (status, _) = ada
        .post(
            &format!("/api/cards/{id}/review"),
            json!({"rating": "good", "ordinal": 9}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = ada
        .post(
            &format!("/api/cards/{id}/review"),
            json!({"rating": "good", "ordinal": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Dropping c3 and adding c4 keeps c2's review state, removes c3's item and adds c4's.
    let (status, patched) = ada
        .patch(
            &format!("/api/cards/{id}"),
            json!({"front": "{{c1::Paris}} is the capital of {{c2::France}} ({{c4::Europe}})."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["ordinals"], json!([1, 2, 4]));
    let rows =
        sqlx::query("SELECT ordinal, reps FROM study_items WHERE card_id = $1 ORDER BY ordinal")
            .bind(id)
            .fetch_all(&server.state.db.read)
            .await
            .unwrap();
    let items: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(items, [(1, 0), (2, 1), (4, 0)]);

    let (status, body) = ada
        .post(
            &format!("/api/decks/{deck}/cards"),
            json!({"kind": "cloze", "front": "no deletions here"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().starts_with("front:"),
        "{body}"
    );
    let (status, body) = ada
        .patch(
            &format!("/api/cards/{id}"),
            json!({"front": "{{c1::unclosed"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().contains("not closed"),
        "{body}"
    );
}

fn expected_due(now: i64, rating: &str, interval: f32) -> i64 {
    match rating {
        "again" => now + 10 * 60_000,
        _ => now + (interval.round() as i64).max(1) * 86_400_000,
    }
}

fn close(a: f64, b: f32) -> bool {
    (a - f64::from(b)).abs() < 1e-4 * f64::from(b).abs().max(1.0)
}

async fn reviews_follow_fsrs_and_are_logged(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("fsrs").await;
    let card = ada.basic(&deck, "Capital of Peru?", "Lima").await;
    let fsrs = FSRS::default();

    let (_, queue) = ada.get(&format!("/api/decks/{deck}/study")).await;
    assert_eq!(queue["items"].as_array().unwrap().len(), 1);
    assert_eq!(queue["deck_name"], "fsrs", "the queue names its deck");

    // good, good (on time), hard (late), again (lapse), good (after the relearning step)
    let plan: [(&str, f64); 5] = [
        ("good", 0.0),
        ("good", 0.0),
        ("hard", 3.0),
        ("again", 0.0),
        ("good", 0.0),
    ];
    let mut memory: Option<MemoryState> = None;
    let mut last_review: Option<i64> = None;
    for (n, (rating, extra_days)) in plan.into_iter().enumerate() {
        server.advance_days(extra_days);
        let now = server.now_ms();
        let elapsed = last_review.map_or(0, |last| ((now - last) / 86_400_000) as u32);
        let next = fsrs.next_states(memory, 0.9, elapsed).unwrap();
        let chosen = match rating {
            "again" => next.again,
            "hard" => next.hard,
            "good" => next.good,
            _ => next.easy,
        };
        // The queue tells each rating's interval beforehand: the one the review then gives.
        let (_, queue) = ada.get(&format!("/api/decks/{deck}/study")).await;
        let shown = queue["items"][0]["intervals"][format!("{rating}_secs")]
            .as_i64()
            .unwrap();
        assert_eq!(
            shown * 1000,
            expected_due(now, rating, chosen.interval) - now,
            "review {n}: {queue}"
        );
        let (status, outcome) = ada
            .post(
                &format!("/api/cards/{card}/review"),
                json!({"rating": rating}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{outcome}");
        assert_eq!(outcome["reps"], n + 1);
        assert_eq!(outcome["elapsed_days"], elapsed);
        assert!(
            close(
                outcome["stability"].as_f64().unwrap(),
                chosen.memory.stability
            ),
            "{outcome}"
        );
        assert!(
            close(
                outcome["difficulty"].as_f64().unwrap(),
                chosen.memory.difficulty
            ),
            "{outcome}"
        );
        let due = expected_due(now, rating, chosen.interval);
        assert_eq!(
            outcome["due"],
            flashcards_backend::timestamp::rfc3339(due),
            "review {n}: {outcome}"
        );

        // Not in the queue before its due date, back in it at the due date.
        let (_, queue) = ada.get(&format!("/api/decks/{deck}/study")).await;
        assert_eq!(queue["items"], json!([]), "review {n}");
        server.state.clock.advance_ms(due - now);
        let (_, queue) = ada.get(&format!("/api/decks/{deck}/study")).await;
        assert_eq!(queue["items"][0]["card_id"], card.as_str(), "review {n}");

        memory = Some(chosen.memory);
        last_review = Some(now);
    }
    let (_, outcome) = ada.get(&format!("/api/decks/{deck}/study")).await;
    assert_eq!(outcome["items"][0]["lapses"], 1);

    // The log has one row per review, in order, and outlives the card.
    assert_eq!(
        ada.delete(&format!("/api/cards/{card}")).await.0,
        StatusCode::NO_CONTENT
    );
    let ratings: Vec<i64> =
        sqlx::query("SELECT rating FROM review_logs WHERE card_id = $1 ORDER BY reviewed_at")
            .bind(&card)
            .fetch_all(&server.state.db.read)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
    assert_eq!(ratings, [3, 3, 2, 1, 3]);
}

async fn due_counts_are_per_deck_and_per_user(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let bob = server.user("bob@example.org").await;
    let geo = ada.deck("geo").await;
    let chem = ada.deck("chem").await;
    let _empty = ada.deck("empty").await;
    let lima = ada.basic(&geo, "Capital of Peru?", "Lima").await;
    ada.basic(&geo, "Capital of Chile?", "Santiago").await;
    ada.card(
        &chem,
        json!({"kind": "cloze", "front": "{{c1::H2O}} is {{c2::water}}."}),
    )
    .await;
    bob.basic(&bob.deck("bob's").await, "q", "a").await;

    let (status, counts) = ada.get("/api/study/due").await;
    assert_eq!(status, StatusCode::OK);
    let mut expected = vec![
        json!({"deck_id": geo, "due": 2}),
        json!({"deck_id": chem, "due": 2}),
    ];
    expected.sort_by_key(|count| count["deck_id"].as_str().unwrap().to_owned());
    assert_eq!(
        counts,
        json!(expected),
        "only ada's decks with something due"
    );

    // A reviewed item leaves the count until it is due again.
    let (status, _) = ada
        .post(
            &format!("/api/cards/{lima}/review"),
            json!({"rating": "good"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, counts) = ada.get("/api/study/due").await;
    let geo_due = counts
        .as_array()
        .unwrap()
        .iter()
        .find(|count| count["deck_id"] == geo.as_str())
        .unwrap()["due"]
        .clone();
    assert_eq!(geo_due, 1);
}

async fn deck_statistics_count_reviews_retention_and_the_forecast(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let bob = server.user("bob@example.org").await;
    let deck = ada.deck("stats").await;
    let card = ada.basic(&deck, "Capital of Peru?", "Lima").await;
    ada.basic(&deck, "Capital of Chile?", "Santiago").await;
    let review = |rating: &'static str| {
        let path = format!("/api/cards/{card}/review");
        let ada = &ada;
        async move { ada.post(&path, json!({"rating": rating})).await.0 }
    };
    assert_eq!(review("good").await, StatusCode::OK);
    server.advance_days(3.0);
    assert_eq!(review("again").await, StatusCode::OK);
    server.advance_days(0.01);
    assert_eq!(review("good").await, StatusCode::OK);

    let (status, stats) = ada.get(&format!("/api/decks/{deck}/stats?days=7")).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let per_day: Vec<i64> = stats["reviews_per_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|day| day["count"].as_i64().unwrap())
        .collect();
    assert_eq!(per_day.len(), 7);
    assert_eq!(per_day.iter().sum::<i64>(), 3, "{stats}");
    // Only the review three days after the first counts for retention, and it was forgotten.
    assert_eq!(stats["retention"]["reviews"], 1, "{stats}");
    assert_eq!(stats["retention"]["remembered"], 0, "{stats}");
    assert_eq!(stats["items"], 2);
    assert_eq!(stats["new_items"], 1);
    let forecast: i64 = stats["due_forecast"]
        .as_array()
        .unwrap()
        .iter()
        .map(|day| day["count"].as_i64().unwrap())
        .sum();
    assert_eq!(
        forecast, 2,
        "the new item today and the reviewed one soon: {stats}"
    );

    assert_eq!(
        bob.get(&format!("/api/decks/{deck}/stats")).await.0,
        StatusCode::NOT_FOUND,
        "another user's deck"
    );
    assert_eq!(
        ada.get(&format!("/api/decks/{deck}/stats?days=0")).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn decks_go_out_and_come_back_as_csv(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let bob = server.user("bob@example.org").await;
    let deck = ada.deck("out").await;
    ada.card(
        &deck,
        json!({"front": "Capital of \"Peru\"?", "back": "Lima,\nsince 1535", "tags": ["geo", "capitals"]}),
    )
    .await;
    ada.card(
        &deck,
        json!({"kind": "cloze", "front": "{{c1::Paris}} is on the {{c2::Seine}}."}),
    )
    .await;

    let exported = ada.get_raw(&format!("/api/decks/{deck}/export.csv")).await;
    assert_eq!(exported.status(), StatusCode::OK);
    assert!(
        exported.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = exported.text().await.unwrap();
    assert!(csv.starts_with("kind,front,back,tags\n"), "{csv}");
    assert_eq!(
        bob.get_raw(&format!("/api/decks/{deck}/export.csv"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let copy = ada.deck("in").await;
    let (status, outcome) = ada
        .post_raw(
            &format!("/api/decks/{copy}/import.csv"),
            "text/csv",
            csv.clone().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    assert_eq!(outcome["imported"], 2);
    let (_, cards) = ada.get(&format!("/api/decks/{copy}/cards")).await;
    let mut fronts: Vec<&str> = cards["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|card| card["front"].as_str().unwrap())
        .collect();
    fronts.sort_unstable();
    assert_eq!(
        fronts,
        [
            "Capital of \"Peru\"?",
            "{{c1::Paris}} is on the {{c2::Seine}}."
        ]
    );
    let (_, queue) = ada.get(&format!("/api/decks/{copy}/study")).await;
    assert_eq!(
        queue["items"].as_array().unwrap().len(),
        3,
        "one item per cloze deletion"
    );

    // A bad row anywhere imports nothing and is named.
    let (status, body) = ada
        .post_raw(
            &format!("/api/decks/{copy}/import.csv"),
            "text/csv",
            b"kind,front,back\nbasic,fine,yes\ncloze,no deletions,\n".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().starts_with("row 3:"),
        "{body}"
    );
    let (_, cards) = ada.get(&format!("/api/decks/{copy}/cards")).await;
    assert_eq!(
        cards["items"].as_array().unwrap().len(),
        2,
        "nothing was added"
    );
    let (status, _) = bob
        .post_raw(
            &format!("/api/decks/{copy}/import.csv"),
            "text/csv",
            csv.into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's deck");
}

async fn bad_input_is_rejected_and_changes_nothing(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("safe").await;
    let card = ada.basic(&deck, "q", "a").await;
    let cards_path = format!("/api/decks/{deck}/cards");
    let snapshot = || async {
        (
            ada.get(&format!("/api/decks/{deck}")).await.1,
            ada.get(&cards_path).await.1,
        )
    };
    let before = snapshot().await;

    let json_ct = "application/json";
    let cases: Vec<(StatusCode, (StatusCode, Value), &str)> = vec![
        (
            StatusCode::BAD_REQUEST,
            ada.post_raw(&cards_path, json_ct, b"{\"front\": ".to_vec())
                .await,
            "malformed",
        ),
        (
            StatusCode::BAD_REQUEST,
            ada.post_raw(&cards_path, json_ct, b"\xff\xfe".to_vec())
                .await,
            "not utf-8",
        ),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ada.post_raw(&cards_path, "text/plain", b"{}".to_vec())
                .await,
            "content type",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.post(&cards_path, json!({"back": "a"})).await,
            "missing front",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.post(&cards_path, json!({"front": 1, "back": "a"}))
                .await,
            "wrong type",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.post(
                &cards_path,
                json!({"front": "q", "back": "a", "colour": "red"}),
            )
            .await,
            "unknown field",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.post(&cards_path, json!({"kind": "essay", "front": "q"}))
                .await,
            "bad kind",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.post(
                &format!("/api/cards/{card}/review"),
                json!({"rating": "perfect"}),
            )
            .await,
            "bad rating",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.post("/api/decks", json!({"name": ""})).await,
            "empty name",
        ),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            ada.post_raw(&cards_path, json_ct, vec![b' '; 2 * 1024 * 1024])
                .await,
            "oversized",
        ),
        (
            StatusCode::NOT_FOUND,
            ada.get("/api/cards/no-such-card").await,
            "unknown card",
        ),
        (
            StatusCode::NOT_FOUND,
            ada.get("/api/decks/00000000-0000-0000-0000-000000000000")
                .await,
            "unknown deck",
        ),
        (
            StatusCode::NOT_FOUND,
            ada.post("/api/decks/nope/cards", json!({"front": "q", "back": "a"}))
                .await,
            "card into unknown deck",
        ),
        (
            StatusCode::NOT_FOUND,
            ada.get("/api/nothing-here").await,
            "unknown route",
        ),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            ada.post("/api/auth/me", json!({})).await,
            "wrong method",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.get(&format!("{cards_path}?limit=lots")).await,
            "bad query",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.get(&format!("{cards_path}?limit=-1")).await,
            "negative limit",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.post(&format!("/api/cards/{card}/review"), json!({"rating": 3}))
                .await,
            "rating as a number",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.post("/api/decks", json!(["array deck", ""])).await,
            "array for an object",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.patch(&format!("/api/decks/{deck}"), json!(["renamed"]))
                .await,
            "array for a partial update",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.get(&format!("{cards_path}?limit=0")).await,
            "limit out of range",
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            ada.get(&format!("/api/decks/{deck}/study?limit=501")).await,
            "study limit out of range",
        ),
    ];
    for (expected, (status, body), what) in cases {
        assert_eq!(status, expected, "{what}: {body}");
        assert!(
            body["error"].is_string() && body["detail"].is_string(),
            "{what}: {body}"
        );
    }
    // Every 422 names the offending field first.
    for (body, field) in [
        (json!({"back": "a"}), "front:"),
        (json!({"front": 1, "back": "a"}), "front:"),
        (
            json!({"front": "q", "back": "a", "colour": "red"}),
            "colour:",
        ),
        (json!({"front": "q", "back": "a", "tags": ["a b"]}), "tags:"),
        (
            json!({"front": "q", "back": "a", "source": {"document_id": "d", "page": 0}}),
            "source.page:",
        ),
    ] {
        let (status, reply) = ada.post(&cards_path, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
        assert!(
            reply["detail"].as_str().unwrap().starts_with(field),
            "{reply}"
        );
    }
    // In a partial update an absent field is kept; null for one that cannot be cleared is refused.
    for (path, body, field) in [
        (format!("/api/decks/{deck}"), json!({"name": null}), "name:"),
        (
            format!("/api/decks/{deck}"),
            json!({"name": "renamed", "description": null}),
            "description:",
        ),
        (
            format!("/api/cards/{card}"),
            json!({"front": null}),
            "front:",
        ),
        (format!("/api/cards/{card}"), json!({"tags": null}), "tags:"),
        (
            format!("/api/cards/{card}"),
            json!({"deck_id": null}),
            "deck_id:",
        ),
    ] {
        let (status, reply) = ada.patch(&path, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
        assert!(
            reply["detail"].as_str().unwrap().starts_with(field),
            "{reply}"
        );
    }
    let (_, rating) = ada
        .post(
            &format!("/api/cards/{card}/review"),
            json!({"rating": "perfect"}),
        )
        .await;
    assert!(
        rating["detail"].as_str().unwrap().starts_with("rating:"),
        "{rating}"
    );

    // Hostile bodies on every write route: never a server error.
    let hostile: [&[u8]; 8] = [
        b"",
        b"null",
        b"[]",
        b"{\"front\": \"\\ud800\"}",
        b"{\"a\":",
        b"\"string\"",
        b"{\"front\": \"q\", \"back\": \"a\", \"tags\": [1, 2]}",
        b"{\"rating\": \"good\", \"ordinal\": -1}",
    ];
    let routes = [
        cards_path.clone(),
        "/api/decks".to_owned(),
        format!("/api/cards/{card}/review"),
        "/api/auth/register".to_owned(),
        "/api/auth/login".to_owned(),
        "/api/auth/tokens".to_owned(),
    ];
    for route in &routes {
        for body in hostile {
            let (status, reply) = ada.post_raw(route, json_ct, body.to_vec()).await;
            assert!(
                status.is_client_error(),
                "{route} {body:?}: {status} {reply}"
            );
        }
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, _) = ada.post_raw(&cards_path, json_ct, deep.into_bytes()).await;
    assert!(status.is_client_error());

    assert_eq!(snapshot().await, before, "nothing changed");

    // NUL characters (PostgreSQL cannot store them, SQLite could): the same answer on both.
    for ((status, body), expected, field) in [
        (ada.get("/api/decks/%00").await, StatusCode::NOT_FOUND, ""),
        (
            ada.get(&format!("{cards_path}?after=%00")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "after:",
        ),
        (
            ada.post("/api/decks", json!({"name": "a\u{0}b"})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "name:",
        ),
        (
            ada.post(
                &cards_path,
                json!({"front": "q", "back": "a", "tags": ["t\u{0}"]}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "tags[0]:",
        ),
        (
            ada.post("/api/auth/tokens", json!({"name": "t\u{0}"}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "name:",
        ),
        (
            ada.post(
                "/api/auth/login",
                json!({"email": "a\u{0}@b.org", "password": "whatever1"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "email:",
        ),
        (
            ada.post(
                "/api/auth/tokens",
                json!({"name": "t", "expires_in_days": 4_294_967_295u32}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_in_days:",
        ),
    ] {
        assert_eq!(status, expected, "{body}");
        assert!(
            body["detail"].as_str().unwrap().starts_with(field),
            "{body}"
        );
    }
    assert_eq!(snapshot().await, before, "nothing changed");
}

async fn metrics_count_known_traffic(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let bob = server.user("bob@example.org").await;
    assert_eq!(server.metric("user_sessions_active").await, 2.0);

    let deck = ada.deck("m").await;
    let mut cards = Vec::new();
    for n in 0..3 {
        cards.push(ada.basic(&deck, &format!("q{n}"), "a").await);
    }
    ada.get(&format!("/api/cards/{}", cards[0])).await;
    ada.get(&format!("/api/decks/{deck}/cards")).await;
    ada.patch(&format!("/api/cards/{}", cards[1]), json!({"back": "b"}))
        .await;
    ada.delete(&format!("/api/cards/{}", cards[2])).await;
    for _ in 0..2 {
        ada.post(
            &format!("/api/cards/{}/review", cards[0]),
            json!({"rating": "good"}),
        )
        .await;
    }
    // Refused operations do not count.
    bob.get(&format!("/api/cards/{}", cards[0])).await;
    ada.post(&format!("/api/decks/{deck}/cards"), json!({"front": ""}))
        .await;

    for (operation, count) in [
        ("create", 3.0),
        ("read", 2.0),
        ("update", 1.0),
        ("delete", 1.0),
        ("review", 2.0),
    ] {
        let sample = format!("flashcard_operations_total{{operation=\"{operation}\"}}");
        assert_eq!(server.metric(&sample).await, count, "{sample}");
    }

    let created =
        r#"http_requests_total{method="POST",route="/api/decks/{id}/cards",status="201"}"#;
    assert_eq!(server.metric(created).await, 3.0);
    let refused = r#"http_requests_total{method="GET",route="/api/cards/{id}",status="404"}"#;
    assert_eq!(server.metric(refused).await, 1.0);
    let unmatched = r#"http_requests_total{method="GET",route="unmatched",status="404"}"#;
    server
        .anonymous()
        .get(server.url("/no/such/path/12345"))
        .send()
        .await
        .unwrap();
    assert_eq!(server.metric(unmatched).await, 1.0);
    let text = server.metrics().await;
    assert!(!text.contains(&cards[0]), "raw ids never become labels");
    assert!(
        !text.contains("/no/such/path"),
        "raw paths never become labels"
    );
    let reviews =
        r#"http_request_duration_seconds_count{method="POST",route="/api/cards/{id}/review"}"#;
    assert_eq!(server.metric(reviews).await, 2.0);

    assert_eq!(
        bob.post("/api/auth/logout", json!({})).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(server.metric("user_sessions_active").await, 1.0);
    server.state.clock.advance_ms(SESSION_TTL_MS + 1);
    flashcards_backend::auth::sweep_expired(&server.state).await;
    assert_eq!(server.metric("user_sessions_active").await, 0.0);
    assert_eq!(
        server
            .anonymous()
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

/// Another process holding SQLite's write lock past the busy timeout: a write and a review each
/// answer 503 with the retry hint and record nothing; once the lock is gone both go through.
#[tokio::test]
async fn sqlite_locked_by_another_process_answers_503() {
    let server = TestServer::start(support::Engine::Sqlite).await;
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("d").await;
    let card = ada.basic(&deck, "q", "a").await;
    let file = server.state.db.sqlite_file.clone().unwrap();
    let other_process = rusqlite::Connection::open(file).unwrap();
    other_process.execute_batch("BEGIN IMMEDIATE").unwrap();
    let review_path = format!("/api/cards/{card}/review");
    let (created, reviewed) = tokio::join!(
        ada.client
            .post(server.url("/api/decks"))
            .json(&json!({"name": "while locked"}))
            .send(),
        ada.client
            .post(server.url(&review_path))
            .json(&json!({"rating": "good"}))
            .send(),
    );
    other_process.execute_batch("ROLLBACK").unwrap();
    for response in [created.unwrap(), reviewed.unwrap()] {
        let retry_after = response.headers().get("retry-after").cloned();
        let (status, body) = support::into_parts(response).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"], "unavailable");
        assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
    }
    let (_, decks) = ada.get("/api/decks").await;
    assert_eq!(decks["items"].as_array().unwrap().len(), 1, "{decks}");
    let (status, outcome) = ada.post(&review_path, json!({"rating": "good"})).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["reps"], 1, "the refused review left nothing behind");
}

async fn a_database_outage_answers_503_and_logs_nobody_out(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("d").await;
    let bob = server.user("bob@example.org").await;
    server
        .state
        .clock
        .advance_ms(flashcards_backend::auth::CACHE_TTL_MS);
    server.state.db.read.close().await;
    server.state.db.write.close().await;

    // Bob's credential has to be looked up: the outage is a 503, not a 401.
    for (status, body) in [
        ada.get(&format!("/api/decks/{deck}/cards")).await,
        bob.get("/api/decks").await,
        ada.post("/api/decks", json!({"name": "x"})).await,
    ] {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"], "unavailable");
    }
    let response = ada
        .client
        .get(server.url("/api/decks"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = into(server.anonymous().get(server.url("/readyz"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "not_ready");
    assert_eq!(
        server
            .anonymous()
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "alive, only not ready"
    );
}
