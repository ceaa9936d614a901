-- Reading a document (OCR) runs in the background like generation: an upload returns at once and
-- a runner claims the document under a lease. A runner that dies leaves an expired lease, and any
-- backend's sweeper reads the document again, so none is left `processing` by a restart.

ALTER TABLE documents ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
-- How many runners have claimed the document since its upload or last retry: a claim's number is
-- its token (only the newest claim may store pages), and a file that keeps killing its runner is
-- given up after a few.
ALTER TABLE documents ADD COLUMN ocr_attempts BIGINT NOT NULL DEFAULT 0;

CREATE INDEX documents_pending ON documents (status, lease_until);
