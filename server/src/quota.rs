//! Client quotas, as Kafka defines them (KIP-13, KIP-55, KIP-546, KIP-612): byte rates for
//! producers and consumers per user and client id, and new connections per second per client
//! address, set with AlterClientQuotas and read with DescribeClientQuotas.
//!
//! - An entity is a set of `(type, name)` pairs: `user` and/or `client-id` (a `None` name is
//!   the type's default), or `ip` alone. A request's quota is found in Kafka's order: user and
//!   client id, user and default client, user, default user and client id, default user and
//!   default client, default user, client id, default client. The entity found decides who
//!   shares the measured rate: a quota set on a user is shared by its clients, one on a default
//!   applies to each user (or client) on its own.
//! - A rate is measured over `quota.window.num` windows of `quota.window.size.seconds`. A
//!   request that takes it over the quota is answered with a throttle time (Kafka's formula:
//!   `(rate - quota) / quota * window`, at most the whole window) in `throttle_time_ms`, and
//!   the connection reads no further request until that time has passed (KIP-219): the client
//!   slows down to the quota whatever it does.
//! - A connection from an address over its `connection_creation_rate` is closed at once.
//! - `request_percentage`: the CPU time the broker spends handling a client's requests, as a
//!   percentage of one thread's time (Kafka's share of request handler and network thread
//!   time): measured with the thread CPU clock around every poll of the request's handling
//!   (`CpuTimed`), so time spent waiting (for the disk, for replicas) is not counted. Only
//!   requests of clients with such a quota are measured.
//!
//! A standalone broker keeps the quotas in `<data>/client-quotas.json`; a cluster in the
//! metadata quorum (`SetClientQuota` records), which each broker takes from the image.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use strata_replication::controller::{QuotaEntity, QuotaValue};

/// Bytes per second a producer may send.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// Bytes per second a consumer may fetch.
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// New connections per second from one address.
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";
/// Kafka's share of request-handler time (refused here).
pub const REQUEST_PERCENTAGE: &str = "request_percentage";

/// The entity types.
pub const USER: &str = "user";
/// The client id entity type.
pub const CLIENT_ID: &str = "client-id";
/// The client address entity type.
pub const IP: &str = "ip";

/// The file of a standalone broker's quotas.
pub const QUOTA_FILE: &str = "client-quotas.json";

/// Why an entity or an alteration is refused (INVALID_REQUEST with this message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidQuota(pub String);

/// Checks an entity and puts its pairs in the canonical order (sorted by type).
pub fn entity(pairs: Vec<(String, Option<String>)>) -> Result<QuotaEntity, InvalidQuota> {
    let bad = |m: String| Err(InvalidQuota(m));
    if pairs.is_empty() {
        return bad("the entity is empty".into());
    }
    let mut pairs = pairs;
    pairs.sort();
    for w in pairs.windows(2) {
        if w[0].0 == w[1].0 {
            return bad(format!("entity type {} given twice", w[0].0));
        }
    }
    for (t, name) in &pairs {
        match t.as_str() {
            USER | CLIENT_ID => {}
            IP => {
                if pairs.len() > 1 {
                    return bad("an ip entity cannot be combined with another type".into());
                }
                if let Some(n) = name
                    && n.parse::<IpAddr>().is_err()
                {
                    return bad(format!("{n:?} is not an IP address"));
                }
            }
            other => {
                return bad(format!(
                    "unknown entity type {other:?} (user, client-id, ip)"
                ));
            }
        }
    }
    Ok(pairs)
}

/// Checks one alteration of `entity`'s `key`.
pub fn check_op(
    entity: &QuotaEntity,
    key: &str,
    value: f64,
    remove: bool,
) -> Result<(), InvalidQuota> {
    let is_ip = entity.iter().any(|(t, _)| t == IP);
    match key {
        PRODUCER_BYTE_RATE | CONSUMER_BYTE_RATE if !is_ip => {}
        CONNECTION_CREATION_RATE if is_ip => {}
        PRODUCER_BYTE_RATE | CONSUMER_BYTE_RATE | CONNECTION_CREATION_RATE => {
            return Err(InvalidQuota(format!(
                "{key} does not apply to this entity ({CONNECTION_CREATION_RATE} is for ip entities, byte rates for user and client-id)"
            )));
        }
        REQUEST_PERCENTAGE if !is_ip => {}
        REQUEST_PERCENTAGE => {
            return Err(InvalidQuota(format!(
                "{REQUEST_PERCENTAGE} does not apply to an ip entity"
            )));
        }
        other => return Err(InvalidQuota(format!("unknown quota key {other:?}"))),
    }
    let positive = value.is_finite() && value > 0.0;
    if !remove && !positive {
        return Err(InvalidQuota(format!(
            "{key} must be a positive number, not {value}"
        )));
    }
    Ok(())
}

