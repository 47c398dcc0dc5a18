-- Events a worker gave up on (SQLite). Same table and meaning as migrations/mysql/0008_worker_dead_letters.sql.
CREATE TABLE worker_dead_letters (
    worker     TEXT    NOT NULL,
    event_id   TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    event_key  TEXT    NOT NULL,
    event_time INTEGER NOT NULL,
    data       TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    attempts   INTEGER NOT NULL,
    failed_at  INTEGER NOT NULL,
    PRIMARY KEY (worker, event_id)
);
CREATE INDEX worker_dead_letters_failed ON worker_dead_letters (worker, failed_at);
