//! Criterion benches of the engine on the real disk (a temporary directory on the filesystem
//! `cargo bench` runs on; the figures depend on it):
//! - batch validation (CRC-32C) throughput for 1 KiB and 64 KiB batches;
//! - append throughput with flush=os for 1 KiB and 64 KiB batches;
//! - append with flush=always across fsync-batch sizes (k appends in flight, then wait);
//! - offset lookups (index + header scan) and sequential reads.
//!
//! `cargo bench -p strata-bench --bench engine -- --test` runs each once (CI does, so the
//! benches cannot rot); `strata-bench engine` gives the same-run baseline ratios.

use std::collections::VecDeque;
use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strata_engine::io::{Backend, open_backend};
use strata_engine::{
    CommitPipeline, FlushPolicy, LeaderEpoch, Log, LogConfig, Offset, ReadLimits, batch,
};

fn make_batch(batch_bytes: usize) -> Vec<u8> {
    let record = 1000.min(batch_bytes.saturating_sub(80)).max(1);
    let count = (batch_bytes / (record + 10)).max(1);
    let value = vec![b'x'; record];
    let recs: Vec<batch::KeyValue<'_>> =
        (0..count).map(|_| (None, Some(value.as_slice()))).collect();
    batch::build(Offset(0), 1_700_000_000_000, &recs)
}

struct Fixture {
    _tmp: tempfile::TempDir,
    _pipeline: CommitPipeline,
    log: Log,
}

fn fixture(flush: FlushPolicy) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = CommitPipeline::start(
        open_backend(Backend::Auto).expect("backend"),
        Default::default(),
    )
    .expect("pipeline");
    let config = LogConfig {
        flush,
        segment_bytes: 256 << 20,
        max_message_bytes: 16 << 20,
        ..LogConfig::default()
    };
    let log = Log::open(tmp.path().join("bench-0"), config, &pipeline.handle()).expect("log");
    Fixture {
        _tmp: tmp,
        _pipeline: pipeline,
        log,
    }
}

fn validation(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_validation");
    for size in [1usize << 10, 64 << 10] {
        let b = make_batch(size);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &b, |bench, b| {
            bench.iter(|| {
                batch::validate_all(black_box(b), batch::Origin::Client, usize::MAX).expect("valid")
            })
        });
    }
    g.finish();
}

fn append_os(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_flush_os");
    for size in [1usize << 10, 64 << 10] {
        let f = fixture(FlushPolicy::Os);
        let template = BytesMut::from(make_batch(size).as_slice());
        g.throughput(Throughput::Bytes(template.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(size), |bench| {
            bench.iter(|| {
                f.log
                    .append(template.clone(), LeaderEpoch(0))
                    .expect("append")
            })
        });
        f.log.flush().expect("flush");
    }
    g.finish();
}

fn append_always(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_flush_always_16KiB");
    g.sample_size(10);
    let template = BytesMut::from(make_batch(16 << 10).as_slice());
    for in_flight in [1usize, 8, 64] {
        let f = fixture(FlushPolicy::Always);
        g.throughput(Throughput::Bytes((template.len() * in_flight) as u64));
        g.bench_function(BenchmarkId::new("in_flight", in_flight), |bench| {
            bench.iter(|| {
                let mut q = VecDeque::with_capacity(in_flight);
                for _ in 0..in_flight {
                    q.push_back(
                        f.log
                            .append(template.clone(), LeaderEpoch(0))
                            .expect("append"),
                    );
                }
                for a in q {
                    a.completion.wait_durable().expect("durable");
                }
            })
        });
    }
    g.finish();
}

fn reads(c: &mut Criterion) {
    let f = fixture(FlushPolicy::Os);
    let template = BytesMut::from(make_batch(1 << 10).as_slice());
    for _ in 0..65_536 {
        f.log
            .append(template.clone(), LeaderEpoch(0))
            .expect("append");
    }
    f.log.flush().expect("flush");
    let leo = f.log.log_end_offset().0;
    let mut g = c.benchmark_group("read");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    g.bench_function("random_offset_lookup", |bench| {
        bench.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let off = Offset((x % leo as u64) as i64);
            f.log.read(off, ReadLimits::bytes(1)).expect("read")
        })
    });
    g.throughput(Throughput::Bytes(1 << 20));
    let mut next = Offset(0);
    g.bench_function("sequential_1MiB", |bench| {
        bench.iter(|| {
            let r = f.log.read(next, ReadLimits::bytes(1 << 20)).expect("read");
            match r.slice {
                Some(s) => {
                    next = s.next_offset();
                    black_box(s.read_to_vec().expect("bytes"))
                }
                None => {
                    next = Offset(0);
                    Vec::new()
                }
            }
        })
    });
    // What a Fetch adds before it sends a slice: every batch's framing and CRC-32C checked
    // (through a mapping of the page-cached file) the first time; on later passes over the
    // closed segments, the look-up that finds them checked, unchanged and cached.
    let mut next = Offset(0);
    g.bench_function("sequential_1MiB_verify", |bench| {
        bench.iter(|| {
            let r = f.log.read(next, ReadLimits::bytes(1 << 20)).expect("read");
            match r.slice {
                Some(s) => {
                    next = s.next_offset();
                    s.verify().expect("intact");
                }
                None => next = Offset(0),
            }
        })
    });
    g.finish();
}

criterion_group!(benches, validation, append_os, append_always, reads);
criterion_main!(benches);
