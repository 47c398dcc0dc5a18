-- Held messages (SQLite). Same table and meaning as migrations/mysql/0012_moderation_async.sql.
CREATE TABLE moderation_held (
    id              TEXT    NOT NULL PRIMARY KEY,
    conversation_id TEXT    NOT NULL,
    sender          TEXT    NOT NULL,
    muid            TEXT    NULL,
    message         TEXT    NOT NULL,
    checks          TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    reason          TEXT    NULL,
    engine_failed   INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    decided_at      INTEGER NULL,
    decided_by      TEXT    NULL,
    seq             INTEGER NULL
);
CREATE UNIQUE INDEX moderation_held_sender_muid ON moderation_held (sender, muid);
CREATE INDEX moderation_held_status ON moderation_held (status, created_at);
