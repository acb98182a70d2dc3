//! Brokers this tool starts itself: `strata` processes on 127.0.0.1 in a temporary directory,
//! one standalone broker or a cluster of combined broker+controller nodes, each with its
//! Prometheus endpoint.

use std::io::{BufRead, BufReader};
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
    /// How it was started, so that it can be started again on the same data directory.
    bin: PathBuf,
    args: Vec<String>,
}

impl Node {
    /// SIGKILLs the process (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) -> Result<(), BoxError> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Starts the process again with its settings and data directory, once it is listening.
    pub fn restart(&mut self) -> Result<(), BoxError> {
        self.child = spawn(&self.bin, &self.args)?;
        Ok(())
    }
}

/// Spawns `strata` and returns once it reports that it is listening; its output is drained.
fn spawn(bin: &Path, args: &[String]) -> Result<Child, BoxError> {
    let mut child = Command::new(bin)
        .args(args)
        .env(
            "STRATA_LOG",
            std::env::var("STRATA_BENCH_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("listening on") => break,
            Some(Ok(_)) => {}
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("strata exited before listening".into());
            }
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok(child)
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `n` nodes under `dir` with `extra` settings: one standalone broker for `n == 1`,
/// otherwise a cluster whose every node is a broker and a controller.
pub fn start_nodes(
    bin: &Path,
    dir: &Path,
    n: usize,
    extra: &[&str],
) -> Result<Vec<Node>, BoxError> {
    let ports: Vec<u16> = (0..n)
        .map(|_| strata_testkit::free_port())
        .collect::<Result<_, _>>()?;
    let ctrl: Vec<u16> = (0..n)
        .map(|_| strata_testkit::free_port())
        .collect::<Result<_, _>>()?;
    let voters = ctrl
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let metrics = format!("127.0.0.1:{}", strata_testkit::free_port()?);
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--node-id".into(),
            (i + 1).to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            dir.join(format!("node-{}", i + 1))
                .to_string_lossy()
                .into_owned(),
            "--set".into(),
            format!("metrics.listen={metrics}"),
        ];
        if n > 1 {
            args.push("--set".into());
            args.push(format!("controller.quorum.voters={voters}"));
        }
        for e in extra {
            args.push("--set".into());
            args.push((*e).to_string());
        }
        let child = spawn(bin, &args)?;
        nodes.push(Node {
            child,
            port: *port,
            metrics,
            bin: bin.to_path_buf(),
            args,
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
