//! Anki packages (`.apkg`), out and in.
//!
//! Out: a zip holding `collection.anki2`, an SQLite collection in Anki's schema 11 (the format
//! every Anki since 2.1 imports), and an empty `media` map. Basic cards become notes of a "Basic"
//! note type (Front, Back), cloze cards notes of a "Cloze" type (Text, Back Extra), one Anki card
//! per study item; tags carry over, and so does scheduling: each reviewed item is a review card
//! due when ours is, with its FSRS memory state, and every review is a revlog row, from which
//! Anki's FSRS can also recompute it.
//!
//! In: the notes of a package Anki wrote, either kind (`collection.anki21b`, zstd-compressed schema
//! 18, Anki's default since 23.10; or a legacy `collection.anki21`/`.anki2`). Notes of cloze note
//! types become cloze cards (Text, Back Extra), all others basic cards (their first two fields),
//! with their tags; fields' HTML becomes plain text. Each Anki card's reviews come too (revlog rows
//! of learning, review, relearning and filtered-deck reviews rated 1–4; manual reschedules carry
//! no rating and stay behind), and the importer replays them through our scheduler, so scheduling
//! carries over in both directions.

use std::io::{Cursor, Write};

use std::io::Read;

use rusqlite::{Connection, OpenFlags, params};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::model::{Card, CardContent, CardKind};
use crate::study::scheduler::{DAY_MS, PastReview, Rating};

#[derive(Debug, thiserror::Error)]
pub enum AnkiError {
    /// Not a package Anki wrote: not a zip, no collection, a collection too large or unreadable.
    #[error("not an Anki package: {0}")]
    NotAPackage(String),
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

/// The largest collection read from a package, uncompressed: a bound on what a hostile package
/// (a zip or zstd bomb) can make us write.
pub const MAX_COLLECTION_BYTES: u64 = 256 * 1024 * 1024;

/// The collection files a package may hold, the one to read first.
const COLLECTIONS: [(&str, bool); 3] = [
    ("collection.anki21b", true),
    ("collection.anki21", false),
    ("collection.anki2", false),
];

/// A note read from a package: the card it makes, and the reviews of its Anki cards.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedNote {
    pub content: CardContent,
    /// `(ordinal, review)` oldest first, the ordinal ours (Anki's card `ord` + 1: the cloze
    /// number, or 1 for a basic card's only item).
    pub history: Vec<(i64, PastReview)>,
}

/// The notes of a package, in the package's note order (see the module's notes).
pub fn read_package(bytes: &[u8]) -> Result<Vec<ImportedNote>, AnkiError> {
    let bad = |what: &str| AnkiError::NotAPackage(what.to_owned());
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|_| bad("it is not a zip file"))?;
    let (name, compressed) = COLLECTIONS
        .into_iter()
        .find(|(name, _)| zip.index_for_name(name).is_some())
        .ok_or_else(|| bad("it holds no Anki collection"))?;
    let entry = zip
        .by_name(name)
        .map_err(|err| AnkiError::NotAPackage(format!("{name}: {err}")))?;
    let mut collection = Vec::new();
    let limited = |reader: &mut dyn Read, out: &mut Vec<u8>| {
        reader
            .take(MAX_COLLECTION_BYTES + 1)
            .read_to_end(out)
            .map_err(|err| AnkiError::NotAPackage(format!("{name}: {err}")))
    };
    if compressed {
        let mut decoder = ruzstd::decoding::StreamingDecoder::new(entry)
            .map_err(|err| AnkiError::NotAPackage(format!("{name}: {err}")))?;
        limited(&mut decoder, &mut collection)?;
    } else {
        let mut entry = entry;
        limited(&mut entry, &mut collection)?;
    }
    if collection.len() as u64 > MAX_COLLECTION_BYTES {
        return Err(bad("its collection is larger than 256 MiB"));
    }
    let file = tempfile_path()?;
    std::fs::write(&file.0, &collection)?;
    let db = Connection::open_with_flags(&file.0, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|_| bad("its collection is not an SQLite database"))?;
    let cloze_types = cloze_note_types(&db).map_err(|_| bad("its note types cannot be read"))?;
    let mut statement = db
        .prepare("SELECT id, mid, flds, tags FROM notes ORDER BY id")
        .map_err(|_| bad("its notes cannot be read"))?;
    let notes = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|_| bad("its notes cannot be read"))?;
    let mut histories = review_history(&db).map_err(|_| bad("its reviews cannot be read"))?;
    Ok(notes
        .into_iter()
        .map(|(id, model, fields, tags)| {
            let mut fields = fields.split(FIELD_SEPARATOR).map(html_to_text);
            let front = fields.next().unwrap_or_default();
            let back = fields.next().unwrap_or_default();
            let content = CardContent {
                kind: if cloze_types.contains(&model) {
                    CardKind::Cloze
                } else {
                    CardKind::Basic
                },
                front,
                back,
                tags: tags.split_whitespace().map(str::to_owned).collect(),
                source: None,
            };
            ImportedNote {
                content,
                history: histories.remove(&id).unwrap_or_default(),
            }
        })
        .collect())
}

/// Each note's reviews that carry a rating, oldest first, by note id.
fn review_history(
    db: &Connection,
) -> Result<std::collections::HashMap<i64, Vec<(i64, PastReview)>>, rusqlite::Error> {
    // revlog.id is the review's time in Unix ms; type 4 and 5 are manual reschedules.
    let mut statement = db.prepare(
        "SELECT c.nid, c.ord, r.id, r.ease FROM revlog r JOIN cards c ON c.id = r.cid \
         WHERE r.type IN (0, 1, 2, 3) ORDER BY r.id",
    )?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut histories: std::collections::HashMap<i64, Vec<(i64, PastReview)>> =
        std::collections::HashMap::new();
    for (note, ord, at_ms, ease) in rows {
        if let Some(rating) = Rating::from_number(ease) {
            histories
                .entry(note)
                .or_default()
                .push((ord + 1, PastReview { at_ms, rating }));
        }
    }
    Ok(histories)
}

