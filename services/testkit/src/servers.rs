//! The servers the tests run against, each named by one variable with the address `.ci/services.sh` uses.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The MySQL-protocol server (MariaDB in tests, TiDB's protocol); its user may create databases.
const MYSQL_URL: (&str, &str) = ("COMET_TEST_MYSQL_URL", "mysql://app:app@127.0.0.1:3306/app");
/// The Kafka-protocol broker (tansu), comma-separated `host:port`.
const KAFKA_BROKERS: (&str, &str) = ("COMET_TEST_KAFKA_BROKERS", "127.0.0.1:19092");
/// A standalone Redis.
const REDIS_URL: (&str, &str) = ("COMET_TEST_REDIS_URL", "redis://127.0.0.1:6379");
/// The seed nodes of a Redis Cluster, comma-separated.
const REDIS_CLUSTER_URLS: (&str, &str) =
    ("COMET_TEST_REDIS_CLUSTER_URLS", "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003");

/// The MongoDB-protocol server (SecantusDB in tests).
const MONGO_URL: (&str, &str) = ("COMET_TEST_MONGO_URL", "mongodb://127.0.0.1:27017/?directConnection=true");

/// The S3-compatible store (SeaweedFS in tests) and its test credentials.
const S3_URL: (&str, &str) = ("COMET_TEST_S3_URL", "http://127.0.0.1:18333");
const S3_ACCESS_KEY: (&str, &str) = ("COMET_TEST_S3_ACCESS_KEY", "citestkey");
const S3_SECRET_KEY: (&str, &str) = ("COMET_TEST_S3_SECRET_KEY", "citestsecret");

fn setting((name, default): (&str, &str)) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The MariaDB server URL the tests create their databases on.
pub fn mysql_url() -> String {
    setting(MYSQL_URL)
}

/// The Kafka bootstrap servers.
pub fn kafka_brokers() -> String {
    setting(KAFKA_BROKERS)
}

pub fn redis_url() -> String {
    setting(REDIS_URL)
}

pub fn redis_cluster_urls() -> String {
    setting(REDIS_CLUSTER_URLS)
}

pub fn mongo_url() -> String {
    setting(MONGO_URL)
}

/// The S3 endpoint, access key and secret key.
pub fn s3() -> (String, String, String) {
    (setting(S3_URL), setting(S3_ACCESS_KEY), setting(S3_SECRET_KEY))
}

/// Fails the test at once, with what to do, when the S3 store does not accept connections.
pub fn require_s3(url: &str) {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    require_listening(&format!("S3 ({})", S3_URL.0), authority.split('/').next().unwrap_or(authority));
}

/// A database name no other test uses, for a test's own MongoDB documents (drop it when done).
pub fn mongo_database() -> String {
    format!("comet_test_{}", uuid::Uuid::new_v4().simple())
}

/// Fails the test at once, with what to do, when the MongoDB server of `url` does not accept connections.
pub fn require_mongo(url: &str) {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split(['/', '?']).next().unwrap_or(authority);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hosts)| hosts);
    let first = host_port.split(',').next().unwrap_or(host_port);
    require_listening(&format!("MongoDB ({})", MONGO_URL.0), first);
}

/// Fails the test at once, with what to do, when a Kafka broker of `brokers` does not accept connections.
pub fn require_kafka(brokers: &str) {
    for broker in brokers.split(',') {
        require_listening(&format!("Kafka broker ({})", KAFKA_BROKERS.0), broker.trim());
    }
}

/// Fails the test at once, with what to do, when the MariaDB server of `url` does not accept connections.
pub fn require_mysql(url: &str) {
    let host_port = url
        .split_once('@')
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
        .expect("COMET_TEST_MYSQL_URL has the form mysql://user:password@host:port/database");
    require_listening(&format!("MariaDB ({})", MYSQL_URL.0), host_port);
}

fn require_listening(what: &str, host_port: &str) {
    let addresses: Vec<_> = host_port
        .to_socket_addrs()
        .unwrap_or_else(|error| panic!("{what} address {host_port} does not resolve: {error}"))
        .collect();
    let reachable = addresses.iter().any(|address| TcpStream::connect_timeout(address, Duration::from_secs(3)).is_ok());
    assert!(reachable, "{what} at {host_port} is unreachable: run `bash .ci/services.sh` to start it");
}
