-- Conversation keys that never collide (issue #17), SQLite. Same steps and meaning as
-- migrations/mysql/0006_conversation_keys.sql, which explains them.

CREATE TABLE conversation_key_moves (
    id              TEXT    NOT NULL,
    old_key         TEXT    NOT NULL,
    old_seq         INTEGER NOT NULL,
    new_key         TEXT    NOT NULL,
    new_seq         INTEGER NOT NULL,
    sender          TEXT    NOT NULL,
    receiver        TEXT    NOT NULL,
    receiver_type   TEXT    NOT NULL,
    sent_at         INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX conversation_key_moves_old ON conversation_key_moves (old_key, new_key, old_seq);
CREATE INDEX conversation_key_moves_new ON conversation_key_moves (new_key, old_seq);

INSERT INTO conversation_key_moves (id, old_key, old_seq, new_key, new_seq, sender, receiver, receiver_type, sent_at)
SELECT keyed.id, keyed.conversation_id, keyed.seq, keyed.new_key,
       ROW_NUMBER() OVER (PARTITION BY keyed.new_key ORDER BY keyed.seq),
       keyed.sender, keyed.receiver, keyed.receiver_type, keyed.sent_at
FROM (
    SELECT m.id, m.conversation_id, m.seq, m.sender, m.receiver, m.receiver_type, m.sent_at,
           CASE WHEN m.receiver_type = 'group' THEN 'g:' || m.receiver
                ELSE 'u:' || min(m.sender, m.receiver) || ':' || max(m.sender, m.receiver) END AS new_key
    FROM messages m
    WHERE INSTR(m.conversation_id, ':') = 0
) keyed;

-- Receipts: the new conversation of the old one that the receipt's user takes part in (a side of a direct
-- conversation, a member of the group), the lowest key if several.
CREATE TABLE conversation_receipt_moves (
    old_key         TEXT    NOT NULL,
    uid             TEXT    NOT NULL,
    new_key         TEXT    NOT NULL,
    PRIMARY KEY (old_key, uid)
);

INSERT INTO conversation_receipt_moves (old_key, uid, new_key)
SELECT r.conversation_id, r.uid, MIN(k.new_key)
FROM conversation_receipts r
JOIN conversation_key_moves k ON k.old_key = r.conversation_id
WHERE (k.receiver_type = 'user' AND (k.sender = r.uid OR k.receiver = r.uid))
   OR (k.receiver_type = 'group'
       AND EXISTS (SELECT 1 FROM group_members gm WHERE gm.guid = k.receiver AND gm.uid = r.uid))
GROUP BY r.conversation_id, r.uid;

-- Positions first, the key last (as in the MySQL file; SQLite reads every assignment from the old row).
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
SET conversation_id = 'u:' || min(uid, other_uid) || ':' || max(uid, other_uid)
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
