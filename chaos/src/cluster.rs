//! The cluster under test: N `strata` processes on 127.0.0.1, the first three both broker and
//! controller (the quorum), any others brokers only, with a [`Proxy`] on every directed link between two nodes (controller quorum,
//! heartbeats and replica fetches all pass through them). Clients reach the brokers directly,
//! so a node cut off from its peers is still reachable by clients, as in a real partition.

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_testkit::{Proxy, free_port};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How many nodes (the first ones) are quorum voters; the others are brokers only, so that one
/// can be lost for good without the quorum's majority.
pub const VOTERS: usize = 3;

/// One node: its process (absent while killed) and how to start it again.
#[derive(Debug)]
pub struct Node {
    /// Node id (1-based).
    pub id: usize,
    /// Kafka port (PLAINTEXT: the harness's own checks, and the clients without secure links).
    pub port: u16,
    /// The clients' port: with secure links a SASL_SSL listener, else `port`.
    pub client_port: u16,
    /// Metrics port.
    pub metrics_port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
    child: Option<Child>,
    paused: bool,
    args: Vec<String>,
    log: PathBuf,
    /// The data directory is a tmpfs of this many bytes (mounted by this tool).
    small_disk: Option<u64>,
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    /// Nodes; `nodes[i]` has id `i + 1`.
    pub nodes: Vec<Node>,
    /// Proxies by (from, to) node id: [controller link, Kafka link].
    links: HashMap<(usize, usize), [Proxy; 2]>,
    /// The secured links' files and settings (`--secure-links`).
    secure: Option<crate::secure::SecureLinks>,
}

impl Cluster {
    /// Starts `n` nodes under `dir` with `settings` (`key=value`, each broker's `--set`).
    /// With `small_disk`, node `n`'s data directory is a tmpfs of that many bytes, so that
    /// its disk can be filled; `Err` if it cannot be mounted.
    pub fn start(
        bin: &Path,
        dir: &Path,
        n: usize,
        settings: &[String],
        small_disk: Option<u64>,
        secure_links: bool,
    ) -> Result<Cluster, BoxError> {
        std::fs::create_dir_all(dir)?;
        let kafka: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
        let ctrl: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
        // The inter-broker listener: the client port, or with secure links a SASL_SSL one.
        let internal: Vec<u16> = if secure_links {
            (0..n).map(|_| free_port()).collect::<Result<_, _>>()?
        } else {
            kafka.clone()
        };
        let secure = if secure_links {
            Some(crate::secure::prepare(dir)?)
        } else {
            None
        };
        // The clients' listener: SASL_SSL with secure links.
        let client: Vec<u16> = if secure_links {
            (0..n).map(|_| free_port()).collect::<Result<_, _>>()?
        } else {
            kafka.clone()
        };
        let mut links = HashMap::new();
        for from in 1..=n {
            for to in (1..=n).filter(|t| *t != from) {
                links.insert(
                    (from, to),
                    [Proxy::start(ctrl[to - 1])?, Proxy::start(internal[to - 1])?],
                );
            }
        }
        let mut nodes = Vec::new();
        let quorum = n.min(VOTERS);
        for id in 1..=n {
            let voters: Vec<String> = (1..=quorum)
                .map(|to| {
                    let port = if to == id {
                        ctrl[to - 1]
                    } else {
                        links[&(id, to)][0].port
                    };
                    format!("{to}@127.0.0.1:{port}")
                })
                .collect();
            let overrides: Vec<String> = (1..=n)
                .filter(|to| *to != id)
                .map(|to| format!("{to}@127.0.0.1:{}", links[&(id, to)][1].port))
                .collect();
            let metrics_port = free_port()?;
            let data_dir = dir.join(format!("node-{id}"));
            let mut args: Vec<String> = vec![
                "serve".into(),
                "--node-id".into(),
                id.to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", kafka[id - 1]),
                "--data-dir".into(),
                data_dir.to_string_lossy().into_owned(),
            ];
            let mut set = vec![
                format!("metrics.listen=127.0.0.1:{metrics_port}"),
                format!("controller.quorum.voters={}", voters.join(",")),
                format!("inter.broker.address.overrides={}", overrides.join(",")),
            ];
            if id > quorum {
                set.push("process.roles=broker".into());
            }
            if let Some(secure) = &secure {
                set.extend(secure.settings(kafka[id - 1], internal[id - 1], client[id - 1]));
            }
            set.extend(settings.iter().cloned());
            for s in set {
                args.push("--set".into());
                args.push(s);
            }
            let small_disk = small_disk.filter(|_| id == n);
            if let Some(bytes) = small_disk {
                mount_tmpfs(&data_dir, bytes)?;
            }
            nodes.push(Node {
                id,
                port: kafka[id - 1],
                client_port: client[id - 1],
                metrics_port,
                data_dir,
                child: None,
                paused: false,
                args,
                log: dir.join(format!("node-{id}.log")),
                small_disk,
            });
        }
        let mut c = Cluster {
            bin: bin.to_path_buf(),
            nodes,
            links,
            secure,
        };
        if let Some(secure) = &c.secure {
            // The brokers' SCRAM login, in each voter's data directory before the first start:
            // the first active controller adds it to the quorum.
            for node in c.nodes.iter().take(quorum) {
                secure.add_scram_users(&c.bin, &node.data_dir)?;
            }
        }
        for id in 1..=n {
            c.start_node(id)?;
        }
        Ok(c)
    }