/// Whether `entity` matches a DescribeClientQuotas component list.
pub fn matches(entity: &QuotaEntity, filter: &[Component], strict: bool) -> bool {
    if strict && entity.len() != filter.len() {
        return false;
    }
    filter.iter().all(|c| {
        let found = entity.iter().find(|(t, _)| *t == c.entity_type);
        match (&c.matching, found) {
            (_, None) => false,
            (Matching::Exact(n), Some((_, name))) => name.as_deref() == Some(n.as_str()),
            (Matching::Default, Some((_, name))) => name.is_none(),
            (Matching::Any, Some(_)) => true,
        }
    })
}

/// One component of a DescribeClientQuotas filter.
#[derive(Debug, Clone)]
pub struct Component {
    /// The entity type.
    pub entity_type: String,
    /// What its name must be.
    pub matching: Matching,
}

/// A component's match type.
#[derive(Debug, Clone)]
pub enum Matching {
    /// Exactly this name (match type 0).
    Exact(String),
    /// The default (1).
    Default,
    /// Any name, or the default (2).
    Any,
}

/// One rate over a sliding window of samples.
#[derive(Debug, Default)]
struct Sensor {
    /// (window index, amount).
    samples: VecDeque<(u64, f64)>,
}

impl Sensor {
    /// Records `amount` at `now_ms` and returns the throttle time for a `quota` per second
    /// (0 while within it).
    fn record(&mut self, now_ms: u64, amount: f64, quota: f64, window_ms: u64, n: u64) -> u64 {
        let index = now_ms / window_ms;
        while self.samples.front().is_some_and(|(i, _)| i + n <= index) {
            self.samples.pop_front();
        }
        match self.samples.back_mut() {
            Some((i, a)) if *i == index => *a += amount,
            _ => self.samples.push_back((index, amount)),
        }
        let total: f64 = self.samples.iter().map(|(_, a)| a).sum();
        let oldest = self.samples.front().map_or(index, |(i, _)| *i) * window_ms;
        // As Kafka's `Rate`: over at least the full windows but the current one, so a new
        // client is not measured over a few milliseconds.
        let elapsed_ms = now_ms
            .saturating_sub(oldest)
            .max((n - 1) * window_ms)
            .max(1);
        let rate = total * 1000.0 / elapsed_ms as f64;
        if rate <= quota {
            return 0;
        }
        let throttle = (rate - quota) / quota * elapsed_ms as f64;
        (throttle as u64).min(n * window_ms)
    }

    fn last_index(&self) -> u64 {
        self.samples.back().map_or(0, |(i, _)| *i)
    }
}

