-- Group moderation: bans, and soft-deleted groups. Same meaning as migrations/mysql/0003_group_moderation.sql.
--
-- A deleted group keeps its row with `deleted_at` set: its guid stays taken, so a new group can never inherit
-- the old one's messages, members or seq numbers. Every read of the store skips deleted groups.

ALTER TABLE chat_groups ADD COLUMN deleted_at INTEGER NULL;

-- One row per (group, banned user). A banned user is not a member and may not be added back until unbanned.
CREATE TABLE group_bans (
    guid      TEXT    NOT NULL,
    uid       TEXT    NOT NULL,
    banned_at INTEGER NOT NULL,
    PRIMARY KEY (guid, uid)
);
CREATE INDEX group_bans_uid ON group_bans (uid);
