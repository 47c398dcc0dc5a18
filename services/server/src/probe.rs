//! `comet-server health`: the container health check. The image has no shell, curl or wget, so the binary
//! asks its own admin port for /ready over a plain TCP connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{ADMIN_LISTEN, Settings};

pub fn run() -> ExitCode {
    let target =
        Settings::load(None)
            .and_then(|settings| settings.socket(ADMIN_LISTEN, crate::admin::DEFAULT_ADMIN_LISTEN))
            .map(|address| {
                if address.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], address.port())) } else { address }
            });
    match target.map(ready) {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

fn ready(address: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.write_all(b"GET /ready HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut response = String::new();
        stream.take(4096).read_to_string(&mut response)?;
        Ok(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"))
    };
    attempt().unwrap_or(false)
}
