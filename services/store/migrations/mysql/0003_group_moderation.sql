-- Group moderation: bans, and soft-deleted groups.
--
-- A deleted group keeps its row with `deleted_at` set: its guid stays taken, so a new group can never inherit
-- the old one's messages, members or seq numbers. Every read of the store skips deleted groups.

ALTER TABLE chat_groups ADD COLUMN deleted_at BIGINT NULL;

-- One row per (group, banned user). A banned user is not a member and may not be added back until unbanned.
CREATE TABLE group_bans (
    guid      VARCHAR(191) NOT NULL,
    uid       VARCHAR(191) NOT NULL,
    banned_at BIGINT       NOT NULL,
    PRIMARY KEY (guid, uid),
    KEY group_bans_uid (uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
