//! Crash tests on the simulated disk: power loss that drops unsynced bytes, keeps them, or tears
//! the last write at a sector boundary; bit flips; a full disk. After each: every batch that was
//! acknowledged as durable is there, the recovered log end offset lies between the pre-crash
//! recovery point and log end offset, the log is a prefix of what was appended, rebuilt indexes
//! equal freshly built ones, and corruption in the middle of the log is reported, not dropped.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use strata_engine::io::sim::CrashMode;
use strata_engine::log::SegmentIndexes;
use strata_engine::recovery::CLEAN_SHUTDOWN_FILE;
use strata_engine::*;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8192,
        index_interval_bytes: 300,
        segment_index_bytes: 2048,
        recovery_checkpoint_bytes: 2000,
        ..LogConfig::default()
    }
}

/// Removes the indexes, checkpoint and clean marker, reopens (a full rebuild from the log) and
/// returns the freshly built index entries.
fn fresh_indexes(h: &mut Harness, cfg: &LogConfig) -> Vec<SegmentIndexes> {
    let log = h.open(cfg.clone());
    log.close().unwrap();
    drop(log);
    h.restart_pipeline();
    let sim = h.sim.clone().unwrap();
    for p in h.storage.list_dir(&h.dir).unwrap() {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".index")
            || name.ends_with(".timeindex")
            || name == CLEAN_SHUTDOWN_FILE
            || name == "partition.checkpoint"
        {
            h.storage.remove(&p).unwrap();
        }
    }
    let _ = sim;
    let log = h.open(cfg.clone());
    assert!(!log.recovery_report().clean_shutdown);
    log.segment_indexes()
}

/// One crash scenario: append `n` batches from a deterministic schedule, wait for durability of
/// some, crash with `mode`, recover and check every property.
fn crash_scenario(seed: u64, mode: CrashMode, policy: FlushPolicy) {
    let mut h = Harness::new(Kind::Sim);
    let cfg = LogConfig {
        flush: policy,
        ..config()
    };
    let log = h.open(cfg.clone());
    let mut appended: Vec<Vec<u8>> = Vec::new();
    let mut acked_durable: Vec<Offset> = Vec::new();
    let mut rng = seed;
    let n = 40 + (seed % 60) as usize;
    for i in 0..n {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let count = 1 + (rng >> 60) as usize % 4;
        let len = 20 + (rng >> 40) as usize % 700;
        let vals: Vec<Vec<u8>> = (0..count)
            .map(|j| value((i * 10 + j) as u64, len))
            .collect();
        let info = append_values(&log, &vals, 1_000 + i as i64);
        appended.extend(vals);
        if (rng >> 33).is_multiple_of(3) || policy == FlushPolicy::Always {
            if policy == FlushPolicy::Os {
                // Under flush=os only an explicit flush (or roll, or close) makes bytes durable.
                log.flush().unwrap();
            }
            info.completion.wait_durable().unwrap();
            acked_durable.push(info.last_offset);
        }
        if (rng >> 20).is_multiple_of(17) {
            log.flush().unwrap();
            acked_durable.push(info.last_offset);
        }
    }
    let rp = log.recovery_point();
    let leo = log.log_end_offset();
    drop(log);
    h.restart_pipeline(); // the old process's queued writes finish; nothing is synced by it
    h.sim.as_ref().unwrap().crash(mode);
    h.restart_pipeline();

    let log = h.open(cfg.clone());
    let rec_leo = log.log_end_offset();
    assert!(
        rp <= rec_leo && rec_leo <= leo,
        "seed {seed}: recovered LEO {rec_leo} outside [{rp}, {leo}]"
    );
    for o in &acked_durable {
        assert!(
            *o < rec_leo,
            "seed {seed}: durable offset {o} lost (recovered LEO {rec_leo})"
        );
    }
    let all = read_all(&log, Offset(0));
    assert_eq!(all.len() as i64, rec_leo.0, "seed {seed}: dense offsets");
    for (off, v) in &all {
        assert_eq!(
            v.as_deref(),
            Some(appended[off.0 as usize].as_slice()),
            "seed {seed}: offset {off}"
        );
    }
    if mode == CrashMode::DropUnsynced && policy == FlushPolicy::Always {
        assert_eq!(rec_leo, leo, "seed {seed}: flush=always loses nothing");
    }
    let recovered_indexes = log.segment_indexes();
    drop(log);
    let fresh = fresh_indexes(&mut h, &cfg);
    assert_eq!(
        recovered_indexes, fresh,
        "seed {seed}: rebuilt indexes differ from fresh ones"
    );

    // The recovered log accepts appends at the recovered end.
    let log = h.open(cfg);
    let a = append_values(&log, &[value(9999, 10)], 5000);
    assert_eq!(a.first_offset, rec_leo);
}

