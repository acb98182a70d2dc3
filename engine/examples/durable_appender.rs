//! Appends records with flush=always until killed, printing `durable N` once every record below
//! offset N is acknowledged as durable. The SIGKILL test runs it as a child process and checks
//! after the kill that everything it reported durable is in the reopened log.
//!
//! Record at offset `o` holds the value `record-o` padded to 100 bytes, so a reader can check
//! contents without any other state. Usage: `durable_appender DIR [MAX_RECORDS]`.

use std::io::Write;

use strata_engine::{
    AppendInfo, Backend, BatchBuilder, CommitPipeline, LeaderEpoch, Log, LogConfig, Offset, Record,
};

/// The value stored at `offset`.
fn value(offset: i64) -> Vec<u8> {
    let mut v = format!("record-{offset}").into_bytes();
    v.resize(100, b'.');
    v
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: durable_appender DIR [MAX_RECORDS]")?;
    let max: i64 = args.next().map_or(Ok(i64::MAX), |s| s.parse())?;
    let pipeline = CommitPipeline::open(Backend::Auto, Default::default())?;
    let config = LogConfig {
        segment_bytes: 256 << 10,
        ..LogConfig::default()
    };
    let log = Log::open(&dir, config, &pipeline.handle())?;
    let mut next = log.log_end_offset().0;
    let mut out = std::io::stdout().lock();
    writeln!(out, "start {next}")?;
    out.flush()?;
    // Keep several appends in flight so that group commit has something to group.
    let mut in_flight: std::collections::VecDeque<AppendInfo> = Default::default();
    while next < max {
        let count = 1 + (next % 3);
        let batch = BatchBuilder::new()
            .records((next..next + count).map(|o| Record::new(value(o))))
            .build()?;
        let info = log.append(batch, LeaderEpoch(0))?;
        assert_eq!(info.first_offset, Offset(next), "offsets are dense");
        next += count;
        in_flight.push_back(info);
        if in_flight.len() >= 8 {
            let done = in_flight.pop_front().ok_or("empty queue")?;
            done.completion.wait_durable()?;
            writeln!(out, "durable {}", done.last_offset.0 + 1)?;
            out.flush()?;
        }
    }
    while let Some(done) = in_flight.pop_front() {
        done.completion.wait_durable()?;
        writeln!(out, "durable {}", done.last_offset.0 + 1)?;
    }
    log.close()?;
    Ok(())
}
