//! Test support: starts the real `strata` binary on a free port in a temporary directory, and
//! stops it with SIGTERM (graceful) or SIGKILL.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod kafka;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker process.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    extra: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

/// A port that is free now, below the kernel's ephemeral range (`strata_testkit::free_port`).
pub fn free_port() -> u16 {
    strata_testkit::free_port().expect("a free port")
}

impl Broker {
    /// Starts a broker with `extra` `--set` properties.
    pub fn start(extra: &[&str]) -> Broker {
        Broker::start_on(free_port(), extra)
    }

    /// Starts a broker listening on `port`.
    pub fn start_on(port: u16, extra: &[&str]) -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut b = Broker {
            child: None,
            port,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _tmp: Some(tmp),
        };
        b.spawn();
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--set", "group.initial.rebalance.delay.ms=0"])
            .env(
                "STRATA_LOG",
                std::env::var("STRATA_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for e in &self.extra {
            cmd.arg("--set").arg(e);
        }
        let mut child = cmd.spawn().expect("start strata");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening on") => break,
                Some(Ok(_)) => {}
                _ => panic!("strata exited before listening"),
            }
            assert!(Instant::now() < deadline, "strata did not start");
        }
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let c = self.child.take().expect("running");
        let pid = c.id();
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap();
        let mut c = c;
        c.wait().unwrap()
    }

    /// Starts the broker again on the same directory and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Fetches `/metrics` from `metrics_port` and returns the value of `name` (summed over
    /// label sets).
    pub fn metric(metrics_port: u16, name: &str) -> f64 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}
pub mod certs;
pub mod cluster;
pub mod history;
pub mod wire;

/// Runs `python3` with `args` (a script under `tests/python/`, by [`python_script`], or `-c`
/// and code, then its arguments); panics with its output unless it succeeds; its stdout.
/// `scripts/test` installs the clients the scripts use (kafka-python).
pub fn python<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = Command::new("python3")
        .args(args)
        .output()
        .expect("python3 runs (scripts/test installs kafka-python)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python3 failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The path of `tests/python/<name>`.
pub fn python_script(name: &str) -> String {
    format!("{}/tests/python/{name}", env!("CARGO_MANIFEST_DIR"))
}
