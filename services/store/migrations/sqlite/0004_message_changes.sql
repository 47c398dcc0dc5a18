-- Editing, deleting and reacting to messages (SQLite). Same columns and indexes as
-- migrations/mysql/0004_message_changes.sql.

ALTER TABLE messages ADD COLUMN edited_by TEXT NULL;
ALTER TABLE messages ADD COLUMN deleted_by TEXT NULL;

CREATE INDEX messages_conversation_updated ON messages (conversation_id, updated_at);

-- One row per (message, reaction, user): adding a reaction twice is one row.
CREATE TABLE message_reactions (
    message_id      TEXT    NOT NULL,
    reaction        TEXT    NOT NULL,
    uid             TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    reacted_at      INTEGER NOT NULL,
    PRIMARY KEY (message_id, reaction, uid)
);
