//! A deck as an Anki package (`.apkg`): a zip holding `collection.anki2`, an SQLite collection in
//! Anki's schema 11 (the format every Anki since 2.1 imports), and an empty `media` map. Basic cards
//! become notes of a "Basic" note type (Front, Back), cloze cards notes of a "Cloze" type (Text,
//! Back Extra), one Anki card per study item; tags carry over, and so does scheduling: each
//! reviewed item is a review card due when ours is, with its FSRS memory state, and every review
//! is a revlog row, from which Anki's FSRS can also recompute it.

use std::io::{Cursor, Write};

use rusqlite::{Connection, params};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::model::{Card, CardKind};
use crate::study::scheduler::DAY_MS;

#[derive(Debug, thiserror::Error)]
pub enum AnkiError {
    #[error("writing the Anki collection: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("writing the package: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("writing the package: {0}")]
    Io(#[from] std::io::Error),
}

/// One study item of a card, as stored.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ItemState {
    pub card_id: String,
    pub ordinal: i64,
    pub due: i64,
    pub stability: Option<f64>,
    pub difficulty: Option<f64>,
    pub last_review: Option<i64>,
    pub reps: i64,
    pub lapses: i64,
}

/// One review, as logged.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Review {
    pub card_id: String,
    pub ordinal: i64,
    pub rating: i64,
    pub reviewed_at: i64,
    pub elapsed_days: i64,
    pub due: i64,
}

/// What goes into a package: the deck's name, its cards, their items and their reviews.
pub struct Export {
    pub deck_name: String,
    pub cards: Vec<Card>,
    pub items: Vec<ItemState>,
    pub reviews: Vec<Review>,
    pub now_ms: i64,
}

/// Fixed ids for our two note types and the deck, so that packages exported twice update the
/// same note types in Anki rather than adding copies.
const BASIC_MODEL_ID: i64 = 1_735_000_000_001;
const CLOZE_MODEL_ID: i64 = 1_735_000_000_002;
const DECK_ID: i64 = 1_735_000_000_003;
/// Anki's default ease, in permille; FSRS ignores it.
const FACTOR: i64 = 2500;
const FIELD_SEPARATOR: char = '\u{1f}';

/// Anki's note-type CSS and templates for the two kinds.
fn models(now_secs: i64) -> Value {
    let field = |name: &str, ord: i64| {
        json!({"name": name, "ord": ord, "sticky": false, "rtl": false, "font": "Arial",
               "size": 20, "media": []})
    };
    let template = |name: &str, qfmt: &str, afmt: &str| {
        json!({"name": name, "ord": 0, "qfmt": qfmt, "afmt": afmt, "bqfmt": "", "bafmt": "",
               "did": null, "bfont": "", "bsize": 0})
    };
    let css = ".card { font-family: arial; font-size: 20px; text-align: center; color: black; \
               background-color: white; }\n.cloze { font-weight: bold; color: blue; }";
    let model = |id: i64, name: &str, kind: i64, fields: Vec<Value>, tmpl: Value, req: Value| {
        json!({"id": id, "name": name, "type": kind, "mod": now_secs, "usn": -1, "sortf": 0,
               "did": DECK_ID, "tmpls": [tmpl], "flds": fields, "css": css,
               "latexPre": "\\documentclass[12pt]{article}\n\\special{papersize=3in,5in}\n\\usepackage[utf8]{inputenc}\n\\usepackage{amssymb,amsmath}\n\\pagestyle{empty}\n\\setlength{\\parindent}{0in}\n\\begin{document}\n",
               "latexPost": "\\end{document}", "latexsvg": false, "req": req, "tags": [],
               "vers": []})
    };
    json!({
        BASIC_MODEL_ID.to_string(): model(
            BASIC_MODEL_ID, "Basic (flashcards)", 0,
            vec![field("Front", 0), field("Back", 1)],
            template("Card 1", "{{Front}}", "{{FrontSide}}\n\n<hr id=answer>\n\n{{Back}}"),
            json!([[0, "any", [0]]]),
        ),
        CLOZE_MODEL_ID.to_string(): model(
            CLOZE_MODEL_ID, "Cloze (flashcards)", 1,
            vec![field("Text", 0), field("Back Extra", 1)],
            template("Cloze", "{{cloze:Text}}", "{{cloze:Text}}<br>\n{{Back Extra}}"),
            json!([[0, "any", [0]]]),
        ),
    })
}

fn deck_json(id: i64, name: &str, now_secs: i64) -> Value {
    json!({"id": id, "name": name, "mod": now_secs, "usn": -1, "lrnToday": [0, 0],
           "revToday": [0, 0], "newToday": [0, 0], "timeToday": [0, 0], "collapsed": false,
           "browserCollapsed": false, "desc": "", "dyn": 0, "conf": 1, "extendNew": 0,
           "extendRev": 0})
}

