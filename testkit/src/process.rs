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

/// A port on 127.0.0.1 that is free now, chosen at random below the kernel's ephemeral range
/// (32768 and up on Linux) and never twice in one process. Not a port the OS picks (bind to
/// port 0): the OS hands such a port out again, to the next proxy bound to port 0 or as the
/// source port of a client connection, before the broker it was chosen for binds it; the
/// broker then fails to start while a connect to "its" port succeeds (a chaos run once waited
/// two minutes for a broker 1 that had exited at start).
pub fn free_port() -> std::io::Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..10_000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let port = 20_000 + (h.finish() % 12_000) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free port below the ephemeral range",
    ))
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
