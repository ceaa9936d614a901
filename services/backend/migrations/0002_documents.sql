-- Uploaded documents and what OCR read from them. The original file is kept in the database (so
-- every backend replica serves it, and nothing depends on a shared volume); BYTEA is PostgreSQL's
-- binary type and SQLite stores the bound blob unchanged under that name.

CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    content BYTEA NOT NULL,
    -- processing | done | failed_retryable | failed
    status TEXT NOT NULL,
    error TEXT,
    page_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, sha256)
);

CREATE INDEX documents_user ON documents (user_id, id);

CREATE TABLE document_pages (
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    page BIGINT NOT NULL,
    source TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    text TEXT NOT NULL,
    mean_confidence DOUBLE PRECISION,
    -- JSON arrays of the OCR service's words (text, confidence, bbox, block, line).
    words TEXT NOT NULL,
    filtered_words TEXT NOT NULL,
    PRIMARY KEY (document_id, page)
);
