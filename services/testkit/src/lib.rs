//! What the services' test suites share: where the test servers are (`bash .ci/services.sh` starts them, the
//! `COMET_TEST_*` variables point elsewhere), a check that fails a test at once when one is down, throwaway
//! databases on SQLite and MariaDB (and database names on MongoDB), and free ports. It knows no Comet crate: suites connect their own store.

mod bench;
mod database;
mod servers;

pub use bench::{env_number, threads_cpu_seconds};

pub use database::TestDatabase;
pub use servers::{
    kafka_brokers, mongo_database, mongo_url, mysql_url, redis_cluster_urls, redis_url, require_kafka, require_mongo,
    require_mysql, require_s3, s3,
};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}
