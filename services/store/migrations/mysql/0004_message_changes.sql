-- Editing, deleting and reacting to messages (the MySQL protocol: TiDB in production, MariaDB in tests).
--
-- One column per statement: older TiDB releases add a single column per ALTER TABLE.

ALTER TABLE messages ADD COLUMN edited_by VARCHAR(191) NULL;
ALTER TABLE messages ADD COLUMN deleted_by VARCHAR(191) NULL;

-- History filtered by `updatedSince` reads a conversation's messages changed since a time.
CREATE INDEX messages_conversation_updated ON messages (conversation_id, updated_at);

-- One row per (message, reaction, user): adding a reaction twice is one row. Reactions are at most 64
-- characters (256 bytes in utf8mb4), so the primary key stays within the 3,072-byte index limit.
CREATE TABLE message_reactions (
    message_id      VARCHAR(64)  NOT NULL,
    reaction        VARCHAR(64)  NOT NULL,
    uid             VARCHAR(191) NOT NULL,
    conversation_id VARCHAR(255) NOT NULL,
    reacted_at      BIGINT       NOT NULL,
    PRIMARY KEY (message_id, reaction, uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
