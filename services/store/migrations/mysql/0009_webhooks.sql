-- Webhooks (issue #14): the endpoints an app registered, the deliveries owed to them, and every attempt.
--
-- `webhooks`: one row per endpoint. `triggers` is a JSON array of trigger names. `secret` signs deliveries
-- (Standard Webhooks); after a rotation `previous_secret` keeps signing beside it until `previous_until` (ms).
-- `failing_since` is the first failed attempt since the last success (NULL while healthy).
CREATE TABLE webhooks (
    id              VARCHAR(100) NOT NULL,
    name            VARCHAR(100) NOT NULL,
    url             VARCHAR(255) NOT NULL,
    enabled         BIGINT       NOT NULL,
    use_basic_auth  BIGINT       NOT NULL,
    username        VARCHAR(255) NULL,
    password        VARCHAR(255) NULL,
    triggers        TEXT         NOT NULL,
    secret          VARCHAR(100) NOT NULL,
    previous_secret VARCHAR(100) NULL,
    previous_until  BIGINT       NULL,
    failing_since   BIGINT       NULL,
    disabled_reason VARCHAR(255) NULL,
    created_at      BIGINT       NOT NULL,
    updated_at      BIGINT       NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per (event, webhook): the id is the Standard Webhooks `webhook-id`, the same on every attempt. A
-- redelivered event finds its row and adds nothing. `state` is pending, delivered or failed; a pending row is
-- due at `next_attempt_at` and belongs to the replica whose claim (`claimed_until`) has not expired.
-- `round_attempts` counts the attempts since the row was made or replayed (the retry schedule's index);
-- `attempts` counts them all (the attempt log's numbering).
CREATE TABLE webhook_deliveries (
    id              VARCHAR(191) NOT NULL,
    webhook_id      VARCHAR(100) NOT NULL,
    event_id        VARCHAR(64)  NOT NULL,
    trigger_name    VARCHAR(64)  NOT NULL,
    payload         MEDIUMTEXT   NOT NULL,
    state           VARCHAR(16)  NOT NULL,
    attempts        BIGINT       NOT NULL,
    round_attempts  BIGINT       NOT NULL,
    next_attempt_at BIGINT       NOT NULL,
    claimed_until   BIGINT       NOT NULL,
    created_at      BIGINT       NOT NULL,
    finished_at     BIGINT       NULL,
    last_status     BIGINT       NULL,
    last_error      TEXT         NULL,
    PRIMARY KEY (id),
    KEY webhook_deliveries_due (state, next_attempt_at),
    KEY webhook_deliveries_webhook (webhook_id, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Every attempt of a delivery: HTTP status (NULL when no response came), latency, the first 2 KiB of the
-- response body or the error.
CREATE TABLE webhook_attempts (
    delivery_id  VARCHAR(191) NOT NULL,
    attempt      BIGINT       NOT NULL,
    attempted_at BIGINT       NOT NULL,
    status       BIGINT       NULL,
    latency_ms   BIGINT       NOT NULL,
    response     TEXT         NULL,
    error        TEXT         NULL,
    PRIMARY KEY (delivery_id, attempt)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
