//! Limits on client connections (`max.connections`, `max.connections.per.ip` with
//! `max.connections.per.ip.overrides`), so one client, or a flood of them, cannot take every
//! descriptor and task of the broker. A connection over a limit is closed at once, before
//! anything is read from it (Kafka closes one over its address's limit the same way).
//!
//! Invariant: the counts are exactly the live [`Permit`]s: a permit is taken when a
//! connection is accepted and given back when its task ends (on drop), and no count exceeds
//! its limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max.connections` reached.
    Total,
    /// The address's limit reached.
    PerIp,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// The broker's connection counts and limits.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
    counts: Mutex<Counts>,
}

/// One accepted connection's place in the counts, given back on drop.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    in_total: bool,
}

impl ConnectionLimits {
    /// Limits as configured.
    pub fn new(
        max_total: usize,
        max_per_ip: usize,
        overrides: HashMap<IpAddr, usize>,
    ) -> ConnectionLimits {
        ConnectionLimits {
            max_total,
            max_per_ip,
            overrides,
            counts: Mutex::new(Counts::default()),
        }
    }

    /// Takes a place for a connection from `ip`, or says which limit it is over. A
    /// connection on the inter-broker listener (`protected`) is held to its address's limit
    /// only, not to the broker's total, as Kafka protects its inter-broker listener: clients
    /// that exhaust the broker must not cut its replication.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, protected: bool) -> Result<Permit, Refusal> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let limit = self.overrides.get(&ip).copied().unwrap_or(self.max_per_ip);
        let from_ip = c.by_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= limit {
            return Err(Refusal::PerIp);
        }
        if !protected && c.total >= self.max_total {
            return Err(Refusal::Total);
        }
        if !protected {
            c.total += 1;
        }
        *c.by_ip.entry(ip).or_default() += 1;
        assert!(
            c.total <= self.max_total,
            "the total stays within its limit"
        );
        Ok(Permit {
            limits: self.clone(),
            ip,
            in_total: !protected,
        })
    }

    /// Connections open now: (all, from `ip`).
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        (c.total, c.by_ip.get(&ip).copied().unwrap_or(0))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.limits.counts.lock().unwrap_or_else(|p| p.into_inner());
        if self.in_total {
            c.total = c.total.saturating_sub(1);
        }
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_address_with_overrides_and_in_total() {
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let vip: IpAddr = [127, 0, 0, 4].into();
        let limits = Arc::new(ConnectionLimits::new(5, 2, HashMap::from([(vip, 3)])));
        let a1 = limits.try_acquire(a, false).unwrap();
        let _a2 = limits.try_acquire(a, false).unwrap();
        assert_eq!(limits.try_acquire(a, false).unwrap_err(), Refusal::PerIp);
        let _v: Vec<Permit> = (0..3)
            .map(|_| limits.try_acquire(vip, false).unwrap())
            .collect();
        assert_eq!(limits.try_acquire(vip, false).unwrap_err(), Refusal::PerIp);
        assert_eq!(limits.try_acquire(b, false).unwrap_err(), Refusal::Total);
        drop(a1);
        assert_eq!(limits.open(a), (4, 1));
        let _b1 = limits.try_acquire(b, false).unwrap();
        assert_eq!(limits.open(b), (5, 1));
        // The inter-broker listener is over the total but not over its address's limit.
        let c: IpAddr = [127, 0, 0, 5].into();
        assert_eq!(limits.try_acquire(c, false).unwrap_err(), Refusal::Total);
        let c1 = limits.try_acquire(c, true).unwrap();
        let _c2 = limits.try_acquire(c, true).unwrap();
        assert_eq!(limits.try_acquire(c, true).unwrap_err(), Refusal::PerIp);
        assert_eq!(limits.open(c), (5, 2), "not counted in the total");
        drop(c1);
        assert_eq!(limits.open(c), (5, 1));
    }
}
