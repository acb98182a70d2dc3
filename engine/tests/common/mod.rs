//! Shared test support: a harness per storage backend, batch builders, and helpers that read a
//! log back as a list of (offset, value) records.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use strata_engine::io::sim::SimStorage;
use strata_engine::io::{Storage, std_fs::StdStorage, uring::UringStorage};
use strata_engine::{
    BatchBuilder, CommitPipeline, Compression, LeaderEpoch, Log, LogConfig, Offset, ReadLimits,
    Record, RecordReader, batch,
};

/// The backends the shared suite runs on.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Std,
    Uring,
    Sim,
}

pub struct Harness {
    pub kind: Kind,
    pub storage: Arc<dyn Storage>,
    pub sim: Option<SimStorage>,
    pub pipeline: Option<CommitPipeline>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Harness {
    pub fn new(kind: Kind) -> Harness {
        Harness::with_pipeline(kind, strata_engine::PipelineConfig::default())
    }

    /// A harness whose pipeline has `config` (restarts use the default one).
    pub fn with_pipeline(kind: Kind, config: strata_engine::PipelineConfig) -> Harness {
        let (storage, sim, tmp, dir): (Arc<dyn Storage>, _, _, PathBuf) = match kind {
            Kind::Std => {
                let t = tempfile::tempdir().unwrap();
                let d = t.path().join("topic-0");
                (Arc::new(StdStorage::new()), None, Some(t), d)
            }
            Kind::Uring => {
                let t = tempfile::tempdir().unwrap();
                let d = t.path().join("topic-0");
                let s = UringStorage::new().expect(
                    "io_uring is required for the io_uring suite (kernel.io_uring_disabled=0)",
                );
                (Arc::new(s), None, Some(t), d)
            }
            Kind::Sim => {
                let s = SimStorage::new();
                (
                    Arc::new(s.clone()),
                    Some(s),
                    None,
                    PathBuf::from("/sim/topic-0"),
                )
            }
        };
        let pipeline = CommitPipeline::start(storage.clone(), config).unwrap();
        Harness {
            kind,
            storage,
            sim,
            pipeline: Some(pipeline),
            dir,
            _tmp: tmp,
        }
    }

    pub fn open(&self, config: LogConfig) -> Log {
        Log::open(&self.dir, config, &self.pipeline.as_ref().unwrap().handle()).unwrap()
    }

    pub fn try_open(&self, config: LogConfig) -> strata_engine::Result<Log> {
        Log::open(&self.dir, config, &self.pipeline.as_ref().unwrap().handle())
    }

    /// Stops the pipeline (finishing queued writes) and starts a new one: a process restart.
    pub fn restart_pipeline(&mut self) {
        drop(self.pipeline.take());
        self.pipeline =
            Some(CommitPipeline::start(self.storage.clone(), Default::default()).unwrap());
    }

    pub fn stats(&self) -> Arc<strata_engine::PipelineStats> {
        self.pipeline.as_ref().unwrap().stats().clone()
    }
}

/// A batch of records with values `value(i)`.
pub fn batch_of(values: &[Vec<u8>], timestamp: i64) -> BytesMut {
    let recs: Vec<batch::KeyValue<'_>> =
        values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    BytesMut::from(batch::build(Offset(0), timestamp, &recs).as_slice())
}

pub fn keyed_batch(records: &[(&[u8], &[u8])], timestamp: i64) -> BytesMut {
    let recs: Vec<batch::KeyValue<'_>> =
        records.iter().map(|(k, v)| (Some(*k), Some(*v))).collect();
    BytesMut::from(batch::build(Offset(0), timestamp, &recs).as_slice())
}

pub fn value(offset_hint: u64, len: usize) -> Vec<u8> {
    let mut v = format!("v{offset_hint}-").into_bytes();
    v.resize(len.max(v.len()), b'x');
    v
}

/// Reads the whole log from `from` as (offset, value) pairs, checking every batch's CRC.
/// Every record from `from` to the end, through the zero-copy read (whole batches, CRC-checked
/// as a consumer would) and the engine's record reader (decompressed, from exactly `from`).
pub fn read_all(log: &Log, from: Offset) -> Vec<(Offset, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let r = log.read(next, ReadLimits::bytes(64 << 10)).unwrap();
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec().unwrap();
        assert_eq!(bytes.len(), slice.len());
        for record in RecordReader::new(bytes, next) {
            let record = record.unwrap();
            assert!(record.offset >= next && record.offset < slice.next_offset());
            out.push((record.offset, record.value.map(|v| v.to_vec())));
        }
        assert!(slice.next_offset() > next, "reads make progress");
        next = slice.next_offset();
    }
    out
}

/// A batch of `values` compressed with `codec`, every record at `timestamp`.
pub fn compressed_batch_of(values: &[Vec<u8>], timestamp: i64, codec: Compression) -> BytesMut {
    BatchBuilder::new()
        .compression(codec)
        .timestamp(timestamp)
        .records(values.iter().map(|v| Record::new(v.clone())))
        .build()
        .unwrap()
}

pub fn append_values(log: &Log, values: &[Vec<u8>], timestamp: i64) -> strata_engine::AppendInfo {
    log.append(batch_of(values, timestamp), LeaderEpoch(0))
        .unwrap()
}
