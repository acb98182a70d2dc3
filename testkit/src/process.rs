//! Running `strata` processes: the binary, ports, and their metrics.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::BoxError;

/// The `strata` binary: `given`, or the one beside the running executable (`cargo build`
/// puts every binary of the workspace in one folder). An error says how to build it.
pub fn strata_bin(given: Option<&Path>) -> Result<PathBuf, BoxError> {
    let bin = match given {
        Some(b) => b.to_path_buf(),
        None => std::env::current_exe()?.with_file_name("strata"),
    };
    if !bin.exists() {
        return Err(format!(
            "{bin:?} not found: build it (cargo build --release --bin strata) or pass --strata-bin"
        )
        .into());
    }
    Ok(bin)
}

/// A port on 127.0.0.1 that was free a moment ago (the OS picks it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The value of the un-labelled sample `name` on a broker's Prometheus endpoint at `addr`
/// (`host:port`); `None` when the broker does not answer within two seconds or has no such
/// sample.
pub fn metric(addr: &str, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}
