-- Events a worker (webhooks, moderation, notifications) gave up on: after its attempts, or at once when the
-- handler said it can never succeed. One row per (worker, event): a redelivered event that fails again keeps
-- one row. The event is kept whole, so it can be inspected and handed back.
CREATE TABLE worker_dead_letters (
    worker     VARCHAR(64)  NOT NULL,
    event_id   VARCHAR(64)  NOT NULL,
    event_type VARCHAR(64)  NOT NULL,
    event_key  VARCHAR(255) NOT NULL,
    event_time BIGINT       NOT NULL,
    data       MEDIUMTEXT   NOT NULL,
    reason     TEXT         NOT NULL,
    attempts   BIGINT       NOT NULL,
    failed_at  BIGINT       NOT NULL,
    PRIMARY KEY (worker, event_id),
    KEY worker_dead_letters_failed (worker, failed_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
