-- Notifications (issue #16): push tokens, providers, preferences and admin defaults, timed mutes, the pushes
-- owed (the durable queue) and the decision log.
--
-- `push_tokens`: one row per user and session (a device); `token_hash` (SHA-256 hex of the token) is unique so
-- a token registered by another user moves to it. `push_providers.body` is the provider's JSON settings, which
-- name secrets by reference (a file), never hold them. `notification_preferences.body` and
-- `notification_defaults.body` are JSON documents. `notification_pushes` is what the role still owes a
-- provider: claimed with an expiring `claimed_until`, deleted once answered for good. `notification_log` is
-- every decision (sent / failed / skipped, the reason, the provider's status), purged after 14 days.
CREATE TABLE push_tokens (
    id          VARCHAR(64)   NOT NULL,
    uid         VARCHAR(100)  NOT NULL,
    session     VARCHAR(255)  NOT NULL,
    platform    VARCHAR(20)   NOT NULL,
    provider_id VARCHAR(100)  NOT NULL,
    token       TEXT          NOT NULL,
    token_hash  CHAR(64)      NOT NULL,
    created_at  BIGINT        NOT NULL,
    updated_at  BIGINT        NOT NULL,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX push_tokens_session ON push_tokens (uid, session);
CREATE UNIQUE INDEX push_tokens_hash ON push_tokens (token_hash);

CREATE TABLE push_providers (
    id         VARCHAR(100) NOT NULL,
    kind       VARCHAR(20)  NOT NULL,
    is_default BIGINT       NOT NULL,
    body       TEXT         NOT NULL,
    created_at BIGINT       NOT NULL,
    updated_at BIGINT       NOT NULL,
    PRIMARY KEY (id)
);

CREATE TABLE notification_preferences (
    uid        VARCHAR(100) NOT NULL,
    body       TEXT         NOT NULL,
    updated_at BIGINT       NOT NULL,
    PRIMARY KEY (uid)
);

CREATE TABLE notification_defaults (
    id         VARCHAR(20) NOT NULL,
    body       TEXT        NOT NULL,
    updated_at BIGINT      NOT NULL,
    PRIMARY KEY (id)
);

CREATE TABLE notification_mutes (
    uid              VARCHAR(100) NOT NULL,
    conversation_key VARCHAR(220) NOT NULL,
    muted_until      BIGINT       NOT NULL,
    PRIMARY KEY (uid, conversation_key)
);

CREATE TABLE notification_pushes (
    id              VARCHAR(160) NOT NULL,
    event_id        VARCHAR(64)  NOT NULL,
    uid             VARCHAR(100) NOT NULL,
    token_id        VARCHAR(64)  NOT NULL,
    provider_id     VARCHAR(100) NOT NULL,
    collapse_id     VARCHAR(100) NOT NULL,
    payload         MEDIUMTEXT   NOT NULL,
    attempts        BIGINT       NOT NULL,
    next_attempt_at BIGINT       NOT NULL,
    claimed_until   BIGINT       NOT NULL,
    created_at      BIGINT       NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX notification_pushes_due ON notification_pushes (next_attempt_at);

CREATE TABLE notification_log (
    id               VARCHAR(200) NOT NULL,
    event_id         VARCHAR(64)  NOT NULL,
    message_id       VARCHAR(64)  NULL,
    uid              VARCHAR(100) NULL,
    conversation_key VARCHAR(220) NULL,
    provider_id      VARCHAR(100) NULL,
    outcome          VARCHAR(10)  NOT NULL,
    reason           VARCHAR(100) NOT NULL,
    status           BIGINT       NULL,
    collapse_id      VARCHAR(100) NULL,
    at               BIGINT       NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX notification_log_at ON notification_log (at);
CREATE INDEX notification_log_uid ON notification_log (uid, at);
