//! Test support for clusters: N real `strata` processes on 127.0.0.1 (combined broker and
//! controller nodes, or brokers with a separate controller quorum), and optionally a
//! fault-injecting TCP proxy ([`Proxy`]) on every directed link between nodes, so a node can be cut off
//! from the others while clients still reach it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use strata_testkit::Proxy;

use super::{Broker, free_port};

/// How to lay the cluster out.
#[derive(Default)]
pub struct Layout {
    /// Broker processes (node ids 1..=brokers).
    pub brokers: usize,
    /// Separate controller-only processes (node ids 101..); 0: the brokers are the quorum.
    pub controllers: usize,
    /// Put a cuttable proxy on every link between nodes (combined layout only).
    pub proxied: bool,
    /// Extra `--set` for every broker.
    pub extra: Vec<String>,
    /// How many of the brokers (the first ones) are also quorum voters, when there are no
    /// separate controllers; the rest run `process.roles=broker`. 0: all of them.
    pub voters: usize,
    /// `broker.rack` of each broker, in node order (none when empty).
    pub racks: Vec<String>,
    /// Extra `--set` for each broker, in node order (its own listeners' ports, say).
    pub per_node: Vec<Vec<String>>,
    /// The PLAINTEXT port of each broker, in node order (free ports when empty).
    pub ports: Vec<u16>,
    /// Extra `--set` for node 1 only, that lay out no listeners (unlike `per_node`, they
    /// leave `STRATA_TEST_SECURE_LINKS` in force).
    pub first_node: Vec<String>,
}

/// A running cluster.
pub struct Cluster {
    /// Broker processes; `brokers[i]` is node `i + 1`.
    pub brokers: Vec<Broker>,
    /// Controller-only processes.
    pub controllers: Vec<Broker>,
    /// Metrics port of each broker.
    pub metrics_ports: Vec<u16>,
    /// Proxies by (from node, to node), for controller and Kafka traffic.
    links: HashMap<(usize, usize), Vec<Proxy>>,
    /// `controller.quorum.voters` as an unproxied node sees it.
    voters: String,
    /// `Layout::extra`, for brokers added later.
    extra: Vec<String>,
    /// With `STRATA_TEST_SECURE_LINKS` set: the certificates every link uses.
    secure: Option<SecureLinks>,
}

/// `STRATA_TEST_SECURE_LINKS=1` runs every cluster test (but those that lay out listeners of
/// their own) with the cluster's own links on mutual TLS: an SSL inter-broker listener beside
/// the PLAINTEXT one clients use, and an SSL controller listener. The failover tests then show
/// that secured links fail over as plaintext ones do.
pub struct SecureLinks {
    dir: tempfile::TempDir,
}

impl SecureLinks {
    fn from_env() -> Option<SecureLinks> {
        std::env::var_os("STRATA_TEST_SECURE_LINKS")?;
        let dir = tempfile::tempdir().unwrap();
        let ca = super::certs::ca("strata test cluster CA");
        let node = super::certs::leaf(
            &ca,
            "strata-node",
            &["127.0.0.1", "localhost"],
            &[
                super::certs::Purpose::ServerAuth,
                super::certs::Purpose::ClientAuth,
            ],
        );
        std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
        std::fs::write(dir.path().join("node.pem"), super::certs::keystore(&node)).unwrap();
        Some(SecureLinks { dir })
    }

    /// Settings of every node: the controller listener on mutual TLS.
    fn node_settings(&self) -> Vec<String> {
        let d = self.dir.path().display();
        vec![
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:SSL,CONTROLLER:SSL".into(),
            "controller.listener.names=CONTROLLER".into(),
            format!("ssl.keystore.location={d}/node.pem"),
            format!("ssl.truststore.location={d}/ca.pem"),
            "ssl.client.auth=required".into(),
        ]
    }

    /// Settings of a broker: clients on `kafka`, replication over SSL on `internal`.
    fn broker_settings(&self, kafka: u16, internal: u16) -> Vec<String> {
        let mut out = self.node_settings();
        out.push(format!(
            "listeners=PLAINTEXT://127.0.0.1:{kafka},INTERNAL://127.0.0.1:{internal}"
        ));
        out.push("inter.broker.listener.name=INTERNAL".into());
        out
    }
}