#[test]
fn crash_dropping_unsynced_bytes_keeps_every_durable_batch() {
    for seed in 0..30 {
        crash_scenario(seed, CrashMode::DropUnsynced, FlushPolicy::Os);
        crash_scenario(seed, CrashMode::DropUnsynced, FlushPolicy::Always);
    }
}

#[test]
fn crash_with_torn_writes_recovers_a_valid_prefix() {
    for seed in 0..40 {
        crash_scenario(seed, CrashMode::Torn { seed, sector: 512 }, FlushPolicy::Os);
        crash_scenario(
            seed,
            CrashMode::Torn {
                seed: seed ^ 0xabc,
                sector: 4096,
            },
            FlushPolicy::Interval(5),
        );
    }
}

#[test]
fn crash_keeping_unsynced_bytes_recovers_them() {
    for seed in 0..10 {
        crash_scenario(seed, CrashMode::KeepUnsynced, FlushPolicy::Os);
    }
}

fn durable_log(h: &mut Harness, cfg: &LogConfig, batches: usize) -> Vec<(Offset, u64)> {
    let log = h.open(cfg.clone());
    let mut positions = Vec::new();
    for i in 0..batches {
        let info = append_values(&log, &[value(i as u64, 200)], 1000);
        info.completion.wait_durable().unwrap();
        let s = log
            .read(info.first_offset, ReadLimits::bytes(1))
            .unwrap()
            .slice
            .unwrap();
        positions.push((info.first_offset, s.position()));
    }
    drop(log);
    h.restart_pipeline();
    positions
}