fn deck_config(now_secs: i64) -> Value {
    json!({"1": {
        "id": 1, "name": "Default", "mod": now_secs, "usn": 0, "maxTaken": 60, "autoplay": true,
        "timer": 0, "replayq": true, "dyn": false,
        "new": {"delays": [1.0, 10.0], "ints": [1, 4, 0], "initialFactor": FACTOR, "order": 1,
                "perDay": 20, "bury": false},
        "rev": {"perDay": 200, "ease4": 1.3, "ivlFct": 1.0, "maxIvl": 36500, "bury": false,
                "hardFactor": 1.2},
        "lapse": {"delays": [10.0], "mult": 0.0, "minInt": 1, "leechFails": 8, "leechAction": 1}
    }})
}

/// Anki's duplicate check: the first 8 hex digits of the SHA-1 of the first field's text.
pub fn field_checksum(text: &str) -> i64 {
    let digest = Sha1::digest(text.as_bytes());
    i64::from(u32::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3],
    ]))
}

/// Whole days from `from_ms` to `to_ms`, rounded, at least one.
fn days_between(from_ms: i64, to_ms: i64) -> i64 {
    ((to_ms - from_ms + DAY_MS / 2).div_euclid(DAY_MS)).max(1)
}

/// The package's bytes.
pub fn package(export: &Export) -> Result<Vec<u8>, AnkiError> {
    let file = tempfile_path()?;
    let result = write_collection(&file.0, export).and_then(|()| {
        let collection = std::fs::read(&file.0)?;
        zip_package(&collection)
    });
    drop(file);
    result
}

/// A scratch file for the collection, removed when dropped (rusqlite writes to a path).
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tempfile_path() -> Result<Scratch, AnkiError> {
    let path = std::env::temp_dir().join(format!(
        "flashcards-apkg-{}.anki2",
        uuid::Uuid::now_v7().simple()
    ));
    Ok(Scratch(path))
}

fn zip_package(collection: &[u8]) -> Result<Vec<u8>, AnkiError> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("collection.anki2", options)?;
    zip.write_all(collection)?;
    zip.start_file("media", options)?;
    zip.write_all(b"{}")?;
    Ok(zip.finish()?.into_inner())
}

fn write_collection(path: &std::path::Path, export: &Export) -> Result<(), AnkiError> {
    let db = Connection::open(path)?;
    db.execute_batch(SCHEMA)?;
    let now_secs = export.now_ms / 1000;
    // The collection's day 0, from which review cards' due days count.
    let created_ms = export
        .items
        .iter()
        .filter_map(|item| item.last_review)
        .chain(export.reviews.iter().map(|review| review.reviewed_at))
        .min()
        .unwrap_or(export.now_ms)
        .min(export.now_ms);
    let crt_day = created_ms.div_euclid(DAY_MS);
    let mut decks = serde_json::Map::new();
    decks.insert("1".to_owned(), deck_json(1, "Default", now_secs));
    decks.insert(
        DECK_ID.to_string(),
        deck_json(DECK_ID, &export.deck_name, now_secs),
    );
    // schedVer 2: without it Anki reads the review log as the v1 scheduler's, whose learning
    // eases it renumbers.
    let conf = json!({"schedVer": 2, "activeDecks": [1], "curDeck": 1, "newSpread": 0, "collapseTime": 1200,
                      "timeLim": 0, "estTimes": true, "dueCounts": true, "curModel": null,
                      "nextPos": export.cards.len() + 1, "sortType": "noteFld",
                      "sortBackwards": false, "addToCur": true});
    db.execute(
        "INSERT INTO col VALUES (1, ?1, ?2, ?2, 11, 0, 0, 0, ?3, ?4, ?5, ?6, '{}')",
        params![
            crt_day * (DAY_MS / 1000),
            export.now_ms,
            conf.to_string(),
            models(now_secs).to_string(),
            Value::Object(decks).to_string(),
            deck_config(now_secs).to_string(),
        ],
    )?;
    // Note and card ids are millisecond-like integers; one counter keeps them unique.
    let mut next_id = export.now_ms;
    let mut new_position = 0_i64;
    for card in &export.cards {
        next_id += 1;
        let note_id = next_id;
        let (model, fields) = match card.kind {
            CardKind::Basic => (BASIC_MODEL_ID, [card.front.as_str(), card.back.as_str()]),
            CardKind::Cloze => (CLOZE_MODEL_ID, [card.front.as_str(), card.back.as_str()]),
        };
        let flds = fields.join(&FIELD_SEPARATOR.to_string());
        let tags = if card.tags.is_empty() {
            String::new()
        } else {
            format!(" {} ", card.tags.join(" "))
        };
        db.execute(
            "INSERT INTO notes VALUES (?1, ?2, ?3, ?4, -1, ?5, ?6, ?7, ?8, 0, '')",
            params![
                note_id,
                card.id,
                model,
                now_secs,
                tags,
                flds,
                fields[0],
                field_checksum(fields[0]),
            ],
        )?;
        for ordinal in &card.ordinals {
            next_id += 1;
            let anki_card = next_id;
            let item = export
                .items
                .iter()
                .find(|item| item.card_id == card.id && item.ordinal == i64::from(*ordinal));
            let ord = i64::from(*ordinal) - 1;
            match item.filter(|item| item.reps > 0) {
                Some(item) => {
                    let last = item.last_review.unwrap_or(export.now_ms);
                    let interval = days_between(last, item.due);
                    let due_day = item.due.div_euclid(DAY_MS) - crt_day;
                    let data = match (item.stability, item.difficulty) {
                        (Some(s), Some(d)) => json!({"s": s, "d": d}).to_string(),
                        _ => "{}".to_owned(),
                    };
                    db.execute(
                        "INSERT INTO cards VALUES (?1, ?2, ?3, ?4, ?5, -1, 2, 2, ?6, ?7, ?8, ?9, \
                         ?10, 0, 0, 0, 0, ?11)",
                        params![
                            anki_card,
                            note_id,
                            DECK_ID,
                            ord,
                            now_secs,
                            due_day,
                            interval,
                            FACTOR,
                            item.reps,
                            item.lapses,
                            data
                        ],
                    )?;
                }
                None => {
                    new_position += 1;
                    db.execute(
                        "INSERT INTO cards VALUES (?1, ?2, ?3, ?4, ?5, -1, 0, 0, ?6, 0, 0, 0, 0, \
                         0, 0, 0, 0, '{}')",
                        params![anki_card, note_id, DECK_ID, ord, now_secs, new_position],
                    )?;
                }
            }
            let mut last_interval = 0_i64;
            let mut log_id = 0_i64;
            for review in export
                .reviews
                .iter()
                .filter(|review| review.card_id == card.id && review.ordinal == i64::from(*ordinal))
            {
                let interval = days_between(review.reviewed_at, review.due);
                // Ids are review times in ms; a second review in the same ms moves on by one.
                log_id = review.reviewed_at.max(log_id + 1);
                let kind = if review.elapsed_days == 0 && last_interval == 0 {
                    0
                } else {
                    1
                };
                db.execute(
                    "INSERT INTO revlog VALUES (?1, ?2, -1, ?3, ?4, ?5, ?6, 0, ?7)",
                    params![
                        log_id,
                        anki_card,
                        review.rating,
                        interval,
                        last_interval,
                        FACTOR,
                        kind
                    ],
                )?;
                last_interval = interval;
            }
        }
    }
    db.close().map_err(|(_, err)| err)?;
    Ok(())
}

