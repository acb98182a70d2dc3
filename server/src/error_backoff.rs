//! Per-peer backoff for clients whose connections keep failing: a client that sends something
//! the broker must refuse by closing (a malformed frame, an unsupported version) and reconnects
//! at once would otherwise make the broker accept, parse and log in a tight loop (before the
//! version fix one aiokafka consumer caused 65,000 warnings in under a minute).
//!
//! After [`FREE_CLOSES`] error closes from one IP address, each new connection from it waits
//! before it is served, doubling from [`DELAY_MIN`] up to [`DELAY_MAX`]; the closing warning is
//! logged for the first closes and then only at powers of two, with the count. A peer forgets
//! its record [`FORGET_AFTER`] after its last error close. Time is an input (`now`), so the
//! policy is tested without sleeping.
//!
//! Invariant: the table holds at most [`PEERS_MAX`] addresses; the oldest are dropped first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Error closes a peer gets without any delay.
pub const FREE_CLOSES: u32 = 3;
/// The first delay.
pub const DELAY_MIN: Duration = Duration::from_millis(100);
/// The longest delay.
pub const DELAY_MAX: Duration = Duration::from_secs(2);
/// A peer without error closes for this long starts afresh.
pub const FORGET_AFTER: Duration = Duration::from_secs(30);
/// Addresses remembered at most.
pub const PEERS_MAX: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Record {
    closes: u32,
    last: Instant,
}

/// The backoff table of one broker.
#[derive(Debug, Default)]
pub struct ErrorBackoff {
    peers: Mutex<HashMap<IpAddr, Record>>,
}

impl ErrorBackoff {
    /// An empty table.
    pub fn new() -> ErrorBackoff {
        ErrorBackoff::default()
    }

    fn current(&self, ip: IpAddr, now: Instant) -> Option<Record> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .get(&ip)
            .copied()
            .filter(|r| now.saturating_duration_since(r.last) < FORGET_AFTER)
    }

    /// How long a new connection from `ip` waits before it is served.
    pub fn delay_for(&self, ip: IpAddr, now: Instant) -> Duration {
        let closes = self.current(ip, now).map_or(0, |r| r.closes);
        if closes <= FREE_CLOSES {
            return Duration::ZERO;
        }
        let doublings = (closes - FREE_CLOSES - 1).min(16);
        DELAY_MIN.saturating_mul(1 << doublings).min(DELAY_MAX)
    }

    /// Records that a connection from `ip` was closed for an error; returns the peer's count of
    /// error closes and whether this one should be logged.
    pub fn record_error_close(&self, ip: IpAddr, now: Instant) -> (u32, bool) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() >= PEERS_MAX && !peers.contains_key(&ip) {
            peers.retain(|_, r| now.saturating_duration_since(r.last) < FORGET_AFTER);
            if peers.len() >= PEERS_MAX
                && let Some(oldest) = peers.iter().min_by_key(|(_, r)| r.last).map(|(ip, _)| *ip)
            {
                peers.remove(&oldest);
            }
        }
        let record = peers.entry(ip).or_insert(Record {
            closes: 0,
            last: now,
        });
        if now.saturating_duration_since(record.last) >= FORGET_AFTER {
            record.closes = 0;
        }
        record.closes = record.closes.saturating_add(1);
        record.last = now;
        let closes = record.closes;
        assert!(peers.len() <= PEERS_MAX, "the backoff table is bounded");
        (closes, closes <= FREE_CLOSES || closes.is_power_of_two())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first closes are free, then the delay doubles up to its ceiling, logging thins out,
    /// other peers are unaffected, and a quiet peer is forgiven.
    #[test]
    fn a_peer_that_keeps_failing_waits_longer_and_is_forgiven() {
        let b = ErrorBackoff::new();
        let bad: IpAddr = [127, 0, 0, 9].into();
        let good: IpAddr = [127, 0, 0, 10].into();
        let t0 = Instant::now();
        let mut logged = 0;
        for i in 1..=40u32 {
            let (closes, log) = b.record_error_close(bad, t0);
            assert_eq!(closes, i);
            logged += u32::from(log);
        }
        assert_eq!(logged, 3 + 4, "1, 2, 3, then 4, 8, 16, 32");
        assert_eq!(b.delay_for(bad, t0), DELAY_MAX);
        assert_eq!(b.delay_for(good, t0), Duration::ZERO);
        let b2 = ErrorBackoff::new();
        for _ in 0..FREE_CLOSES {
            b2.record_error_close(bad, t0);
        }
        assert_eq!(b2.delay_for(bad, t0), Duration::ZERO);
        b2.record_error_close(bad, t0);
        assert_eq!(b2.delay_for(bad, t0), DELAY_MIN);
        b2.record_error_close(bad, t0);
        assert_eq!(b2.delay_for(bad, t0), DELAY_MIN * 2);
        let later = t0 + FORGET_AFTER;
        assert_eq!(b.delay_for(bad, later), Duration::ZERO, "forgiven");
        assert_eq!(b.record_error_close(bad, later).0, 1);
    }

    /// The table never grows past its bound.
    #[test]
    fn the_table_is_bounded() {
        let b = ErrorBackoff::new();
        let t0 = Instant::now();
        for i in 0..(PEERS_MAX as u32 + 100) {
            let ip: IpAddr = std::net::Ipv4Addr::from(0x0a00_0000 + i).into();
            b.record_error_close(ip, t0 + Duration::from_millis(u64::from(i)));
        }
        assert!(b.peers.lock().unwrap_or_else(|p| p.into_inner()).len() <= PEERS_MAX);
    }
}
