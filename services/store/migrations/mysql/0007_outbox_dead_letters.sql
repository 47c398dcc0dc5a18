-- Dead letters of the outbox (issue #17), for the MySQL protocol: TiDB in production, MariaDB in tests.
--
-- An event the Kafka producer refuses for good (larger than its message.max.bytes, an invalid record) would hold
-- the relay on it forever. After COMET_OUTBOX_MAX_ATTEMPTS refusals in a row the relay moves it here, in one
-- transaction (insert here, delete from the outbox), and goes on. `comet-server outbox dead-letters` lists them
-- and `comet-server outbox replay ID` moves one back into the outbox (docs/events.md).

CREATE TABLE outbox_dead_letters (
    id         VARCHAR(64)  NOT NULL,
    event_type VARCHAR(64)  NOT NULL,
    event_key  VARCHAR(255) NOT NULL,
    key_seq    BIGINT       NOT NULL,
    event_time BIGINT       NOT NULL,
    data       MEDIUMTEXT   NOT NULL,
    reason     TEXT         NOT NULL,
    attempts   INT          NOT NULL,
    dead_at    BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY outbox_dead_letters_dead_at (dead_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
