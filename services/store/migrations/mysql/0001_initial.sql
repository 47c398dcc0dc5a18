-- Comet schema for the MySQL protocol: TiDB in production, MariaDB in tests.
--
-- Kept to what TiDB accepts: no stored procedures, triggers or events; no AUTO_INCREMENT (every id is a
-- time-ordered random string from comet_model::new_id(), which spreads writes across TiKV regions); every index
-- is declared here. Identifiers use utf8mb4_bin, so they compare case-sensitively and sort by code point exactly
-- like SQLite's default BINARY collation.
--
-- Indexed strings are VARCHAR(191) (uids and guids are at most 100 characters). Conversation ids and event keys
-- can reach 206 characters (`<uid>_user_<uid>`), so they are VARCHAR(255): 1,020 bytes in utf8mb4, within the
-- 3,072-byte index limit of InnoDB (MySQL 5.7+, MariaDB 10.2+) and TiDB.
--
-- Times are BIGINT milliseconds since the Unix epoch. JSON (metadata, data, tags) is stored as text, which
-- every driver, the Any driver included, reads and writes the same way.

CREATE TABLE users (
    uid        VARCHAR(191) NOT NULL,
    name       TEXT         NOT NULL,
    avatar     TEXT         NULL,
    link       TEXT         NULL,
    role       VARCHAR(191) NULL,
    metadata   MEDIUMTEXT   NULL,
    created_at BIGINT       NOT NULL,
    updated_at BIGINT       NOT NULL,
    deleted_at BIGINT       NULL,
    PRIMARY KEY (uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Only a hash of each token is stored: a leaked table does not let anyone sign in.
CREATE TABLE auth_tokens (
    token_hash VARCHAR(191) NOT NULL,
    uid        VARCHAR(191) NOT NULL,
    created_at BIGINT       NOT NULL,
    PRIMARY KEY (token_hash),
    KEY auth_tokens_uid (uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- `groups` is a reserved word in MySQL 8, hence `chat_groups`.
CREATE TABLE chat_groups (
    guid          VARCHAR(191) NOT NULL,
    name          TEXT         NOT NULL,
    group_type    VARCHAR(16)  NOT NULL,
    password_hash TEXT         NULL,
    description   TEXT         NULL,
    icon          TEXT         NULL,
    owner         VARCHAR(191) NOT NULL,
    metadata      MEDIUMTEXT   NULL,
    members_count BIGINT       NOT NULL,
    created_at    BIGINT       NOT NULL,
    updated_at    BIGINT       NOT NULL,
    PRIMARY KEY (guid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE group_members (
    guid      VARCHAR(191) NOT NULL,
    uid       VARCHAR(191) NOT NULL,
    scope     VARCHAR(16)  NOT NULL,
    joined_at BIGINT       NOT NULL,
    PRIMARY KEY (guid, uid),
    KEY group_members_uid (uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per conversation: the last sequence number handed out. Senders to one conversation serialize on
-- this row's lock, which is what makes `messages.seq` gap-free.
CREATE TABLE conversations (
    conversation_id VARCHAR(255) NOT NULL,
    last_seq        BIGINT       NOT NULL,
    PRIMARY KEY (conversation_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE messages (
    id              VARCHAR(64)  NOT NULL,
    conversation_id VARCHAR(255) NOT NULL,
    seq             BIGINT       NOT NULL,
    sender          VARCHAR(191) NOT NULL,
    receiver        VARCHAR(191) NOT NULL,
    receiver_type   VARCHAR(16)  NOT NULL,
    category        VARCHAR(16)  NOT NULL,
    message_type    VARCHAR(191) NOT NULL,
    data            MEDIUMTEXT   NOT NULL,
    muid            VARCHAR(191) NULL,
    parent_id       VARCHAR(64)  NULL,
    tags            TEXT         NOT NULL,
    sent_at         BIGINT       NOT NULL,
    updated_at      BIGINT       NOT NULL,
    edited_at       BIGINT       NULL,
    deleted_at      BIGINT       NULL,
    PRIMARY KEY (id),
    UNIQUE KEY messages_conversation_seq (conversation_id, seq),
    -- NULL muids never collide, so messages without a client id are unconstrained.
    UNIQUE KEY messages_sender_muid (sender, muid),
    KEY messages_parent (parent_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The transactional outbox: written in the same transaction as the change it describes, published by the relay.
CREATE TABLE outbox (
    id           VARCHAR(64)  NOT NULL,
    event_type   VARCHAR(64)  NOT NULL,
    event_key    VARCHAR(255) NOT NULL,
    key_seq      BIGINT       NOT NULL,
    event_time   BIGINT       NOT NULL,
    data         MEDIUMTEXT   NOT NULL,
    published_at BIGINT       NULL,
    PRIMARY KEY (id),
    KEY outbox_unpublished (published_at, event_key, key_seq, event_time)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Named leases (one row each): the relay replica holding `relay` is the only one publishing.
CREATE TABLE leases (
    name       VARCHAR(64)  NOT NULL,
    owner      VARCHAR(191) NOT NULL,
    expires_at BIGINT       NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
