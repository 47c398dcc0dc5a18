-- Dead letters of the outbox (issue #17), for SQLite (the embedded mode).
--
-- An event the Kafka producer refuses for good (larger than its message.max.bytes, an invalid record) would hold
-- the relay on it forever. After COMET_OUTBOX_MAX_ATTEMPTS refusals in a row the relay moves it here, in one
-- transaction (insert here, delete from the outbox), and goes on. `comet-server outbox dead-letters` lists them
-- and `comet-server outbox replay ID` moves one back into the outbox (docs/events.md).

CREATE TABLE outbox_dead_letters (
    id         TEXT    NOT NULL PRIMARY KEY,
    event_type TEXT    NOT NULL,
    event_key  TEXT    NOT NULL,
    key_seq    INTEGER NOT NULL,
    event_time INTEGER NOT NULL,
    data       TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    attempts   INTEGER NOT NULL,
    dead_at    INTEGER NOT NULL
);
CREATE INDEX outbox_dead_letters_dead_at ON outbox_dead_letters (dead_at);
