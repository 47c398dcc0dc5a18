-- Messages an asynchronous moderation rule holds (issue #15): committed as `pending` but not to their
-- conversation (no seq, no history row, no `message.sent`), so no recipient can see them; the moderation role
-- decides each once. An approved one is then committed to the conversation with the same id (the next seq at
-- approval); a disapproved one never is.
CREATE TABLE moderation_held (
    id              VARCHAR(64)  NOT NULL,
    conversation_id VARCHAR(255) NOT NULL,
    sender          VARCHAR(191) NOT NULL,
    muid            VARCHAR(191) NULL,
    message         MEDIUMTEXT   NOT NULL,
    checks          TEXT         NOT NULL,
    status          VARCHAR(16)  NOT NULL,
    reason          TEXT         NULL,
    engine_failed   BIGINT       NOT NULL DEFAULT 0,
    created_at      BIGINT       NOT NULL,
    decided_at      BIGINT       NULL,
    decided_by      VARCHAR(191) NULL,
    seq             BIGINT       NULL,
    PRIMARY KEY (id),
    -- NULL muids never collide; a retried send of a held message finds it.
    UNIQUE KEY moderation_held_sender_muid (sender, muid),
    KEY moderation_held_status (status, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
