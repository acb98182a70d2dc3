//! Model-based property test: random sequences of append, read, truncate, roll, delete-records,
//! retention, flush, clean reopen and crash run against `Log` on the simulated disk and against
//! a plain `Vec` of records. Offsets, log start and end offsets, and everything read must agree;
//! after a crash the recovered log must be a prefix of the model no shorter than the recovery
//! point. Appends are compressed with a random codec and read back both as whole batches and as
//! records from an exact offset. After every op the log's invariants are checked:
//! `recovery_point <= written <= log_end_offset`, and index entries increasing within their
//! segment. Failing cases are shrunk by proptest and printed with their op sequence.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use proptest::prelude::*;
use strata_engine::io::sim::CrashMode;
use strata_engine::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        len: usize,
        ts: i64,
        codec: u8,
    },
    Read {
        at: usize,
        max_bytes: usize,
    },
    ReadRecords {
        at: usize,
        max_bytes: usize,
    },
    TruncateTo {
        at: usize,
    },
    Roll,
    DeleteRecordsBefore {
        at: usize,
    },
    Retention {
        now_ms: i64,
    },
    Flush,
    Reopen,
    Crash {
        mode: u8,
        seed: u64,
    },
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..5, 1usize..400, 0i64..5000, 0u8..8).prop_map(|(records, len, ts, codec)| Op::Append { records, len, ts, codec }),
        4 => (0usize..100_000, 1usize..3000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        2 => (0usize..100_000, 1usize..3000).prop_map(|(at, max_bytes)| Op::ReadRecords { at, max_bytes }),
        1 => (0usize..100_000).prop_map(|at| Op::TruncateTo { at }),
        1 => Just(Op::Roll),
        1 => (0usize..100_000).prop_map(|at| Op::DeleteRecordsBefore { at }),
        1 => (0i64..20_000).prop_map(|now_ms| Op::Retention { now_ms }),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => (0u8..3, any::<u64>()).prop_map(|(mode, seed)| Op::Crash { mode, seed }),
        1 => Just(Op::Compact),
    ]
}

struct Model {
    /// Values by offset; `records[o]` is the value at offset `o`.
    records: Vec<Vec<u8>>,
    log_start: i64,
    /// Batch boundaries: base offsets of the batches appended, in order.
    batch_bases: Vec<i64>,
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 200,
        segment_index_bytes: 600,
        retention_ms: 8000,
        retention_bytes: 6000,
        recovery_checkpoint_bytes: 1500,
        flush: FlushPolicy::Os,
        ..LogConfig::default()
    }
}

fn check(log: &Log, m: &Model) {
    assert_invariants(log);
    assert_eq!(
        log.log_end_offset(),
        Offset(m.records.len() as i64),
        "log end offset"
    );
    assert_eq!(
        log.log_start_offset(),
        Offset(m.log_start),
        "log start offset"
    );
    log.flush().unwrap();
    let got = read_all(log, Offset(m.log_start));
    let want: Vec<(Offset, Option<Vec<u8>>)> = (m.log_start..m.records.len() as i64)
        .map(|o| (Offset(o), Some(m.records[o as usize].clone())))
        .collect();
    assert_eq!(got, want, "log contents");
    // The header walk from an offset (producer state after a snapshot) sees exactly the
    // batches of the whole walk that end at or after it, seeking into the first segment with
    // its offset index.
    let mut all = Vec::new();
    log.for_each_batch_header(|h, _| all.push((h.base_offset, h.last_offset())))
        .unwrap();
    let end = m.records.len() as i64;
    for from in [
        m.log_start,
        (m.log_start + end) / 2,
        end.saturating_sub(1),
        end,
    ] {
        let mut walked = Vec::new();
        log.for_each_batch_header_from(Offset(from), |h, _| {
            walked.push((h.base_offset, h.last_offset()))
        })
        .unwrap();
        let want: Vec<_> = all.iter().copied().filter(|(_, l)| l.0 >= from).collect();
        assert_eq!(walked, want, "headers from {from}");
    }
}

