-- Webhooks (SQLite). Same tables and meaning as migrations/mysql/0009_webhooks.sql.
CREATE TABLE webhooks (
    id              TEXT    NOT NULL PRIMARY KEY,
    name            TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    enabled         INTEGER NOT NULL,
    use_basic_auth  INTEGER NOT NULL,
    username        TEXT    NULL,
    password        TEXT    NULL,
    triggers        TEXT    NOT NULL,
    secret          TEXT    NOT NULL,
    previous_secret TEXT    NULL,
    previous_until  INTEGER NULL,
    failing_since   INTEGER NULL,
    disabled_reason TEXT    NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT    NOT NULL PRIMARY KEY,
    webhook_id      TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    trigger_name    TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    round_attempts  INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER NULL,
    last_status     INTEGER NULL,
    last_error      TEXT    NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id  TEXT    NOT NULL,
    attempt      INTEGER NOT NULL,
    attempted_at INTEGER NOT NULL,
    status       INTEGER NULL,
    latency_ms   INTEGER NOT NULL,
    response     TEXT    NULL,
    error        TEXT    NULL,
    PRIMARY KEY (delivery_id, attempt)
);
