//! Decks exported as Anki packages, read back by Anki's own library (`anki` from PyPI, which
//! `cargo xtask test` installs and names in FLASHCARDS_TEST_ANKI_PYTHON): note types, fields,
//! cloze deletions, tags, scheduling and the review history are what we exported. Every scenario
//! runs on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{path::Path, process::Command};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestServer;

on_both_databases!(
    a_deck_exported_as_apkg_is_what_anki_imports,
    packages_anki_writes_import_with_the_same_content,
);

/// Anki's library's python (see anki/*.py).
fn anki_python() -> String {
    std::env::var("FLASHCARDS_TEST_ANKI_PYTHON").expect(
        "FLASHCARDS_TEST_ANKI_PYTHON is not set: run the tests with `cargo xtask test`, which \
         installs Anki's library",
    )
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/anki")
        .join(name)
}

/// What Anki's library reads from `package` (see anki/read_package.py).
fn read_with_anki(package: &Path) -> Value {
    let output = Command::new(anki_python())
        .arg(script("read_package.py"))
        .arg(package)
        .output()
        .expect("running Anki's library");
    assert!(
        output.status.success(),
        "Anki could not import the package: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script's JSON")
}

async fn a_deck_exported_as_apkg_is_what_anki_imports(server: TestServer) {
    let ada = server.user("ada@example.org").await;
    let deck = ada.deck("Geography").await;
    let peru = ada
        .card(
            &deck,
            json!({"front": "Capital of Peru?", "back": "Lima", "tags": ["geo", "capitals"]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ada.card(
        &deck,
        json!({"kind": "cloze", "front": "{{c1::Paris}} is on the {{c2::Seine}}.", "back": "France"}),
    )
    .await;
    for (rating, days) in [("good", 0.0), ("again", 3.0), ("good", 0.01)] {
        server.advance_days(days);
        let (status, _) = ada
            .post(
                &format!("/api/cards/{peru}/review"),
                json!({"rating": rating}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    let answer = ada.get_raw(&format!("/api/decks/{deck}/export.apkg")).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["content-type"], "application/apkg");
    let folder = tempfile::tempdir().unwrap();
    let package = folder.path().join("deck.apkg");
    std::fs::write(&package, answer.bytes().await.unwrap()).unwrap();
    let anki = read_with_anki(&package);

    let notes = anki["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2, "{anki}");
    let basic = &notes[0];
    assert_eq!(basic["cloze"], false);
    assert_eq!(
        basic["fields"],
        json!({"Front": "Capital of Peru?", "Back": "Lima"})
    );
    assert_eq!(basic["tags"], json!(["capitals", "geo"]));
    let card = &basic["cards"][0];
    assert_eq!(card["deck"], "Geography");
    assert_eq!(
        card["type"], 2,
        "a review card: scheduling carried over: {card}"
    );
    assert_eq!(
        (card["reps"].as_i64(), card["lapses"].as_i64()),
        (Some(3), Some(1))
    );
    let cloze = &notes[1];
    assert_eq!(cloze["cloze"], true);
    assert_eq!(
        cloze["fields"],
        json!({"Text": "{{c1::Paris}} is on the {{c2::Seine}}.", "Back Extra": "France"})
    );
    let questions: Vec<&str> = cloze["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|card| card["question"].as_str().unwrap())
        .collect();
    assert_eq!(questions.len(), 2, "one Anki card per deletion");
    assert!(
        questions[0].contains("[...]</span> is on the"),
        "{questions:?}"
    );
    assert!(
        questions[1].contains("is on the <span class=\"cloze\""),
        "{questions:?}"
    );
    assert!(
        cloze["cards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|card| card["type"] == 0),
        "new"
    );
    assert_eq!(anki["revlog"], 3);
    assert_eq!(anki["revlog_eases"], json!([3, 1, 3]), "Good, Again, Good");
}

/// A package written by Anki's library (see anki/write_package.py), `modern` or `legacy`.
fn written_by_anki(folder: &Path, kind: &str) -> Vec<u8> {
    let package = folder.join(format!("{kind}.apkg"));
    let output = Command::new(anki_python())
        .arg(script("write_package.py"))
        .arg(&package)
        .arg(kind)
        .output()
        .expect("running Anki's library");
    assert!(
        output.status.success(),
        "Anki could not write a package: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(package).unwrap()
}

async fn packages_anki_writes_import_with_the_same_content(server: TestServer) {
    let mut ada = server.user("ada@example.org").await;
    let folder = tempfile::tempdir().unwrap();
    for kind in ["modern", "legacy"] {
        let deck = ada.deck(kind).await;
        let (status, outcome) = ada
            .post_raw(
                &format!("/api/decks/{deck}/import.apkg"),
                "application/apkg",
                written_by_anki(folder.path(), kind),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{kind}: {outcome}");
        assert_eq!(outcome["imported"], 2, "{kind}");
        let (_, cards) = ada.get(&format!("/api/decks/{deck}/cards")).await;
        let mut cards: Vec<Value> = cards["items"].as_array().unwrap().clone();
        cards.sort_by_key(|card| card["kind"].as_str().unwrap().to_owned());
        let basic = &cards[0];
        assert_eq!(basic["kind"], "basic", "{kind}: {cards:?}");
        assert_eq!(basic["front"], "What does chlorophyll absorb?", "{kind}");
        assert_eq!(basic["back"], "Red and blue light\nmostly", "{kind}");
        assert_eq!(basic["tags"], json!(["bio", "plants"]), "{kind}");
        let cloze = &cards[1];
        assert_eq!(cloze["kind"], "cloze", "{kind}");
        assert_eq!(
            cloze["front"], "{{c1::Mitochondria}} make {{c2::ATP}}.",
            "{kind}"
        );
        assert_eq!(cloze["back"], "Cells", "{kind}");
        assert_eq!(cloze["ordinals"], json!([1, 2]), "{kind}");

        // The review history came too: three reviews, and only the cloze never studied is new.
        assert_eq!(outcome["reviews"], 3, "{kind}");
        let (_, stats) = ada.get(&format!("/api/decks/{deck}/stats")).await;
        assert_eq!(
            (stats["items"].as_i64(), stats["new_items"].as_i64()),
            (Some(3), Some(1)),
            "{kind}: {stats}"
        );
        // Anki reviewed them at the real time: look two months past it, when all are due.
        let real_now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as f64;
        let ahead_days = (real_now_ms - server.now_ms() as f64) / 86_400_000.0 + 60.0;
        server.advance_days(ahead_days.max(0.0));
        // A session outlives the tests' jumps in time only so far.
        ada = server.login("ada@example.org").await;
        let (_, queue) = ada.get(&format!("/api/decks/{deck}/study")).await;
        let item = |card: &Value, ordinal: u64| {
            queue["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|item| item["card_id"] == card["id"] && item["ordinal"] == ordinal)
                .cloned()
                .unwrap_or_else(|| panic!("{kind}: item {ordinal} of {card} is not due: {queue}"))
        };
        let studied = item(basic, 1);
        assert_eq!(
            (studied["new"].as_bool(), studied["reps"].as_i64()),
            (Some(false), Some(1)),
            "{kind}: {studied}"
        );
        let relearned = item(cloze, 1);
        assert_eq!(
            (
                relearned["new"].as_bool(),
                relearned["reps"].as_i64(),
                relearned["lapses"].as_i64()
            ),
            (Some(false), Some(2), Some(0)),
            "{kind}: {relearned}"
        );
        assert_eq!(item(cloze, 2)["new"], true, "{kind}");
    }

    let deck = ada.deck("refused").await;
    let (status, body) = ada
        .post_raw(
            &format!("/api/decks/{deck}/import.apkg"),
            "application/apkg",
            b"not a zip".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not an Anki package"),
        "{body}"
    );
    let (_, cards) = ada.get(&format!("/api/decks/{deck}/cards")).await;
    assert_eq!(cards["items"], json!([]));
}