/// Settings every test cluster uses.
pub const DEFAULTS: &[&str] = &[
    "min.insync.replicas=2",
    "default.replication.factor=3",
    "offsets.topic.replication.factor=3",
    "offsets.topic.num.partitions=4",
];

impl Cluster {
    /// Three combined nodes.
    pub fn start3() -> Cluster {
        Cluster::start(Layout {
            brokers: 3,
            ..Layout::default()
        })
    }

    pub fn start(layout: Layout) -> Cluster {
        let n = layout.brokers;
        let kafka: Vec<u16> = if layout.ports.is_empty() {
            (0..n).map(|_| free_port()).collect()
        } else {
            layout.ports.clone()
        };
        let metrics: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let secure = if layout.per_node.is_empty() {
            SecureLinks::from_env()
        } else {
            None
        };
        // The inter-broker listener: the PLAINTEXT one, or with secure links an SSL one.
        let internal: Vec<u16> = if secure.is_some() {
            (0..n).map(|_| free_port()).collect()
        } else {
            kafka.clone()
        };
        let mut links: HashMap<(usize, usize), Vec<Proxy>> = HashMap::new();
        let mut controllers = Vec::new();
        assert!(
            !(layout.proxied && layout.voters > 0),
            "proxied layouts make every broker a voter"
        );
        let combined_voters = if layout.voters == 0 {
            n
        } else {
            layout.voters.min(n)
        };
        let voter_ports: Vec<(usize, u16)> = if layout.controllers > 0 {
            (0..layout.controllers)
                .map(|i| (101 + i, free_port()))
                .collect()
        } else {
            (0..combined_voters).map(|i| (i + 1, free_port())).collect()
        };
        if layout.proxied {
            for from in 1..=n {
                for to in 1..=n {
                    if from != to {
                        let ctrl = voter_ports[to - 1].1;
                        links.insert(
                            (from, to),
                            vec![
                                Proxy::start(ctrl).unwrap(),
                                Proxy::start(internal[to - 1]).unwrap(),
                            ],
                        );
                    }
                }
            }
        }
        // The voters as node `me` sees them (through its proxies, if any).
        let voters_for = |me: usize| -> String {
            voter_ports
                .iter()
                .map(|(id, port)| {
                    let port = match links.get(&(me, *id)) {
                        Some(p) => p[0].port,
                        None => *port,
                    };
                    format!("{id}@127.0.0.1:{port}")
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        for (id, _) in voter_ports.iter().filter(|_| layout.controllers > 0) {
            let mut args = vec![
                format!("node.id={id}"),
                "process.roles=controller".to_string(),
                format!("controller.quorum.voters={}", voters_for(*id)),
            ];
            if let Some(secure) = &secure {
                args.extend(secure.node_settings());
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            controllers.push(Broker::start_on(free_port(), &refs));
        }
        let mut brokers = Vec::new();
        for i in 0..n {
            let id = i + 1;
            let mut args: Vec<String> = DEFAULTS.iter().map(|s| s.to_string()).collect();
            args.push(format!("node.id={id}"));
            args.push(format!("controller.quorum.voters={}", voters_for(id)));
            args.push(format!("metrics.listen=127.0.0.1:{}", metrics[i]));
            if layout.controllers > 0 || id > combined_voters {
                args.push("process.roles=broker".into());
            }
            if let Some(secure) = &secure {
                args.extend(secure.broker_settings(kafka[i], internal[i]));
            }
            if layout.proxied {
                let overrides: Vec<String> = (1..=n)
                    .filter(|to| *to != id)
                    .map(|to| format!("{to}@127.0.0.1:{}", links[&(id, to)][1].port))
                    .collect();
                args.push(format!(
                    "inter.broker.address.overrides={}",
                    overrides.join(",")
                ));
            }
            args.extend(layout.extra.iter().cloned());
            if let Some(rack) = layout.racks.get(i) {
                args.push(format!("broker.rack={rack}"));
            }
            if let Some(own) = layout.per_node.get(i) {
                args.extend(own.iter().cloned());
            }
            if i == 0 {
                args.extend(layout.first_node.iter().cloned());
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            brokers.push(Broker::start_on(kafka[i], &refs));
        }
        let voters = voters_for(0);
        let c = Cluster {
            brokers,
            controllers,
            metrics_ports: metrics,
            links,
            voters,
            extra: layout.extra.clone(),
            secure,
        };
        c.wait_live(n);
        c
    }

    /// Starts one more broker (`process.roles=broker`, the next node id, the layout's extra
    /// settings plus `extra`) that joins the running cluster; returns its node id once the
    /// metadata lists it.
    pub fn add_broker(&mut self, extra: &[&str]) -> usize {
        self.add_broker_on(free_port(), extra)
    }

    /// [`Cluster::add_broker`] with its PLAINTEXT listener on `port`.
    pub fn add_broker_on(&mut self, port: u16, extra: &[&str]) -> usize {
        assert!(self.links.is_empty(), "not in a proxied layout");
        let id = self.brokers.len() + 1;
        let metrics = free_port();
        let mut args: Vec<String> = DEFAULTS.iter().map(|s| s.to_string()).collect();
        args.push(format!("node.id={id}"));
        args.push(format!("controller.quorum.voters={}", self.voters));
        args.push(format!("metrics.listen=127.0.0.1:{metrics}"));
        args.push("process.roles=broker".into());
        if let Some(secure) = &self.secure {
            args.extend(secure.broker_settings(port, free_port()));
        }
        args.extend(self.extra.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.brokers.push(Broker::start_on(port, &refs));
        self.metrics_ports.push(metrics);
        let running = self
            .brokers
            .iter_mut()
            .map(|b| b.is_running())
            .filter(|r| *r)
            .count();
        self.wait_live(running);
        id
    }

    /// Waits until the metadata lists `n` live brokers.
    pub fn wait_live(&self, n: usize) {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .unwrap();
        wait_for(
            &format!("{n} live brokers"),
            Duration::from_secs(60),
            || {
                client
                    .fetch_metadata(None, Duration::from_secs(2))
                    .ok()
                    .filter(|md| md.brokers().len() == n)
            },
        );
    }

    /// `controller.quorum.voters` as a node outside the cluster would set it.
    pub fn voters(&self) -> &str {
        &self.voters
    }

    /// Bootstrap servers of every broker.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| b.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Bootstrap servers of every broker but `node`.
    pub fn bootstrap_without(&self, node: usize) -> String {
        self.brokers
            .iter()
            .enumerate()
            .filter(|(i, _)| i + 1 != node)
            .map(|(_, b)| b.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn broker(&mut self, node: usize) -> &mut Broker {
        &mut self.brokers[node - 1]
    }

    /// The node that reports itself the active controller (combined layout), waiting for one.
    pub fn active_controller(&mut self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            for (i, port) in self.metrics_ports.clone().into_iter().enumerate() {
                if self.brokers[i].is_running()
                    && Broker::metric(port, "strata_controller_active") == 1.0
                {
                    return Some(i + 1);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Cuts `node` off from every other node (both directions, controller and replication
    /// traffic). Clients still reach it.
    pub fn isolate(&self, node: usize) {
        for ((from, to), ps) in &self.links {
            if *from == node || *to == node {
                ps.iter().for_each(Proxy::cut);
            }
        }
    }

    /// Cuts only the replication traffic from `follower` to `leader` (its fetches), leaving
    /// every controller link up: the follower stays registered and heartbeating but falls
    /// behind.
    pub fn cut_replication(&self, follower: usize, leader: usize) {
        if let Some(ps) = self.links.get(&(follower, leader)) {
            ps[1].cut();
        }
    }

    /// The `.log` segment files of a partition replica, in offset order.
    pub fn segment_files(&self, node: usize, dir_name: &str) -> Vec<std::path::PathBuf> {
        let dir = self.brokers[node - 1].data_dir().join(dir_name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        files.sort();
        files
    }

    /// The bytes of every `.log` segment of a partition replica, in offset order.
    pub fn replica_bytes(&self, node: usize, dir_name: &str) -> Vec<u8> {
        self.segment_files(node, dir_name)
            .iter()
            .flat_map(|f| std::fs::read(f).unwrap())
            .collect()
    }

    /// Undoes `isolate`.
    pub fn heal(&self) {
        self.links.values().flatten().for_each(Proxy::heal);
    }
}

/// The ids of the brokers the cluster's metadata lists, sorted.
pub fn broker_ids(bootstrap: &str) -> Vec<i32> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let client: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let md = client
        .fetch_metadata(None, Duration::from_secs(5))
        .expect("metadata");
    let mut ids: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    ids.sort();
    ids
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
