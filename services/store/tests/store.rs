//! The store's behaviour, every test run against SQLite and against a real MariaDB (a fresh database each).
//!
//! MariaDB comes from `COMET_TEST_MYSQL_URL` (default `mysql://app:app@127.0.0.1:3306/app`); its user must be
//! allowed to create databases. `bash .ci/services.sh` installs and starts one. When it is unreachable the
//! MariaDB variants fail and say so: they never skip.

#[macro_use]
mod support;

mod blocks;
mod conversations;
mod dump;
mod groups;
mod held;
mod message_changes;
mod messages;
mod migrations;
mod outbox;
mod races;
mod users;
