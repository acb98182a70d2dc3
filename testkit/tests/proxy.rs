//! The proxy's faults do what the chaos runs and cluster tests rely on: a cut link carries
//! nothing (open connections end, new ones are refused), a stalled direction holds bytes back
//! until healed and then delivers them in order, and a healed link works again.
#![allow(clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use strata_testkit::Proxy;

/// An echo server on a fresh port; it serves each connection on its own thread.
fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s
}

/// Sends `msg` and returns what came back: `Ok(bytes)` (possibly empty: the link was closed)
/// or the read error (a timeout: nothing came back).
fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(msg)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < msg.len() {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(got)
}

fn is_closed(r: &std::io::Result<Vec<u8>>) -> bool {
    match r {
        Ok(b) => b.is_empty(),
        Err(e) => matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
        ),
    }
}

#[test]
fn a_cut_link_closes_its_connections_and_refuses_new_ones_until_healed() {
    let p = Proxy::start(echo_server()).unwrap();
    let mut s = connect(p.port);
    assert_eq!(round_trip(&mut s, b"before").unwrap(), b"before");

    p.cut();
    assert!(
        is_closed(&round_trip(&mut s, b"during")),
        "open connection must end"
    );
    let mut fresh = connect(p.port);
    assert!(
        is_closed(&round_trip(&mut fresh, b"during")),
        "a new connection must be refused"
    );

    p.heal();
    let mut s = connect(p.port);
    assert_eq!(round_trip(&mut s, b"after").unwrap(), b"after");
}

#[test]
fn a_stalled_direction_holds_bytes_until_healed_and_then_delivers_them_in_order() {
    for requests in [true, false] {
        let p = Proxy::start(echo_server()).unwrap();
        let mut s = connect(p.port);
        assert_eq!(round_trip(&mut s, b"warm").unwrap(), b"warm");

        p.stall(requests);
        let held = round_trip(&mut s, b"one");
        assert!(
            held.as_ref()
                .is_err_and(|e| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "stalled (requests: {requests}): nothing may come back, got {held:?}"
        );
        s.write_all(b"two").unwrap();

        p.heal();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 6 {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the connection must survive a stall");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"onetwo");
    }
}

#[test]
fn a_slow_link_delays_but_delivers() {
    let p = Proxy::start(echo_server()).unwrap();
    p.slow(Duration::from_millis(100));
    let mut s = connect(p.port);
    let t = std::time::Instant::now();
    assert_eq!(round_trip(&mut s, b"slow").unwrap(), b"slow");
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "a round trip crosses the link twice: {:?}",
        t.elapsed()
    );
}
