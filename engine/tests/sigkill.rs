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

fn example_binary() -> PathBuf {
    // Integration tests live in target/<profile>/deps; examples in target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("examples").join("durable_appender");
    assert!(
        bin.exists(),
        "{bin:?} is missing: build it with `cargo build -p strata-engine --examples` (the test command does)"
    );
    bin
}

/// Runs the child until it has reported at least `min_durable` more records durable, then kills
/// it with SIGKILL. Returns the largest durable end it reported.
fn run_and_kill(dir: &std::path::Path, min_lines: usize) -> i64 {
    let mut child = Command::new(example_binary())
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
