-- Moderation (issue #15), when MongoDB is not deployed: rules with every revision, lists, the review queues,
-- user reports and the moderators' audit log. With MongoDB these live in its collections instead
-- (services/moderation/src/storage/mongo.rs); the shapes are the same. Bodies are the API's JSON.
--
-- `moderation_rules`: the current revision of each rule. `moderation_rule_revisions`: every revision, the
-- current one included; `body` NULL records a deletion. `moderation_state` holds one row whose `version` is
-- bumped by every change to rules or lists: API processes poll it to recompile their cached engine.
CREATE TABLE moderation_rules (
    id         VARCHAR(100) NOT NULL,
    revision   BIGINT       NOT NULL,
    body       MEDIUMTEXT   NOT NULL,
    created_at BIGINT       NOT NULL,
    updated_at BIGINT       NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE moderation_rule_revisions (
    rule_id    VARCHAR(100) NOT NULL,
    revision   BIGINT       NOT NULL,
    body       MEDIUMTEXT   NULL,
    changed_by VARCHAR(100) NOT NULL,
    changed_at BIGINT       NOT NULL,
    PRIMARY KEY (rule_id, revision)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE moderation_lists (
    id         VARCHAR(100) NOT NULL,
    revision   BIGINT       NOT NULL,
    body       MEDIUMTEXT   NOT NULL,
    created_at BIGINT       NOT NULL,
    updated_at BIGINT       NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE moderation_state (
    id      BIGINT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO moderation_state (id, version) VALUES (1, 0);

-- The review queues: one row per (queue, message). `queue` is blocked, flagged or masked (the original of a message a rule masked, decided by the rule); `status` pending, approved
-- or rejected (reviewed = not pending). `text` is the original, for moderators only; `masked` what recipients
-- saw, when a rule masked it. `rule_id` is NULL for a message queued by users' reports.
CREATE TABLE moderation_reviews (
    id            VARCHAR(64)  NOT NULL,
    queue         VARCHAR(16)  NOT NULL,
    message_id    VARCHAR(64)  NOT NULL,
    conversation  VARCHAR(255) NOT NULL,
    sender        VARCHAR(100) NOT NULL,
    receiver_type VARCHAR(16)  NOT NULL,
    receiver      VARCHAR(100) NOT NULL,
    text          MEDIUMTEXT   NOT NULL,
    masked        MEDIUMTEXT   NULL,
    rule_id       VARCHAR(100) NULL,
    status        VARCHAR(16)  NOT NULL,
    created_at    BIGINT       NOT NULL,
    reviewed_by   VARCHAR(100) NULL,
    reviewed_at   BIGINT       NULL,
    PRIMARY KEY (id),
    UNIQUE KEY moderation_reviews_message (queue, message_id),
    KEY moderation_reviews_list (queue, status, created_at),
    KEY moderation_reviews_sender (sender, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A user's report of a message (`POST /v3/messages/{id}/flagged`): one per reporter and message.
CREATE TABLE moderation_reports (
    id         VARCHAR(64)  NOT NULL,
    message_id VARCHAR(64)  NOT NULL,
    reporter   VARCHAR(100) NOT NULL,
    reason_id  VARCHAR(100) NOT NULL,
    remark     TEXT         NULL,
    created_at BIGINT       NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY moderation_reports_once (message_id, reporter)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Every moderator action: who (`actor`), what (`action` on `target_kind` `target_id`, `detail` JSON), when.
CREATE TABLE moderation_audit (
    id          VARCHAR(64)  NOT NULL,
    actor       VARCHAR(100) NOT NULL,
    action      VARCHAR(64)  NOT NULL,
    target_kind VARCHAR(32)  NOT NULL,
    target_id   VARCHAR(100) NOT NULL,
    detail      TEXT         NOT NULL,
    at          BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY moderation_audit_at (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
