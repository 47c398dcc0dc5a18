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

/// A TCP port on 127.0.0.1 that was free a moment ago, never handed out twice by this process.
///
/// It comes from just below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), not from a bind to
/// port 0. A port from the ephemeral range could be taken, between this check and the server's bind, by any
/// outgoing connection: comet-server's own connections to MariaDB, Redis or Kafka take their local ports from
/// there. Then the server fails to start with "address in use", which made the suites flaky. Below the range,
/// only a listener can take a port, and this process hands each one out once. Each process starts at its own
/// offset, so two suites running at once rarely probe the same ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const SPAN: u32 = 12_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|low| *low > SPAN + 1024)
        .unwrap_or(32_768);
    let first = ephemeral_low - SPAN;
    let offset = (std::process::id() % 60) * (SPAN / 60);
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(first + (offset + step) % SPAN).expect("a port below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range ({first} to {ephemeral_low})");
}
