//! The `strata` binary: `strata serve` runs a broker.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use strata_server::config::BrokerConfig;

/// See `strata_server::alloc`: a hostile array length must not abort the broker.
#[global_allocator]
static ALLOCATOR: strata_server::alloc::NoReserveLarge = strata_server::alloc::NoReserveLarge;

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "Strata: a Kafka-compatible, durable commit log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a broker (by default a single combined node with its data in ./data, listening on
    /// 127.0.0.1:9092).
    Serve {
        /// A TOML file of Kafka-style properties (`"log.dirs" = "./data"`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides one property: `--set log.retention.ms=60000`. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Shorthand for `--set log.dirs=DIR`.
        #[arg(long)]
        data_dir: Option<String>,
        /// Shorthand for `--set listeners=PLAINTEXT://ADDR`.
        #[arg(long)]
        listen: Option<String>,
        /// Shorthand for `--set node.id=ID`.
        #[arg(long)]
        node_id: Option<i32>,
    },
    /// Starts a local cluster of combined broker+controller nodes on 127.0.0.1, one process
    /// each, to try replication and failover by hand (kill one with `kill -9`).
    DevCluster {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// Kafka port of node 1; node N listens on base + N - 1.
        #[arg(long, default_value_t = 9092)]
        base_port: u16,
        /// Controller port of node 1; node N uses base + N - 1.
        #[arg(long, default_value_t = 19093)]
        controller_base_port: u16,
        /// Parent of the nodes' data directories (`node-1`, ...).
        #[arg(long, default_value = "./data-cluster")]
        data_dir: PathBuf,
        /// Extra `--set KEY=VALUE` for every node. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Operates a running cluster through any of its brokers: balance it, drain brokers,
    /// remove brokers that are gone.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// SCRAM credentials in a standalone broker's data directory, stored salted and hashed
    /// (never the password), as Kafka's storage tool creates the first users before a start:
    /// `strata scram add --data-dir ./data 'SCRAM-SHA-512=[name=alice,password=alice-secret]'`.
    /// Run it while the broker is stopped.
    Scram {
        #[command(subcommand)]
        command: ScramCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ScramCommand {
    /// Adds or replaces a user's credential for one mechanism.
    Add {
        /// The data directory (`log.dirs`).
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// `SCRAM-SHA-256=[name=alice,password=alice-secret]` (Kafka's `--add-scram`; an
        /// `iterations=` entry is optional, 4096 at least).
        credential: String,
    },
    /// Removes a user's credential for one mechanism.
    Delete {
        /// The data directory (`log.dirs`).
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// The mechanism: SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long)]
        mechanism: String,
        /// The user.
        #[arg(long)]
        user: String,
    },
}

/// The data directory's lock: credentials change only while no broker owns the directory
/// (a running broker would not see the change, and two writers would race).
fn lock_for_scram(data_dir: &std::path::Path) -> anyhow::Result<strata_engine::io::DirLock> {
    strata_engine::io::lock_dir(data_dir).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (stop the broker that owns it before changing credentials)",
            data_dir.display()
        )
    })
}

