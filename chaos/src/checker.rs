//! The checker: reads a history and reports every anomaly Kafka-style systems are known to
//! suffer, each with the records involved.
//!
//! The final read (every partition from offset 0 to its high watermark, after every fault
//! healed) is the log as it ended. Against it:
//! - **lost write**: acknowledged, but not in the final log;
//! - **offset conflict**: one partition offset seen holding two values (by an acknowledgement,
//!   a consumer or the final read);
//! - **duplicate**: a value of an idempotent producer at more than one offset (duplicates of
//!   producers without idempotence are counted, not reported: Kafka allows them);
//! - **reorder**: an idempotent producer's values out of their send order within a partition;
//! - **phantom**: a value read by anyone whose produce failed definitely (not persisted);
//! - **unknown value**: a value read that no producer sent;
//! - **consumer skip** / **consumer backwards**: a group consumer whose next read of a partition
//!   is not the next offset, within one assignment;
//! - **committed backwards**: the group's committed offset of a partition going down;
//! - **unverified**: a partition whose final read did not reach its high watermark.
//!
//! With the transactional workload (`--transactions`), against the final read_committed read of
//! the transactional topic (Jepsen's transactional anomalies):
//! - **aborted read**: a value of a transaction the client aborted, read by a read_committed
//!   consumer (the observer or the final read);
//! - **partial transaction**: a transaction some but not all of whose values are visible;
//! - **lost commit**: a transaction the client saw committed, none of whose values are visible;
//! - **intermediate read**: a read_committed observer read a value that is not in the final
//!   committed log (it saw a transaction that did not commit);
//! - **duplicate (exactly-once)**: a value twice in the committed log; for the
//!   consume-transform-produce worker, an input record transformed twice;
//! - **not exactly once**: an input record below the worker's committed offset with no
//!   output, or an output of an input record at or above it (its offsets and its outputs
//!   were not committed together).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::Event;

/// What kind of anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    LostWrite,
    OffsetConflict,
    Duplicate,
    Reorder,
    Phantom,
    UnknownValue,
    ConsumerSkip,
    ConsumerBackwards,
    CommittedBackwards,
    Unverified,
    AbortedRead,
    PartialTransaction,
    LostCommit,
    IntermediateRead,
    DuplicateExactlyOnce,
    NotExactlyOnce,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 16] = [
        Kind::LostWrite,
        Kind::OffsetConflict,
        Kind::Duplicate,
        Kind::Reorder,
        Kind::Phantom,
        Kind::UnknownValue,
        Kind::ConsumerSkip,
        Kind::ConsumerBackwards,
        Kind::CommittedBackwards,
        Kind::Unverified,
        Kind::AbortedRead,
        Kind::PartialTransaction,
        Kind::LostCommit,
        Kind::IntermediateRead,
        Kind::DuplicateExactlyOnce,
        Kind::NotExactlyOnce,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::LostWrite => "lost writes",
            Kind::OffsetConflict => "offset conflicts",
            Kind::Duplicate => "duplicates (idempotent)",
            Kind::Reorder => "reorderings",
            Kind::Phantom => "phantom reads",
            Kind::UnknownValue => "unknown values",
            Kind::ConsumerSkip => "consumer skips",
            Kind::ConsumerBackwards => "consumer went backwards",
            Kind::CommittedBackwards => "committed offset went backwards",
            Kind::Unverified => "partitions not verified",
            Kind::AbortedRead => "aborted reads",
            Kind::PartialTransaction => "partial transactions",
            Kind::LostCommit => "lost commits",
            Kind::IntermediateRead => "intermediate reads",
            Kind::DuplicateExactlyOnce => "duplicates (exactly-once)",
            Kind::NotExactlyOnce => "not exactly once",
        }
    }
}

/// One anomaly with the records that show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Anomaly {
    pub kind: Kind,
    pub partition: i32,
    /// The offset concerned (-1: none).
    pub offset: i64,
    /// What was found, in words, with the values involved.
    pub detail: String,
}