fn run(ops: Vec<Op>) {
    let mut h = Harness::new(Kind::Sim);
    let mut log = h.open(config());
    let mut m = Model {
        records: Vec::new(),
        log_start: 0,
        batch_bases: Vec::new(),
    };
    for op in ops {
        match op {
            Op::Append {
                records,
                len,
                ts,
                codec,
            } => {
                let base = m.records.len();
                let vals: Vec<Vec<u8>> = (0..records)
                    .map(|i| value((base + i) as u64, len))
                    .collect();
                // Half the batches uncompressed, the rest spread over the four codecs.
                let codec = match codec {
                    4 => Compression::Gzip,
                    5 => Compression::Snappy,
                    6 => Compression::Lz4,
                    7 => Compression::Zstd,
                    _ => Compression::None,
                };
                // Odd lengths append a slice of a shared buffer (written without a copy, as the
                // broker appends a request's records), even ones a private buffer (stamped in
                // place).
                let batch = compressed_batch_of(&vals, ts, codec);
                let info = if len % 2 == 1 {
                    let shared = bytes::Bytes::from(batch.to_vec());
                    let keep = shared.clone();
                    let info = log.append(shared, LeaderEpoch(0)).unwrap();
                    assert_eq!(keep[..], batch[..], "the caller's bytes are untouched");
                    info
                } else {
                    log.append(batch, LeaderEpoch(0)).unwrap()
                };
                assert_eq!(info.first_offset, Offset(base as i64));
                m.batch_bases.push(base as i64);
                m.records.extend(vals);
            }
            Op::Read { at, max_bytes } => {
                let span = (m.records.len() as i64 - m.log_start + 1).max(1);
                let off = m.log_start + (at as i64 % span);
                info_read(&log, &m, off, max_bytes);
            }
            Op::ReadRecords { at, max_bytes } => {
                let span = (m.records.len() as i64 - m.log_start + 1).max(1);
                let off = m.log_start + (at as i64 % span);
                log.flush().unwrap();
                let got = log
                    .read_records(Offset(off), ReadLimits::bytes(max_bytes))
                    .unwrap();
                // Empty only at the end; otherwise the records from exactly `off` on.
                assert_eq!(got.is_empty(), off == m.records.len() as i64, "at {off}");
                for (i, r) in got.iter().enumerate() {
                    let o = off + i as i64;
                    assert_eq!(r.offset, Offset(o), "dense from {off}");
                    assert_eq!(r.value.as_deref(), Some(m.records[o as usize].as_slice()));
                }
            }
            Op::TruncateTo { at } => {
                let span = (m.records.len() as i64 - m.log_start + 1).max(1);
                let target = m.log_start + (at as i64 % span);
                let new_end = log.truncate_to(Offset(target)).unwrap();
                // The whole batch holding `target` goes.
                let expected = m
                    .batch_bases
                    .iter()
                    .copied()
                    .filter(|b| *b <= target)
                    .max()
                    .map_or(target, |b| {
                        if b == target || target >= m.records.len() as i64 {
                            target.min(m.records.len() as i64)
                        } else {
                            b
                        }
                    });
                assert_eq!(new_end, Offset(expected), "truncate_to({target})");
                m.records.truncate(expected as usize);
                m.batch_bases.retain(|b| *b < expected);
                m.log_start = m.log_start.min(expected);
                if expected <= m.log_start {
                    m.log_start = log.log_start_offset().0;
                }
            }
            Op::Roll => log.roll().unwrap(),
            Op::DeleteRecordsBefore { at } => {
                let span = (m.records.len() as i64 - m.log_start + 1).max(1);
                let target = m.log_start + (at as i64 % span);
                log.delete_records_before(Offset(target)).unwrap();
                m.log_start = target;
            }
            Op::Retention { now_ms } => {
                log.apply_retention(now_ms).unwrap();
                let start = log.log_start_offset().0;
                assert!(start >= m.log_start && start <= m.records.len() as i64);
                m.log_start = start;
            }
            Op::Flush => {
                log.flush().unwrap();
                assert_eq!(log.recovery_point(), Offset(m.records.len() as i64));
            }
            Op::Reopen => {
                log.close().unwrap();
                drop(log);
                h.restart_pipeline();
                log = h.open(config());
                assert!(log.recovery_report().clean_shutdown);
            }
            Op::Crash { mode, seed } => {
                let rp = log.recovery_point().0;
                let start = log.log_start_offset().0;
                drop(log);
                h.restart_pipeline();
                let mode = match mode {
                    0 => CrashMode::DropUnsynced,
                    1 => CrashMode::KeepUnsynced,
                    _ => CrashMode::Torn { seed, sector: 512 },
                };
                h.sim.as_ref().unwrap().crash(mode);
                h.restart_pipeline();
                log = h.open(config());
                let leo = log.log_end_offset().0;
                assert!(
                    rp <= leo && leo <= m.records.len() as i64,
                    "recovered LEO {leo} outside [{rp}, {}]",
                    m.records.len()
                );
                m.records.truncate(leo as usize);
                m.batch_bases.retain(|b| *b < leo);
                // The log start offset is checkpointed whenever it moves, so it survives the
                // crash (clamped to the recovered end).
                let new_start = log.log_start_offset().0;
                assert_eq!(new_start, start.min(leo), "log start offset after crash");
                m.log_start = new_start;
            }
            Op::Compact => {
                // Records have no keys here: compaction must leave them all.
                let s = log.compact().unwrap();
                assert_eq!(s.records_removed, 0);
            }
        }
        check(&log, &m);
    }
}

