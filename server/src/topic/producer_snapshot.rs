//! Producer-state snapshots and the per-segment aborted-transaction index (Kafka's `.snapshot`
//! and `.txnindex`): what lets a partition open, and a follower truncate, without reading every
//! batch header of its log.
//!
//! Two kinds of file sit in the log's directory beside the engine's segments (which it leaves
//! alone):
//! - `<offset>.producers`: the producer state (sequences, epochs, open transactions) after every
//!   batch below `offset` (a batch boundary: the log end when it was taken), with the aborted
//!   transactions whose markers lie in the segment that was active then (`tail_base` on).
//! - `<base>.txnindex`: the aborted transactions whose markers lie in the sealed segment
//!   `[base, next)`, both offsets recorded in the file.
//!
//! Invariant: a snapshot at `E` is used only if `E` is at most the log end, its `tail_base` is
//! still a segment boundary, and every segment below `tail_base` has an index recording exactly
//! its current range; otherwise the partition walks its whole log, as it always could. Indexes
//! are written (durably) before the snapshot that relies on them, a truncation removes every
//! snapshot past its point and every index of the segment it cuts and those after, and each
//! file carries a CRC-32C: a torn or stale file is never believed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_engine::{Log, Offset};

use super::{AbortedTxn, ProducerBatch, ProducerEntry, ProducerStates};

const SNAPSHOT_SUFFIX: &str = "producers";
const TXN_INDEX_SUFFIX: &str = "txnindex";
const SNAPSHOT_MAGIC: &[u8; 4] = b"STPS";
const TXN_INDEX_MAGIC: &[u8; 4] = b"STTX";
/// Snapshots kept: the newest, and the one before it (a truncation may land between them).
const SNAPSHOTS_KEPT: usize = 2;

/// What this process has written (or found current) since the partition opened: the active
/// segment of its last snapshot, and the sealed segments whose index records their range, so
/// a snapshot reads no index file it has already checked.
#[derive(Debug, Default)]
pub(super) struct Written {
    /// The active segment when the last snapshot was written.
    pub tail: Option<Offset>,
    /// Sealed segment base -> the `next` its index records.
    indexes: BTreeMap<Offset, Offset>,
}

#[derive(Serialize, Deserialize)]
struct Producer {
    id: i64,
    epoch: i16,
    /// (first sequence, last sequence, base offset) of its remembered batches, oldest first.
    batches: Vec<(i32, i32, i64)>,
    last_timestamp: i64,
    txn_first: Option<i64>,
    coordinator_epoch: i32,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// The state is that after every batch below this offset.
    end: i64,
    /// The base of the segment that was active: aborted transactions from here on are in
    /// `aborted`, those before in the sealed segments' indexes.
    tail_base: i64,
    producers: Vec<Producer>,
    /// (producer id, first offset, marker offset).
    aborted: Vec<(i64, i64, i64)>,
}

#[derive(Serialize, Deserialize)]
struct TxnIndex {
    base: i64,
    next: i64,
    aborted: Vec<(i64, i64, i64)>,
}

fn file_name(offset: Offset, suffix: &str) -> String {
    format!("{:020}.{suffix}", offset.0)
}

fn parse_name(path: &Path, suffix: &str) -> Option<Offset> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    (stem.len() == 20).then(|| stem.parse().ok().map(Offset))?
}

fn files(dir: &Path, suffix: &str) -> Vec<(Offset, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(Offset, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| parse_name(&p, suffix).map(|o| (o, p)))
        .collect();
    out.sort();
    out
}