/// Counts of what the history holds.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Stats {
    pub sends: u64,
    pub acks: u64,
    pub definite_failures: u64,
    pub indefinite_failures: u64,
    pub reads: u64,
    pub final_records: u64,
    /// Values of producers without idempotence found at more than one offset (allowed).
    pub allowed_duplicates: u64,
    pub faults: BTreeMap<String, u64>,
    /// Transactions of the writer, by what the client learnt of their end.
    pub transactions: u64,
    pub committed_transactions: u64,
    pub aborted_transactions: u64,
    pub unknown_transactions: u64,
    /// Input records the consume-transform-produce worker committed an output of.
    pub transformed: u64,
}

/// The checker's verdict.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Findings {
    pub stats: Stats,
    pub anomalies: Vec<Anomaly>,
}

impl Findings {
    /// Anomalies of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.anomalies.iter().filter(|a| a.kind == kind).count()
    }

    /// True when nothing was found.
    pub fn clean(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let st = &self.stats;
        s.push_str(&format!(
            "operations: {} sends, {} acknowledged, {} failed definitely, {} failed indefinitely, {} reads, {} records in the final log\n",
            st.sends, st.acks, st.definite_failures, st.indefinite_failures, st.reads, st.final_records
        ));
        if !st.faults.is_empty() {
            let f: Vec<String> = st.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
            s.push_str(&format!("faults: {}\n", f.join(", ")));
        }
        s.push_str(&format!(
            "duplicates without idempotence (allowed): {}\n",
            st.allowed_duplicates
        ));
        if st.transactions > 0 {
            s.push_str(&format!(
                "transactions: {} ({} committed, {} aborted, {} unknown); {} input records transformed exactly once\n",
                st.transactions,
                st.committed_transactions,
                st.aborted_transactions,
                st.unknown_transactions,
                st.transformed
            ));
        }
        s.push_str(&format!("{:<34} {:>8}\n", "anomaly", "found"));
        for k in Kind::ALL {
            s.push_str(&format!("{:<34} {:>8}\n", k.name(), self.count(k)));
        }
        s
    }
}

/// What a value is: its producer, sequence number and whether that producer is idempotent.
fn parse_value(v: &str) -> Option<(u32, u64)> {
    let rest = v.strip_prefix('p')?;
    let (p, seq) = rest.split_once('-')?;
    Some((p.parse().ok()?, seq.parse().ok()?))
}

