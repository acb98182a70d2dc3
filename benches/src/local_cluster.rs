//! Brokers this tool starts itself: `strata` processes on 127.0.0.1 in a temporary directory,
//! one standalone broker or a cluster of combined broker+controller nodes, each with its
//! Prometheus endpoint.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One `strata` process; killed when dropped.
pub struct Node {
    /// The process.
    pub child: Child,
    /// Kafka port.
    pub port: u16,
    /// `/metrics` address.
    pub metrics: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `strata` binary: `--strata-bin`, or the one next to this tool.
pub fn strata_bin(given: Option<&PathBuf>) -> Result<PathBuf, BoxError> {
    let bin = match given {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("strata"),
    };
    if !bin.exists() {
        return Err(format!(
            "{bin:?} not found: build it (cargo build --release --bin strata) or pass --strata-bin"
        )
        .into());
    }
    Ok(bin)
}

/// Starts `n` nodes under `dir` with `extra` settings: one standalone broker for `n == 1`,
/// otherwise a cluster whose every node is a broker and a controller.
pub fn start_nodes(
    bin: &Path,
    dir: &Path,
    n: usize,
    extra: &[&str],
) -> Result<Vec<Node>, BoxError> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
    let ctrl: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
    let voters = ctrl
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let metrics = format!("127.0.0.1:{}", free_port()?);
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--node-id")
            .arg((i + 1).to_string())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.join(format!("node-{}", i + 1)))
            .args(["--set", &format!("metrics.listen={metrics}")])
            .env(
                "STRATA_LOG",
                std::env::var("STRATA_BENCH_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdout(Stdio::piped());
        if n > 1 {
            cmd.args(["--set", &format!("controller.quorum.voters={voters}")]);
        }
        for e in extra {
            cmd.args(["--set", e]);
        }
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening on") => break,
                Some(Ok(_)) => {}
                _ => return Err("strata exited before listening".into()),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        nodes.push(Node {
            child,
            port: *port,
            metrics,
        });
    }
    Ok(nodes)
}

/// Bootstrap servers of `nodes`, leaving out index `skip`.
pub fn bootstrap(nodes: &[Node], skip: Option<usize>) -> String {
    nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(_, n)| format!("127.0.0.1:{}", n.port))
        .collect::<Vec<_>>()
        .join(",")
}
