//! `strata-bench`: Strata's benchmark tool. Every figure is printed next to a baseline measured
//! in the same run, on the same disk, so that results from a noisy shared machine can still be
//! compared as ratios.
//!
//! Subcommands:
//! - `engine`: the storage engine against a plain sequential-write loop of the same bytes.
//! - `produce`, `consume`: the Kafka protocol with librdkafka against socket/file baselines.
//! - `run`: a workload file (`benches/workloads/`) with a same-run socket-into-file baseline.
//! - `sync`: ways to make a round of appends to many files durable, with device flushes.
//! - `failover`: SIGKILL of a partition leader in a 3-node cluster, against Kafka's timing.
//! - `transactions`: transactional against idempotent produce, read_committed against
//!   read_uncommitted consume, commit latency.

mod baseline;
mod chart;
mod clients;
mod engine;
mod failover;
mod heal;
mod kafka;
mod local_cluster;
mod logins;
mod report;
mod resources;
mod sync_options;
mod transactions;
mod workload;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "strata-bench",
    about = "Benchmarks for Strata, each with a same-run baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Storage engine: append (flush=os / flush=always with many appenders), read, index
    /// lookups and crash recovery, each against a plain file baseline.
    Engine(engine::EngineArgs),
    /// Produce over the Kafka protocol with librdkafka (starts a broker unless
    /// --bootstrap-servers is given), against a loopback-TCP-into-a-file baseline.
    Produce(kafka::KafkaArgs),
    /// Produce, then consume it back, against a sendfile-over-loopback baseline.
    Consume(kafka::KafkaArgs),
    /// SIGKILL of a partition leader in a local 3-node cluster: time to the first acks=all
    /// produce acknowledged by the new leader, against Kafka's default failure-detection timing.
    Failover(failover::FailoverArgs),
    /// Moving data between brokers on a local four-node cluster: draining a broker (scale in,
    /// optionally throttled) and re-creating the replicas of one lost for good, with a client
    /// writing acks=all throughout, against a loopback copy of the same bytes.
    Heal(heal::HealArgs),
    /// A workload from a TOML file (`benches/workloads/`), against brokers it starts or any
    /// `--bootstrap-servers`: throughput, produce and end-to-end latency, fsyncs, JSON report.
    Run(workload::RunArgs),
    /// SASL logins per second (new connection, handshake, exchange) against new plaintext
    /// connections on the same broker.
    Logins(logins::LoginsArgs),
    /// Transactional produce (a commit every --transaction-ms) against idempotent produce, and
    /// read_committed against read_uncommitted consume of the same log, with commit latency.
    Transactions(transactions::TransactionsArgs),
    /// What one round of small appends to many files costs to make durable, per method
    /// (serial and io_uring fdatasyncs, preallocated files, syncfs, a per-disk journal), with
    /// device flushes per round.
    Sync(sync_options::SyncArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Engine(args) => engine::run(args),
        Command::Produce(args) => {
            kafka::run(args, true, false).map_err(|e| e as Box<dyn std::error::Error>)
        }
        Command::Consume(args) => {
            kafka::run(args, true, true).map_err(|e| e as Box<dyn std::error::Error>)
        }
        Command::Failover(args) => failover::run(args).map_err(|e| e as Box<dyn std::error::Error>),
        Command::Heal(args) => heal::run(args).map_err(|e| e as Box<dyn std::error::Error>),
        Command::Run(args) => workload::run(args).map_err(|e| e as Box<dyn std::error::Error>),
        Command::Sync(args) => sync_options::run(args),
        Command::Logins(args) => logins::run(args).map_err(|e| e as Box<dyn std::error::Error>),
        Command::Transactions(args) => {
            transactions::run(args).map_err(|e| e as Box<dyn std::error::Error>)
        }
    };
    if let Err(e) = result {
        eprintln!("strata-bench: {e}");
        std::process::exit(1);
    }
}
