//! A fault-injecting TCP proxy. Put one on a link between two nodes (controller quorum,
//! broker heartbeats, replica fetches) and the link can be cut (its connections closed and new
//! ones refused), stalled in one direction (bytes held back, as a network that drops packets
//! and TCP that retransmits them later), or slowed, while clients still reach both nodes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The state of one direction of a link.
#[derive(Debug, Default)]
struct Direction {
    /// Bytes are held back until cleared.
    stalled: AtomicBool,
    /// Added delay per forwarded chunk, in microseconds.
    delay_us: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    cut: AtomicBool,
    /// Client to server (requests).
    forward: Direction,
    /// Server to client (responses).
    backward: Direction,
    /// Open connections by id: (client side, server side), so a cut can close them.
    conns: Mutex<std::collections::HashMap<u64, (TcpStream, TcpStream)>>,
    next_id: AtomicU64,
}

/// A proxy from a fresh port on 127.0.0.1 to a target port.
#[derive(Debug)]
pub struct Proxy {
    /// The port to connect to instead of the target.
    pub port: u16,
    state: Arc<State>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, state: Arc<State>, forward: bool, id: u64) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let d = if forward {
            &state.forward
        } else {
            &state.backward
        };
        while d.stalled.load(Ordering::SeqCst) && !state.cut.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let delay = d.delay_us.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        if state.cut.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    if let Ok(mut conns) = state.conns.lock() {
        conns.remove(&id);
    }
}

impl Proxy {
    /// Forwards a fresh port to `127.0.0.1:target`.
    pub fn start(target: u16) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(client) = s else { continue };
                if st.cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                ) else {
                    continue;
                };
                let id = st.next_id.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut g) = st.conns.lock() {
                    g.insert(id, (c3, s3));
                }
                let (a, b) = (st.clone(), st.clone());
                std::thread::spawn(move || pump(client, server, a, true, id));
                std::thread::spawn(move || pump(s2, c2, b, false, id));
            }
        });
        Ok(Proxy { port, state })
    }

    /// Cuts the link: open connections are closed, new ones refused.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        if let Ok(mut conns) = self.state.conns.lock() {
            for (_, (c, s)) in conns.drain() {
                let _ = c.shutdown(Shutdown::Both);
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Holds back bytes going to the target (`requests`) or coming back from it.
    pub fn stall(&self, requests: bool) {
        let d = if requests {
            &self.state.forward
        } else {
            &self.state.backward
        };
        d.stalled.store(true, Ordering::SeqCst);
    }

    /// Adds `delay` to every chunk forwarded in both directions.
    pub fn slow(&self, delay: Duration) {
        let us = delay.as_micros() as u64;
        self.state.forward.delay_us.store(us, Ordering::Relaxed);
        self.state.backward.delay_us.store(us, Ordering::Relaxed);
    }

    /// Undoes every fault of this link.
    pub fn heal(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
        for d in [&self.state.forward, &self.state.backward] {
            d.stalled.store(false, Ordering::SeqCst);
            d.delay_us.store(0, Ordering::Relaxed);
        }
    }
}