/// Opening the log is refused as corruption at `seg`/`pos`; opening it with
/// `RecoveryMode::TruncateCorruption` succeeds and is returned.
fn refused_then_cut(h: &Harness, cfg: LogConfig, seg: &std::path::Path, pos: u64) -> Log {
    match h.try_open(cfg.clone()) {
        Err(LogError::Corruption {
            segment, position, ..
        }) => {
            assert_eq!(segment, seg);
            assert_eq!(position, pos);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    Log::open_with_mode(
        &h.dir,
        cfg,
        &h.pipeline.as_ref().unwrap().handle(),
        RecoveryMode::TruncateCorruption,
    )
    .unwrap()
}

/// A flipped byte inside the scanned tail, with valid batches after it, is corruption: the log
/// refuses to open and names the segment and position, instead of silently truncating.
#[test]
fn flipped_byte_mid_log_is_reported_as_corruption() {
    let mut h = Harness::new(Kind::Sim);
    // A large checkpoint interval: the whole segment is the unsynced-since-checkpoint tail.
    let cfg = LogConfig {
        recovery_checkpoint_bytes: 1 << 30,
        ..LogConfig::default()
    };
    let positions = durable_log(&mut h, &cfg, 30);
    let seg = h.dir.join("00000000000000000000.log");
    let (_, pos) = positions[12];
    h.sim
        .as_ref()
        .unwrap()
        .flip_byte(&seg, pos + 70, 0x10)
        .unwrap();
    h.sim.as_ref().unwrap().crash(CrashMode::DropUnsynced);
    h.restart_pipeline();
    // The operator may choose to cut the log there.
    let log = refused_then_cut(&h, cfg, &seg, pos);
    assert_eq!(log.log_end_offset(), Offset(12));
}

/// A segment below the recovery point whose end no longer frames a batch (bytes lost from a
/// closed segment) is corruption, not a torn tail: refused by default, and cut there, with
/// every later segment, when the caller asks (a cluster replica that will be refilled).
#[test]
fn damaged_closed_segment_is_corruption_and_can_be_cut() {
    let mut h = Harness::new(Kind::Sim);
    let cfg = config();
    let positions = durable_log(&mut h, &cfg, 80);
    let log = h.open(cfg.clone());
    assert!(log.segment_indexes().len() >= 3, "want several segments");
    log.close().unwrap();
    drop(log);
    h.restart_pipeline();
    let seg = h.dir.join("00000000000000000000.log");
    let sim = h.sim.clone().unwrap();
    let bytes = sim.contents(&seg).unwrap();
    sim.put_file(&seg, &bytes[..bytes.len() - 27]);
    // The last batch of the first segment is the one cut short.
    let first_segment = positions.windows(2).position(|w| w[1].1 < w[0].1).unwrap();
    let (last_in_first, pos) = positions[first_segment];
    assert!(pos > 0 && last_in_first.0 > 0);
    let log = refused_then_cut(&h, cfg, &seg, pos);
    assert_eq!(log.log_end_offset(), last_in_first);
    assert_eq!(
        log.segment_indexes().len(),
        1,
        "later segments go with the cut"
    );
    assert!(log.verify().is_ok());
}

/// After a clean shutdown, verify() finds a flipped byte anywhere in the log.
#[test]
fn verify_reports_corruption_after_clean_shutdown() {
    let mut h = Harness::new(Kind::Sim);
    let cfg = config();
    let positions = durable_log(&mut h, &cfg, 10);
    let log = h.open(cfg.clone());
    log.close().unwrap();
    drop(log);
    h.restart_pipeline();
    let (_, pos) = positions[3];
    h.sim
        .as_ref()
        .unwrap()
        .flip_byte(&h.dir.join("00000000000000000000.log"), pos + 65, 1)
        .unwrap();
    let log = h.open(cfg);
    assert!(matches!(log.verify(), Err(LogError::Corruption { position, .. }) if position == pos));
}

/// A full disk fails the append with an I/O error, takes the log offline, and loses nothing that
/// was acknowledged; reopening recovers and appends continue.
#[test]
fn full_disk_fails_appends_and_loses_nothing() {
    let mut h = Harness::new(Kind::Sim);
    let cfg = config();
    let log = h.open(cfg.clone());
    for i in 0..5 {
        append_values(&log, &[value(i, 50)], 1)
            .completion
            .wait_durable()
            .unwrap();
    }
    h.sim.as_ref().unwrap().set_fail_writes(true);
    let failed = append_values(&log, &[value(5, 50)], 1);
    assert!(matches!(
        failed.completion.wait_durable(),
        Err(LogError::Io { .. })
    ));
    assert!(matches!(
        log.append(batch_of(&[value(6, 5)], 1), LeaderEpoch(0)),
        Err(LogError::Io { .. })
    ));
    h.sim.as_ref().unwrap().set_fail_writes(false);
    drop(log);
    h.restart_pipeline();
    let log = h.open(cfg);
    assert_eq!(log.log_end_offset(), Offset(5));
    assert_eq!(read_all(&log, Offset(0)).len(), 5);
    append_values(&log, &[value(5, 50)], 1)
        .completion
        .wait_durable()
        .unwrap();
}

/// A missing or garbage index is rebuilt, never trusted.
#[test]
fn corrupt_index_is_rebuilt() {
    let mut h = Harness::new(Kind::Sim);
    let cfg = config();
    let log = h.open(cfg.clone());
    for i in 0..100 {
        append_values(&log, &[value(i, 200)], 1000 + i as i64);
    }
    log.flush().unwrap();
    let expected = read_all(&log, Offset(0));
    log.close().unwrap();
    let indexes = log.segment_indexes();
    drop(log);
    h.restart_pipeline();
    let sim = h.sim.clone().unwrap();
    sim.put_file(&h.dir.join("00000000000000000000.index"), &[0xff; 64]);
    let log = h.open(cfg);
    assert_eq!(log.recovery_report().indexes_rebuilt, 1);
    assert_eq!(log.segment_indexes(), indexes);
    assert_eq!(read_all(&log, Offset(0)), expected);
}

/// A read's slice checks its bytes: a byte flipped on the disk after a clean open (below the
/// recovery point, where recovery does not look) is caught when that batch is read, naming
/// the batch; its neighbours still verify.
#[test]
fn a_slice_read_over_a_flipped_byte_fails_its_verification() {
    let mut h = Harness::new(Kind::Sim);
    let cfg = config();
    let positions = durable_log(&mut h, &cfg, 10);
    let log = h.open(cfg.clone());
    let (offset, pos) = positions[4];
    h.sim
        .as_ref()
        .unwrap()
        .flip_byte(&h.dir.join("00000000000000000000.log"), pos + 80, 4)
        .unwrap();
    let whole = log
        .read(Offset(0), ReadLimits::bytes(1 << 20))
        .unwrap()
        .slice
        .unwrap();
    assert_eq!(whole.verify(), Err((offset, pos)));
    let before = log
        .read(positions[1].0, ReadLimits::bytes(1))
        .unwrap()
        .slice
        .unwrap();
    assert_eq!(before.verify(), Ok(Verification::Checked));
}

/// The recovery-point checkpoint, written from the append path once the recovery point has
/// moved `recovery_checkpoint_bytes` past the last one, bounds what recovery scans after a
/// crash: in one large segment of about 40 KiB of durable batches, recovery reads back at most
/// the threshold plus the batches appended while the last one was becoming durable, not the
/// whole segment.
#[test]
fn checkpoints_bound_the_tail_recovery_scans() {
    let mut h = Harness::new(Kind::Sim);
    let cfg = LogConfig {
        segment_bytes: 1 << 20,
        recovery_checkpoint_bytes: 4000,
        ..LogConfig::default()
    };
    let log = h.open(cfg.clone());
    let mut batch_bytes = 0;
    for i in 0..80u64 {
        let info = append_values(&log, &[value(i, 500)], 1_000 + i as i64);
        info.completion.wait_durable().unwrap();
        batch_bytes = batch_bytes.max(info.bytes as u64);
    }
    let leo = log.log_end_offset();
    assert!(log.size_bytes() > 10 * cfg.recovery_checkpoint_bytes);
    drop(log);
    h.restart_pipeline();
    h.sim.as_ref().unwrap().crash(CrashMode::DropUnsynced);
    h.restart_pipeline();
    let log = h.open(cfg.clone());
    let report = log.recovery_report();
    assert!(!report.clean_shutdown);
    assert_eq!(log.log_end_offset(), leo, "every durable batch is back");
    assert!(
        report.bytes_scanned <= cfg.recovery_checkpoint_bytes + 2 * batch_bytes,
        "recovery scanned {} bytes; the checkpoint should bound it to about {}",
        report.bytes_scanned,
        cfg.recovery_checkpoint_bytes
    );
    assert!(
        report.bytes_scanned > 0,
        "the tail after the checkpoint is scanned"
    );
}

/// Compaction rewrites closed segments, so batch positions in them change; a checkpoint written
/// afterwards must name the recovery point's position in the rewritten file. Keyed batches over
/// several small segments, the recovery point checkpointed inside what becomes a closed
/// segment, compaction, then power loss: the recovered log holds the latest value of every key
/// and every batch after them. A guard for the positions the log remembers to checkpoint
/// without reading the disk: one remembered from before compaction, used afterwards, would make
/// recovery scan the compacted segment from inside a batch and cut it there.
#[test]
fn a_checkpoint_after_compaction_names_positions_in_the_compacted_segment() {
    let mut h = Harness::new(Kind::Sim);
    let cfg = LogConfig {
        segment_bytes: 4096,
        recovery_checkpoint_bytes: 1500,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    };
    let log = h.open(cfg.clone());
    let mut latest = std::collections::BTreeMap::new();
    for i in 0..120u64 {
        let key = format!("k{}", i % 7);
        let val = format!("v{i}-{}", "x".repeat(40 + (i % 13) as usize * 9));
        let info = log
            .append(
                keyed_batch(&[(key.as_bytes(), val.as_bytes())], 1_000 + i as i64),
                LeaderEpoch(0),
            )
            .unwrap();
        info.completion.wait_durable().unwrap();
        latest.insert(key, val);
    }
    assert!(log.segment_count() > 4);
    let stats = log.compact().unwrap();
    assert!(
        stats.segments_rewritten > 0 && stats.records_removed > 0,
        "{stats:?}"
    );
    let before: Vec<_> = read_all(&log, log.log_start_offset());
    drop(log);
    h.restart_pipeline();
    h.sim.as_ref().unwrap().crash(CrashMode::DropUnsynced);
    h.restart_pipeline();
    let log = h.open(cfg);
    let after: Vec<_> = read_all(&log, log.log_start_offset());
    assert_eq!(
        after, before,
        "recovery after compaction keeps every surviving record"
    );
    for v in latest.values() {
        assert!(
            after
                .iter()
                .any(|(_, got)| got.as_deref() == Some(v.as_bytes())),
            "the latest value {v} survives"
        );
    }
}

/// Backpressure waits outside the log's lock: with the disk stalled and the pipeline's queue
/// full, an append waits for room, while reads of the same log (what followers and consumers
/// fetch) and its log end offset are answered meanwhile; once the disk answers again the
/// waiting append completes and every batch is readable.
#[test]
fn an_append_waiting_for_queue_room_does_not_block_reads() {
    let h = Harness::with_pipeline(
        Kind::Sim,
        PipelineConfig {
            queue_bytes_max: 1,
            ..PipelineConfig::default()
        },
    );
    let sim = h.sim.clone().unwrap();
    let log = std::sync::Arc::new(h.open(config()));
    append_values(&log, &[value(0, 100)], 1)
        .completion
        .wait_durable()
        .unwrap();
    sim.set_stall_writes(true);
    // Takes the only room; the pipeline holds it while the disk stalls.
    let first = append_values(&log, &[value(1, 100)], 1);
    let (tx, rx) = std::sync::mpsc::channel();
    let appender = {
        let log = log.clone();
        std::thread::spawn(move || {
            let info = append_values(&log, &[value(2, 100)], 1);
            tx.send(()).unwrap();
            info.completion.wait_durable().unwrap();
        })
    };
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "the second append found room in a full queue"
    );
    // An append that must not wait is given back.
    let b = batch_of(&[value(9, 100)], 1).freeze();
    assert!(matches!(
        log.try_append(b, LeaderEpoch(0)).unwrap(),
        TryAppend::WouldWait(_)
    ));
    // Meanwhile the log answers: a read of the durable batch and its end offset.
    let (read_tx, read_rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            let read = log.read(Offset(0), ReadLimits::bytes(1 << 20)).unwrap();
            read_tx
                .send((read.slice.unwrap().first_offset(), log.log_end_offset()))
                .unwrap();
        });
    }
    let answered = read_rx.recv_timeout(std::time::Duration::from_secs(5));
    sim.set_stall_writes(false);
    assert_eq!(
        answered,
        Ok((Offset(0), Offset(2))),
        "a read waited for the appender's room"
    );
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the waiting append went on once the disk answered");
    appender.join().unwrap();
    first.completion.wait_durable().unwrap();
    let all = read_all(&log, Offset(0));
    assert_eq!(
        all,
        (0..3)
            .map(|i| (Offset(i), Some(value(i as u64, 100))))
            .collect::<Vec<_>>()
    );
}
