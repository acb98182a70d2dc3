//! Fetch sessions (KIP-227): a consumer or follower that fetches many partitions sends, after
//! its first full fetch, only the partitions whose fetch state changed, and gets back only the
//! partitions with something new (records, a moved high watermark or log start offset, an
//! error).
//!
//! A request is one of:
//!
//! - session 0, epoch 0: a full fetch that opens a session, if a slot is free (else it stays
//!   sessionless: session id 0 in the response, and the client keeps sending full fetches);
//! - session 0, epoch -1: a full fetch without a session;
//! - session S, epoch -1: closes S, then a full fetch without a session;
//! - session S, epoch E > 0: an incremental fetch. E must be the epoch that follows the last
//!   one (INVALID_FETCH_SESSION_EPOCH otherwise), S must exist (FETCH_SESSION_ID_NOT_FOUND);
//!   its partitions update or join the session, `forgotten_topics_data` leave it.
//!
//! Sessions live in the broker, not the connection. There are at most
//! [`FetchSessions::SLOTS`]; when all are taken, a new session takes the slot of the least
//! recently used one idle for [`FetchSessions::EVICTABLE_AFTER`], as Kafka's cache does.
//!
//! Invariant: every partition a session holds was named by its client (the opening request or a
//! later one) and not forgotten since; `sent` is what the last response told the client of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchResponse;
use uuid::Uuid;

use crate::error_code::ErrorCode;

/// A partition of a session: by topic id (Fetch v13+) or name (before), and index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    topic: String,
    topic_id: Uuid,
    partition: i32,
}

/// What the last response told the client of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    high_watermark: i64,
    log_start_offset: i64,
}

#[derive(Debug, Clone)]
struct Entry {
    fetch: FetchPartition,
    sent: Option<Sent>,
}

#[derive(Debug)]
struct Session {
    /// The epoch the next incremental request must carry.
    next_epoch: i32,
    partitions: BTreeMap<Key, Entry>,
    used: Instant,
}

/// How one Fetch request is served.
#[derive(Debug)]
pub struct Plan {
    /// The session the response names (0: none).
    pub session_id: i32,
    /// Whether the response carries only what changed.
    pub incremental: bool,
    /// The request to serve: the whole session's partitions for a session, else as received.
    pub request: FetchRequest,
}

/// The broker's fetch sessions.
#[derive(Debug, Default)]
pub struct FetchSessions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<i32, Session>,
    next_id: i32,
}

fn keys_of(topic: &FetchTopic) -> impl Iterator<Item = (Key, &FetchPartition)> {
    topic.partitions.iter().map(move |p| {
        (
            Key {
                topic: topic.topic.0.as_str().to_string(),
                topic_id: topic.topic_id,
                partition: p.partition,
            },
            p,
        )
    })
}

impl FetchSessions {
    /// Sessions the broker keeps at most (Kafka's `max.incremental.fetch.session.cache.slots`).
    pub const SLOTS: usize = 1000;
    /// A session unused this long may be evicted for a new one.
    pub const EVICTABLE_AFTER: Duration = Duration::from_secs(120);

    /// Open sessions.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves a request (Fetch v7+; older versions have no sessions: pass `sessions: false`)
    /// into the request to serve, or the top-level error to answer with.
    pub fn begin(&self, r: FetchRequest, sessions: bool) -> Result<Plan, ErrorCode> {
        if !sessions {
            return Ok(Plan {
                session_id: 0,
                incremental: false,
                request: r,
            });
        }
        let mut inner = self.lock();
        let now = Instant::now();
        match (r.session_id, r.session_epoch) {
            (0, 0) => {
                let Some(id) = inner.free_slot(now) else {
                    return Ok(Plan {
                        session_id: 0,
                        incremental: false,
                        request: r,
                    });
                };
                let partitions = r
                    .topics
                    .iter()
                    .flat_map(keys_of)
                    .map(|(k, p)| {
                        (
                            k,
                            Entry {
                                fetch: p.clone(),
                                sent: None,
                            },
                        )
                    })
                    .collect();
                inner.sessions.insert(
                    id,
                    Session {
                        next_epoch: 1,
                        partitions,
                        used: now,
                    },
                );
                Ok(Plan {
                    session_id: id,
                    incremental: false,
                    request: r,
                })
            }
            (0, -1) => Ok(Plan {
                session_id: 0,
                incremental: false,
                request: r,
            }),
            (0, _) => Err(ErrorCode::InvalidFetchSessionEpoch),
            (id, -1) => {
                inner.sessions.remove(&id);
                Ok(Plan {
                    session_id: 0,
                    incremental: false,
                    request: r,
                })
            }
            (id, epoch) => {
                let session = inner
                    .sessions
                    .get_mut(&id)
                    .ok_or(ErrorCode::FetchSessionIdNotFound)?;
                if epoch != session.next_epoch {
                    return Err(ErrorCode::InvalidFetchSessionEpoch);
                }
                session.next_epoch = epoch.checked_add(1).unwrap_or(1);
                session.used = now;
                for t in &r.topics {
                    for (k, p) in keys_of(t) {
                        let sent = session.partitions.get(&k).and_then(|e| e.sent);
                        session.partitions.insert(
                            k,
                            Entry {
                                fetch: p.clone(),
                                sent,
                            },
                        );
                    }
                }
                for f in &r.forgotten_topics_data {
                    session.partitions.retain(|k, _| {
                        let same_topic = if f.topic_id.is_nil() {
                            k.topic == f.topic.0.as_str()
                        } else {
                            k.topic_id == f.topic_id
                        };
                        !(same_topic && f.partitions.contains(&k.partition))
                    });
                }
                let mut full = r;
                full.topics = Vec::new();
                for (k, e) in &session.partitions {
                    let same = full.topics.last().is_some_and(|t: &FetchTopic| {
                        t.topic.0.as_str() == k.topic && t.topic_id == k.topic_id
                    });
                    if !same {
                        let mut t = FetchTopic::default();
                        t.topic = kafka_protocol::messages::TopicName(
                            kafka_protocol::protocol::StrBytes::from_string(k.topic.clone()),
                        );
                        t.topic_id = k.topic_id;
                        full.topics.push(t);
                    }
                    if let Some(t) = full.topics.last_mut() {
                        t.partitions.push(e.fetch.clone());
                    }
                }
                Ok(Plan {
                    session_id: id,
                    incremental: true,
                    request: full,
                })
            }
        }
    }

