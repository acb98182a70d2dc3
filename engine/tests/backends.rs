//! The engine's behaviour suite, run once per storage backend (std, io_uring, sim): appends
//! assign dense offsets, reads return whole batches (also from inside a batch), rolls, restarts,
//! truncation, retention, timestamps, leader epochs, compaction and group commit behave the same
//! whatever the backend.
#![allow(clippy::unwrap_used)]

mod common;

macro_rules! backend_suite {
    ($name:ident, $kind:expr) => {
        mod $name {
            use super::common::*;
            use bytes::BytesMut;
            use strata_engine::*;

            fn h() -> Harness {
                Harness::new($kind)
            }

            fn small_segments() -> LogConfig {
                LogConfig {
                    segment_bytes: 4096,
                    index_interval_bytes: 256,
                    segment_index_bytes: 1024,
                    ..LogConfig::default()
                }
            }

            /// Offsets are dense from 0, the LEO follows, and what is read back is what was sent.
            #[test]
            fn append_assigns_dense_offsets_and_reads_back() {
                let h = h();
                let log = h.open(LogConfig::default());
                let a = append_values(&log, &[value(0, 10), value(1, 10)], 1);
                let b = append_values(&log, &[value(2, 10)], 2);
                assert_eq!((a.first_offset, a.last_offset), (Offset(0), Offset(1)));
                assert_eq!((b.first_offset, b.last_offset), (Offset(2), Offset(2)));
                b.completion.wait_durable().unwrap();
                assert_eq!(log.log_end_offset(), Offset(3));
                assert_eq!(log.recovery_point(), Offset(3));
                let all = read_all(&log, Offset(0));
                assert_eq!(all.len(), 3);
                assert_eq!(all[2], (Offset(2), Some(value(2, 10))));
            }

            /// A read from an offset inside a batch returns that whole batch.
            #[test]
            fn read_inside_a_batch_returns_the_whole_batch() {
                let h = h();
                let log = h.open(LogConfig::default());
                let vals: Vec<_> = (0..5).map(|i| value(i, 20)).collect();
                append_values(&log, &vals, 1)
                    .completion
                    .wait_written()
                    .unwrap();
                let r = log.read(Offset(3), ReadLimits::bytes(1 << 20)).unwrap();
                let s = r.slice.unwrap();
                assert_eq!(s.first_offset(), Offset(0));
                assert_eq!(s.next_offset(), Offset(5));
                let bytes = s.read_to_vec().unwrap();
                let hd =
                    batch::validate(&bytes, 0, batch::Origin::Replication, usize::MAX).unwrap();
                assert_eq!(hd.records_count, 5);
            }

            /// Reads honour the byte limit with whole batches, return at least one batch, stop at
            /// max_offset, and report offsets out of range.
            #[test]
            fn read_limits_and_ranges() {
                let h = h();
                let log = h.open(LogConfig::default());
                for i in 0..10 {
                    append_values(&log, &[value(i, 100)], 1);
                }
                log.flush().unwrap();
                let one = log
                    .read(Offset(0), ReadLimits::bytes(1))
                    .unwrap()
                    .slice
                    .unwrap();
                assert_eq!(one.next_offset(), Offset(1), "min one batch");
                let size = one.len();
                let three = log
                    .read(Offset(0), ReadLimits::bytes(size * 3 + 5))
                    .unwrap()
                    .slice
                    .unwrap();
                assert_eq!(three.next_offset(), Offset(3));
                assert_eq!(three.len(), size * 3);
                let none = log
                    .read(
                        Offset(0),
                        ReadLimits {
                            max_bytes: 1,
                            max_offset: None,
                            min_one_batch: false,
                        },
                    )
                    .unwrap();
                assert!(none.slice.is_none());
                let hw = log
                    .read(
                        Offset(0),
                        ReadLimits {
                            max_bytes: 1 << 20,
                            max_offset: Some(Offset(4)),
                            min_one_batch: true,
                        },
                    )
                    .unwrap();
                assert_eq!(hw.slice.unwrap().next_offset(), Offset(4));
                assert!(
                    log.read(Offset(10), ReadLimits::bytes(100))
                        .unwrap()
                        .slice
                        .is_none()
                );
                assert!(matches!(
                    log.read(Offset(11), ReadLimits::bytes(100)),
                    Err(LogError::OffsetOutOfRange { .. })
                ));
            }

            /// Invalid batches are rejected with a typed error and nothing is written.
            #[test]
            fn invalid_batches_write_nothing() {
                let h = h();
                let log = h.open(LogConfig {
                    max_message_bytes: 200,
                    ..LogConfig::default()
                });
                append_values(&log, &[value(0, 10)], 1)
                    .completion
                    .wait_durable()
                    .unwrap();
                let good = batch_of(&[value(1, 10)], 1);
                let mut bad = good.clone();
                let n = bad.len();
                bad[n - 1] ^= 0xff;
                let mut both = good.clone();
                both.extend_from_slice(&bad);
                assert!(matches!(
                    log.append(both, LeaderEpoch(0)),
                    Err(LogError::InvalidBatch(BatchError::CrcMismatch { .. }))
                ));
                assert!(matches!(
                    log.append(BytesMut::from(&good[..20]), LeaderEpoch(0)),
                    Err(LogError::InvalidBatch(_))
                ));
                assert!(matches!(
                    log.append(batch_of(&[value(2, 300)], 1), LeaderEpoch(0)),
                    Err(LogError::BatchTooLarge { .. })
                ));
                assert_eq!(log.log_end_offset(), Offset(1));
                assert_eq!(read_all(&log, Offset(0)).len(), 1);
            }

            /// Segments roll by size; reads cross segments; a clean restart keeps everything.
            #[test]
            fn roll_and_clean_restart() {
                let mut h = h();
                let log = h.open(small_segments());
                for i in 0..100 {
                    append_values(&log, &[value(i, 90)], 1000 + i as i64);
                }
                log.flush().unwrap();
                assert!(log.segment_count() > 3, "rolled: {}", log.segment_count());
                let before = read_all(&log, Offset(0));
                assert_eq!(before.len(), 100);
                log.close().unwrap();
                drop(log);
                h.restart_pipeline();
                let log = h.open(small_segments());
                assert!(log.recovery_report().clean_shutdown);
                assert_eq!(log.recovery_report().segments_scanned, 0);
                assert_eq!(log.log_end_offset(), Offset(100));
                assert_eq!(read_all(&log, Offset(0)), before);
                let a = append_values(&log, &[value(100, 5)], 2000);
                assert_eq!(a.first_offset, Offset(100));
            }

            /// An unclean restart recovers everything that was durable and scans only the tail.
            #[test]
            fn unclean_restart_recovers() {
                let mut h = h();
                let log = h.open(small_segments());
                for i in 0..50 {
                    append_values(&log, &[value(i, 90)], 1000);
                }
                log.flush().unwrap();
                drop(log);
                h.restart_pipeline();
                let log = h.open(small_segments());
                assert!(!log.recovery_report().clean_shutdown);
                assert_eq!(log.log_end_offset(), Offset(50));
                assert_eq!(read_all(&log, Offset(0)).len(), 50);
            }

            /// truncate_to removes the tail (across segments), and appends continue from there.
            #[test]
            fn truncate_to_cuts_the_tail() {
                let mut h = h();
                let log = h.open(small_segments());
                for i in 0..60 {
                    append_values(&log, &[value(i, 90)], 1000);
                }
                assert_eq!(log.truncate_to(Offset(17)).unwrap(), Offset(17));
                assert_eq!(log.log_end_offset(), Offset(17));
                let a = append_values(&log, &[value(999, 10)], 1000);
                assert_eq!(a.first_offset, Offset(17));
                a.completion.wait_durable().unwrap();
                let all = read_all(&log, Offset(0));
                assert_eq!(all.len(), 18);
                assert_eq!(all[17].1, Some(value(999, 10)));
                drop(log);
                h.restart_pipeline();
                let log = h.open(small_segments());
                assert_eq!(log.log_end_offset(), Offset(18));
                assert_eq!(log.truncate_to(Offset(0)).unwrap(), Offset(0));
                assert_eq!(read_all(&log, Offset(0)).len(), 0);
            }

            /// truncate_fully_and_start_at empties the log and restarts it beyond its old end
            /// (a follower that fell behind its leader's retention); it survives a reopen.
            #[test]
            fn truncate_fully_and_start_at_restarts_the_log_past_its_end() {
                let mut h = h();
                let log = h.open(small_segments());
                for i in 0..20 {
                    append_values(&log, &[value(i, 90)], 1000);
                }
                assert_eq!(
                    log.truncate_fully_and_start_at(Offset(500)).unwrap(),
                    Offset(500)
                );
                assert_eq!(log.log_start_offset(), Offset(500));
                assert_eq!(log.log_end_offset(), Offset(500));
                assert!(log.leader_epochs().latest_epoch().is_none());
                assert!(matches!(
                    log.read(Offset(10), ReadLimits::bytes(100)),
                    Err(LogError::OffsetOutOfRange { .. })
                ));
                let a = append_values(&log, &[value(7, 10)], 1000);
                assert_eq!(a.first_offset, Offset(500));
                a.completion.wait_durable().unwrap();
                drop(log);
                h.restart_pipeline();
                let log = h.open(small_segments());
                assert_eq!(log.log_start_offset(), Offset(500));
                assert_eq!(log.log_end_offset(), Offset(501));
                assert_eq!(read_all(&log, Offset(500)).len(), 1);
            }

            /// delete_records_before moves the log start offset, persists it, drops old segments.
            #[test]
            fn delete_records_moves_log_start() {
                let mut h = h();
                let log = h.open(small_segments());
                for i in 0..60 {
                    append_values(&log, &[value(i, 90)], 1000);
                }
                log.flush().unwrap();
                let segs = log.segment_count();
                assert_eq!(log.delete_records_before(Offset(30)).unwrap(), Offset(30));
                assert!(log.segment_count() < segs);
                assert!(matches!(
                    log.read(Offset(29), ReadLimits::bytes(100)),
                    Err(LogError::OffsetOutOfRange { .. })
                ));
                assert_eq!(
                    read_all(&log, Offset(30)).first().map(|r| r.0),
                    Some(Offset(30))
                );
                drop(log);
                h.restart_pipeline();
                let log = h.open(small_segments());
                assert_eq!(log.log_start_offset(), Offset(30));
            }

            /// Retention by bytes and by time deletes whole old segments, never the active one.
            #[test]
            fn retention_by_bytes_and_time() {
                let h = h();
                let log = h.open(LogConfig {
                    retention_bytes: 2000,
                    ..small_segments()
                });
                for i in 0..100 {
                    append_values(&log, &[value(i, 90)], 1000 + i as i64);
                }
                log.flush().unwrap();
                let s = log.apply_retention(0).unwrap();
                assert!(s.segments_deleted > 0);
                assert!(log.size_bytes() < 2000 + 4096);
                assert!(log.log_start_offset() > Offset(0));
                let cfg = LogConfig {
                    retention_ms: 10,
                    ..small_segments()
                };
                log.set_config(cfg).unwrap();
                log.apply_retention(1_000_000).unwrap();
                assert_eq!(log.segment_count(), 1);
            }

            /// Segments roll by segment.ms measured on batch timestamps.
            #[test]
            fn roll_by_time() {
                let h = h();
                let log = h.open(LogConfig {
                    segment_ms: 1000,
                    ..LogConfig::default()
                });
                append_values(&log, &[value(0, 10)], 10_000);
                append_values(&log, &[value(1, 10)], 10_500);
                assert_eq!(log.segment_count(), 1);
                append_values(&log, &[value(2, 10)], 11_001);
                assert_eq!(log.segment_count(), 2);
            }

            /// Lookup by timestamp finds the first record at or after the time.
            #[test]
            fn offset_for_timestamp() {
                let h = h();
                let log = h.open(small_segments());
                for i in 0..100 {
                    append_values(&log, &[value(i, 50)], 1000 + 10 * i as i64);
                }
                log.flush().unwrap();
                assert_eq!(
                    log.offset_for_timestamp(0).unwrap().map(|x| x.0),
                    Some(Offset(0))
                );
                assert_eq!(
                    log.offset_for_timestamp(1455).unwrap().map(|x| x.0),
                    Some(Offset(46))
                );
                assert_eq!(
                    log.offset_for_timestamp(1460).unwrap(),
                    Some((Offset(46), 1460))
                );
                assert_eq!(log.offset_for_timestamp(99_999).unwrap(), None);
            }

            /// Leader epochs are recorded, answer OffsetForLeaderEpoch, survive restart and
            /// truncation.
            #[test]
            fn leader_epoch_checkpoint() {
                let mut h = h();
                let log = h.open(LogConfig::default());
                log.append(batch_of(&[value(0, 5), value(1, 5)], 1), LeaderEpoch(1))
                    .unwrap();
                log.append(batch_of(&[value(2, 5)], 1), LeaderEpoch(3))
                    .unwrap();
                log.append(batch_of(&[value(3, 5)], 1), LeaderEpoch(3))
                    .unwrap();
                log.append(batch_of(&[value(4, 5)], 1), LeaderEpoch(4))
                    .unwrap();
                assert_eq!(
                    log.end_offset_for_epoch(LeaderEpoch(1)),
                    Some((LeaderEpoch(1), Offset(2)))
                );
                assert_eq!(
                    log.end_offset_for_epoch(LeaderEpoch(2)),
                    Some((LeaderEpoch(1), Offset(2)))
                );
                assert_eq!(
                    log.end_offset_for_epoch(LeaderEpoch(4)),
                    Some((LeaderEpoch(4), Offset(5)))
                );
                log.truncate_to(Offset(4)).unwrap();
                assert_eq!(log.leader_epochs().latest_epoch(), Some(LeaderEpoch(3)));
                drop(log);
                h.restart_pipeline();
                let log = h.open(LogConfig::default());
                assert_eq!(
                    log.end_offset_for_epoch(LeaderEpoch(3)),
                    Some((LeaderEpoch(3), Offset(4)))
                );
                let read = log
                    .read(Offset(2), ReadLimits::bytes(1000))
                    .unwrap()
                    .slice
                    .unwrap()
                    .read_to_vec()
                    .unwrap();
                assert_eq!(
                    batch::parse_header(&read, 0)
                        .unwrap()
                        .partition_leader_epoch,
                    LeaderEpoch(3)
                );
            }

            /// Follower appends keep the leader's offsets and epochs and refuse going backwards.
            #[test]
            fn follower_append_keeps_offsets() {
                let h = h();
                let log = h.open(LogConfig::default());
                let mut b = batch_of(&[value(0, 5), value(1, 5)], 1);
                batch::stamp_base_offset(&mut b, Offset(0));
                batch::stamp_leader_epoch(&mut b, LeaderEpoch(7));
                log.append_as_follower(b.clone()).unwrap();
                assert_eq!(log.log_end_offset(), Offset(2));
                assert_eq!(log.leader_epochs().latest_epoch(), Some(LeaderEpoch(7)));
                assert!(matches!(
                    log.append_as_follower(b),
                    Err(LogError::InvalidBatch(BatchError::NonMonotonic { .. }))
                ));
            }

            /// Compaction keeps the last record of each key and leaves offsets unchanged.
            #[test]
            fn compaction_keeps_last_value_per_key() {
                let h = h();
                let cfg = LogConfig {
                    cleanup_policy: CleanupPolicy::Compact,
                    ..small_segments()
                };
                let log = h.open(cfg);
                for round in 0..20u32 {
                    for key in 0..5u32 {
                        let k = format!("k{key}");
                        let v = format!("r{round}-{:080}", key);
                        log.append(
                            keyed_batch(&[(k.as_bytes(), v.as_bytes())], 1),
                            LeaderEpoch(0),
                        )
                        .unwrap();
                    }
                }
                log.flush().unwrap();
                let before = log.size_bytes();
                let stats = log.compact().unwrap();
                assert!(stats.records_removed > 0);
                assert!(log.size_bytes() < before);
                let all = read_all(&log, Offset(0));
                // Every key's last value (round 19) is still there at its original offset.
                for key in 0..5u32 {
                    let off = Offset(95 + i64::from(key));
                    let v = format!("r19-{:080}", key).into_bytes();
                    assert!(all.contains(&(off, Some(v))), "key {key}");
                }
                assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
                assert_eq!(log.log_end_offset(), Offset(100));
                assert!(
                    log.verify().unwrap() > 0,
                    "every rewritten batch passes its CRC check"
                );
                // Passes go on over segments an earlier pass emptied, and rewritten segments
                // keep indexes no larger than their entries.
                assert_eq!(log.compact().unwrap().records_removed, 0);
                for f in h.storage.list_dir(&h.dir).unwrap() {
                    let name = f.to_string_lossy().to_string();
                    let active = name.contains(&format!(
                        "{:020}",
                        log.segment_base_offsets().last().unwrap().0
                    ));
                    if !active && (name.ends_with(".index") || name.ends_with(".timeindex")) {
                        let len = h.storage.open(&f, false).unwrap().len().unwrap();
                        assert!(len < 1024, "{name}: {len} bytes");
                    }
                }
                assert_eq!(read_all(&log, Offset(0)), all);
            }

            /// Compaction keeps transactional batches whole and lets none of their records
            /// supersede an earlier one: an aborted transaction's record must not remove the
            /// committed value before it. A later plain record still supersedes both plain
            /// predecessors.
            #[test]
            fn compaction_keeps_transactional_batches_whole() {
                let h = h();
                let cfg = LogConfig {
                    cleanup_policy: CleanupPolicy::Compact,
                    ..small_segments()
                };
                let log = h.open(cfg);
                let append = |k: &str, v: &str, transactional: bool| {
                    let mut b = keyed_batch(&[(k.as_bytes(), v.as_bytes())], 1);
                    if transactional {
                        batch::stamp_producer(&mut b, 9, 0, 0);
                        batch::stamp_transactional(&mut b, false);
                    }
                    log.append(b, LeaderEpoch(0)).unwrap();
                };
                append("k", "committed", false);
                append("k", "in-a-transaction", true);
                for round in 0..40u32 {
                    append("filler", &format!("{round:0100}"), false);
                }
                log.flush().unwrap();
                log.compact().unwrap();
                let all = read_all(&log, Offset(0));
                assert!(all.contains(&(Offset(0), Some(b"committed".to_vec()))));
                assert!(all.contains(&(Offset(1), Some(b"in-a-transaction".to_vec()))));
                append("k", "later", false);
                for round in 0..40u32 {
                    append("filler", &format!("{round:0100}"), false);
                }
                log.flush().unwrap();
                log.compact().unwrap();
                let all = read_all(&log, Offset(0));
                assert!(
                    !all.iter().any(|(o, _)| *o == Offset(0)),
                    "superseded by a plain record"
                );
                assert!(all.contains(&(Offset(1), Some(b"in-a-transaction".to_vec()))));
                assert!(all.contains(&(Offset(42), Some(b"later".to_vec()))));
            }

            /// A fetch's check of a slice is done once: the same bytes read again are trusted
            /// while their file is unchanged and in the page cache (only where the backend has
            /// descriptors; the simulated disk checks every time); a byte written into the file
            /// afterwards, or pages evicted from the cache, make the next read check again, and
            /// the flipped byte is caught.
            #[test]
            fn verified_bytes_are_checked_once_until_the_file_or_the_cache_changes() {
                let h = h();
                let log = h.open(small_segments());
                for i in 0..60u64 {
                    append_values(&log, &[value(i, 100)], 1);
                }
                log.flush().unwrap();
                assert!(log.segment_count() >= 2);
                let read = || {
                    log.read(Offset(0), ReadLimits::bytes(1 << 20))
                        .unwrap()
                        .slice
                        .unwrap()
                };
                let slice = read();
                assert_eq!(slice.verify(), Ok(Verification::Checked));
                let described = matches!(h.kind, Kind::Std | Kind::Uring);
                let again = if described {
                    Verification::Trusted
                } else {
                    Verification::Checked
                };
                assert_eq!(read().verify(), Ok(again), "second read");
                assert_eq!(read().verify(), Ok(again), "third read");
                if !described {
                    return;
                }
                // Evicted pages come back from the disk: checked again, then trusted again.
                let fd = slice.raw_fd().unwrap();
                // SAFETY: `fd` is the open segment file's descriptor.
                let rc = unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
                assert_eq!(rc, 0);
                assert_eq!(read().verify(), Ok(Verification::Checked), "after eviction");
                assert_eq!(read().verify(), Ok(Verification::Trusted), "read back");
                // A byte written into the closed segment by another writer is caught.
                use std::os::unix::fs::FileExt;
                let path = h.dir.join("00000000000000000000.log");
                let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                let pos = slice.position() + slice.len() as u64 / 2;
                let mut b = [0u8; 1];
                std::fs::File::open(&path)
                    .unwrap()
                    .read_exact_at(&mut b, pos)
                    .unwrap();
                f.write_all_at(&[b[0] ^ 0x5a], pos).unwrap();
                assert!(read().verify().is_err(), "the flipped byte was trusted");
            }

            /// `try_append` appends what needs no wait, and gives back untouched (appending
            /// nothing) what would roll a segment; `append` then does it.
            #[test]
            fn try_append_gives_back_what_would_roll_a_segment() {
                let h = h();
                let log = h.open(small_segments());
                // The first append of an epoch saves the epoch checkpoint: it may wait.
                let first = batch_of(&[value(0, 100)], 1).freeze();
                assert!(matches!(
                    log.try_append(first, LeaderEpoch(0)).unwrap(),
                    TryAppend::WouldWait(_)
                ));
                assert_eq!(log.log_end_offset(), Offset(0), "nothing appended");
                append_values(&log, &[value(0, 100)], 1);
                let mut appended = 1;
                loop {
                    let b = batch_of(&[value(appended, 100)], 1).freeze();
                    match log.try_append(b.clone(), LeaderEpoch(0)).unwrap() {
                        TryAppend::Appended(_) => appended += 1,
                        TryAppend::WouldWait(back) => {
                            assert_eq!(back, b, "the records come back untouched");
                            break;
                        }
                    }
                    assert!(appended < 1000, "never asked to roll");
                }
                assert!(appended > 1, "appends in the epoch needed no wait");
                assert_eq!(log.segment_count(), 1);
                assert_eq!(log.log_end_offset(), Offset(appended as i64));
                append_values(&log, &[value(appended, 100)], 1)
                    .completion
                    .wait_durable()
                    .unwrap();
                assert_eq!(log.segment_count(), 2, "append rolled");
                assert_eq!(read_all(&log, Offset(0)).len(), appended as usize + 1);
            }

            /// A compaction pass reads and rewrites without the log's lock: appends (rolling new
            /// segments), reads and durable waits run between its rewrite and its swap (they would
            /// deadlock if the pass held the lock), and the swap keeps all of them; a slice read
            /// before the swap still reads the bytes it named; a restart finds the result.
            #[test]
            fn compaction_runs_beside_appends_and_reads() {
                let mut h = h();
                let cfg = LogConfig {
                    cleanup_policy: CleanupPolicy::Compact,
                    ..small_segments()
                };
                let log = h.open(cfg.clone());
                let put = |log: &Log, round: u32, key: u32| {
                    let k = format!("k{key}");
                    let v = format!("r{round}-{:080}", key);
                    log.append(
                        keyed_batch(&[(k.as_bytes(), v.as_bytes())], 1),
                        LeaderEpoch(0),
                    )
                    .unwrap()
                };
                for round in 0..20u32 {
                    for key in 0..5u32 {
                        put(&log, round, key);
                    }
                }
                log.flush().unwrap();
                let segments_before = log.segment_count();
                let old = log
                    .read(Offset(0), ReadLimits::bytes(1 << 20))
                    .unwrap()
                    .slice
                    .unwrap();
                let old_bytes = old.read_to_vec().unwrap();
                let stats = log
                    .compact_with(|| {
                        for round in 20..40u32 {
                            for key in 0..5u32 {
                                put(&log, round, key).completion.wait_durable().unwrap();
                            }
                        }
                        assert!(log.segment_count() > segments_before, "appends rolled");
                        assert_eq!(read_all(&log, Offset(0)).len(), 200);
                    })
                    .unwrap();
                assert!(stats.records_removed > 0 && stats.segments_rewritten > 0);
                assert_eq!(
                    old.read_to_vec().unwrap(),
                    old_bytes,
                    "an earlier slice reads on"
                );
                let check = |log: &Log| {
                    let all = read_all(log, Offset(0));
                    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
                    // The pass knew rounds 0..19 only: it kept round 19, and everything appended
                    // while it ran (offsets 100..200) is intact.
                    for key in 0..5u32 {
                        let v = format!("r19-{:080}", key).into_bytes();
                        assert!(
                            all.contains(&(Offset(95 + i64::from(key)), Some(v))),
                            "key {key}"
                        );
                    }
                    assert_eq!(all.iter().filter(|(o, _)| o.0 >= 100).count(), 100);
                    assert!(all.len() < 200, "superseded records are gone");
                    assert_eq!(log.log_end_offset(), Offset(200));
                    assert!(log.verify().unwrap() > 0);
                    all
                };
                let before_restart = check(&log);
                drop(log);
                h.restart_pipeline();
                let log = h.open(cfg);
                assert_eq!(check(&log), before_restart);
            }

            /// A truncation that overtakes a compaction pass (a follower cut back by its new
            /// leader) wins: the pass drops its rewritten files and changes nothing; the next
            /// pass compacts what is left.
            #[test]
            fn a_truncation_during_compaction_drops_the_pass() {
                let h = h();
                let log = h.open(LogConfig {
                    cleanup_policy: CleanupPolicy::Compact,
                    ..small_segments()
                });
                for round in 0..20u32 {
                    for key in 0..5u32 {
                        let k = format!("k{key}");
                        let v = format!("r{round}-{:080}", key);
                        log.append(
                            keyed_batch(&[(k.as_bytes(), v.as_bytes())], 1),
                            LeaderEpoch(0),
                        )
                        .unwrap();
                    }
                }
                log.flush().unwrap();
                let stats = log
                    .compact_with(|| {
                        log.truncate_to(Offset(90)).unwrap();
                    })
                    .unwrap();
                assert_eq!(stats, CompactionStats::default());
                let files = h.storage.list_dir(&h.dir).unwrap();
                assert!(
                    !files
                        .iter()
                        .any(|f| f.to_string_lossy().ends_with(".cleaned")),
                    "{files:?}"
                );
                assert_eq!(read_all(&log, Offset(0)).len(), 90);
                assert!(log.compact().unwrap().records_removed > 0);
                let all = read_all(&log, Offset(0));
                for key in 0..5u32 {
                    let v = format!("r17-{:080}", key).into_bytes();
                    assert!(
                        all.contains(&(Offset(85 + i64::from(key)), Some(v))),
                        "key {key}"
                    );
                }
                assert_eq!(log.log_end_offset(), Offset(90));
            }

            /// `cleanup.policy=compact,delete`: compaction keeps each key's last value, and
            /// retention still deletes the oldest segments; each alone does only its part.
            #[test]
            fn compact_and_delete_does_both() {
                let harness = h();
                let fill = |log: &Log| {
                    for round in 0..20u32 {
                        for key in 0..5u32 {
                            let k = format!("k{key}");
                            let v = format!("r{round}-{:080}", key);
                            log.append(
                                keyed_batch(
                                    &[(k.as_bytes(), v.as_bytes())],
                                    1000 + i64::from(round),
                                ),
                                LeaderEpoch(0),
                            )
                            .unwrap();
                        }
                    }
                    log.flush().unwrap();
                };
                let both = harness.open(LogConfig {
                    cleanup_policy: CleanupPolicy::CompactAndDelete,
                    retention_bytes: 3000,
                    ..small_segments()
                });
                fill(&both);
                assert!(both.compact().unwrap().records_removed > 0, "compacted");
                let before = both.log_start_offset();
                fill(&both);
                assert!(
                    both.apply_retention(0).unwrap().segments_deleted > 0,
                    "retention applies"
                );
                assert!(both.log_start_offset() > before);
                drop(both);
                let h2 = h();
                let compact_only = h2.open(LogConfig {
                    cleanup_policy: CleanupPolicy::Compact,
                    retention_bytes: 3000,
                    ..small_segments()
                });
                fill(&compact_only);
                assert_eq!(compact_only.apply_retention(0).unwrap().segments_deleted, 0);
                assert_eq!(compact_only.log_start_offset(), Offset(0));
            }

            /// Many concurrent appenders with flush=always share fdatasyncs (group commit), and each
            /// is released only once durable.
            #[test]
            fn group_commit_shares_fsyncs() {
                let h = h();
                let log = std::sync::Arc::new(h.open(LogConfig::default()));
                let threads: Vec<_> = (0..16)
                    .map(|t| {
                        let log = log.clone();
                        std::thread::spawn(move || {
                            for i in 0..50 {
                                let info = append_values(&log, &[value(t * 1000 + i, 100)], 1);
                                info.completion.wait_durable().unwrap();
                                assert!(log.recovery_point() > info.last_offset);
                            }
                        })
                    })
                    .collect();
                for t in threads {
                    t.join().unwrap();
                }
                let stats = h.stats();
                let fsyncs = stats.fsyncs.load(std::sync::atomic::Ordering::Relaxed);
                assert!(
                    fsyncs < 800,
                    "16 x 50 appends used {fsyncs} fsyncs: no grouping"
                );
                assert_eq!(read_all(&log, Offset(0)).len(), 800);
            }

            /// flush=os never syncs on the append path, but flush() makes everything durable.
            #[test]
            fn flush_policy_os_and_explicit_flush() {
                let h = h();
                let log = h.open(LogConfig {
                    flush: FlushPolicy::Os,
                    ..LogConfig::default()
                });
                let a = append_values(&log, &[value(0, 10)], 1);
                a.completion.wait_written().unwrap();
                assert_eq!(log.recovery_point(), Offset(0));
                log.flush().unwrap();
                assert_eq!(log.recovery_point(), Offset(1));
                a.completion.wait_durable().unwrap();
            }

            /// flush=interval makes appends durable within the interval without being asked.
            #[test]
            fn flush_policy_interval() {
                let h = h();
                let log = h.open(LogConfig {
                    flush: FlushPolicy::Interval(20),
                    ..LogConfig::default()
                });
                let a = append_values(&log, &[value(0, 10)], 1);
                a.completion.wait_durable().unwrap();
                assert_eq!(log.recovery_point(), Offset(1));
            }

            /// The mmap view of a read shows exactly the bytes a copy gives.
            #[test]
            fn reads_through_an_mmap_view_match() {
                let h = h();
                let log = h.open(LogConfig::default());
                append_values(&log, &[value(0, 3000)], 1)
                    .completion
                    .wait_written()
                    .unwrap();
                let s = log
                    .read(Offset(0), ReadLimits::bytes(1 << 20))
                    .unwrap()
                    .slice
                    .unwrap();
                let copied = s.read_to_vec().unwrap();
                match s.map().unwrap() {
                    Some(m) => assert_eq!(m.bytes(), &copied[..]),
                    None => assert!(s.raw_fd().is_none(), "only the simulated disk has no map"),
                }
            }

            /// One owner per directory: a second open of a live log's directory is refused with
            /// `DirectoryLocked` naming the directory and this process, changes nothing, and
            /// leaves the first owner working; after close (or drop) the directory opens again
            /// with everything the first owner acknowledged.
            #[test]
            fn a_second_open_of_a_live_directory_is_refused() {
                let h = h();
                let first = h.open(LogConfig::default());
                append_values(&first, &[value(0, 10)], 1)
                    .completion
                    .wait_durable()
                    .unwrap();
                match h.try_open(LogConfig::default()) {
                    Err(LogError::DirectoryLocked { dir, holder_pid }) => {
                        assert_eq!(dir, h.dir);
                        assert_eq!(holder_pid, Some(std::process::id()));
                        let msg = LogError::DirectoryLocked { dir, holder_pid }.to_string();
                        assert!(msg.contains("opened twice"), "{msg}");
                    }
                    Err(e) => panic!("second open: unexpected error {e}"),
                    Ok(_) => panic!("second open of a live directory succeeded"),
                }
                // The first owner is unaffected: it appends at the next offset and reads both.
                let b = append_values(&first, &[value(1, 10)], 2);
                assert_eq!(b.first_offset, Offset(1));
                b.completion.wait_durable().unwrap();
                first.close().unwrap();
                let reopened = h.open(LogConfig::default());
                let all = read_all(&reopened, Offset(0));
                assert_eq!(
                    all,
                    vec![
                        (Offset(0), Some(value(0, 10))),
                        (Offset(1), Some(value(1, 10)))
                    ]
                );
                drop(reopened);
                // Dropping without close releases the lock too (as a dying process does).
                drop(h.open(LogConfig::default()));
            }

            /// Records shared with their caller (a slice of a whole request's buffer, as the
            /// broker appends them) are written without a copy: each batch's stamped header
            /// bytes go ahead of the caller's untouched bytes. What is read back is the same as
            /// an append of a private copy, and the caller's buffer is unchanged.
            #[test]
            fn shared_records_are_stamped_without_touching_the_callers_bytes() {
                let h = h();
                let log = h.open(LogConfig::default());
                let mut two = batch_of(&[value(0, 30), value(1, 30)], 1).to_vec();
                two.extend_from_slice(&batch_of(&[value(2, 30)], 2));
                let mut request = vec![0xAB; 17];
                request.extend_from_slice(&two);
                let request = bytes::Bytes::from(request);
                let before = request.clone();
                let shared = request.slice(17..);
                // A private copy first (stamped in place), then the shared slice, twice.
                let a = log
                    .append(BytesMut::from(&two[..]), LeaderEpoch(3))
                    .unwrap();
                let b = log.append(shared.clone(), LeaderEpoch(4)).unwrap();
                let c = log.append(shared, LeaderEpoch(4)).unwrap();
                assert_eq!(request, before, "the caller's bytes are not stamped");
                assert_eq!(
                    (a.first_offset, b.first_offset, c.first_offset),
                    (Offset(0), Offset(3), Offset(6))
                );
                c.completion.wait_durable().unwrap();
                let all = read_all(&log, Offset(0));
                let values: Vec<_> = all.iter().map(|(_, v)| v.clone().unwrap()).collect();
                let one_round = vec![value(0, 30), value(1, 30), value(2, 30)];
                assert_eq!(
                    values,
                    [one_round.clone(), one_round.clone(), one_round].concat()
                );
                assert_eq!(
                    all.iter().map(|(o, _)| o.0).collect::<Vec<_>>(),
                    (0..9).collect::<Vec<_>>()
                );
                // Stamped headers: each batch's base offset and leader epoch as assigned, and
                // every batch still passes its CRC check.
                assert_eq!(log.verify().unwrap(), 6);
                let slice = log
                    .read(Offset(3), ReadLimits::bytes(1 << 20))
                    .unwrap()
                    .slice
                    .unwrap();
                let stored = slice.read_to_vec().unwrap();
                let headers =
                    batch::validate_all(&stored, batch::Origin::Replication, usize::MAX).unwrap();
                let stamped: Vec<_> = headers
                    .iter()
                    .map(|(_, h)| (h.base_offset, h.partition_leader_epoch))
                    .collect();
                assert_eq!(
                    stamped[..4],
                    [
                        (Offset(3), LeaderEpoch(4)),
                        (Offset(5), LeaderEpoch(4)),
                        (Offset(6), LeaderEpoch(4)),
                        (Offset(8), LeaderEpoch(4)),
                    ]
                );
            }

            /// With `syncfs_files_min` at 1 every sync round makes its files durable by file
            /// system (syncfs on real disks): appends to several logs become durable, move
            /// each log's recovery point, and are all there after a reopen.
            #[test]
            fn sync_rounds_by_file_system_make_every_log_durable() {
                let mut h = Harness::with_pipeline(
                    $kind,
                    PipelineConfig {
                        syncfs_files_min: 1,
                        ..PipelineConfig::default()
                    },
                );
                let dirs: Vec<_> = (0..5).map(|i| h.dir.join(format!("p-{i}"))).collect();
                let handle = h.pipeline.as_ref().unwrap().handle();
                let logs: Vec<Log> = dirs
                    .iter()
                    .map(|d| Log::open(d, LogConfig::default(), &handle).unwrap())
                    .collect();
                let infos: Vec<_> = logs
                    .iter()
                    .enumerate()
                    .map(|(i, log)| append_values(log, &[value(i as u64, 64)], 1))
                    .collect();
                for (log, info) in logs.iter().zip(&infos) {
                    info.completion.wait_durable().unwrap();
                    assert_eq!(log.recovery_point(), Offset(1));
                }
                let stats = h.stats();
                let rounds = stats.sync_rounds.load(std::sync::atomic::Ordering::Relaxed);
                assert!(rounds > 0);
                assert_eq!(
                    stats
                        .syncfs_rounds
                        .load(std::sync::atomic::Ordering::Relaxed),
                    rounds,
                    "every sync round went by file system"
                );
                drop(logs);
                h.restart_pipeline();
                if let Some(sim) = &h.sim {
                    sim.crash(strata_engine::io::sim::CrashMode::DropUnsynced);
                }
                let handle = h.pipeline.as_ref().unwrap().handle();
                for (i, d) in dirs.iter().enumerate() {
                    let log = Log::open(d, LogConfig::default(), &handle).unwrap();
                    assert_eq!(
                        read_all(&log, Offset(0)),
                        vec![(Offset(0), Some(value(i as u64, 64)))]
                    );
                }
            }
        }
    };
}

backend_suite!(std_backend, Kind::Std);
backend_suite!(uring_backend, Kind::Uring);
backend_suite!(sim_backend, Kind::Sim);