/// `magic`, the CRC-32C of the payload, the payload (JSON).
fn encode<T: Serialize>(magic: &[u8; 4], value: &T) -> Vec<u8> {
    // Serializing plain numbers and vectors cannot fail.
    let payload = serde_json::to_vec(value).unwrap_or_default();
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(magic);
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

fn decode<T: for<'de> Deserialize<'de>>(magic: &[u8; 4], bytes: &[u8]) -> Option<T> {
    let rest = bytes.strip_prefix(magic)?;
    let (crc, payload) = rest.split_first_chunk::<4>()?;
    (u32::from_be_bytes(*crc) == crc32c::crc32c(payload))
        .then(|| serde_json::from_slice(payload).ok())?
}

fn read<T: for<'de> Deserialize<'de>>(magic: &[u8; 4], path: &Path) -> Option<T> {
    decode(magic, &std::fs::read(path).ok()?)
}

/// Writes `bytes` as `dir/name` atomically and durably: a `.tmp` file (which the engine's
/// recovery removes if a crash leaves it), fsynced, renamed, the directory fsynced.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

fn triples(aborted: impl IntoIterator<Item = AbortedTxn>) -> Vec<(i64, i64, i64)> {
    aborted
        .into_iter()
        .map(|a| (a.producer_id, a.first_offset.0, a.last_offset.0))
        .collect()
}

fn aborted_of(triples: Vec<(i64, i64, i64)>) -> impl Iterator<Item = AbortedTxn> {
    triples.into_iter().map(|(p, f, l)| AbortedTxn {
        producer_id: p,
        first_offset: Offset(f),
        last_offset: Offset(l),
    })
}

/// The segments of `log` as `[base, next)` ranges, the active one last (`next`: the log end).
fn segment_ranges(log: &Log) -> Vec<(Offset, Offset)> {
    let bases = log.segment_base_offsets();
    let end = log.log_end_offset();
    bases
        .iter()
        .enumerate()
        .map(|(i, b)| (*b, bases.get(i + 1).copied().unwrap_or(end)))
        .collect()
}

/// Writes a snapshot of `state`, taken when the log ended at `end` (a copy made under the
/// partition's append lock), after the index of every sealed segment that lacks a current one;
/// then removes files no longer needed. Called off the append path.
pub(super) fn save(
    log: &Log,
    state: &ProducerStates,
    end: Offset,
    written: &mut Written,
) -> std::io::Result<()> {
    let dir = log.dir();
    let ranges = segment_ranges(log);
    let Some(&(tail_base, _)) = ranges.last() else {
        return Ok(());
    };
    let indexes: HashMap<Offset, PathBuf> = files(dir, TXN_INDEX_SUFFIX).into_iter().collect();
    for &(base, next) in &ranges[..ranges.len() - 1] {
        if next > end {
            // Sealed after the copy was made: its markers are not all in `state`.
            return Ok(());
        }
        if written.indexes.get(&base) == Some(&next) {
            continue;
        }
        let current = indexes
            .get(&base)
            .and_then(|p| read::<TxnIndex>(TXN_INDEX_MAGIC, p))
            .is_some_and(|i| (i.base, i.next) == (base.0, next.0));
        if !current {
            let aborted = state
                .aborted
                .iter()
                .filter(|a| a.last_offset >= base && a.last_offset < next)
                .copied();
            let index = TxnIndex {
                base: base.0,
                next: next.0,
                aborted: triples(aborted),
            };
            write_atomic(
                dir,
                &file_name(base, TXN_INDEX_SUFFIX),
                &encode(TXN_INDEX_MAGIC, &index),
            )?;
        }
        written.indexes.insert(base, next);
    }
    let snapshot = Snapshot {
        end: end.0,
        tail_base: tail_base.0,
        producers: state
            .producers
            .iter()
            .map(|(id, e)| Producer {
                id: *id,
                epoch: e.epoch,
                batches: e
                    .batches
                    .iter()
                    .map(|b| (b.first_seq, b.last_seq, b.base_offset.0))
                    .collect(),
                last_timestamp: e.last_timestamp,
                txn_first: e.txn_first.map(|o| o.0),
                coordinator_epoch: e.coordinator_epoch,
            })
            .collect(),
        aborted: triples(
            state
                .aborted
                .iter()
                .filter(|a| a.last_offset >= tail_base)
                .copied(),
        ),
    };
    write_atomic(
        dir,
        &file_name(end, SNAPSHOT_SUFFIX),
        &encode(SNAPSHOT_MAGIC, &snapshot),
    )?;
    // Older snapshots beyond the newest few, and indexes of segments gone (retention,
    // compaction) are of no use.
    let snapshots = files(dir, SNAPSHOT_SUFFIX);
    for (_, p) in snapshots.iter().rev().skip(SNAPSHOTS_KEPT) {
        std::fs::remove_file(p)?;
    }
    for (base, p) in indexes {
        if !ranges.iter().any(|(b, _)| *b == base) {
            std::fs::remove_file(p)?;
        }
    }
    written
        .indexes
        .retain(|b, _| ranges.iter().any(|(base, _)| base == b));
    written.tail = Some(tail_base);
    Ok(())
}

/// Removes what a truncation of the log to `offset` makes wrong: snapshots past it, and the
/// indexes of the segment holding it and every later one. Called before the log is cut.
pub(super) fn forget_from(log: &Log, offset: Offset, written: &mut Written) -> std::io::Result<()> {
    let dir = log.dir();
    let cut_segment = log
        .segment_base_offsets()
        .into_iter()
        .rfind(|b| *b <= offset)
        .unwrap_or(Offset::ZERO);
    written.tail = None;
    written.indexes.retain(|b, _| *b < cut_segment);
    for (end, p) in files(dir, SNAPSHOT_SUFFIX) {
        if end > offset {
            std::fs::remove_file(p)?;
        }
    }
    for (base, p) in files(dir, TXN_INDEX_SUFFIX) {
        if base >= cut_segment {
            std::fs::remove_file(p)?;
        }
    }
    Ok(())
}

/// The producer state of `log`: from its newest usable snapshot and the indexes, walking only
/// the batches after the snapshot; from a walk of the whole log if none is usable. Also the
/// offset the walk began at (`None`: the whole log was walked).
pub(super) fn load(log: &Log) -> strata_engine::Result<(ProducerStates, Option<Offset>)> {
    if let Some((mut st, end)) = usable_snapshot(log) {
        log.for_each_batch_header_from(end, |h, control| st.record_batch(h, control))?;
        st.forget_aborted_before(log.log_start_offset());
        return Ok((st, Some(end)));
    }
    let mut st = ProducerStates::default();
    log.for_each_batch_header(|h, control| st.record_batch(h, control))?;
    st.forget_aborted_before(log.log_start_offset());
    Ok((st, None))
}

fn usable_snapshot(log: &Log) -> Option<(ProducerStates, Offset)> {
    let dir = log.dir();
    let log_end = log.log_end_offset();
    let ranges = segment_ranges(log);
    let snapshot = files(dir, SNAPSHOT_SUFFIX)
        .into_iter()
        .rev()
        .filter(|(end, _)| *end <= log_end)
        .find_map(|(_, p)| read::<Snapshot>(SNAPSHOT_MAGIC, &p))?;
    let tail_base = Offset(snapshot.tail_base);
    if Offset(snapshot.end) > log_end || !ranges.iter().any(|(b, _)| *b == tail_base) {
        return None;
    }
    let mut aborted: VecDeque<AbortedTxn> = VecDeque::new();
    for &(base, next) in ranges.iter().filter(|(b, _)| *b < tail_base) {
        let index: TxnIndex = read(
            TXN_INDEX_MAGIC,
            &dir.join(file_name(base, TXN_INDEX_SUFFIX)),
        )?;
        if (index.base, index.next) != (base.0, next.0) {
            return None;
        }
        aborted.extend(aborted_of(index.aborted));
    }
    aborted.extend(aborted_of(snapshot.aborted));
    let mut st = ProducerStates {
        aborted,
        ..ProducerStates::default()
    };
    for p in snapshot.producers {
        let entry = ProducerEntry {
            epoch: p.epoch,
            batches: p
                .batches
                .into_iter()
                .map(|(first_seq, last_seq, base)| ProducerBatch {
                    first_seq,
                    last_seq,
                    base_offset: Offset(base),
                })
                .collect(),
            last_timestamp: p.last_timestamp,
            txn_first: p.txn_first.map(Offset),
            coordinator_epoch: p.coordinator_epoch,
        };
        if let Some(first) = entry.txn_first {
            st.open.insert(first, p.id);
        }
        st.producers.insert(p.id, entry);
    }
    Some((st, Offset(snapshot.end)))
}