    fn node(&mut self, id: usize) -> Result<&mut Node, BoxError> {
        self.nodes
            .get_mut(id.wrapping_sub(1))
            .ok_or_else(|| format!("no node {id}").into())
    }

    /// Starts node `id` (after a kill) and waits until its Kafka port accepts connections.
    pub fn start_node(&mut self, id: usize) -> Result<(), BoxError> {
        let bin = self.bin.clone();
        let node = self.node(id)?;
        if node.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let child = Command::new(&bin)
            .args(&node.args)
            .env(
                "STRATA_LOG",
                std::env::var("STRATA_CHAOS_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // Each fdatasync leaves the synced length beside the file, for `lose_unsynced`.
            .env("STRATA_FAULT_RECORD_SYNCED", "1")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        node.child = Some(child);
        node.paused = false;
        let port = node.port;
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("node {id} did not listen within 60 s").into());
            }
            if let Some(Ok(Some(status))) = self.node(id)?.child.as_mut().map(Child::try_wait) {
                return Err(format!("node {id} exited at start: {status}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // A connect proves only that something listens there: the node must still be running
        // (one that failed to bind its port exits at once).
        std::thread::sleep(Duration::from_millis(100));
        if let Some(Ok(Some(status))) = self.node(id)?.child.as_mut().map(Child::try_wait) {
            return Err(format!("node {id} exited at start: {status}").into());
        }
        Ok(())
    }

    /// SIGKILLs node `id` (resuming it first if paused, so the kill lands).
    pub fn kill(&mut self, id: usize) -> Result<(), BoxError> {
        let node = self.node(id)?;
        if let Some(mut child) = node.child.take() {
            child.kill()?;
            child.wait()?;
        }
        node.paused = false;
        Ok(())
    }

    fn signal(&mut self, id: usize, sig: libc::c_int) -> Result<(), BoxError> {
        let node = self.node(id)?;
        if let Some(child) = &node.child {
            let pid = libc::pid_t::try_from(child.id())?;
            // SAFETY: kill(2) with a pid this process spawned and has not reaped.
            if unsafe { libc::kill(pid, sig) } != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            node.paused = sig == libc::SIGSTOP;
        }
        Ok(())
    }

    /// SIGSTOPs node `id`.
    pub fn pause(&mut self, id: usize) -> Result<(), BoxError> {
        self.signal(id, libc::SIGSTOP)
    }

    /// SIGCONTs node `id`.
    pub fn resume(&mut self, id: usize) -> Result<(), BoxError> {
        self.signal(id, libc::SIGCONT)
    }

    /// Whether node `id` runs (started, not killed, not paused).
    pub fn is_up(&self, id: usize) -> bool {
        self.nodes
            .get(id.wrapping_sub(1))
            .is_some_and(|n| n.child.is_some() && !n.paused)
    }

    /// Cuts every link between a node of `a` and a node of `b`, both ways.
    pub fn cut_between(&self, a: &[usize], b: &[usize]) {
        for ((from, to), ps) in &self.links {
            if (a.contains(from) && b.contains(to)) || (b.contains(from) && a.contains(to)) {
                ps.iter().for_each(Proxy::cut);
            }
        }
    }

    /// Cuts the replica fetches of `followers` from `leader` (controller links stay up).
    pub fn cut_replication(&self, leader: usize, followers: &[usize]) {
        for f in followers {
            if let Some(ps) = self.links.get(&(*f, leader)) {
                ps[1].cut();
            }
        }
    }

    /// Holds back everything `from` sends to `to` (requests on `from`'s links to `to`,
    /// responses on `to`'s links to `from`); `to` still reaches `from`.
    pub fn stall_one_way(&self, from: usize, to: usize) {
        if let Some(ps) = self.links.get(&(from, to)) {
            ps.iter().for_each(|p| p.stall(true));
        }
        if let Some(ps) = self.links.get(&(to, from)) {
            ps.iter().for_each(|p| p.stall(false));
        }
    }

    /// Adds `delay` to every link of node `id`.
    pub fn slow(&self, id: usize, delay: Duration) {
        for ((from, to), ps) in &self.links {
            if *from == id || *to == id {
                ps.iter().for_each(|p| p.slow(delay));
            }
        }
    }

    /// Heals every link.
    pub fn heal_links(&self) {
        self.links.values().flatten().for_each(Proxy::heal);
    }

    /// Where the workload's clients connect, and how (with secure links: SASL_SSL with
    /// SCRAM-SHA-512).
    pub fn client_endpoint(&self) -> crate::clients::Endpoint {
        crate::clients::Endpoint {
            bootstrap: self
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.client_port))
                .collect::<Vec<_>>()
                .join(","),
            security: self
                .secure
                .as_ref()
                .map(crate::secure::SecureLinks::client_settings)
                .unwrap_or_default(),
        }
    }

    /// Bootstrap servers of every node.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node that reports itself the active controller, if one does now.
    pub fn active_controller(&self) -> Option<usize> {
        self.nodes
            .iter()
            .filter(|n| self.is_up(n.id))
            .find(|n| {
                strata_testkit::metric(
                    &format!("127.0.0.1:{}", n.metrics_port),
                    "strata_controller_active",
                ) == Some(1.0)
            })
            .map(|n| n.id)
    }

    /// Fills node `id`'s (small) disk: a ballast file takes every free byte.
    pub fn fill_disk(&self, id: usize) -> Result<(), BoxError> {
        let node = self
            .nodes
            .get(id.wrapping_sub(1))
            .ok_or_else(|| format!("no node {id}"))?;
        if node.small_disk.is_none() {
            return Err(format!("node {id} has no small disk to fill").into());
        }
        let f = std::fs::File::create(node.data_dir.join("ballast"))?;
        use std::os::fd::AsRawFd;
        // fallocate takes the space for real (tmpfs reserves the pages): grow the ballast in
        // 1 MiB, then 4 KiB steps until the disk refuses.
        let mut len: i64 = 0;
        for step in [1i64 << 20, 4096] {
            loop {
                // SAFETY: a valid descriptor and in-range lengths.
                if unsafe { libc::fallocate(f.as_raw_fd(), 0, len, step) } != 0 {
                    break;
                }
                len += step;
            }
        }
        let free = free_bytes(&node.data_dir)?;
        eprintln!(
            "strata-chaos: node {id}'s disk filled ({len} bytes of ballast, {free} bytes left)"
        );
        Ok(())
    }

    /// Frees node `id`'s disk again (removes the ballast).
    pub fn empty_disk(&self, id: usize) -> Result<(), BoxError> {
        if let Some(node) = self.nodes.get(id.wrapping_sub(1)) {
            let _ = std::fs::remove_file(node.data_dir.join("ballast"));
        }
        Ok(())
    }

    /// Flips one byte in the middle of the oldest closed segment of the partition of `topic`
    /// with the most segments on node `id`, which must be stopped. Returns the file and
    /// position, or `None` when no partition has a closed segment yet.
    pub fn corrupt_segment(
        &self,
        id: usize,
        topic: &str,
    ) -> Result<Option<(PathBuf, u64)>, BoxError> {
        let node = self
            .nodes
            .get(id.wrapping_sub(1))
            .ok_or_else(|| format!("no node {id}"))?;
        let mut best: Option<Vec<PathBuf>> = None;
        for entry in std::fs::read_dir(&node.data_dir)? {
            let path = entry?.path();
            let is_topic = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(topic))
                .is_some_and(|rest| rest.starts_with('-'));
            if !is_topic {
                continue;
            }
            let mut logs: Vec<PathBuf> = std::fs::read_dir(&path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            logs.sort();
            if best.as_ref().is_none_or(|b| logs.len() > b.len()) {
                best = Some(logs);
            }
        }
        let Some(logs) = best.filter(|l| l.len() >= 2) else {
            return Ok(None);
        };
        let file = logs[0].clone();
        let len = std::fs::metadata(&file)?.len();
        if len < 128 {
            return Ok(None);
        }
        let pos = len / 2;
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)?;
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, pos)?;
        b[0] ^= 0xff;
        f.write_all_at(&b, pos)?;
        f.sync_data()?;
        Ok(Some((file, pos)))
    }

    /// Drops what node `id` (stopped) wrote but did not fdatasync, as a power loss would:
    /// every segment file is cut to a length between its last synced length (recorded by the
    /// broker beside it) and its current length, at random (a torn tail); a file never synced
    /// may lose everything. Returns the bytes dropped.
    pub fn lose_unsynced(&self, id: usize, rng: &mut impl rand::Rng) -> Result<u64, BoxError> {
        let node = self
            .nodes
            .get(id.wrapping_sub(1))
            .ok_or_else(|| format!("no node {id}"))?;
        let mut dropped = 0u64;
        let mut dirs = vec![node.data_dir.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "log") {
                    continue;
                }
                let len = std::fs::metadata(&path)?.len();
                let mut side = path.file_name().unwrap_or_default().to_os_string();
                side.push(".synced");
                let synced = std::fs::read_to_string(path.with_file_name(side))
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    .min(len);
                if synced < len {
                    let keep = rng.random_range(synced..=len);
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(keep)?;
                    dropped += len - keep;
                }
            }
        }
        Ok(dropped)
    }

    /// Empties node `id`'s (stopped) data directory as a replaced disk would leave it: every
    /// partition, its identity (`meta.properties`) and its configs go; the quorum's own log
    /// (`__cluster_metadata`, on a disk of its own in a real deployment) stays. Returns the
    /// entries removed.
    pub fn wipe(&self, id: usize) -> Result<usize, BoxError> {
        let node = self
            .nodes
            .get(id.wrapping_sub(1))
            .ok_or_else(|| format!("no node {id}"))?;
        let mut removed = 0;
        for entry in std::fs::read_dir(&node.data_dir)? {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n == "__cluster_metadata") {
                continue;
            }
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
            removed += 1;
        }
        Ok(removed)
    }

    /// Runs `strata ARGS...` (the binary under test) to completion; its stderr on failure.
    pub fn strata(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Kills every process (at the end of a run) and unmounts small disks.
    pub fn stop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if n.small_disk.take().is_some() {
                let _ = unmount(&n.data_dir);
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cstring(p: &Path) -> Result<std::ffi::CString, BoxError> {
    use std::os::unix::ffi::OsStrExt;
    Ok(std::ffi::CString::new(p.as_os_str().as_bytes())?)
}

/// Mounts a tmpfs of `bytes` at `dir` (root only).
fn mount_tmpfs(dir: &Path, bytes: u64) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir)?;
    let target = cstring(dir)?;
    let fstype = std::ffi::CString::new("tmpfs")?;
    let opts = std::ffi::CString::new(format!("size={bytes}"))?;
    // SAFETY: valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mounting a {bytes}-byte tmpfs at {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        )
        .into());
    }
    Ok(())
}

fn unmount(dir: &Path) -> Result<(), BoxError> {
    let target = cstring(dir)?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// Free bytes of the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Result<u64, BoxError> {
    let path = cstring(dir)?;
    // SAFETY: statvfs fills the struct; zeroed is a valid initial value for it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid path and a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}