/// What must hold of any log at any time: progress ordered, index entries increasing within
/// their segment.
fn assert_invariants(log: &Log) {
    let (rp, written, leo) = (
        log.recovery_point(),
        log.written_offset(),
        log.log_end_offset(),
    );
    assert!(
        rp <= written && written <= leo,
        "recovery point {rp} <= written {written} <= log end offset {leo}"
    );
    let indexes = log.segment_indexes();
    for (i, seg) in indexes.iter().enumerate() {
        let next_base = indexes.get(i + 1).map_or(leo, |n| n.base_offset);
        for pair in seg.offsets.windows(2) {
            assert!(
                pair[0].offset < pair[1].offset && pair[0].position < pair[1].position,
                "offset index of segment {} increases: {pair:?}",
                seg.base_offset
            );
        }
        for pair in seg.timestamps.windows(2) {
            assert!(
                pair[0].timestamp < pair[1].timestamp && pair[0].offset < pair[1].offset,
                "time index of segment {} increases: {pair:?}",
                seg.base_offset
            );
        }
        for e in &seg.offsets {
            assert!(
                e.offset >= seg.base_offset && e.offset < next_base.max(seg.base_offset.plus(1))
            );
        }
    }
}

fn info_read(log: &Log, m: &Model, off: i64, max_bytes: usize) {
    let r = log.read(Offset(off), ReadLimits::bytes(max_bytes)).unwrap();
    match r.slice {
        None => assert_eq!(
            off,
            m.records.len() as i64,
            "only the log end offset reads empty"
        ),
        Some(s) => {
            assert!(
                s.first_offset().0 <= off && off < s.next_offset().0,
                "slice covers the offset"
            );
            assert!(s.next_offset().0 <= m.records.len() as i64);
            let bytes = s.read_to_vec().unwrap();
            let hs = batch::validate_all(&bytes, batch::Origin::Replication, usize::MAX).unwrap();
            assert!(
                hs.len() == 1 || bytes.len() <= max_bytes,
                "byte limit with whole batches"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
