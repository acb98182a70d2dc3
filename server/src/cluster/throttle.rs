//! Replication throttles (KIP-73): a cap, in bytes per second, on what a broker sends as leader
//! (`leader.replication.throttled.rate`) and fetches as follower
//! (`follower.replication.throttled.rate`) for *throttled* replicas that are out of sync, so
//! that a reassignment or a replica catching up does not take the disk and network from
//! clients. Which replicas are throttled is per topic (`leader.replication.throttled.replicas`,
//! `follower.replication.throttled.replicas`: `*`, or `partition:broker` pairs naming this
//! broker), as Kafka's reassignment tool sets them. In-sync replicas are never throttled: the
//! high watermark, and so every acks=all produce, waits on them.
//!
//! The cap is a token bucket refilled at the rate, holding at most one second of it; a fetch
//! may overdraw it by one answer, and the debt is paid by waiting.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One direction's bucket.
#[derive(Debug)]
pub struct Throttle {
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    available: f64,
    at: Instant,
}

/// The largest rate that means "no throttle" (Kafka's default, `Long.MAX_VALUE`, and anything
/// near it).
pub const UNLIMITED: u64 = 1 << 50;

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle {
            bucket: Mutex::new(Bucket {
                available: 0.0,
                at: Instant::now(),
            }),
        }
    }
}

impl Throttle {
    fn refill(b: &mut Bucket, rate: u64, now: Instant) {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.available = (b.available + elapsed * rate as f64).min(rate as f64);
        b.at = now;
    }

    /// How long throttled traffic must wait before it may go on at `rate` (`None`: now).
    pub fn delay(&self, rate: u64) -> Option<Duration> {
        if rate >= UNLIMITED {
            return None;
        }
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        Self::refill(&mut b, rate, Instant::now());
        (b.available < 0.0).then(|| Duration::from_secs_f64(-b.available / rate.max(1) as f64))
    }

    /// Throttled traffic of `bytes` went out.
    pub fn record(&self, rate: u64, bytes: usize) {
        if rate >= UNLIMITED || bytes == 0 {
            return;
        }
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        Self::refill(&mut b, rate, Instant::now());
        b.available -= bytes as f64;
    }

    /// A fetch size for throttled partitions at `rate`: a tenth of a second of it, between
    /// 16 KiB and `max`, so one answer does not overdraw the bucket by much.
    pub fn quantum(rate: u64, max: i32) -> i32 {
        if rate >= UNLIMITED {
            return max;
        }
        i32::try_from(rate / 10)
            .unwrap_or(max)
            .clamp(16 << 10, max.max(16 << 10))
    }
}

/// The topic config naming the replicas throttled on the leader side.
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
/// The topic config naming the replicas throttled on the follower side.
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Whether `topic`'s config `list` (one of the two above) names `partition` on `broker`.
pub fn replica_throttled(
    topic: &crate::topic::Topic,
    list: &str,
    partition: i32,
    broker: i32,
) -> bool {
    let overrides = topic.overrides.read().unwrap_or_else(|p| p.into_inner());
    is_throttled(overrides.get(list), partition, broker)
}

/// Whether a throttled-replicas list (`*`, or `partition:broker,...`) names `partition` on
/// `broker`.
pub fn is_throttled(list: Option<&String>, partition: i32, broker: i32) -> bool {
    let Some(list) = list else {
        return false;
    };
    list.split(',').map(str::trim).any(|entry| {
        entry == "*"
            || entry.split_once(':').is_some_and(|(p, b)| {
                p.trim().parse() == Ok(partition) && b.trim().parse() == Ok(broker)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_name_partitions_on_brokers() {
        let l = |s: &str| Some(s.to_string());
        assert!(is_throttled(l("*").as_ref(), 3, 7));
        assert!(is_throttled(l("0:1, 3:7").as_ref(), 3, 7));
        assert!(!is_throttled(l("3:1,7:3").as_ref(), 3, 7));
        assert!(!is_throttled(l("").as_ref(), 0, 0));
        assert!(!is_throttled(None, 0, 0));
    }

    /// Debt is paid by waiting at the rate; unlimited never waits.
    #[test]
    fn the_bucket_makes_throttled_traffic_wait_its_debt() {
        let t = Throttle::default();
        assert_eq!(t.delay(1000), None);
        t.record(1000, 500);
        let wait = t.delay(1000).unwrap();
        assert!(
            wait <= Duration::from_millis(500) && wait > Duration::from_millis(400),
            "{wait:?}"
        );
        t.record(UNLIMITED, 1 << 30);
        assert_eq!(t.delay(UNLIMITED), None);
        assert_eq!(Throttle::quantum(UNLIMITED, 1 << 20), 1 << 20);
        assert_eq!(Throttle::quantum(1_000_000, 1 << 20), 100_000);
        assert_eq!(Throttle::quantum(1000, 1 << 20), 16 << 10);
    }
}