/// Anki's schema 11, as its 2.1 releases create it.
const SCHEMA: &str = "
CREATE TABLE col (id integer primary key, crt integer not null, mod integer not null,
  scm integer not null, ver integer not null, dty integer not null, usn integer not null,
  ls integer not null, conf text not null, models text not null, decks text not null,
  dconf text not null, tags text not null);
CREATE TABLE notes (id integer primary key, guid text not null, mid integer not null,
  mod integer not null, usn integer not null, tags text not null, flds text not null,
  sfld integer not null, csum integer not null, flags integer not null, data text not null);
CREATE TABLE cards (id integer primary key, nid integer not null, did integer not null,
  ord integer not null, mod integer not null, usn integer not null, type integer not null,
  queue integer not null, due integer not null, ivl integer not null, factor integer not null,
  reps integer not null, lapses integer not null, left integer not null, odue integer not null,
  odid integer not null, flags integer not null, data text not null);
CREATE TABLE revlog (id integer primary key, cid integer not null, usn integer not null,
  ease integer not null, ivl integer not null, lastIvl integer not null, factor integer not null,
  time integer not null, type integer not null);
CREATE TABLE graves (usn integer not null, oid integer not null, type integer not null);
CREATE INDEX ix_notes_usn on notes (usn);
CREATE INDEX ix_cards_usn on cards (usn);
CREATE INDEX ix_revlog_usn on revlog (usn);
CREATE INDEX ix_cards_nid on cards (nid);
CREATE INDEX ix_cards_sched on cards (did, queue, due);
CREATE INDEX ix_revlog_cid on revlog (cid);
CREATE INDEX ix_notes_csum on notes (csum);
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_ankis() {
        // Anki: int(sha1(text).hexdigest()[:8], 16); sha1("Capital of Peru?") begins 71336c38.
        assert_eq!(field_checksum("Capital of Peru?"), 0x71336c38);
    }

    #[test]
    fn intervals_are_whole_days_of_at_least_one() {
        assert_eq!(days_between(0, 10 * 60_000), 1);
        assert_eq!(days_between(0, 3 * DAY_MS), 3);
        assert_eq!(days_between(0, 3 * DAY_MS + DAY_MS / 2 + 1), 4);
    }
}
