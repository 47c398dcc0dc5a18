//! The comet-bus integration tests, one binary. The Kafka tests run against the real broker at
//! `COMET_TEST_KAFKA_BROKERS` (tansu; default 127.0.0.1:19092) and the MariaDB relay test against
//! `COMET_TEST_MYSQL_URL` (default mysql://app:app@127.0.0.1:3306/app). `bash .ci/services.sh` starts both;
//! when one is unreachable the tests that need it fail and say so.

mod group;
mod in_process;
mod kafka;
mod relay;
mod support;
