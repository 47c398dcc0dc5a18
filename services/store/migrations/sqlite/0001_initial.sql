-- Comet schema for SQLite (the embedded single-process mode). Same tables, columns and indexes as
-- migrations/mysql/0001_initial.sql, in SQLite's types. TEXT compares with the BINARY collation, so identifiers
-- are case-sensitive and sort by code point, as on MySQL with utf8mb4_bin.
--
-- Times are INTEGER milliseconds since the Unix epoch. JSON (metadata, data, tags) is stored as TEXT.

CREATE TABLE users (
    uid        TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    avatar     TEXT    NULL,
    link       TEXT    NULL,
    role       TEXT    NULL,
    metadata   TEXT    NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER NULL
);

-- Only a hash of each token is stored: a leaked file does not let anyone sign in.
CREATE TABLE auth_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    uid        TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX auth_tokens_uid ON auth_tokens (uid);

CREATE TABLE chat_groups (
    guid          TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    group_type    TEXT    NOT NULL,
    password_hash TEXT    NULL,
    description   TEXT    NULL,
    icon          TEXT    NULL,
    owner         TEXT    NOT NULL,
    metadata      TEXT    NULL,
    members_count INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE group_members (
    guid      TEXT    NOT NULL,
    uid       TEXT    NOT NULL,
    scope     TEXT    NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (guid, uid)
);
CREATE INDEX group_members_uid ON group_members (uid);

-- One row per conversation: the last sequence number handed out.
CREATE TABLE conversations (
    conversation_id TEXT    NOT NULL PRIMARY KEY,
    last_seq        INTEGER NOT NULL
);

CREATE TABLE messages (
    id              TEXT    NOT NULL PRIMARY KEY,
    conversation_id TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    sender          TEXT    NOT NULL,
    receiver        TEXT    NOT NULL,
    receiver_type   TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    message_type    TEXT    NOT NULL,
    data            TEXT    NOT NULL,
    muid            TEXT    NULL,
    parent_id       TEXT    NULL,
    tags            TEXT    NOT NULL,
    sent_at         INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    edited_at       INTEGER NULL,
    deleted_at      INTEGER NULL
);
CREATE UNIQUE INDEX messages_conversation_seq ON messages (conversation_id, seq);
-- NULL muids never collide, so messages without a client id are unconstrained.
CREATE UNIQUE INDEX messages_sender_muid ON messages (sender, muid);
CREATE INDEX messages_parent ON messages (parent_id);

-- The transactional outbox: written in the same transaction as the change it describes, published by the relay.
CREATE TABLE outbox (
    id           TEXT    NOT NULL PRIMARY KEY,
    event_type   TEXT    NOT NULL,
    event_key    TEXT    NOT NULL,
    key_seq      INTEGER NOT NULL,
    event_time   INTEGER NOT NULL,
    data         TEXT    NOT NULL,
    published_at INTEGER NULL
);
CREATE INDEX outbox_unpublished ON outbox (published_at, event_key, key_seq, event_time);

-- Named leases (one row each): the relay holding `relay` is the only one publishing.
CREATE TABLE leases (
    name       TEXT    NOT NULL PRIMARY KEY,
    owner      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
