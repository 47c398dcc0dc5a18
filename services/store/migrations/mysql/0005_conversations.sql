-- Conversations per user: read and delivered positions (receipts), and the index that lists a user's
-- conversations by last activity (the MySQL protocol: TiDB in production, MariaDB in tests).
--
-- One column per statement: older TiDB releases add a single column per ALTER TABLE.

-- When the conversation's last message was sent (ms), and for a group conversation its guid, so a member's
-- group conversations are found from `group_members` through `conversations_guid`.
ALTER TABLE conversations ADD COLUMN last_message_at BIGINT NULL;
ALTER TABLE conversations ADD COLUMN guid VARCHAR(191) NULL;
CREATE INDEX conversations_guid ON conversations (guid);

-- One row per (conversation, user) that has a position: no row per message. Positions are seqs of the
-- conversation; the unread count is `conversations.last_seq - read_seq`. The key is 255 + 191 characters,
-- 1,784 bytes in utf8mb4, within the 3,072-byte index limit.
CREATE TABLE conversation_receipts (
    conversation_id VARCHAR(255) NOT NULL,
    uid             VARCHAR(191) NOT NULL,
    delivered_seq   BIGINT       NOT NULL,
    read_seq        BIGINT       NOT NULL,
    updated_at      BIGINT       NOT NULL,
    PRIMARY KEY (conversation_id, uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per (user, direct conversation) the user sent or received in, with the time of its last message:
-- the user's direct conversations newest first are one range of `user_conversations_recent`. Group
-- conversations are not copied here (a send would write one row per member); they are found through
-- `group_members`.
CREATE TABLE user_conversations (
    uid             VARCHAR(191) NOT NULL,
    conversation_id VARCHAR(255) NOT NULL,
    other_uid       VARCHAR(191) NOT NULL,
    last_at         BIGINT       NOT NULL,
    PRIMARY KEY (uid, conversation_id),
    KEY user_conversations_recent (uid, last_at, conversation_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Conversations that already have messages.
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