/// Checks a history.
pub fn check(events: &[Event]) -> Findings {
    let mut f = Findings::default();
    let mut idempotent: HashMap<u32, bool> = HashMap::new();
    let mut sent: HashSet<&str> = HashSet::new();
    let mut acked: Vec<(&str, i32, i64)> = Vec::new();
    let mut definite: HashSet<&str> = HashSet::new();
    let mut final_log: BTreeMap<i32, BTreeMap<i64, &str>> = BTreeMap::new();
    let mut final_end: HashMap<i32, i64> = HashMap::new();
    // Every (partition, offset) -> value claim: (value, who).
    let mut seen: HashMap<(i32, i64), Vec<(&str, String)>> = HashMap::new();
    let mut reads: Vec<(i32, i64, &str)> = Vec::new();
    let mut partitions: HashSet<i32> = HashSet::new();
    for e in events {
        match e {
            Event::Send {
                producer,
                idempotent: i,
                value,
                ..
            } => {
                f.stats.sends += 1;
                idempotent.insert(*producer, *i);
                sent.insert(value);
            }
            Event::Ack {
                value,
                partition,
                offset,
                ..
            } => {
                f.stats.acks += 1;
                acked.push((value, *partition, *offset));
                partitions.insert(*partition);
                // librdkafka acknowledges some records without an offset (-1001: a retry the
                // broker recognised as a duplicate sequence); those claim no offset.
                if *offset >= 0 {
                    seen.entry((*partition, *offset))
                        .or_default()
                        .push((value, "acknowledgement".into()));
                }
            }
            Event::Fail {
                value, definite: d, ..
            } => {
                if *d {
                    f.stats.definite_failures += 1;
                    definite.insert(value);
                } else {
                    f.stats.indefinite_failures += 1;
                }
            }
            Event::Read {
                consumer,
                partition,
                offset,
                value,
                ..
            } => {
                f.stats.reads += 1;
                reads.push((*partition, *offset, value));
                seen.entry((*partition, *offset))
                    .or_default()
                    .push((value, format!("consumer {consumer}")));
            }
            Event::Assign { .. } | Event::Committed { .. } => {}
            Event::Fault { kind, .. } => *f.stats.faults.entry(kind.clone()).or_default() += 1,
            Event::Heal { .. } => {}
            Event::Final {
                partition,
                offset,
                value,
            } => {
                f.stats.final_records += 1;
                final_log
                    .entry(*partition)
                    .or_default()
                    .insert(*offset, value);
                partitions.insert(*partition);
                seen.entry((*partition, *offset))
                    .or_default()
                    .push((value, "final read".into()));
            }
            Event::FinalEnd { partition, end } => {
                final_end.insert(*partition, *end);
                partitions.insert(*partition);
            }
            Event::TxnEnd { .. }
            | Event::TxnRead { .. }
            | Event::TxnFinal { .. }
            | Event::TxnFinalEnd { .. }
            | Event::TxnCommitted { .. } => {}
        }
    }
    let mut anomalies = Vec::new();
    let mut push = |kind, partition, offset, detail: String| {
        anomalies.push(Anomaly {
            kind,
            partition,
            offset,
            detail,
        })
    };
    // Partitions the final read could not finish: their losses cannot be judged.
    let mut sorted: Vec<i32> = partitions.iter().copied().collect();
    sorted.sort_unstable();
    for p in &sorted {
        if !final_end.contains_key(p) {
            push(
                Kind::Unverified,
                *p,
                -1,
                "the final read did not reach the high watermark".into(),
            );
        }
    }
    // Where each value ended up.
    let mut placed: HashMap<&str, Vec<(i32, i64)>> = HashMap::new();
    for (p, log) in &final_log {
        for (o, v) in log {
            placed.entry(v).or_default().push((*p, *o));
        }
    }
    for (value, p, o) in &acked {
        if !final_end.contains_key(p) {
            continue;
        }
        if !placed.contains_key(value) {
            push(
                Kind::LostWrite,
                *p,
                *o,
                format!("{value} was acknowledged at offset {o} and is not in the final log"),
            );
        }
    }
    let mut conflicts: Vec<_> = seen
        .iter()
        .filter(|(_, claims)| claims.iter().any(|(v, _)| *v != claims[0].0))
        .collect();
    conflicts.sort_by_key(|(k, _)| **k);
    for ((p, o), claims) in conflicts {
        let mut by_value: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (v, who) in claims {
            by_value.entry(v).or_default().push(who);
        }
        let desc: Vec<String> = by_value
            .iter()
            .map(|(v, who)| {
                let mut who: Vec<&str> = who.clone();
                who.dedup();
                format!("{v} (seen by {})", who.join(", "))
            })
            .collect();
        push(
            Kind::OffsetConflict,
            *p,
            *o,
            format!("offset {o} holds {}", desc.join(" and ")),
        );
    }
    let mut places: Vec<_> = placed.iter().filter(|(_, at)| at.len() > 1).collect();
    places.sort();
    for (value, at) in places {
        let producer_idempotent = parse_value(value)
            .and_then(|(p, _)| idempotent.get(&p).copied())
            .unwrap_or(false);
        if producer_idempotent {
            push(
                Kind::Duplicate,
                at[0].0,
                at[1].1,
                format!("{value} of an idempotent producer is at offsets {at:?}"),
            );
        } else {
            f.stats.allowed_duplicates += at.len() as u64 - 1;
        }
    }
    // Reordering: an idempotent producer's values within a partition in send order.
    for (p, log) in &final_log {
        let mut last: HashMap<u32, (u64, i64, &str)> = HashMap::new();
        for (o, v) in log {
            let Some((producer, seq)) = parse_value(v) else {
                continue;
            };
            if !idempotent.get(&producer).copied().unwrap_or(false) {
                continue;
            }
            if let Some((prev_seq, prev_o, prev_v)) = last.get(&producer)
                && seq < *prev_seq
            {
                push(
                    Kind::Reorder,
                    *p,
                    *o,
                    format!("{v} at offset {o} comes after {prev_v} at offset {prev_o}"),
                );
            }
            last.insert(producer, (seq, *o, v));
        }
    }
    // Phantom and unknown values: everything read or in the final log.
    let mut reported: HashSet<&str> = HashSet::new();
    let read_values = reads.iter().map(|r| (r.2, r.0, r.1)).chain(
        final_log
            .iter()
            .flat_map(|(p, log)| log.iter().map(move |(o, v)| (*v, *p, *o))),
    );
    for (v, p, o) in read_values {
        if !reported.insert(v) {
            continue;
        }
        if definite.contains(v) {
            push(
                Kind::Phantom,
                p,
                o,
                format!("{v} was read at offset {o}, but its produce failed as not persisted"),
            );
        } else if !sent.contains(v) {
            push(
                Kind::UnknownValue,
                p,
                o,
                format!("{v} was read at offset {o} and no producer sent it"),
            );
        }
    }
    // Consumers: within one assignment, each read of a partition is the next offset. Each
    // consumer records its own events in program order, so the history's order is theirs.
    let mut position: HashMap<(u32, i32), i64> = HashMap::new();
    let mut last_commit: HashMap<i32, i64> = HashMap::new();
    for e in events {
        match e {
            Event::Assign { consumer, .. } => position.retain(|(c, _), _| c != consumer),
            Event::Read {
                consumer: c,
                partition: p,
                offset: o,
                ..
            } => {
                let (c, p, o) = (*c, *p, *o);
                if let Some(prev) = position.get(&(c, p)) {
                    if o > prev + 1 {
                        push(
                            Kind::ConsumerSkip,
                            p,
                            o,
                            format!("consumer {c} read offset {prev}, then {o}"),
                        );
                    } else if o <= *prev {
                        push(
                            Kind::ConsumerBackwards,
                            p,
                            o,
                            format!("consumer {c} read offset {prev}, then {o}"),
                        );
                    }
                }
                position.insert((c, p), o);
            }
            // The group's committed offsets never go down (one observer records them).
            Event::Committed {
                t_ms,
                partition: p,
                offset: o,
            } => {
                if let Some(prev) = last_commit.get(p)
                    && o < prev
                {
                    push(
                        Kind::CommittedBackwards,
                        *p,
                        *o,
                        format!("committed offset went from {prev} to {o} at {t_ms} ms"),
                    );
                }
                last_commit.insert(*p, *o);
            }
            _ => {}
        }
    }
    check_transactions(events, &final_log, &final_end, &mut push, &mut f.stats);
    f.anomalies = anomalies;
    f
}

