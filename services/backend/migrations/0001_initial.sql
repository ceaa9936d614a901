-- Portable SQL: the same migration runs on SQLite and PostgreSQL.
-- Ids are application-generated UUIDv7 text; times are Unix milliseconds (BIGINT).

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Browser sessions (kind 'session', always expiring) and API tokens (kind 'api', optional expiry).
-- Only the SHA-256 of a token is stored, so a database dump does not hand out logins.
CREATE TABLE auth_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('session', 'api')),
    name TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id, kind);
CREATE INDEX auth_tokens_expiry ON auth_tokens (kind, expires_at);

CREATE TABLE decks (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX decks_user ON decks (user_id, id);

CREATE TABLE cards (
    id TEXT PRIMARY KEY,
    deck_id TEXT NOT NULL REFERENCES decks (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('basic', 'cloze')),
    -- basic: question; cloze: the text with {{cN::...}} deletions
    front TEXT NOT NULL,
    -- basic: answer; cloze: optional extra shown with the answer
    back TEXT NOT NULL,
    -- space-separated, as Anki stores them
    tags TEXT NOT NULL DEFAULT '',
    source_document_id TEXT,
    source_page BIGINT,
    source_start BIGINT,
    source_end BIGINT,
    -- JSON [x, y, width, height] in page pixels
    source_bbox TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX cards_deck ON cards (deck_id, id);

-- One row per thing a learner is asked: 1 for a basic card, one per cloze number for a cloze card.
CREATE TABLE study_items (
    card_id TEXT NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    ordinal BIGINT NOT NULL,
    deck_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    due BIGINT NOT NULL,
    stability DOUBLE PRECISION,
    difficulty DOUBLE PRECISION,
    last_review BIGINT,
    reps BIGINT NOT NULL DEFAULT 0,
    lapses BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (card_id, ordinal)
);
CREATE INDEX study_items_deck_due ON study_items (deck_id, due);

-- Append-only: the application only ever inserts here. No foreign key to cards, so the history
-- outlives a deleted card (it is what an FSRS parameter optimisation learns from).
CREATE TABLE review_logs (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    card_id TEXT NOT NULL,
    ordinal BIGINT NOT NULL,
    rating BIGINT NOT NULL,
    reviewed_at BIGINT NOT NULL,
    elapsed_days BIGINT NOT NULL,
    stability DOUBLE PRECISION NOT NULL,
    difficulty DOUBLE PRECISION NOT NULL,
    due BIGINT NOT NULL
);
CREATE INDEX review_logs_card ON review_logs (card_id, reviewed_at);
