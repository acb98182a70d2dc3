//! Quick start: open a log, append a few batches with flush=always (acknowledged after
//! fdatasync), read them back from an offset inside a batch, and close cleanly.
//!
//! Run with `cargo run -p strata-engine --example quickstart [DIR]`.

use strata_engine::io::{Backend, open_backend};
use strata_engine::{CommitPipeline, LeaderEpoch, Log, LogConfig, Offset, ReadLimits, batch};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("strata-quickstart"));
    let storage = open_backend(Backend::Auto)?;
    println!("storage backend: {}", storage.name());
    let pipeline = CommitPipeline::start(storage, Default::default())?;
    let log = Log::open(
        dir.join("greetings-0"),
        LogConfig::default(),
        &pipeline.handle(),
    )?;
    println!("opened at log end offset {}", log.log_end_offset());

    let mut last = None;
    for i in 0..3 {
        let key = format!("key-{i}");
        let records = batch::build(
            Offset(0),
            1_700_000_000_000,
            &[
                (Some(key.as_bytes()), Some(b"hello")),
                (Some(key.as_bytes()), Some(b"world")),
            ],
        );
        let info = log.append(records.as_slice().into(), LeaderEpoch(0))?;
        info.completion.wait_durable()?;
        println!(
            "batch {i}: offsets {}..={} durable",
            info.first_offset, info.last_offset
        );
        last = Some(info.last_offset);
    }
    if let Some(last) = last {
        // Reading from the last offset returns the whole batch that holds it.
        let read = log.read(last, ReadLimits::bytes(1 << 20))?;
        if let Some(slice) = read.slice {
            println!(
                "read from {last}: {} bytes at position {} (batch {}..{})",
                slice.len(),
                slice.position(),
                slice.first_offset(),
                slice.next_offset()
            );
        }
    }
    println!("recovery point {}", log.recovery_point());
    log.close()?;
    Ok(())
}
