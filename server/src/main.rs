//! The `strata` binary: `strata serve` runs a broker.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use strata_server::admin::client::AdminClient;
use strata_server::admin::output::Format;
use strata_server::admin::settings::ClientSettings;
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
        /// Web console of node 1 (node N serves one on base + N - 1); 0 turns them off.
        #[arg(long, default_value_t = 8080)]
        console_base_port: u16,
        /// Extra `--set KEY=VALUE` for every node. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Topics: create, list, describe, alter-config, add-partitions, delete, produce, consume.
    Topic {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: TopicCommand,
    },
    /// Consumer groups: list, describe, lag, reset-offsets, delete.
    Group {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// ACLs: list, create, delete (`kafka-acls.sh`).
    Acl {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: AclCommand,
    },
    /// SCRAM users: list, set, delete (the password is salted and hashed before it is sent).
    User {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Client quotas: list, set.
    Quota {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: QuotaCommand,
    },
    /// Transactions: list, describe, and the producers of a topic's partitions.
    Txn {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: TxnCommand,
    },
    /// The cluster: info and health; balance it, drain brokers, remove brokers that are gone.
    Cluster {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Prints a shell completion script: `strata completions bash > /etc/bash_completion.d/strata`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
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

/// How the admin commands reach the cluster and print.
#[derive(clap::Args, Debug, Clone)]
struct ClientArgs {
    /// Any broker(s) of the cluster, `host:port[,host:port...]` (works with Kafka too).
    #[arg(
        long,
        global = true,
        env = "STRATA_BOOTSTRAP_SERVER",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap_server: String,
    /// Client properties (`security.protocol`, `sasl.mechanism`, `sasl.username`,
    /// `sasl.password` or `sasl.jaas.config`, `ssl.ca.location` / `ssl.truststore.location`,
    /// `ssl.certificate.location` + `ssl.key.location`), as Kafka's tools take them.
    #[arg(long, global = true)]
    command_config: Option<PathBuf>,
    /// One client property, `KEY=VALUE`, over those of --command-config. Repeatable.
    #[arg(short = 'X', global = true, value_name = "KEY=VALUE")]
    property: Vec<String>,
    /// Tables for people, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Seconds one request may take.
    #[arg(long, global = true, default_value_t = 15)]
    timeout: u64,
}

impl ClientArgs {
    fn client(&self) -> anyhow::Result<AdminClient> {
        let settings = ClientSettings::load(self.command_config.as_deref(), &self.property)?;
        let mut c = AdminClient::new(
            &self.bootstrap_server,
            settings.link_security()?,
            "strata-admin",
        );
        c.set_timeout(std::time::Duration::from_secs(self.timeout.max(1)));
        Ok(c)
    }
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Creates a topic.
    Create {
        /// The topic.
        topic: String,
        /// Partitions (default: the cluster's num.partitions).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replicas per partition (default: the cluster's default.replication.factor).
        #[arg(long, short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config, `KEY=VALUE` (`cleanup.policy=compact`). Repeatable.
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Only checks that the topic could be created.
        #[arg(long)]
        validate_only: bool,
    },
    /// Lists topics with partitions, replication, health, records and size.
    List {
        /// Includes internal topics (`__consumer_offsets`, `__transaction_state`).
        #[arg(long)]
        internal: bool,
    },
    /// Shows a topic's partitions (leader, replicas, ISR, offsets, size, status) and configs.
    /// Without a topic, or with a filter: the partitions of every topic (or the topic) that
    /// match, as `kafka-topics.sh --describe` filters them.
    Describe {
        /// The topic (default: every topic).
        topic: Option<String>,
        /// Shows every config, not only those set on the topic.
        #[arg(long)]
        all_configs: bool,
        /// Only partitions with fewer in-sync replicas than replicas.
        #[arg(long)]
        under_replicated_partitions: bool,
        /// Only partitions without a leader.
        #[arg(long)]
        unavailable_partitions: bool,
        /// Only partitions below their topic's min.insync.replicas.
        #[arg(long)]
        under_min_isr_partitions: bool,
    },
    /// Sets or removes topic configs.
    AlterConfig {
        /// The topic.
        topic: String,
        /// `KEY=VALUE` to set. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A key to remove (back to the broker's default). Repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Raises a topic's partition count.
    AddPartitions {
        /// The topic.
        topic: String,
        /// The new total number of partitions.
        #[arg(long)]
        count: i32,
    },
    /// Deletes topics and their data.
    Delete {
        /// The topics.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Produces one record per line of standard input.
    Produce {
        /// The topic.
        topic: String,
        /// Every record to this partition (default: by key, as Kafka's partitioner; else spread).
        #[arg(long, short = 'p')]
        partition: Option<i32>,
        /// Splits each line into key and value at the first SEP.
        #[arg(long, short = 'K', value_name = "SEP")]
        key_separator: Option<String>,
        /// acks: all (-1), 1 or 0.
        #[arg(long, default_value = "all", value_parser = parse_acks)]
        acks: i16,
    },
    /// Prints records (values, one per line; `--format json` for everything).
    Consume {
        /// The topic.
        topic: String,
        /// Only this partition.
        #[arg(long, short = 'p')]
        partition: Option<i32>,
        /// Starts at the log start (default: only new records).
        #[arg(long, conflicts_with = "offset")]
        from_beginning: bool,
        /// Starts at this offset.
        #[arg(long)]
        offset: Option<i64>,
        /// Stops after this many records (with a progress bar on a terminal).
        #[arg(long, short = 'n')]
        count: Option<u64>,
        /// Stops at the end offsets of the moment it started.
        #[arg(long, short = 'e')]
        exit: bool,
        /// Prints `key<SEP>value`.
        #[arg(long, value_name = "SEP", num_args = 0..=1, default_missing_value = "\t")]
        print_key: Option<String>,
        /// Reads only committed transactions' records.
        #[arg(long)]
        read_committed: bool,
    },
}

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => Err(format!("{s}: all, 1 or 0")),
    }
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// Lists every group of the cluster with its state and coordinator.
    List,
    /// Shows a group's state, members and assignments, and its lag per partition.
    Describe {
        /// The group.
        group: String,
    },
    /// Shows a group's lag per partition and in total.
    Lag {
        /// The group.
        group: String,
    },
    /// Moves a group's committed offsets (the group must have no members). Prints the plan;
    /// `--execute` commits it.
    ResetOffsets {
        /// The group.
        group: String,
        /// Only these topics (default: every topic the group has offsets for). Repeatable.
        #[arg(long)]
        topic: Vec<String>,
        /// To the log start.
        #[arg(long, group = "target")]
        to_earliest: bool,
        /// To the log end (skip everything not yet read).
        #[arg(long, group = "target")]
        to_latest: bool,
        /// To the first record at or after this UTC time (`2026-12-06T07:00:00`).
        #[arg(long, group = "target", value_name = "TIME")]
        to_datetime: Option<String>,
        /// By this many records from the committed offset (negative: back).
        #[arg(long, group = "target", allow_hyphen_values = true, value_name = "N")]
        shift_by: Option<i64>,
        /// To this offset.
        #[arg(long, group = "target", value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// Commits the new offsets (without it, only prints them).
        #[arg(long)]
        execute: bool,
    },
    /// Deletes groups (with no members) and their committed offsets.
    Delete {
        /// The groups.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// An ACL as `acl create|delete` name it.
#[derive(clap::Args, Debug)]
struct AclArgs {
    /// The resource: `topic:NAME`, `group:NAME`, `cluster`, `transactional-id:NAME`.
    #[arg(long)]
    resource: String,
    /// The resource name is a prefix.
    #[arg(long)]
    prefixed: bool,
    /// The principal, `User:NAME`.
    #[arg(long)]
    principal: String,
    /// The client host (`*`: any).
    #[arg(long, default_value = "*")]
    host: String,
    /// An operation: read, write, create, delete, alter, describe, describe-configs,
    /// alter-configs, idempotent-write, cluster-action, all. Repeatable.
    #[arg(long = "operation", required = true)]
    operations: Vec<String>,
    /// Deny instead of allow.
    #[arg(long)]
    deny: bool,
}

impl AclArgs {
    fn spec(self) -> strata_server::admin::security::AclSpec {
        strata_server::admin::security::AclSpec {
            resource: self.resource,
            prefixed: self.prefixed,
            principal: self.principal,
            host: self.host,
            operations: self.operations,
            deny: self.deny,
        }
    }
}

#[derive(Subcommand, Debug)]
enum AclCommand {
    /// Lists ACLs (all, or those on a resource or of a principal).
    List {
        /// Only this resource (`topic:NAME`, `cluster`, ...).
        #[arg(long)]
        resource: Option<String>,
        /// Only this principal.
        #[arg(long)]
        principal: Option<String>,
    },
    /// Creates ACLs (one per operation).
    Create(AclArgs),
    /// Deletes the ACLs that match exactly.
    Delete(AclArgs),
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Lists SCRAM users (all, or those named).
    List {
        /// Users.
        users: Vec<String>,
    },
    /// Sets a user's SCRAM credential (the password from --password or one line of stdin).
    Set {
        /// The user.
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// The password (default: read from standard input, which keeps it out of `ps`).
        #[arg(long)]
        password: Option<String>,
        /// PBKDF2 iterations (4096-16384).
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
    },
    /// Deletes a user's SCRAM credential.
    Delete {
        /// The user.
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
    },
}

#[derive(Subcommand, Debug)]
enum QuotaCommand {
    /// Lists every quota.
    List,
    /// Sets or removes one entity's quotas.
    Set {
        /// The entity: `user=alice`, `client-id=app`, `user=alice,client-id=app`, `user=`
        /// (the default user), `ip=10.0.0.1`.
        entity: String,
        /// `producer_byte_rate=1048576`, `consumer_byte_rate=...`, `request_percentage=...`,
        /// `controller_mutation_rate=...`, `connection_creation_rate=...`. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A quota key to remove. Repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum TxnCommand {
    /// Lists transactional ids with their state (`--state Ongoing` to find open ones).
    List {
        /// Only ids in these states. Repeatable.
        #[arg(long)]
        state: Vec<String>,
    },
    /// Shows one transactional id: state, producer, timeout, the open transaction's partitions.
    Describe {
        /// The transactional id.
        transactional_id: String,
    },
    /// Shows the producers a topic's partitions know, with their open transactions' first
    /// offsets (a low one that stays is a hanging transaction).
    Producers {
        /// The topic.
        topic: String,
        /// Only this partition.
        #[arg(long, short = 'p')]
        partition: Option<i32>,
    },
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Lists the partition moves under way.
    Reassignments,
    /// Shows the cluster: brokers (address, rack, state, leaders, replicas, size), controller,
    /// topic and partition counts, and its health.
    Info,
    /// Checks health: brokers down, offline, under-min-ISR and under-replicated partitions.
    /// Exits 0 when healthy, 3 when not (1 when the cluster cannot be reached).
    Health,
    /// Plans a balanced, rack-aware placement over the live brokers and prints it (Kafka's
    /// reassignment JSON); `--execute` moves the replicas. A broker joins by starting it and
    /// running this; one leaves by `--exclude`-ing it, then `unregister`.
    Rebalance {
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
    console_base_port: u16,
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
        if console_base_port > 0 {
            cmd.arg("--set").arg(format!(
                "console.listen=127.0.0.1:{}",
                console_base_port + i
            ));
        }
        for kv in &set {
            cmd.arg("--set").arg(kv);
        }
        let child = cmd.spawn()?;
        println!(
            "strata dev-cluster: node {id} (pid {}) on 127.0.0.1:{}, data in {:?}{}",
            child.id(),
            base_port + i,
            data_dir.join(format!("node-{id}")),
            if console_base_port > 0 {
                format!(", console http://127.0.0.1:{}/", console_base_port + i)
            } else {
                String::new()
            }
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

/// Exit status of `strata cluster health` on an unhealthy cluster (1 is an error, 2 a usage
/// error).
const UNHEALTHY: i32 = 3;

/// Runs an admin command on a current-thread runtime.
fn admin(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

async fn topic(args: ClientArgs, command: TopicCommand) -> anyhow::Result<()> {
    use strata_server::admin::topic;
    let mut c = args.client()?;
    let format = args.format;
    match command {
        TopicCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
            validate_only,
        } => {
            let t = topic::NewTopic {
                name: topic.clone(),
                partitions,
                replication_factor,
                configs,
                validate_only,
            };
            topic::create(&mut c, &t).await?;
            if validate_only {
                eprintln!("strata: topic {topic:?} can be created");
            } else {
                eprintln!("strata: topic {topic:?} created");
            }
        }
        TopicCommand::List { internal } => topic::list(&mut c, internal, format).await?,
        TopicCommand::Describe {
            topic,
            all_configs,
            under_replicated_partitions,
            unavailable_partitions,
            under_min_isr_partitions,
        } => {
            let filter = topic::PartitionFilter {
                under_replicated: under_replicated_partitions,
                unavailable: unavailable_partitions,
                under_min_isr: under_min_isr_partitions,
            };
            match topic {
                Some(t) if !filter.any() => {
                    topic::describe(&mut c, &t, all_configs, format).await?
                }
                t => {
                    topic::describe_partitions(&mut c, t.as_deref(), &filter, format).await?;
                }
            }
        }
        TopicCommand::AlterConfig { topic, set, delete } => {
            topic::alter_config(&mut c, &topic, &set, &delete).await?;
            eprintln!("strata: configs of {topic:?} changed");
        }
        TopicCommand::AddPartitions { topic, count } => {
            topic::add_partitions(&mut c, &topic, count).await?;
            eprintln!("strata: {topic:?} has {count} partitions");
        }
        TopicCommand::Delete { topics } => {
            topic::delete(&mut c, &topics).await?;
            eprintln!("strata: deleted {}", topics.join(", "));
        }
        TopicCommand::Produce {
            topic,
            partition,
            key_separator,
            acks,
        } => {
            let options = topic::ProduceOptions {
                partition,
                key_separator,
                acks,
            };
            let n = topic::produce(&mut c, &topic, std::io::stdin().lock(), &options).await?;
            eprintln!("strata: {n} records produced to {topic:?}");
        }
        TopicCommand::Consume {
            topic,
            partition,
            from_beginning,
            offset,
            count,
            exit,
            print_key,
            read_committed,
        } => {
            let start = match (offset, from_beginning) {
                (Some(o), _) => topic::StartAt::Offset(o),
                (None, true) => topic::StartAt::Beginning,
                (None, false) => topic::StartAt::End,
            };
            let options = topic::ConsumeOptions {
                partition,
                start,
                count,
                exit_at_end: exit,
                print_key: print_key.map(|s| s.replace("\\t", "\t")),
                read_committed,
                format,
                progress: true,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            topic::consume(&mut c, &topic, &options, &mut out).await?;
        }
    }
    Ok(())
}

async fn group(args: ClientArgs, command: GroupCommand) -> anyhow::Result<()> {
    use strata_server::admin::group;
    let mut c = args.client()?;
    let format = args.format;
    match command {
        GroupCommand::List => group::list(&mut c, format).await?,
        GroupCommand::Describe { group } => group::describe(&mut c, &group, format).await?,
        GroupCommand::Lag { group } => group::lag(&mut c, &group, format).await?,
        GroupCommand::ResetOffsets {
            group,
            topic,
            to_earliest,
            to_latest,
            to_datetime,
            shift_by,
            to_offset,
            execute,
        } => {
            let to = match (to_earliest, to_latest, to_datetime, shift_by, to_offset) {
                (true, ..) => group::ResetTo::Earliest,
                (_, true, ..) => group::ResetTo::Latest,
                (_, _, Some(t), ..) => group::ResetTo::Datetime(group::parse_datetime(&t)?),
                (_, _, _, Some(n), _) => group::ResetTo::ShiftBy(n),
                (_, _, _, _, Some(o)) => group::ResetTo::Offset(o),
                _ => anyhow::bail!(
                    "say where to: --to-earliest, --to-latest, --to-datetime, --shift-by or --to-offset"
                ),
            };
            group::reset_offsets(&mut c, &group, &topic, &to, execute, format).await?;
        }
        GroupCommand::Delete { groups } => {
            group::delete(&mut c, &groups).await?;
            eprintln!("strata: deleted {}", groups.join(", "));
        }
    }
    Ok(())
}

async fn acl(args: ClientArgs, command: AclCommand) -> anyhow::Result<()> {
    use strata_server::admin::security;
    let mut c = args.client()?;
    match command {
        AclCommand::List {
            resource,
            principal,
        } => {
            security::list_acls(
                &mut c,
                resource.as_deref(),
                principal.as_deref(),
                args.format,
            )
            .await?;
        }
        AclCommand::Create(a) => {
            let n = security::create_acls(&mut c, &a.spec()).await?;
            eprintln!("strata: {n} ACLs created");
        }
        AclCommand::Delete(a) => {
            let n = security::delete_acls(&mut c, &a.spec()).await?;
            eprintln!("strata: {n} ACLs deleted");
        }
    }
    Ok(())
}

async fn user(args: ClientArgs, command: UserCommand) -> anyhow::Result<()> {
    use strata_server::admin::security;
    let mut c = args.client()?;
    match command {
        UserCommand::List { users } => {
            security::list_users(&mut c, &users, args.format).await?;
        }
        UserCommand::Set {
            user,
            mechanism,
            password,
            iterations,
        } => {
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            anyhow::ensure!(!password.is_empty(), "an empty password");
            security::alter_user(&mut c, &user, &mechanism, Some((&password, iterations))).await?;
            eprintln!("strata: {mechanism} credential of {user:?} set");
        }
        UserCommand::Delete { user, mechanism } => {
            security::alter_user(&mut c, &user, &mechanism, None).await?;
            eprintln!("strata: {mechanism} credential of {user:?} deleted");
        }
    }
    Ok(())
}

async fn quota(args: ClientArgs, command: QuotaCommand) -> anyhow::Result<()> {
    use strata_server::admin::security;
    let mut c = args.client()?;
    match command {
        QuotaCommand::List => {
            security::list_quotas(&mut c, args.format).await?;
        }
        QuotaCommand::Set {
            entity,
            set,
            delete,
        } => {
            security::alter_quota(&mut c, &entity, &set, &delete).await?;
            eprintln!("strata: quotas of {entity} changed");
        }
    }
    Ok(())
}

async fn txn(args: ClientArgs, command: TxnCommand) -> anyhow::Result<()> {
    use strata_server::admin::txn;
    let mut c = args.client()?;
    match command {
        TxnCommand::List { state } => {
            txn::list(&mut c, &state, args.format).await?;
        }
        TxnCommand::Describe { transactional_id } => {
            txn::describe(&mut c, &transactional_id, args.format).await?;
        }
        TxnCommand::Producers { topic, partition } => {
            txn::producers(&mut c, &topic, partition, args.format).await?;
        }
    }
    Ok(())
}

async fn cluster(args: ClientArgs, command: ClusterCommand) -> anyhow::Result<()> {
    use strata_server::admin::cluster;
    use strata_server::cluster_tool;
    let mut client = args.client()?;
    match command {
        ClusterCommand::Info => cluster::info(&mut client, args.format).await?,
        ClusterCommand::Reassignments => {
            cluster::reassignments(&mut client, args.format).await?;
        }
        ClusterCommand::Health => {
            if !cluster::health(&mut client, args.format).await? {
                std::process::exit(UNHEALTHY);
            }
        }
        ClusterCommand::Rebalance {
            exclude,
            execute,
            wait,
            throttle,
        } => {
            let options = cluster_tool::RebalanceOptions {
                exclude,
                execute,
                wait,
                throttle,
            };
            cluster_tool::rebalance(&mut client, &options).await?
        }
        ClusterCommand::Reassign {
            topic,
            partition,
            replicas,
            cancel,
        } => {
            cluster_tool::reassign(
                &mut client,
                &topic,
                partition,
                (!cancel).then_some(replicas),
            )
            .await?
        }
        ClusterCommand::Unregister { broker } => {
            cluster_tool::unregister(&mut client, broker).await?
        }
    }
    Ok(())
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
            console_base_port,
            set,
        } => dev_cluster(
            nodes,
            base_port,
            controller_base_port,
            data_dir,
            console_base_port,
            set,
        ),
        Command::Scram { command } => scram(command),
        Command::Topic { client, command } => admin(topic(client, command)),
        Command::Group { client, command } => admin(group(client, command)),
        Command::Cluster { client, command } => admin(cluster(client, command)),
        Command::Acl { client, command } => admin(acl(client, command)),
        Command::User { client, command } => admin(user(client, command)),
        Command::Quota { client, command } => admin(quota(client, command)),
        Command::Txn { client, command } => admin(txn(client, command)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "strata", &mut std::io::stdout());
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("strata: {e:#}");
        std::process::exit(1);
    }
}