/// The transactional workload's anomalies (see the module's list). `input_log` and
/// `input_end` are the final read of the input topic.
fn check_transactions(
    events: &[Event],
    input_log: &BTreeMap<i32, BTreeMap<i64, &str>>,
    input_end: &HashMap<i32, i64>,
    push: &mut impl FnMut(Kind, i32, i64, String),
    stats: &mut Stats,
) {
    let mut outcomes: BTreeMap<&str, (&str, &[String])> = BTreeMap::new();
    let mut observed: Vec<(i32, i64, &str)> = Vec::new();
    let mut committed_log: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    let mut finished: HashSet<i32> = HashSet::new();
    let mut group_offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let mut any = false;
    for e in events {
        match e {
            Event::TxnEnd {
                txn,
                values,
                outcome,
                ..
            } => {
                any = true;
                stats.transactions += 1;
                outcomes.insert(txn, (outcome, values));
            }
            Event::TxnRead {
                partition,
                offset,
                value,
                ..
            } => observed.push((*partition, *offset, value)),
            Event::TxnFinal {
                partition,
                offset,
                value,
            } => {
                any = true;
                committed_log
                    .entry(value)
                    .or_default()
                    .push((*partition, *offset));
            }
            Event::TxnFinalEnd { partition, .. } => {
                finished.insert(*partition);
            }
            Event::TxnCommitted { partition, offset } => {
                any = true;
                group_offsets.insert(*partition, *offset);
            }
            _ => {}
        }
    }
    if !any {
        return;
    }
    for p in 0..3 {
        if !finished.contains(&p) {
            push(
                Kind::Unverified,
                p,
                -1,
                "the final read_committed read of the transactional topic did not reach its end (a transaction left open?)".into(),
            );
        }
    }
    // The writer's transactions: all or nothing, never an aborted one, every commit.
    let mut aborted_values: HashSet<&str> = HashSet::new();
    for (txn, (outcome, values)) in &outcomes {
        let visible = values
            .iter()
            .filter(|v| committed_log.contains_key(v.as_str()))
            .count();
        match *outcome {
            "committed" => stats.committed_transactions += 1,
            "aborted" => {
                stats.aborted_transactions += 1;
                aborted_values.extend(values.iter().map(String::as_str));
            }
            _ => stats.unknown_transactions += 1,
        }
        if visible > 0 && visible < values.len() {
            push(
                Kind::PartialTransaction,
                -1,
                -1,
                format!(
                    "{txn} ({outcome}): {visible} of {} values visible",
                    values.len()
                ),
            );
        }
        if *outcome == "committed" && visible == 0 {
            push(
                Kind::LostCommit,
                -1,
                -1,
                format!("{txn} was committed and none of its values is visible"),
            );
        }
        if *outcome == "aborted" && visible > 0 {
            push(
                Kind::AbortedRead,
                -1,
                -1,
                format!(
                    "{txn} was aborted and the final read_committed read has {visible} of its values"
                ),
            );
        }
    }
    for (p, o, v) in &observed {
        if aborted_values.contains(v) {
            push(
                Kind::AbortedRead,
                *p,
                *o,
                format!("the read_committed observer read {v} of an aborted transaction"),
            );
        } else if !committed_log.contains_key(v) {
            push(
                Kind::IntermediateRead,
                *p,
                *o,
                format!(
                    "the read_committed observer read {v}, which no committed transaction holds"
                ),
            );
        }
    }
    for (v, at) in &committed_log {
        if at.len() > 1 {
            push(
                Kind::DuplicateExactlyOnce,
                at[0].0,
                at[1].1,
                format!("{v} is in the committed log at {at:?}"),
            );
        }
    }
    // Consume-transform-produce: outputs `x<partition>:<offset>:<value>` of the input records
    // below the group's committed offsets, each exactly once.
    let mut outputs: HashMap<(i32, i64), usize> = HashMap::new();
    for (v, at) in &committed_log {
        let Some(rest) = v.strip_prefix('x') else {
            continue;
        };
        let mut parts = rest.splitn(3, ':');
        let (Some(p), Some(o), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(p), Ok(o)) = (p.parse::<i32>(), o.parse::<i64>()) else {
            continue;
        };
        *outputs.entry((p, o)).or_default() += at.len();
        if input_log
            .get(&p)
            .and_then(|l| l.get(&o))
            .is_some_and(|found| *found != value)
        {
            push(
                Kind::NotExactlyOnce,
                p,
                o,
                format!("the output {v} names input offset {o}, which holds another value"),
            );
        }
    }
    stats.transformed = outputs.len() as u64;
    for (p, committed) in &group_offsets {
        if !input_end.contains_key(p) {
            continue;
        }
        let log = input_log.get(p);
        for o in log
            .into_iter()
            .flat_map(|l| l.range(..*committed))
            .map(|(o, _)| *o)
        {
            match outputs.get(&(*p, o)).copied().unwrap_or(0) {
                1 => {}
                0 => push(
                    Kind::NotExactlyOnce,
                    *p,
                    o,
                    format!(
                        "input offset {o} is below the committed offset {committed} and was never output"
                    ),
                ),
                n => push(
                    Kind::DuplicateExactlyOnce,
                    *p,
                    o,
                    format!("input offset {o} was output {n} times"),
                ),
            }
        }
    }
    for ((p, o), _) in outputs
        .iter()
        .filter(|((p, o), _)| group_offsets.get(p).is_some_and(|c| o >= c))
    {
        push(
            Kind::NotExactlyOnce,
            *p,
            *o,
            format!(
                "input offset {o} was output but the committed offset is {}",
                group_offsets.get(p).copied().unwrap_or(0)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(producer: u32, idempotent: bool, seq: u64) -> Event {
        Event::Send {
            t_ms: 0,
            producer,
            idempotent,
            value: format!("p{producer}-{seq}"),
        }
    }
    fn ack(v: &str, partition: i32, offset: i64) -> Event {
        Event::Ack {
            t_ms: 0,
            value: v.into(),
            partition,
            offset,
        }
    }
    fn fin(v: &str, partition: i32, offset: i64) -> Event {
        Event::Final {
            partition,
            offset,
            value: v.into(),
        }
    }
    fn read(consumer: u32, partition: i32, offset: i64, v: &str) -> Event {
        Event::Read {
            t_ms: 0,
            consumer,
            partition,
            offset,
            value: v.into(),
        }
    }
    fn end(partition: i32, end: i64) -> Event {
        Event::FinalEnd { partition, end }
    }
    fn assign(consumer: u32) -> Event {
        Event::Assign {
            t_ms: 0,
            consumer,
            partitions: vec![0],
        }
    }
    fn committed(partition: i32, offset: i64) -> Event {
        Event::Committed {
            t_ms: 0,
            partition,
            offset,
        }
    }

    /// Three idempotent sends, acknowledged, read in order, all in the final log.
    fn clean_history() -> Vec<Event> {
        vec![
            send(0, true, 0),
            send(0, true, 1),
            send(0, true, 2),
            ack("p0-0", 0, 0),
            ack("p0-1", 0, 1),
            ack("p0-2", 0, 2),
            assign(0),
            read(0, 0, 0, "p0-0"),
            read(0, 0, 1, "p0-1"),
            read(0, 0, 2, "p0-2"),
            committed(0, 2),
            committed(0, 3),
            fin("p0-0", 0, 0),
            fin("p0-1", 0, 1),
            fin("p0-2", 0, 2),
            end(0, 3),
        ]
    }

    fn only(f: &Findings, kind: Kind) {
        assert!(f.count(kind) > 0, "expected {kind:?} in {:?}", f.anomalies);
        assert!(
            f.anomalies.iter().all(|a| a.kind == kind),
            "expected only {kind:?}: {:?}",
            f.anomalies
        );
    }

    #[test]
    fn a_clean_history_has_no_anomaly() {
        let f = check(&clean_history());
        assert!(f.clean(), "{:?}", f.anomalies);
        assert_eq!(f.stats.acks, 3);
        assert_eq!(f.stats.final_records, 3);
    }

    #[test]
    fn an_acknowledged_value_missing_from_the_final_log_is_a_lost_write() {
        let mut h = clean_history();
        h.retain(|e| *e != fin("p0-2", 0, 2));
        h.retain(|e| *e != read(0, 0, 2, "p0-2"));
        h.retain(|e| *e != end(0, 3));
        h.push(end(0, 2));
        let f = check(&h);
        only(&f, Kind::LostWrite);
        assert_eq!(f.anomalies[0].offset, 2);
        assert!(f.anomalies[0].detail.contains("p0-2"));
    }

    #[test]
    fn two_values_at_one_offset_are_a_conflict() {
        let mut h = clean_history();
        // A consumer saw another value at offset 1 (a truncated leader served it).
        h.insert(1, send(1, false, 0));
        h.push(read(1, 0, 1, "p1-0"));
        let f = check(&h);
        assert_eq!(f.count(Kind::OffsetConflict), 1, "{:?}", f.anomalies);
        assert!(
            f.anomalies
                .iter()
                .any(|a| a.detail.contains("p1-0") && a.detail.contains("p0-1"))
        );
    }

    #[test]
    fn an_idempotent_value_twice_is_a_duplicate_but_not_without_idempotence() {
        let mut h = clean_history();
        h.retain(|e| *e != end(0, 3));
        h.push(fin("p0-1", 0, 3));
        h.push(end(0, 4));
        let f = check(&h);
        assert_eq!(f.count(Kind::Duplicate), 1, "{:?}", f.anomalies);
        // The same shape from a producer without idempotence is allowed (and counted).
        let h: Vec<Event> = vec![
            send(1, false, 0),
            ack("p1-0", 0, 0),
            fin("p1-0", 0, 0),
            fin("p1-0", 0, 1),
            end(0, 2),
        ];
        let f = check(&h);
        assert!(f.clean(), "{:?}", f.anomalies);
        assert_eq!(f.stats.allowed_duplicates, 1);
    }

    #[test]
    fn an_idempotent_producer_out_of_order_is_a_reorder() {
        let h = vec![
            send(0, true, 0),
            send(0, true, 1),
            ack("p0-1", 0, 0),
            ack("p0-0", 0, 1),
            fin("p0-1", 0, 0),
            fin("p0-0", 0, 1),
            end(0, 2),
        ];
        let f = check(&h);
        only(&f, Kind::Reorder);
    }

    #[test]
    fn reading_a_value_that_definitely_failed_is_a_phantom() {
        let mut h = clean_history();
        h.insert(3, send(0, true, 3));
        h.push(Event::Fail {
            t_ms: 0,
            value: "p0-3".into(),
            definite: true,
            error: "not enough replicas".into(),
        });
        h.retain(|e| *e != end(0, 3));
        h.push(fin("p0-3", 0, 3));
        h.push(end(0, 4));
        let f = check(&h);
        only(&f, Kind::Phantom);
        // An indefinite failure (a timeout) may have been written: not an anomaly.
        let h: Vec<Event> = h
            .into_iter()
            .map(|e| match e {
                Event::Fail {
                    t_ms, value, error, ..
                } => Event::Fail {
                    t_ms,
                    value,
                    definite: false,
                    error,
                },
                e => e,
            })
            .collect();
        assert!(check(&h).clean());
    }

    #[test]
    fn acknowledgements_without_an_offset_claim_none() {
        let mut h = clean_history();
        h.insert(3, send(0, true, 3));
        h.insert(4, send(0, true, 4));
        h.push(ack("p0-3", 0, -1001));
        h.push(ack("p0-4", 0, -1001));
        h.retain(|e| *e != end(0, 3));
        h.push(fin("p0-3", 0, 3));
        h.push(fin("p0-4", 0, 4));
        h.push(end(0, 5));
        assert!(check(&h).clean(), "{:?}", check(&h).anomalies);
    }

    #[test]
    fn a_value_nobody_sent_is_unknown() {
        let mut h = clean_history();
        h.push(read(0, 0, 3, "garbage"));
        let f = check(&h);
        assert_eq!(f.count(Kind::UnknownValue), 1, "{:?}", f.anomalies);
    }

    #[test]
    fn a_consumer_skipping_or_going_back_within_an_assignment_is_reported() {
        let mut h = clean_history();
        h.retain(|e| *e != read(0, 0, 1, "p0-1"));
        let f = check(&h);
        only(&f, Kind::ConsumerSkip);
        let mut h = clean_history();
        h.push(read(0, 0, 1, "p0-1"));
        let f = check(&h);
        only(&f, Kind::ConsumerBackwards);
        // After a new assignment, starting over from the committed offset is fine.
        let mut h = clean_history();
        h.push(assign(0));
        h.push(read(0, 0, 1, "p0-1"));
        assert!(check(&h).clean());
    }

    #[test]
    fn a_committed_offset_going_down_is_reported() {
        let mut h = clean_history();
        h.push(committed(0, 1));
        let f = check(&h);
        only(&f, Kind::CommittedBackwards);
    }

    #[test]
    fn a_partition_the_final_read_did_not_finish_is_unverified_not_lost() {
        let mut h = clean_history();
        h.retain(|e| *e != end(0, 3));
        let f = check(&h);
        only(&f, Kind::Unverified);
    }

    #[test]
    fn a_history_survives_the_file_format() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("history.jsonl");
        let rec = crate::history::Recorder::create(&path).unwrap_or_else(|e| panic!("{e}"));
        for e in clean_history() {
            rec.record(&e);
        }
        rec.flush().unwrap_or_else(|e| panic!("{e}"));
        let back = crate::history::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, clean_history());
    }
    /// The clean history plus a clean transactional workload: writer transactions t0
    /// (committed, on three partitions) and t1 (aborted, not visible), the transform worker's
    /// outputs of input offsets 0..3 with the group committed at 3, an observer read.
    fn clean_txn_history() -> Vec<Event> {
        let mut h = clean_history();
        let txn = |name: &str, outcome: &str| Event::TxnEnd {
            t_ms: 0,
            txn: name.into(),
            values: (0..3).map(|k| format!("{name}-{k}")).collect(),
            outcome: outcome.into(),
        };
        h.push(txn("t0", "committed"));
        h.push(txn("t1", "aborted"));
        h.push(Event::TxnRead {
            t_ms: 0,
            partition: 0,
            offset: 0,
            value: "t0-0".into(),
        });
        let mut at = [0i64; 3];
        let mut fin_txn = |p: i32, v: String| {
            h.push(Event::TxnFinal {
                partition: p,
                offset: at[p as usize],
                value: v,
            });
            at[p as usize] += 2;
        };
        for k in 0..3 {
            fin_txn(k, format!("t0-{k}"));
        }
        for (o, v) in ["p0-0", "p0-1", "p0-2"].iter().enumerate() {
            fin_txn(0, format!("x0:{o}:{v}"));
        }
        for p in 0..3 {
            h.push(Event::TxnFinalEnd {
                partition: p,
                end: 10,
            });
        }
        h.push(Event::TxnCommitted {
            partition: 0,
            offset: 3,
        });
        h
    }

    fn txn_final(h: &mut Vec<Event>, value: &str) {
        h.push(Event::TxnFinal {
            partition: 2,
            offset: 100,
            value: value.into(),
        });
    }

    #[test]
    fn a_clean_transactional_history_has_no_anomaly() {
        let f = check(&clean_txn_history());
        assert!(f.clean(), "{:?}", f.anomalies);
        assert_eq!(
            (
                f.stats.committed_transactions,
                f.stats.aborted_transactions,
                f.stats.transformed
            ),
            (1, 1, 3)
        );
    }

    #[test]
    fn an_aborted_transaction_visible_is_an_aborted_read() {
        let mut h = clean_txn_history();
        h.push(Event::TxnRead {
            t_ms: 0,
            partition: 1,
            offset: 9,
            value: "t1-1".into(),
        });
        only(&check(&h), Kind::AbortedRead);
    }

    #[test]
    fn part_of_a_transaction_visible_is_a_partial_transaction() {
        let mut h = clean_txn_history();
        h.retain(|e| !matches!(e, Event::TxnFinal { value, .. } if value == "t0-2"));
        only(&check(&h), Kind::PartialTransaction);
    }

    #[test]
    fn a_committed_transaction_not_visible_is_a_lost_commit() {
        let mut h = clean_txn_history();
        h.retain(|e| !matches!(e, Event::TxnFinal { value, .. } if value.starts_with("t0-")));
        // The observer's read of t0-0 is then intermediate as well: only check the commit.
        h.retain(|e| !matches!(e, Event::TxnRead { .. }));
        only(&check(&h), Kind::LostCommit);
    }

    #[test]
    fn an_observer_reading_what_never_committed_is_an_intermediate_read() {
        let mut h = clean_txn_history();
        h.push(Event::TxnRead {
            t_ms: 0,
            partition: 0,
            offset: 50,
            value: "t9-0".into(),
        });
        only(&check(&h), Kind::IntermediateRead);
    }

    #[test]
    fn a_value_twice_in_the_committed_log_is_a_duplicate() {
        let mut h = clean_txn_history();
        txn_final(&mut h, "x0:1:p0-1");
        only(&check(&h), Kind::DuplicateExactlyOnce);
    }

    #[test]
    fn an_input_below_the_committed_offset_never_output_is_not_exactly_once() {
        let mut h = clean_txn_history();
        h.retain(|e| !matches!(e, Event::TxnFinal { value, .. } if value == "x0:2:p0-2"));
        only(&check(&h), Kind::NotExactlyOnce);
    }

    #[test]
    fn an_output_beyond_the_committed_offset_is_not_exactly_once() {
        let mut h = clean_txn_history();
        h.retain(|e| !matches!(e, Event::TxnCommitted { .. }));
        h.push(Event::TxnCommitted {
            partition: 0,
            offset: 2,
        });
        only(&check(&h), Kind::NotExactlyOnce);
    }
}