/// The broker's client quotas and the rates measured against them.
#[derive(Debug)]
pub struct QuotaStore {
    path: Option<PathBuf>,
    values: RwLock<BTreeMap<QuotaEntity, BTreeMap<String, f64>>>,
    sensors: Mutex<HashMap<(&'static str, String), Sensor>>,
    window_ms: u64,
    windows: u64,
    started: Instant,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredQuota {
    entity: QuotaEntity,
    values: BTreeMap<String, f64>,
}

impl QuotaStore {
    fn empty(path: Option<PathBuf>, windows: u32, window: Duration) -> QuotaStore {
        QuotaStore {
            path,
            values: RwLock::new(BTreeMap::new()),
            sensors: Mutex::new(HashMap::new()),
            window_ms: (window.as_millis() as u64).max(1),
            windows: u64::from(windows.max(2)),
            started: Instant::now(),
        }
    }

    /// The quotas of a standalone broker's data directory (none if it has no file), measured
    /// over `windows` windows of `window`.
    pub fn open(data_dir: &Path, windows: u32, window: Duration) -> Result<QuotaStore, String> {
        let path = data_dir.join(QUOTA_FILE);
        let store = QuotaStore::empty(Some(path.clone()), windows, window);
        let stored: Vec<StoredQuota> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{path:?}: {e}"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{path:?}: {e}")),
        };
        *store.values.write().unwrap_or_else(|p| p.into_inner()) =
            stored.into_iter().map(|q| (q.entity, q.values)).collect();
        Ok(store)
    }

    /// The store of a cluster member: its quotas are the metadata image's ([`Self::sync`]).
    pub fn replicated(windows: u32, window: Duration) -> QuotaStore {
        QuotaStore::empty(None, windows, window)
    }

    /// Takes the quotas of a new metadata image.
    pub fn sync(&self, image: &BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>) {
        let next: BTreeMap<QuotaEntity, BTreeMap<String, f64>> = image
            .iter()
            .map(|(e, v)| (e.clone(), v.iter().map(|(k, q)| (k.clone(), q.0)).collect()))
            .collect();
        let mut values = self.values.write().unwrap_or_else(|p| p.into_inner());
        if *values != next {
            *values = next;
        }
    }

    /// Every entity with quotas, and its values.
    pub fn describe(&self) -> Vec<(QuotaEntity, BTreeMap<String, f64>)> {
        let values = self.values.read().unwrap_or_else(|p| p.into_inner());
        values.iter().map(|(e, v)| (e.clone(), v.clone())).collect()
    }

    /// Sets (`Some`) or removes (`None`) quotas and makes the change durable (standalone).
    pub fn alter(&self, changes: &[(QuotaEntity, String, Option<f64>)]) -> Result<(), String> {
        let mut values = self.values.write().unwrap_or_else(|p| p.into_inner());
        let mut next = values.clone();
        for (e, key, value) in changes {
            match value {
                Some(v) => {
                    next.entry(e.clone()).or_default().insert(key.clone(), *v);
                }
                None => {
                    if let Some(m) = next.get_mut(e) {
                        m.remove(key);
                        if m.is_empty() {
                            next.remove(e);
                        }
                    }
                }
            }
        }
        if let Some(path) = &self.path {
            let stored: Vec<StoredQuota> = next
                .iter()
                .map(|(e, v)| StoredQuota {
                    entity: e.clone(),
                    values: v.clone(),
                })
                .collect();
            let json = serde_json::to_vec_pretty(&stored).map_err(|e| e.to_string())?;
            let dir = path.parent().unwrap_or(Path::new("."));
            crate::broker::atomic_write(dir, QUOTA_FILE, &json)
                .map_err(|e| format!("{path:?}: {e}"))?;
        }
        *values = next;
        Ok(())
    }

    /// The quota of `key` for a request of `user` from `client_id`, in Kafka's order, and the
    /// name of the rate it is measured on.
    fn resolve(&self, key: &str, user: &str, client_id: &str) -> Option<(String, f64)> {
        let values = self.values.read().unwrap_or_else(|p| p.into_inner());
        // Nothing to look up (and no keys to build) unless some entity sets this quota.
        if !values.values().any(|v| v.contains_key(key)) {
            return None;
        }
        let pair = |t: &str, n: Option<&str>| (t.to_string(), n.map(str::to_string));
        let both = |u: Option<&str>, c: Option<&str>| vec![pair(CLIENT_ID, c), pair(USER, u)];
        let user_and_client = format!("user={user},client-id={client_id}");
        let user_only = format!("user={user}");
        let client_only = format!("client-id={client_id}");
        let order: [(QuotaEntity, &String); 8] = [
            (both(Some(user), Some(client_id)), &user_and_client),
            (both(Some(user), None), &user_and_client),
            (vec![pair(USER, Some(user))], &user_only),
            (both(None, Some(client_id)), &user_and_client),
            (both(None, None), &user_and_client),
            (vec![pair(USER, None)], &user_only),
            (vec![pair(CLIENT_ID, Some(client_id))], &client_only),
            (vec![pair(CLIENT_ID, None)], &client_only),
        ];
        order.into_iter().find_map(|(entity, bucket)| {
            let quota = values.get(&entity)?.get(key)?;
            Some((bucket.clone(), *quota))
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn record(&self, kind: &'static str, bucket: String, amount: f64, quota: f64) -> u64 {
        let now = self.now_ms();
        let mut sensors = self.sensors.lock().unwrap_or_else(|p| p.into_inner());
        if sensors.len() > 4096 {
            // Forget rates no longer measured (their last sample left the window).
            let oldest = now / self.window_ms;
            sensors.retain(|_, s| s.last_index() + self.windows > oldest);
        }
        sensors.entry((kind, bucket)).or_default().record(
            now,
            amount,
            quota,
            self.window_ms,
            self.windows,
        )
    }

    /// Records `bytes` of a produce (`PRODUCER_BYTE_RATE`) or fetch (`CONSUMER_BYTE_RATE`)
    /// from `user` and `client_id`; returns how long to throttle the connection (zero when
    /// within the quota, or without one).
    pub fn record_bytes(
        &self,
        key: &'static str,
        user: &str,
        client_id: &str,
        bytes: u64,
    ) -> Duration {
        let Some((bucket, quota)) = self.resolve(key, user, client_id) else {
            return Duration::ZERO;
        };
        Duration::from_millis(self.record(key, bucket, bytes as f64, quota))
    }

    /// Whether a new connection from `ip` is within its address's `connection_creation_rate`
    /// (its own, or the default address's); it is recorded either way.
    pub fn admit_connection(&self, ip: IpAddr) -> bool {
        let quota = {
            let values = self.values.read().unwrap_or_else(|p| p.into_inner());
            if values.is_empty() {
                return true;
            }
            let own = vec![(IP.to_string(), Some(ip.to_string()))];
            let default = vec![(IP.to_string(), None)];
            values
                .get(&own)
                .and_then(|v| v.get(CONNECTION_CREATION_RATE))
                .or_else(|| {
                    values
                        .get(&default)
                        .and_then(|v| v.get(CONNECTION_CREATION_RATE))
                })
                .copied()
        };
        let Some(quota) = quota else {
            return true;
        };
        self.record(CONNECTION_CREATION_RATE, ip.to_string(), 1.0, quota) == 0
    }
}

/// The quota a request of `user` from `client_id` is held to for `request_percentage`: the
/// rate it is measured on and the percentage, if any applies.
#[derive(Debug, Clone)]
pub struct RequestQuota {
    bucket: String,
    percent: f64,
}

impl QuotaStore {
    /// The `request_percentage` quota of a request, if any.
    pub fn request_quota(&self, user: &str, client_id: &str) -> Option<RequestQuota> {
        let (bucket, percent) = self.resolve(REQUEST_PERCENTAGE, user, client_id)?;
        Some(RequestQuota { bucket, percent })
    }

    /// Records `cpu` spent on a request under `quota`; returns how long to throttle.
    pub fn record_request(&self, quota: &RequestQuota, cpu: Duration) -> Duration {
        // In percent-seconds: one thread busy for a whole second is 100.
        let amount = cpu.as_secs_f64() * 100.0;
        Duration::from_millis(self.record(
            REQUEST_PERCENTAGE,
            quota.bucket.clone(),
            amount,
            quota.percent,
        ))
    }
}

/// The CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// A future whose polls are timed on the thread CPU clock: the CPU a request's handling used,
/// wherever the runtime polled it, without the time it spent waiting.
pub struct CpuTimed<F: std::future::Future> {
    inner: std::pin::Pin<Box<F>>,
    spent: Duration,
}

impl<F: std::future::Future> std::fmt::Debug for CpuTimed<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuTimed")
            .field("spent", &self.spent)
            .finish_non_exhaustive()
    }
}

