-- Blocked users, and an id for each auth token so a token can be listed and revoked without ever showing it.
--
-- Tokens issued before this migration get the first 32 hex digits of their hash as id: the hash of a random
-- 256-bit token reveals nothing usable, and the ids stay unique. New tokens get a UUIDv7 (comet_model::new_id).

ALTER TABLE auth_tokens ADD COLUMN id VARCHAR(64) NULL;
UPDATE auth_tokens SET id = SUBSTR(token_hash, 1, 32) WHERE id IS NULL;
CREATE UNIQUE INDEX auth_tokens_id ON auth_tokens (id);

-- One row per (blocker, blocked) pair. Messages between the two are refused in either direction; the index on
-- `blocked` answers "who blocked this user".
CREATE TABLE blocked_users (
    blocker    VARCHAR(191) NOT NULL,
    blocked    VARCHAR(191) NOT NULL,
    created_at BIGINT       NOT NULL,
    PRIMARY KEY (blocker, blocked),
    KEY blocked_users_blocked (blocked)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
