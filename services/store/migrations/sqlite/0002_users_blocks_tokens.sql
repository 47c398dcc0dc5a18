-- Blocked users, and an id for each auth token. Same meaning as migrations/mysql/0002_users_blocks_tokens.sql.

ALTER TABLE auth_tokens ADD COLUMN id TEXT NULL;
UPDATE auth_tokens SET id = SUBSTR(token_hash, 1, 32) WHERE id IS NULL;
CREATE UNIQUE INDEX auth_tokens_id ON auth_tokens (id);

-- One row per (blocker, blocked) pair. Messages between the two are refused in either direction.
CREATE TABLE blocked_users (
    blocker    TEXT    NOT NULL,
    blocked    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker, blocked)
);
CREATE INDEX blocked_users_blocked ON blocked_users (blocked);