    /// Finishes a response: names the session, and for an incremental fetch keeps only the
    /// partitions with something new; remembers what was sent.
    pub fn finish(&self, plan: &Plan, response: &mut FetchResponse) {
        response.session_id = plan.session_id;
        if plan.session_id == 0 {
            return;
        }
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get_mut(&plan.session_id) else {
            return;
        };
        for t in &mut response.responses {
            let topic = t.topic.0.as_str().to_string();
            let topic_id = t.topic_id;
            t.partitions.retain(|p| {
                let key = Key {
                    topic: topic.clone(),
                    topic_id,
                    partition: p.partition_index,
                };
                let now = Sent {
                    high_watermark: p.high_watermark,
                    log_start_offset: p.log_start_offset,
                };
                let Some(entry) = session.partitions.get_mut(&key) else {
                    return true;
                };
                let changed = entry.sent != Some(now);
                entry.sent = Some(now);
                // A redirection to a read replica (KIP-392) is always news: the leader sends
                // no records for that partition.
                !plan.incremental
                    || changed
                    || p.error_code != 0
                    || p.preferred_read_replica.0 >= 0
                    || p.records.as_ref().is_some_and(|r| !r.is_empty())
            });
        }
        if plan.incremental {
            response.responses.retain(|t| !t.partitions.is_empty());
        }
    }
}

impl Inner {
    /// A session id for a new session: a free slot, or the least recently used idle session's.
    fn free_slot(&mut self, now: Instant) -> Option<i32> {
        if self.sessions.len() >= FetchSessions::SLOTS {
            let (&oldest, s) = self.sessions.iter().min_by_key(|(_, s)| s.used)?;
            if now.duration_since(s.used) < FetchSessions::EVICTABLE_AFTER {
                return None;
            }
            self.sessions.remove(&oldest);
        }
        loop {
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.sessions.contains_key(&self.next_id) {
                return Some(self.next_id);
            }
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::fetch_request::ForgottenTopic;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::StrBytes;

    fn request(id: i32, epoch: i32, parts: &[(i32, i64)]) -> FetchRequest {
        let mut t = FetchTopic::default();
        t.topic = TopicName(StrBytes::from_static_str("t"));
        t.partitions = parts
            .iter()
            .map(|(p, o)| {
                let mut f = FetchPartition::default();
                f.partition = *p;
                f.fetch_offset = *o;
                f
            })
            .collect();
        let mut r = FetchRequest::default();
        r.session_id = id;
        r.session_epoch = epoch;
        r.topics = if parts.is_empty() { vec![] } else { vec![t] };
        r
    }

    /// A response for the plan's partitions: `with_records` get bytes, all get `hw`.
    fn respond(plan: &Plan, hw: i64, with_records: &[i32]) -> FetchResponse {
        let mut r = FetchResponse::default();
        r.responses = plan
            .request
            .topics
            .iter()
            .map(|t| {
                let mut ft = FetchableTopicResponse::default();
                ft.topic = t.topic.clone();
                ft.partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut pd = PartitionData::default();
                        pd.partition_index = p.partition;
                        pd.high_watermark = hw;
                        pd.records = Some(if with_records.contains(&p.partition) {
                            Bytes::from_static(b"batch")
                        } else {
                            Bytes::new()
                        });
                        pd
                    })
                    .collect();
                ft
            })
            .collect();
        r
    }