impl<F: std::future::Future> CpuTimed<F> {
    /// Times `inner`.
    pub fn new(inner: F) -> CpuTimed<F> {
        CpuTimed {
            inner: Box::pin(inner),
            spent: Duration::ZERO,
        }
    }
}

impl<F: std::future::Future> std::future::Future for CpuTimed<F> {
    type Output = (F::Output, Duration);

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        let before = thread_cpu();
        let polled = this.inner.as_mut().poll(cx);
        this.spent += thread_cpu().saturating_sub(before);
        polled.map(|out| (out, this.spent))
    }
}

/// The user a quota names for a principal (`User:alice` is `alice`).
pub fn user_of(principal: &str) -> &str {
    principal.strip_prefix("User:").unwrap_or(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pairs: &[(&str, Option<&str>)]) -> QuotaEntity {
        entity(
            pairs
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn the_most_specific_quota_wins_in_kafkas_order() {
        let s = QuotaStore::replicated(11, Duration::from_secs(1));
        let set = |pairs: &[(&str, Option<&str>)], v: f64| {
            s.alter(&[(e(pairs), PRODUCER_BYTE_RATE.into(), Some(v))])
                .unwrap()
        };
        set(&[(CLIENT_ID, None)], 8.0);
        assert_eq!(
            s.resolve(PRODUCER_BYTE_RATE, "alice", "app"),
            Some(("client-id=app".into(), 8.0))
        );
        set(&[(USER, None)], 6.0);
        assert_eq!(
            s.resolve(PRODUCER_BYTE_RATE, "alice", "app"),
            Some(("user=alice".into(), 6.0))
        );
        set(&[(USER, Some("alice"))], 3.0);
        set(&[(USER, Some("alice")), (CLIENT_ID, Some("app"))], 1.0);
        assert_eq!(
            s.resolve(PRODUCER_BYTE_RATE, "alice", "app"),
            Some(("user=alice,client-id=app".into(), 1.0))
        );
        assert_eq!(
            s.resolve(PRODUCER_BYTE_RATE, "alice", "other"),
            Some(("user=alice".into(), 3.0))
        );
        assert_eq!(
            s.resolve(PRODUCER_BYTE_RATE, "bob", "app"),
            Some(("user=bob".into(), 6.0))
        );
        assert_eq!(s.resolve(CONSUMER_BYTE_RATE, "bob", "app"), None);
    }

    #[test]
    fn a_rate_over_its_quota_is_throttled_in_proportion() {
        let mut sensor = Sensor::default();
        // 1,000 B/s over 2 windows of 1 s: 1,000 B at once is within (measured over 1 s).
        assert_eq!(sensor.record(0, 1000.0, 1000.0, 1000, 2), 0);
        // Another 1,000 B in the same second: 2,000 B/s, twice the quota: throttled 1 s.
        assert_eq!(sensor.record(10, 1000.0, 1000.0, 1000, 2), 1000);
        // Windows age out: a second later only the newer sample counts.
        assert_eq!(sensor.record(2500, 100.0, 1000.0, 1000, 2), 0);
    }

    #[test]
    fn entities_and_alterations_are_checked_as_kafka_checks_them() {
        assert!(entity(vec![]).is_err());
        assert!(entity(vec![("group".into(), None)]).is_err());
        assert!(entity(vec![(IP.into(), Some("not-an-ip".into()))]).is_err());
        assert!(entity(vec![(IP.into(), None), (USER.into(), None)]).is_err());
        assert!(entity(vec![(USER.into(), None), (USER.into(), Some("a".into()))]).is_err());
        let user = e(&[(USER, Some("a"))]);
        let ip = e(&[(IP, Some("10.0.0.1"))]);
        assert!(check_op(&user, PRODUCER_BYTE_RATE, 1024.0, false).is_ok());
        assert!(check_op(&user, PRODUCER_BYTE_RATE, 0.0, false).is_err());
        assert!(check_op(&user, PRODUCER_BYTE_RATE, 0.0, true).is_ok());
        assert!(check_op(&user, CONNECTION_CREATION_RATE, 5.0, false).is_err());
        assert!(check_op(&ip, CONNECTION_CREATION_RATE, 5.0, false).is_ok());
        assert!(check_op(&ip, CONSUMER_BYTE_RATE, 5.0, false).is_err());
        assert!(check_op(&user, REQUEST_PERCENTAGE, 50.0, false).is_ok());
        assert!(check_op(&ip, REQUEST_PERCENTAGE, 50.0, false).is_err());
        assert!(check_op(&user, "bogus", 1.0, false).is_err());
    }

    #[test]
    fn connections_over_an_address_rate_are_refused() {
        let s = QuotaStore::replicated(2, Duration::from_secs(1));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        s.alter(&[(
            e(&[(IP, Some("10.0.0.1"))]),
            CONNECTION_CREATION_RATE.into(),
            Some(3.0),
        )])
        .unwrap();
        let admitted = (0..10).filter(|_| s.admit_connection(ip)).count();
        assert!((3..=4).contains(&admitted), "{admitted} of 10 admitted");
        assert!((0..10).all(|_| s.admit_connection(other)), "no quota");
    }
}
