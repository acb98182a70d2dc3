//! Arbitrary bytes as the only segment of a log, opened after an unclean shutdown on the
//! simulated disk: recovery never panics; it either reports corruption or yields a log whose
//! every batch validates, whose segment file was cut to exactly those batches, and which accepts
//! a new append at its log end offset.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_engine::io::sim::SimStorage;
use strata_engine::{
    CommitPipeline, LeaderEpoch, Log, LogConfig, LogError, Offset, ReadLimits, batch,
};

fuzz_target!(|data: &[u8]| {
    let sim = SimStorage::new();
    let dir = Path::new("/fuzz/topic-0");
    sim.put_file(&dir.join("00000000000000000000.log"), data);
    let pipeline = CommitPipeline::start(std::sync::Arc::new(sim.clone()), Default::default())
        .expect("pipeline");
    let config = LogConfig {
        segment_index_bytes: 4096,
        ..LogConfig::default()
    };
    let log = match Log::open(dir, config, &pipeline.handle()) {
        Ok(log) => log,
        Err(LogError::Corruption { .. }) => return,
        Err(e) => panic!("unexpected error {e}"),
    };
    let leo = log.log_end_offset();
    let mut next = log.log_start_offset();
    let mut total = 0usize;
    while next < leo {
        let Some(slice) = log
            .read(next, ReadLimits::bytes(1 << 20))
            .expect("read")
            .slice
        else {
            break;
        };
        let bytes = slice.read_to_vec().expect("bytes");
        let hs = batch::validate_all(&bytes, batch::Origin::Replication, usize::MAX)
            .expect("recovered batches validate");
        assert!(!hs.is_empty());
        total += bytes.len();
        next = slice.next_offset();
    }
    let file = sim
        .contents(&dir.join("00000000000000000000.log"))
        .expect("segment");
    assert_eq!(
        file.len(),
        total,
        "the segment holds exactly the recovered batches"
    );
    let b = batch::build(Offset(0), 0, &[(None, Some(b"after recovery"))]);
    let info = log
        .append(bytes::BytesMut::from(b.as_slice()), LeaderEpoch(0))
        .expect("append");
    assert_eq!(info.first_offset, leo);
});