    fn partitions(r: &FetchResponse) -> Vec<i32> {
        r.responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
            .collect()
    }

    #[test]
    fn a_session_answers_only_what_changed_and_keeps_the_partitions() {
        let s = FetchSessions::default();
        let open = s
            .begin(request(0, 0, &[(0, 0), (1, 0), (2, 0)]), true)
            .unwrap();
        assert!(open.session_id > 0);
        let mut resp = respond(&open, 10, &[0, 1, 2]);
        s.finish(&open, &mut resp);
        assert_eq!(resp.session_id, open.session_id);
        assert_eq!(
            partitions(&resp),
            vec![0, 1, 2],
            "a full response has everything"
        );

        // Incremental, nothing named: the session's three partitions are fetched; only the one
        // with records (and none whose high watermark stayed) comes back.
        let inc = s.begin(request(open.session_id, 1, &[]), true).unwrap();
        assert_eq!(inc.request.topics[0].partitions.len(), 3);
        let mut resp = respond(&inc, 10, &[1]);
        s.finish(&inc, &mut resp);
        assert_eq!(partitions(&resp), vec![1]);

        // A moved high watermark is news; a new fetch offset updates the session.
        let inc = s
            .begin(request(open.session_id, 2, &[(1, 5)]), true)
            .unwrap();
        let fetched: Vec<(i32, i64)> = inc.request.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition, p.fetch_offset))
            .collect();
        assert_eq!(fetched, vec![(0, 0), (1, 5), (2, 0)]);
        let mut resp = respond(&inc, 11, &[]);
        s.finish(&inc, &mut resp);
        assert_eq!(partitions(&resp), vec![0, 1, 2]);

        // Forgotten partitions leave; nothing new gives an empty answer.
        let mut r = request(open.session_id, 3, &[]);
        let mut f = ForgottenTopic::default();
        f.topic = TopicName(StrBytes::from_static_str("t"));
        f.partitions = vec![0, 2];
        r.forgotten_topics_data = vec![f];
        let inc = s.begin(r, true).unwrap();
        assert_eq!(inc.request.topics[0].partitions.len(), 1);
        let mut resp = respond(&inc, 11, &[]);
        s.finish(&inc, &mut resp);
        assert!(resp.responses.is_empty());
    }

    /// A partition the leader redirects to a read replica (KIP-392) carries no records and may
    /// keep its high watermark: it is in the incremental answer all the same, or the consumer
    /// would never learn where to read.
    #[test]
    fn a_redirection_to_a_read_replica_is_always_answered() {
        let s = FetchSessions::default();
        let open = s.begin(request(0, 0, &[(0, 0), (1, 0)]), true).unwrap();
        let mut resp = respond(&open, 10, &[]);
        s.finish(&open, &mut resp);
        let inc = s.begin(request(open.session_id, 1, &[]), true).unwrap();
        let mut resp = respond(&inc, 10, &[]);
        resp.responses[0].partitions[1].preferred_read_replica = 3.into();
        s.finish(&inc, &mut resp);
        assert_eq!(partitions(&resp), vec![1]);
    }

    #[test]
    fn epochs_and_ids_are_checked_and_epoch_minus_one_closes() {
        let s = FetchSessions::default();
        let open = s.begin(request(0, 0, &[(0, 0)]), true).unwrap();
        let id = open.session_id;
        assert_eq!(
            s.begin(request(id, 2, &[]), true).unwrap_err(),
            ErrorCode::InvalidFetchSessionEpoch
        );
        assert_eq!(
            s.begin(request(id + 1000, 1, &[]), true).unwrap_err(),
            ErrorCode::FetchSessionIdNotFound
        );
        assert!(s.begin(request(id, 1, &[]), true).is_ok());
        assert_eq!(
            s.begin(request(id, 1, &[]), true).unwrap_err(),
            ErrorCode::InvalidFetchSessionEpoch,
            "an epoch is used once"
        );
        let close = s.begin(request(id, -1, &[(0, 0)]), true).unwrap();
        assert_eq!(close.session_id, 0);
        assert!(s.is_empty());
        assert_eq!(
            s.begin(request(id, 2, &[]), true).unwrap_err(),
            ErrorCode::FetchSessionIdNotFound
        );
        let sessionless = s.begin(request(0, -1, &[(0, 0)]), true).unwrap();
        assert_eq!(sessionless.session_id, 0);
        assert!(s.is_empty());
    }

    #[test]
    fn when_every_slot_is_busy_a_new_fetch_stays_sessionless() {
        let s = FetchSessions::default();
        for _ in 0..FetchSessions::SLOTS {
            assert!(s.begin(request(0, 0, &[(0, 0)]), true).unwrap().session_id > 0);
        }
        let more = s.begin(request(0, 0, &[(0, 0)]), true).unwrap();
        assert_eq!(more.session_id, 0, "no idle session to evict yet");
        assert_eq!(s.len(), FetchSessions::SLOTS);
    }
}
