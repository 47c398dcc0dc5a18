//! `comet-server health`: the container health check. The image has no shell, curl or wget, so the binary
//! asks its own admin port for /ready over a plain TCP connection. `comet-server health PATH` (`/ready`,
//! `/metrics`, `/health`) prints the answer's body too: `cometctl doctor` runs it inside a role's container
//! (the admin port is never published) to read the relay's lease, the outbox backlog and the gateway's
//! connections.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{ADMIN_LISTEN, Settings};

/// The admin paths `health PATH` may print.
const PATHS: &[&str] = &["/ready", "/health", "/metrics"];

pub fn run(words: &[String]) -> ExitCode {
    let path = match words {
        [] => None,
        [path] if PATHS.contains(&path.as_str()) => Some(path.as_str()),
        _ => {
            eprintln!("usage: comet-server health [{}]", PATHS.join("|"));
            return ExitCode::from(2);
        }
    };
    let target =
        Settings::load(None)
            .and_then(|settings| settings.socket(ADMIN_LISTEN, crate::admin::DEFAULT_ADMIN_LISTEN))
            .map(|address| {
                if address.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], address.port())) } else { address }
            });
    let Ok(address) = target else { return ExitCode::from(1) };
    match (ask(address, path.unwrap_or("/ready")), path) {
        (Ok((ok, _)), None) => exit(ok),
        (Ok((ok, body)), Some(_)) => {
            print!("{body}");
            exit(ok)
        }
        (Err(error), Some(path)) => {
            eprintln!("asking {address}{path}: {error}");
            ExitCode::from(1)
        }
        (Err(_), None) => ExitCode::from(1),
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// GET `path` on the admin port: whether it answered 200, and the body.
fn ask(address: SocketAddr, path: &str) -> std::io::Result<(bool, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    stream.take(1 << 20).read_to_string(&mut response)?;
    let ok = response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    Ok((ok, body))
}
