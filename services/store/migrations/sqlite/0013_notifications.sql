-- Notifications (SQLite). Same tables and meaning as migrations/mysql/0013_notifications.sql.
CREATE TABLE push_tokens (
    id               TEXT    NOT NULL,
    uid              TEXT    NOT NULL,
    session          TEXT    NOT NULL,
    platform         TEXT    NOT NULL,
    provider_id      TEXT    NOT NULL,
    token            TEXT    NOT NULL,
    token_hash       TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX push_tokens_session ON push_tokens (uid, session);
CREATE UNIQUE INDEX push_tokens_hash ON push_tokens (token_hash);

CREATE TABLE push_providers (
    id               TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    is_default       INTEGER NOT NULL,
    body             TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (id)
);

CREATE TABLE notification_preferences (
    uid              TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (uid)
);

CREATE TABLE notification_defaults (
    id               TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (id)
);

CREATE TABLE notification_mutes (
    uid              TEXT    NOT NULL,
    conversation_key TEXT    NOT NULL,
    muted_until      INTEGER NOT NULL,
    PRIMARY KEY (uid, conversation_key)
);

CREATE TABLE notification_pushes (
    id               TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    uid              TEXT    NOT NULL,
    token_id         TEXT    NOT NULL,
    provider_id      TEXT    NOT NULL,
    collapse_id      TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    claimed_until    INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX notification_pushes_due ON notification_pushes (next_attempt_at);

CREATE TABLE notification_log (
    id               TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    message_id       TEXT    NULL,
    uid              TEXT    NULL,
    conversation_key TEXT    NULL,
    provider_id      TEXT    NULL,
    outcome          TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    status           INTEGER NULL,
    collapse_id      TEXT    NULL,
    at               INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX notification_log_at ON notification_log (at);
CREATE INDEX notification_log_uid ON notification_log (uid, at);
