-- Card generation: a job sends a document's pages to the LLM service one by one and stores what
-- comes back as draft cards. A page's drafts and the job's progress commit together, so a job
-- resumed after a crash neither loses nor repeats a page.

CREATE TABLE generation_jobs (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    deck_id TEXT NOT NULL REFERENCES decks (id) ON DELETE CASCADE,
    max_cards BIGINT NOT NULL,
    -- "basic", "cloze" or "basic,cloze"
    kinds TEXT NOT NULL,
    -- queued | running | done | failed_retryable | failed
    status TEXT NOT NULL,
    pages_total BIGINT NOT NULL,
    pages_done BIGINT NOT NULL,
    drafts_created BIGINT NOT NULL,
    error TEXT,
    -- A running job belongs to whoever holds it until then (Unix ms); an expired lease means its
    -- runner died and any backend may take the job over.
    lease_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX generation_jobs_pending ON generation_jobs (status, lease_until);

CREATE TABLE drafts (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    job_id TEXT NOT NULL REFERENCES generation_jobs (id) ON DELETE CASCADE,
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    deck_id TEXT NOT NULL REFERENCES decks (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    front TEXT NOT NULL,
    back TEXT NOT NULL,
    page BIGINT NOT NULL,
    span_start BIGINT NOT NULL,
    span_end BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX drafts_document ON drafts (document_id, id);