/// The ids of the collection's cloze note types: from the `notetypes` table of schema 18 (the kind
/// is field 1 of its protobuf config), or from the `models` JSON of schema 11 (`type` 1).
fn cloze_note_types(db: &Connection) -> Result<Vec<i64>, rusqlite::Error> {
    let schema_18: bool = db.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'notetypes'",
        [],
        |row| row.get(0),
    )?;
    if schema_18 {
        let mut statement = db.prepare("SELECT id, config FROM notetypes")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        let mut cloze = Vec::new();
        for row in rows {
            let (id, config) = row?;
            if protobuf_varint_field(&config, 1) == Some(1) {
                cloze.push(id);
            }
        }
        return Ok(cloze);
    }
    let models: String = db.query_row("SELECT models FROM col", [], |row| row.get(0))?;
    let models: Value = serde_json::from_str(&models).unwrap_or(Value::Null);
    Ok(models
        .as_object()
        .map(|models| {
            models
                .values()
                .filter(|model| model["type"] == 1)
                .filter_map(|model| model["id"].as_i64())
                .collect()
        })
        .unwrap_or_default())
}

/// The value of varint field `number` at the top level of a protobuf message, if present and
/// the message well formed up to it.
pub fn protobuf_varint_field(message: &[u8], number: u64) -> Option<u64> {
    fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let mut value = 0_u64;
        for shift in (0..64).step_by(7) {
            let byte = *bytes.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut at = 0;
    while at < message.len() {
        let key = varint(message, &mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let value = varint(message, &mut at)?;
                if field == number {
                    return Some(value);
                }
            }
            1 => at += 8,
            2 => {
                let length = usize::try_from(varint(message, &mut at)?).ok()?;
                at = at.checked_add(length)?;
            }
            5 => at += 4,
            _ => return None,
        }
    }
    None
}

/// A field's HTML as the plain text our cards hold: line breaks and block ends as newlines,
/// other tags dropped, the common entities and numeric references decoded.
pub fn html_to_text(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            text.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close].trim().to_ascii_lowercase();
        let name = tag
            .trim_start_matches('/')
            .split([' ', '/'])
            .next()
            .unwrap_or("");
        if name == "br" || (tag.starts_with('/') && matches!(name, "div" | "p" | "li")) {
            text.push('\n');
        }
        rest = &rest[open + close + 1..];
    }
    text.push_str(rest);
    decode_entities(&text).trim().to_owned()
}

fn decode_entities(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let entity = tail
            .find(';')
            .filter(|end| *end <= 10)
            .map(|end| &tail[1..end]);
        let decoded = entity.and_then(|name| match name {
            "nbsp" => Some(' '),
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => name
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        });
        match (entity, decoded) {
            (Some(name), Some(c)) => {
                out.push(c);
                rest = &tail[name.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
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
    fn field_html_becomes_plain_text() {
        assert_eq!(
            html_to_text("What does <b>chlorophyll</b> absorb?"),
            "What does chlorophyll absorb?"
        );
        assert_eq!(
            html_to_text("Red&nbsp;and blue<br>mostly <i>&lt;700&#8239;nm&gt;</i>"),
            "Red and blue\nmostly <700\u{202f}nm>"
        );
        assert_eq!(html_to_text("<div>one</div><div>two</div>"), "one\ntwo");
        assert_eq!(
            html_to_text("a & b < c"),
            "a & b < c",
            "stray characters stay"
        );
    }

    #[test]
    fn the_kind_is_read_from_a_protobuf_config() {
        // kind = 1 (cloze), then a length-delimited field 3 ("css"), then field 5 = 7.
        assert_eq!(
            protobuf_varint_field(&[0x08, 0x01, 0x1a, 0x02, b'a', b'b', 0x28, 0x07], 1),
            Some(1)
        );
        assert_eq!(
            protobuf_varint_field(&[0x1a, 0x01, b'x', 0x28, 0x07], 5),
            Some(7)
        );
        assert_eq!(
            protobuf_varint_field(&[0x1a, 0x01, b'x'], 1),
            None,
            "a normal type leaves it out"
        );
        assert_eq!(protobuf_varint_field(&[0x1a, 0x7f], 1), None, "truncated");
    }

    #[test]
    fn what_is_not_a_package_says_so() {
        assert!(matches!(
            read_package(b"plain text"),
            Err(AnkiError::NotAPackage(_))
        ));
        let mut empty = zip::ZipWriter::new(Cursor::new(Vec::new()));
        empty
            .start_file("media", zip::write::SimpleFileOptions::default())
            .unwrap_or_default();
        let bytes = empty.finish().map(Cursor::into_inner).unwrap_or_default();
        let err = read_package(&bytes).expect_err("no collection");
        assert!(err.to_string().contains("no Anki collection"), "{err}");
    }

    #[test]
    fn intervals_are_whole_days_of_at_least_one() {
        assert_eq!(days_between(0, 10 * 60_000), 1);
        assert_eq!(days_between(0, 3 * DAY_MS), 3);
        assert_eq!(days_between(0, 3 * DAY_MS + DAY_MS / 2 + 1), 4);
    }
}
