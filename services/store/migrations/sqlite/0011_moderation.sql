-- Moderation (SQLite). Same tables and meaning as migrations/mysql/0011_moderation.sql.
CREATE TABLE moderation_rules (
    id         TEXT    NOT NULL PRIMARY KEY,
    revision   INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE moderation_rule_revisions (
    rule_id    TEXT    NOT NULL,
    revision   INTEGER NOT NULL,
    body       TEXT    NULL,
    changed_by TEXT    NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (rule_id, revision)
);

CREATE TABLE moderation_lists (
    id         TEXT    NOT NULL PRIMARY KEY,
    revision   INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE moderation_state (
    id      INTEGER NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL
);

INSERT INTO moderation_state (id, version) VALUES (1, 0);

CREATE TABLE moderation_reviews (
    id            TEXT    NOT NULL PRIMARY KEY,
    queue         TEXT    NOT NULL,
    message_id    TEXT    NOT NULL,
    conversation  TEXT    NOT NULL,
    sender        TEXT    NOT NULL,
    receiver_type TEXT    NOT NULL,
    receiver      TEXT    NOT NULL,
    text          TEXT    NOT NULL,
    masked        TEXT    NULL,
    rule_id       TEXT    NULL,
    status        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    reviewed_by   TEXT    NULL,
    reviewed_at   INTEGER NULL
);
CREATE UNIQUE INDEX moderation_reviews_message ON moderation_reviews (queue, message_id);
CREATE INDEX moderation_reviews_list ON moderation_reviews (queue, status, created_at);
CREATE INDEX moderation_reviews_sender ON moderation_reviews (sender, created_at);

CREATE TABLE moderation_reports (
    id         TEXT    NOT NULL PRIMARY KEY,
    message_id TEXT    NOT NULL,
    reporter   TEXT    NOT NULL,
    reason_id  TEXT    NOT NULL,
    remark     TEXT    NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX moderation_reports_once ON moderation_reports (message_id, reporter);

CREATE TABLE moderation_audit (
    id          TEXT    NOT NULL PRIMARY KEY,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target_kind TEXT    NOT NULL,
    target_id   TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX moderation_audit_at ON moderation_audit (at);