fn scram(command: ScramCommand) -> anyhow::Result<()> {
    use strata_server::sasl::{Mechanism, ScramCredential, ScramStore, parse_add_scram};
    match command {
        ScramCommand::Add {
            data_dir,
            credential,
        } => {
            let (mechanism, user, password, iterations) =
                parse_add_scram(&credential).map_err(anyhow::Error::msg)?;
            std::fs::create_dir_all(&data_dir)?;
            let _lock = lock_for_scram(&data_dir)?;
            let store = ScramStore::open(&data_dir).map_err(anyhow::Error::msg)?;
            let c = ScramCredential::new(mechanism, &password, iterations);
            store
                .set(&user, mechanism, Some(c))
                .map_err(anyhow::Error::msg)?;
            println!("strata: {} credential of {user:?} stored", mechanism.name());
        }
        ScramCommand::Delete {
            data_dir,
            mechanism,
            user,
        } => {
            let m = Mechanism::parse(&mechanism)
                .filter(|m| *m != Mechanism::Plain)
                .ok_or_else(|| anyhow::anyhow!("{mechanism}: SCRAM-SHA-256 or SCRAM-SHA-512"))?;
            let _lock = lock_for_scram(&data_dir)?;
            let store = ScramStore::open(&data_dir).map_err(anyhow::Error::msg)?;
            if !store.set(&user, m, None).map_err(anyhow::Error::msg)? {
                anyhow::bail!("{user:?} has no {} credential", m.name());
            }
            println!("strata: {} credential of {user:?} removed", m.name());
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Plans a balanced, rack-aware placement over the live brokers and prints it (Kafka's
    /// reassignment JSON); `--execute` moves the replicas. A broker joins by starting it and
    /// running this; one leaves by `--exclude`-ing it, then `unregister`.
    Rebalance {
        /// Any broker(s) of the cluster, `host:port[,host:port...]`.
        #[arg(long)]
        bootstrap_server: String,
        /// Brokers to drain: they hold nothing once the plan is carried out.
        #[arg(long, value_delimiter = ',')]
        exclude: Vec<i32>,
        /// Starts the moves (without it, only prints the plan).
        #[arg(long)]
        execute: bool,
        /// Waits until every move is done.
        #[arg(long)]
        wait: bool,
        /// Caps the moves' replication traffic at this many bytes per second per broker
        /// (KIP-73), lifted when `--wait` sees them done.
        #[arg(long)]
        throttle: Option<u64>,
    },
    /// Moves one partition to the replicas given (the first is the preferred leader), or
    /// cancels the move under way.
    Reassign {
        /// Any broker(s) of the cluster, `host:port[,host:port...]`.
        #[arg(long)]
        bootstrap_server: String,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The partition.
        #[arg(long)]
        partition: i32,
        /// The target replicas, `1,2,3`.
        #[arg(long, value_delimiter = ',', required_unless_present = "cancel")]
        replicas: Vec<i32>,
        /// Cancels the move under way instead.
        #[arg(long, conflicts_with = "replicas")]
        cancel: bool,
    },
    /// Removes a broker that is gone for good from the metadata; its replicas are re-created
    /// on the live brokers.
    Unregister {
        /// Any broker(s) of the cluster, `host:port[,host:port...]`.
        #[arg(long)]
        bootstrap_server: String,
        /// The broker's id.
        #[arg(long)]
        broker: i32,
    },
}

/// Runs `nodes` child processes of this binary as one cluster until Ctrl-C or SIGTERM, then
/// stops them with SIGTERM (controlled shutdown).
fn dev_cluster(
    nodes: u16,
    base_port: u16,
    controller_base_port: u16,
    data_dir: PathBuf,
    set: Vec<String>,
) -> anyhow::Result<()> {
    anyhow::ensure!(nodes >= 1, "--nodes must be at least 1");
    let exe = std::env::current_exe()?;
    let voters: Vec<String> = (0..nodes)
        .map(|i| format!("{}@127.0.0.1:{}", i + 1, controller_base_port + i))
        .collect();
    let voters = voters.join(",");
    let rf = nodes.min(3);
    let mut children = Vec::new();
    for i in 0..nodes {
        let id = i + 1;
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("serve")
            .arg("--node-id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", base_port + i))
            .arg("--data-dir")
            .arg(data_dir.join(format!("node-{id}")))
            .arg("--set")
            .arg(format!("controller.quorum.voters={voters}"))
            .arg("--set")
            .arg(format!("default.replication.factor={rf}"))
            .arg("--set")
            .arg(format!("offsets.topic.replication.factor={rf}"))
            .arg("--set")
            .arg(format!("min.insync.replicas={}", rf.min(2)));
        for kv in &set {
            cmd.arg("--set").arg(kv);
        }
        let child = cmd.spawn()?;
        println!(
            "strata dev-cluster: node {id} (pid {}) on 127.0.0.1:{}, data in {:?}",
            child.id(),
            base_port + i,
            data_dir.join(format!("node-{id}"))
        );
        children.push(child);
    }
    println!(
        "strata dev-cluster: bootstrap servers 127.0.0.1:{base_port}; Ctrl-C stops every node"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<_, anyhow::Error>(())
    })?;
    for c in &children {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    for mut c in children {
        let _ = c.wait();
    }
    Ok(())
}

fn build_config(
    config: Option<PathBuf>,
    set: Vec<String>,
    data_dir: Option<String>,
    listen: Option<String>,
    node_id: Option<i32>,
) -> anyhow::Result<BrokerConfig> {
    let mut c = BrokerConfig::default();
    if let Some(path) = config {
        c.load_file(&path)?;
    }
    if let Some(d) = data_dir {
        c.set("log.dirs", &d)?;
    }
    if let Some(l) = listen {
        c.set("listeners", &l)?;
    }
    if let Some(n) = node_id {
        c.set("node.id", &n.to_string())?;
    }
    for kv in set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--set expects KEY=VALUE, got {kv:?}"))?;
        c.set(k.trim(), v.trim())?;
    }
    c.validate()?;
    Ok(c)
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            set,
            data_dir,
            listen,
            node_id,
        } => build_config(config, set, data_dir, listen, node_id).and_then(|c| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(strata_server::server::run(c))
        }),
        Command::DevCluster {
            nodes,
            base_port,
            controller_base_port,
            data_dir,
            set,
        } => dev_cluster(nodes, base_port, controller_base_port, data_dir, set),
        Command::Scram { command } => scram(command),
        Command::Cluster { command } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| {
                rt.block_on(async {
                    match command {
                        ClusterCommand::Rebalance {
                            bootstrap_server,
                            exclude,
                            execute,
                            wait,
                            throttle,
                        } => {
                            let options = strata_server::cluster_tool::RebalanceOptions {
                                exclude,
                                execute,
                                wait,
                                throttle,
                            };
                            strata_server::cluster_tool::rebalance(&bootstrap_server, &options)
                                .await
                        }
                        ClusterCommand::Reassign {
                            bootstrap_server,
                            topic,
                            partition,
                            replicas,
                            cancel,
                        } => {
                            strata_server::cluster_tool::reassign(
                                &bootstrap_server,
                                &topic,
                                partition,
                                (!cancel).then_some(replicas),
                            )
                            .await
                        }
                        ClusterCommand::Unregister {
                            bootstrap_server,
                            broker,
                        } => {
                            strata_server::cluster_tool::unregister(&bootstrap_server, broker).await
                        }
                    }
                })
            }),
    };
    if let Err(e) = result {
        eprintln!("strata: {e:#}");
        std::process::exit(1);
    }
}
