//! Limits against abuse, from the outside: a flood of connections from one address is cut off
//! at its `max.connections.per.ip` while a client from another address (with an override)
//! keeps being served; `max.connections` caps the total; a slow-loris client that starts a
//! frame and stalls is closed after `request.read.timeout.ms`; an idle connection after
//! `connections.max.idle.ms`. Each is counted in the metrics.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A connection to `port` from the local address `from` (any 127.x address is this host).
fn connect_from(from: [u8; 4], port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
        socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// ApiVersions v0 (header v1, empty body): `true` if answered, `false` if the broker closed
/// the connection instead.
fn api_versions(s: &mut TcpStream) -> bool {
    let client = b"limits";
    let mut frame = Vec::new();
    frame.extend_from_slice(&18i16.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&(client.len() as i16).to_be_bytes());
    frame.extend_from_slice(client);
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    if s.write_all(&out).is_err() {
        return false;
    }
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).is_err() {
        return false;
    }
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).is_ok() && body[..4] == 7i32.to_be_bytes()
}

/// Whether the broker closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn floods_slow_clients_and_idle_connections_are_cut_off() {
    let port = common::free_port();
    let mport = common::free_port();
    let _broker = common::Broker::start_on(
        port,
        &[
            "max.connections.per.ip=3",
            "max.connections.per.ip.overrides=127.0.0.1:50",
            "max.connections=20",
            "connections.max.idle.ms=2000",
            "request.read.timeout.ms=1000",
            &format!("metrics.listen=127.0.0.1:{mport}"),
        ],
    );

    // A flood from 127.0.0.2: three connections are served, the rest closed at once, while
    // a client from 127.0.0.1 keeps being answered.
    let mut good = connect_from([127, 0, 0, 1], port);
    assert!(api_versions(&mut good));
    let mut kept: Vec<TcpStream> = (0..3).map(|_| connect_from([127, 0, 0, 2], port)).collect();
    for s in &mut kept {
        assert!(api_versions(s), "within the address's limit");
    }
    let mut refused = 0;
    for _ in 0..50 {
        let mut s = connect_from([127, 0, 0, 2], port);
        if !api_versions(&mut s) {
            refused += 1;
        }
        assert!(api_versions(&mut good), "the other client is still served");
    }
    assert_eq!(
        refused, 50,
        "every connection over the address's limit is closed"
    );
    assert_eq!(
        common::Broker::metric(mport, "strata_connections_refused_ip_limit"),
        50.0
    );

    // max.connections: 1 + 3 open; 16 more from other addresses fit, the next does not.
    let mut others: Vec<TcpStream> = (0..16)
        .map(|i| connect_from([127, 0, 1, i as u8 + 1], port))
        .collect();
    for s in &mut others {
        assert!(api_versions(s));
    }
    let mut over = connect_from([127, 0, 2, 1], port);
    assert!(!api_versions(&mut over), "over max.connections");
    assert!(common::Broker::metric(mport, "strata_connections_refused_total_limit") >= 1.0);
    drop(others);
    drop(kept);
    // The broker frees their places once it sees them closed: wait until a new connection is
    // served again, or the next one could be refused as over the total.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !api_versions(&mut connect_from([127, 0, 0, 5], port)) {
        assert!(
            Instant::now() < deadline,
            "the closed connections' places were never freed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Slow loris: a frame's size and a few of its bytes, then nothing.
    let mut slow = connect_from([127, 0, 0, 3], port);
    slow.write_all(&100i32.to_be_bytes()).unwrap();
    slow.write_all(&[0, 18, 0, 0]).unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(8)),
        "a stalled frame is cut off"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(common::Broker::metric(mport, "strata_connections_closed_slow") >= 1.0);

    // Idle: answered, then closed after connections.max.idle.ms without a request.
    let mut idle = connect_from([127, 0, 0, 4], port);
    assert!(api_versions(&mut idle));
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)),
        "an idle connection is closed"
    );
    assert!(common::Broker::metric(mport, "strata_connections_closed_idle") >= 1.0);
    // The good client, busy all along, is idle now too; a new one is served as usual.
    let mut again = connect_from([127, 0, 0, 1], port);
    assert!(api_versions(&mut again));
}

/// KIP-612: connections opened faster than `max.connection.creation.rate` wait before they are
/// served, and are all served.
#[test]
fn connection_creation_is_throttled_to_its_rate() {
    let port = common::free_port();
    let mport = common::free_port();
    let _broker = common::Broker::start_on(
        port,
        &[
            "max.connection.creation.rate=20",
            &format!("metrics.listen=127.0.0.1:{mport}"),
        ],
    );
    // The bucket holds at most a second of the rate: after it, 60 connections take 2 s or more.
    std::thread::sleep(Duration::from_millis(1100));
    let started = Instant::now();
    let mut open = Vec::new();
    for i in 0..60u8 {
        let mut s = connect_from([127, 0, 3, i + 1], port);
        assert!(api_versions(&mut s), "connection {i} served");
        open.push(s);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "60 connections at 20/s took only {:?}",
        started.elapsed()
    );
    assert!(common::Broker::metric(mport, "strata_connections_creation_throttled") >= 30.0);
}
