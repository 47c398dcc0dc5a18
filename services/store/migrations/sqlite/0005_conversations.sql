-- Conversations per user (SQLite). Same columns, indexes and backfill as
-- migrations/mysql/0005_conversations.sql.

ALTER TABLE conversations ADD COLUMN last_message_at INTEGER NULL;
ALTER TABLE conversations ADD COLUMN guid TEXT NULL;
CREATE INDEX conversations_guid ON conversations (guid);

CREATE TABLE conversation_receipts (
    conversation_id TEXT    NOT NULL,
    uid             TEXT    NOT NULL,
    delivered_seq   INTEGER NOT NULL,
    read_seq        INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, uid)
);

CREATE TABLE user_conversations (
    uid             TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    other_uid       TEXT    NOT NULL,
    last_at         INTEGER NOT NULL,
    PRIMARY KEY (uid, conversation_id)
);
CREATE INDEX user_conversations_recent ON user_conversations (uid, last_at, conversation_id);

UPDATE conversations SET last_message_at = (
    SELECT MAX(m.sent_at) FROM messages m WHERE m.conversation_id = conversations.conversation_id
);
UPDATE conversations SET guid = (
    SELECT MAX(m.receiver) FROM messages m
    WHERE m.conversation_id = conversations.conversation_id AND m.receiver_type = 'group'
);
INSERT INTO user_conversations (uid, conversation_id, other_uid, last_at)
SELECT sides.uid, sides.conversation_id, MAX(sides.other_uid), MAX(sides.sent_at)
FROM (
    SELECT sender AS uid, conversation_id, receiver AS other_uid, sent_at FROM messages WHERE receiver_type = 'user'
    UNION ALL
    SELECT receiver AS uid, conversation_id, sender AS other_uid, sent_at FROM messages WHERE receiver_type = 'user'
) sides
GROUP BY sides.uid, sides.conversation_id;
