//! Real child processes (the engine's examples) on the real disk, killed with SIGKILL.
//!
//! A real child process (the `durable_appender` example) appends with flush=always on the real
//! disk and reports each durable offset on stdout; it is killed with SIGKILL mid-stream, several
//! times over the same directory. After each kill the log is reopened (recovering from the
//! unclean shutdown) and every record the child reported durable must be there, with its value.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_engine::io::{Backend, open_backend};
use strata_engine::{CommitPipeline, Log, LogConfig, Offset, ReadLimits, batch};

fn example_binary(name: &str) -> PathBuf {
    // Integration tests live in target/<profile>/deps; examples in target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "{bin:?} is missing: build it with `cargo build -p strata-engine --examples` (the test command does)"
    );
    bin
}

/// Runs the child until it has reported at least `min_durable` more records durable, then kills
/// it with SIGKILL. Returns the largest durable end it reported.
fn run_and_kill(dir: &std::path::Path, min_lines: usize) -> i64 {
    let mut child = Command::new(example_binary("durable_appender"))
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut durable = 0i64;
    let mut seen = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < min_lines {
        let line = lines.next().expect("child output").unwrap();
        if let Some(n) = line.strip_prefix("durable ") {
            durable = durable.max(n.parse().unwrap());
            seen += 1;
        }
        assert!(Instant::now() < deadline, "child too slow");
    }
    // SIGKILL: no destructor, no clean shutdown marker, no final flush.
    kill_9(child.id());
    // Lines already written to the pipe before the kill still count as reported.
    for line in lines.map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("durable ") {
            durable = durable.max(n.parse().unwrap());
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    durable
}

fn kill_9(pid: u32) {
    let rc = Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(rc.success());
}

#[test]
fn every_batch_reported_durable_survives_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("topic-0");
    let mut reported = 0i64;
    for round in 0..4 {
        let durable = run_and_kill(&dir, 200 + round * 150);
        assert!(durable > reported, "round {round}: the child made progress");
        reported = durable;

        let pipeline =
            CommitPipeline::start(open_backend(Backend::Auto).unwrap(), Default::default())
                .unwrap();
        let log = Log::open(
            &dir,
            LogConfig {
                segment_bytes: 256 << 10,
                ..LogConfig::default()
            },
            &pipeline.handle(),
        )
        .unwrap();
        assert!(!log.recovery_report().clean_shutdown);
        let leo = log.log_end_offset().0;
        assert!(
            leo >= reported,
            "round {round}: reported durable up to {reported}, log ends at {leo}"
        );
        // Every record is there with its value, densely from 0.
        let mut next = 0i64;
        while next < leo {
            let s = log
                .read(Offset(next), ReadLimits::bytes(1 << 20))
                .unwrap()
                .slice
                .unwrap();
            let bytes = s.read_to_vec().unwrap();
            for (pos, h) in
                batch::validate_all(&bytes, batch::Origin::Replication, usize::MAX).unwrap()
            {
                for r in batch::records(&bytes[pos..pos + h.size()]).unwrap() {
                    let off = h.base_offset.0 + i64::from(r.offset_delta);
                    assert_eq!(off, next, "dense offsets");
                    let want = format!("record-{off}");
                    assert!(
                        r.value.unwrap().starts_with(want.as_bytes()),
                        "value at {off}"
                    );
                    next += 1;
                }
            }
        }
        assert_eq!(next, leo);
        drop(log);
        drop(pipeline);
    }
}

/// What one run of the `work_queue` example reported: its start line, the largest `enqueued`
/// and `done` it printed, and its exit status.
struct QueueRun {
    start_jobs: i64,
    start_next: i64,
    enqueued: i64,
    done: i64,
    success: bool,
}

