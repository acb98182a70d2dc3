//! A durable work queue on strata-engine, the kind of program another project would write.
//!
//! Jobs go into one log, zstd-compressed, each with a key and a `kind` header; the worker's
//! progress (the offset of the next job to do) goes into a second log. Both are fdatasynced
//! before anything is reported, so a restart after `kill -9` resumes where the last durable
//! progress record says: every job is done at least once and none is lost.
//!
//! `work_queue DIR [JOBS]` works until JOBS jobs are done (default: forever), enqueueing ten at
//! a time when the queue runs dry. It prints `enqueued N` once jobs below N are durable and
//! `done N` once progress N is durable. Uses only the crate's default public API.

use strata_engine::{
    Backend, BatchBuilder, CommitPipeline, Compression, LeaderEpoch, Log, LogConfig, Offset,
    ReadLimits, Record,
};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: work_queue DIR [JOBS]")?);
    let wanted: i64 = args.next().map_or(Ok(i64::MAX), |s| s.parse())?;
    let pipeline = CommitPipeline::open(Backend::Auto, Default::default())?;
    let jobs = Log::open(dir.join("jobs"), LogConfig::default(), &pipeline.handle())?;
    let progress = Log::open(
        dir.join("progress"),
        LogConfig::default(),
        &pipeline.handle(),
    )?;

    let mut next = last_progress(&progress)?;
    println!("start jobs={} next={next}", jobs.log_end_offset());
    while next < wanted {
        let end = jobs.log_end_offset().0;
        if next >= end {
            let batch = BatchBuilder::new()
                .compression(Compression::Zstd)
                .records((end..end + 10).map(|n| {
                    let kind = if n % 2 == 0 { "even" } else { "odd" };
                    Record::new(format!("job {n}"))
                        .key(format!("customer-{}", n % 7))
                        .header("kind", kind)
                }))
                .build()?;
            jobs.append(batch, LeaderEpoch::default())?
                .completion
                .wait_durable()?;
            println!("enqueued {}", end + 10);
        }
        let batch = jobs.read_records(Offset(next), ReadLimits::bytes(64 << 10))?;
        for job in batch.into_iter().take((wanted - next) as usize) {
            // The work: here, checking that each job is the one enqueued at its offset.
            let expected = format!("job {}", job.offset);
            if job.value.as_deref() != Some(expected.as_bytes()) || job.headers.len() != 1 {
                return Err(format!("job at {} is {job:?}", job.offset).into());
            }
            next = job.offset.0 + 1;
            let done = BatchBuilder::new()
                .record(Record::new(next.to_string()))
                .build()?;
            progress
                .append(done, LeaderEpoch::default())?
                .completion
                .wait_durable()?;
            println!("done {next}");
        }
    }
    jobs.close()?;
    progress.close()?;
    Ok(())
}

/// The offset of the next job to do: the value of the last progress record, 0 if none.
fn last_progress(progress: &Log) -> Result<i64, Error> {
    let end = progress.log_end_offset().0;
    if end == 0 {
        return Ok(0);
    }
    let last = progress.read_records(Offset(end - 1), ReadLimits::bytes(1 << 20))?;
    let value = last
        .last()
        .and_then(|r| r.value.clone())
        .ok_or("empty progress")?;
    Ok(std::str::from_utf8(&value)?.parse()?)
}
