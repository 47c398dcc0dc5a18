-- Conversation keys that never collide (issue #17), for the MySQL protocol: TiDB in production, MariaDB in tests.
--
-- Until now a conversation was stored under its display id: `<low uid>_user_<high uid>` or `group_<guid>`.
-- Uids may contain `_user_` and start with `group_`, so distinct conversations could share it: `a`→`x_user_z`
-- and `a_user_x`→`z` both wrote to `a_user_x_user_z`, and each pair read the other's messages; the direct
-- conversation of `group` and `zz` was the private group `user_zz`'s. The key is now `u:<low>:<high>` or
-- `g:<guid>`; `:` is not in the uid and guid alphabet, so distinct conversations never share one.
--
-- Every message says what it belongs to (sender, receiver, receiver type), so its new key is computed from the
-- message, never from the old id. A collided conversation is split: each of its messages goes to the
-- conversation it was sent in, and seqs are renumbered 1, 2, 3, … per new conversation in their old order (for
-- a conversation that did not collide the numbers stay the same). Receipts move to the conversation their user
-- takes part in, with their positions renumbered alike; a receipt of a user who takes part in none is dropped.
-- Unpublished outbox events of a conversation that did not collide get its new key; those of a collided one keep
-- the old id, which no consumer reads as a conversation (the gateway drops them; clients resync from history).

CREATE TABLE conversation_key_moves (
    id              VARCHAR(64)  NOT NULL,
    old_key         VARCHAR(255) NOT NULL,
    old_seq         BIGINT       NOT NULL,
    new_key         VARCHAR(255) NOT NULL,
    new_seq         BIGINT       NOT NULL,
    sender          VARCHAR(191) NOT NULL,
    receiver        VARCHAR(191) NOT NULL,
    receiver_type   VARCHAR(16)  NOT NULL,
    sent_at         BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY conversation_key_moves_old (old_key, new_key, old_seq),
    KEY conversation_key_moves_new (new_key, old_seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO conversation_key_moves (id, old_key, old_seq, new_key, new_seq, sender, receiver, receiver_type, sent_at)
SELECT keyed.id, keyed.conversation_id, keyed.seq, keyed.new_key,
       ROW_NUMBER() OVER (PARTITION BY keyed.new_key ORDER BY keyed.seq),
       keyed.sender, keyed.receiver, keyed.receiver_type, keyed.sent_at
FROM (
    SELECT m.id, m.conversation_id, m.seq, m.sender, m.receiver, m.receiver_type, m.sent_at,
           CASE WHEN m.receiver_type = 'group' THEN CONCAT('g:', m.receiver)
                ELSE CONCAT('u:', LEAST(m.sender, m.receiver), ':', GREATEST(m.sender, m.receiver)) END AS new_key
    FROM messages m
    WHERE INSTR(m.conversation_id, ':') = 0
) keyed;

-- Receipts: the new conversation of the old one that the receipt's user takes part in (a side of a direct
-- conversation, a member of the group), the lowest key if several.
CREATE TABLE conversation_receipt_moves (
    old_key VARCHAR(255) NOT NULL,
    uid     VARCHAR(191) NOT NULL,
    new_key VARCHAR(255) NOT NULL,
    PRIMARY KEY (old_key, uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO conversation_receipt_moves (old_key, uid, new_key)
SELECT r.conversation_id, r.uid, MIN(k.new_key)
FROM conversation_receipts r
JOIN conversation_key_moves k ON k.old_key = r.conversation_id
WHERE (k.receiver_type = 'user' AND (k.sender = r.uid OR k.receiver = r.uid))
   OR (k.receiver_type = 'group'
       AND EXISTS (SELECT 1 FROM group_members gm WHERE gm.guid = k.receiver AND gm.uid = r.uid))
GROUP BY r.conversation_id, r.uid;

-- Positions first (MySQL assigns left to right), the key last.
UPDATE conversation_receipts SET
    delivered_seq = (
        SELECT COUNT(*) FROM conversation_receipt_moves rm JOIN conversation_key_moves k ON k.new_key = rm.new_key
        WHERE rm.old_key = conversation_receipts.conversation_id AND rm.uid = conversation_receipts.uid
          AND k.old_key = rm.old_key AND k.old_seq <= conversation_receipts.delivered_seq),
    read_seq = (
        SELECT COUNT(*) FROM conversation_receipt_moves rm JOIN conversation_key_moves k ON k.new_key = rm.new_key
        WHERE rm.old_key = conversation_receipts.conversation_id AND rm.uid = conversation_receipts.uid
          AND k.old_key = rm.old_key AND k.old_seq <= conversation_receipts.read_seq),
    conversation_id = COALESCE((
        SELECT rm.new_key FROM conversation_receipt_moves rm
        WHERE rm.old_key = conversation_receipts.conversation_id AND rm.uid = conversation_receipts.uid
    ), conversation_id)
WHERE INSTR(conversation_id, ':') = 0;
DELETE FROM conversation_receipts WHERE INSTR(conversation_id, ':') = 0;

-- Each message lands in its own conversation with its new seq: no row can take a (key, seq) another row still
-- holds, because every old key lacks the `:` that every new key has.
UPDATE messages SET
    seq = (SELECT k.new_seq FROM conversation_key_moves k WHERE k.id = messages.id),
    conversation_id = (SELECT k.new_key FROM conversation_key_moves k WHERE k.id = messages.id)
WHERE INSTR(conversation_id, ':') = 0;

UPDATE message_reactions SET conversation_id = COALESCE((
    SELECT k.new_key FROM conversation_key_moves k WHERE k.id = message_reactions.message_id
), conversation_id)
WHERE INSTR(conversation_id, ':') = 0;

UPDATE user_conversations
SET conversation_id = CONCAT('u:', LEAST(uid, other_uid), ':', GREATEST(uid, other_uid))
WHERE INSTR(conversation_id, ':') = 0;

INSERT INTO conversations (conversation_id, last_seq, last_message_at, guid)
SELECT k.new_key, MAX(k.new_seq), MAX(k.sent_at), MAX(CASE WHEN k.receiver_type = 'group' THEN k.receiver END)
FROM conversation_key_moves k
GROUP BY k.new_key;
DELETE FROM conversations WHERE INSTR(conversation_id, ':') = 0;

UPDATE outbox SET event_key = (
    SELECT MIN(k.new_key) FROM conversation_key_moves k WHERE k.old_key = outbox.event_key
)
WHERE published_at IS NULL
  AND event_type IN ('message.sent', 'message.edited', 'message.deleted', 'reaction.added', 'reaction.removed',
                     'receipt.delivered', 'receipt.read')
  AND (SELECT COUNT(DISTINCT k.new_key) FROM conversation_key_moves k WHERE k.old_key = outbox.event_key) = 1;

DROP TABLE conversation_receipt_moves;
DROP TABLE conversation_key_moves;