/// Runs the `work_queue` example on `dir`: to the end with `jobs`, or until it has printed
/// `kill_after` more `done` lines and then SIGKILL.
fn run_work_queue(dir: &std::path::Path, jobs: Option<i64>, kill_after: usize) -> QueueRun {
    let mut cmd = Command::new(example_binary("work_queue"));
    cmd.arg(dir);
    if let Some(n) = jobs {
        cmd.arg(n.to_string());
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let start = lines.next().expect("a start line").unwrap();
    let field = |name: &str| -> i64 {
        let rest = start.split(&format!("{name}=")).nth(1).expect(&start);
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let mut run = QueueRun {
        start_jobs: field("jobs"),
        start_next: field("next"),
        enqueued: 0,
        done: 0,
        success: false,
    };
    let note = |line: &str, run: &mut QueueRun| {
        if let Some(n) = line.strip_prefix("enqueued ") {
            run.enqueued = run.enqueued.max(n.parse().unwrap());
        } else if let Some(n) = line.strip_prefix("done ") {
            run.done = run.done.max(n.parse().unwrap());
            return true;
        }
        false
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    if jobs.is_none() {
        while seen < kill_after {
            let line = lines.next().expect("child output").unwrap();
            seen += usize::from(note(&line, &mut run));
            assert!(Instant::now() < deadline, "work_queue too slow");
        }
        kill_9(child.id());
    }
    for line in lines.map_while(Result::ok) {
        note(&line, &mut run);
    }
    run.success = child.wait().unwrap().success();
    run
}

/// The `work_queue` example (jobs with keys, headers and zstd compression in one log, progress
/// in another), killed with SIGKILL over and over: each restart resumes at or after the last
/// progress it reported durable, no job it reported enqueued is lost, and run to the end it
/// leaves every job in the queue, in order, with its key, header and value.
#[test]
fn the_work_queue_example_loses_no_job_to_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("queue");
    let (mut enqueued, mut done) = (0i64, 0i64);
    for round in 0..4 {
        let run = run_work_queue(&dir, None, 25 + round * 10);
        assert!(!run.success, "round {round}: killed, not finished");
        assert!(
            run.start_jobs >= enqueued && run.start_next >= done,
            "round {round}: reported {enqueued} enqueued and {done} done, restarted at jobs={} next={}",
            run.start_jobs,
            run.start_next
        );
        assert!(run.done > done, "round {round}: the worker made progress");
        enqueued = enqueued.max(run.enqueued);
        done = run.done;
    }
    let wanted = done + 25;
    let last = run_work_queue(&dir, Some(wanted), 0);
    assert!(last.success, "the last run finishes");
    assert!(
        last.start_next >= done && last.done == wanted,
        "reported {done} done, the last run started at {} and ended at {} of {wanted}",
        last.start_next,
        last.done
    );

    let pipeline = CommitPipeline::open(Backend::Auto, Default::default()).unwrap();
    let jobs = Log::open(dir.join("jobs"), LogConfig::default(), &pipeline.handle()).unwrap();
    assert!(
        jobs.recovery_report().clean_shutdown,
        "the last run closed its logs"
    );
    let end = jobs.log_end_offset().0;
    assert!(end >= wanted && end >= enqueued);
    let mut next = 0i64;
    while next < end {
        for job in jobs
            .read_records(Offset(next), ReadLimits::bytes(1 << 20))
            .unwrap()
        {
            assert_eq!(job.offset, Offset(next), "dense offsets");
            assert_eq!(job.value.as_deref(), Some(format!("job {next}").as_bytes()));
            assert_eq!(
                job.key.as_deref(),
                Some(format!("customer-{}", next % 7).as_bytes())
            );
            let kind = if next % 2 == 0 { "even" } else { "odd" };
            assert_eq!(job.headers.len(), 1);
            assert_eq!(job.headers[0].key, "kind");
            assert_eq!(job.headers[0].value.as_deref(), Some(kind.as_bytes()));
            next += 1;
        }
    }
    assert_eq!(next, end);
}
