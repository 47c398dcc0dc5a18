//! End-to-end tests of `cometctl deploy`, `upgrade` and `destroy` on the real Docker Engine of this machine.
//!
//! Nothing can be pulled here, so the stores run from stand-in images built by `tests/images/build.sh` from
//! this host's binaries (Redis; MariaDB behind TiDB's ports; tansu, a Kafka-protocol broker, behind the Kafka
//! image's interface; NGINX), and comet-server from `cometctl images build`. What the stand-ins cannot show
//! (a real TiDB cluster, Apache Kafka, MongoDB, the observability stack) is listed in tests/images/README.md;
//! the specs here turn those parts off rather than fake them.
//!
//! The tests share the host's CPU and published ports, so they run one at a time (a process-wide lock).

#[path = "../support.rs"]
mod support;

mod chat;
mod compose;
mod doctor;
mod harness;
mod load;
mod swarm;
mod upgrade;
