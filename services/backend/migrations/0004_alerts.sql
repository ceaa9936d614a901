-- Alerts received from Alertmanager's webhook (POST /alerts): one row per alert, keyed by
-- Alertmanager's fingerprint of its labels, so a re-sent or later notification updates the row.

CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    alertname TEXT NOT NULL,
    -- the `severity` label, when the alert has one
    severity TEXT,
    status TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
    -- JSON objects of strings, as Alertmanager sent them
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    -- the start of the current firing; a new firing of the same alert moves it
    starts_at BIGINT NOT NULL,
    -- set once resolved (Alertmanager does not tell when a firing alert will end)
    ends_at BIGINT,
    generator_url TEXT NOT NULL,
    first_received_at BIGINT NOT NULL,
    last_received_at BIGINT NOT NULL,
    -- notifications that carried this alert
    notifications BIGINT NOT NULL
);

-- GET /api/alerts pages newest first, optionally by status.
CREATE INDEX alerts_newest ON alerts (starts_at, fingerprint);
CREATE INDEX alerts_status_newest ON alerts (status, starts_at, fingerprint);
