-- The ledger's first schema. Written once for both backends (SQLite and PostgreSQL): only
-- TEXT and BIGINT columns, times as Unix milliseconds, and no generated keys, so every key
-- is natural and every write can be an idempotent upsert.

-- One row per vendor identity the service claimed, created or found.
-- `state` is `intent` (a create is about to be sent), `active`, `suspended` or `deleted`.
-- `employee_id` is NULL when the job named no person; `tenant` is '' when it named none.
CREATE TABLE links (
    vendor         TEXT   NOT NULL,
    account        TEXT   NOT NULL,
    identity       TEXT   NOT NULL,
    identity_extra TEXT,
    tenant         TEXT   NOT NULL DEFAULT '',
    employee_id    TEXT,
    job_id         TEXT   NOT NULL,
    correlation_id TEXT,
    vendor_user_id TEXT,
    state          TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (vendor, account, identity)
);
CREATE INDEX links_by_employee ON links (employee_id, tenant);
CREATE INDEX links_by_identity ON links (identity);
CREATE INDEX links_by_extra ON links (identity_extra);

-- Every step of every job, keyed by the id of the event or action that reported it, so a
-- redelivered event is written once.
CREATE TABLE history (
    entry_id       TEXT   PRIMARY KEY,
    at             BIGINT NOT NULL,
    kind           TEXT   NOT NULL,
    job_id         TEXT,
    correlation_id TEXT,
    tenant         TEXT,
    employee_id    TEXT,
    vendor         TEXT,
    account        TEXT,
    detail         TEXT   NOT NULL
);
CREATE INDEX history_by_job ON history (job_id, at);
CREATE INDEX history_by_correlation ON history (correlation_id, at);
CREATE INDEX history_by_employee ON history (employee_id, at);

-- An index of the dead-letter queue: one row per dead-lettered message, keyed by a digest
-- of the message, with `state` `dead`, `replayed` or `purged`.
CREATE TABLE dead_letters (
    letter_id       TEXT   PRIMARY KEY,
    job_id          TEXT,
    vendor          TEXT,
    account         TEXT,
    reason          TEXT   NOT NULL,
    code            TEXT,
    message         TEXT,
    attempts        BIGINT NOT NULL,
    routing_key     TEXT   NOT NULL,
    first_failed_at BIGINT,
    last_failed_at  BIGINT NOT NULL,
    state           TEXT   NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX dead_letters_by_state ON dead_letters (state, last_failed_at);
CREATE INDEX dead_letters_by_job ON dead_letters (job_id);

-- How far the projection has read: the newest event time it committed, per writer.
CREATE TABLE projection_progress (
    writer     TEXT   PRIMARY KEY,
    event_at   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
