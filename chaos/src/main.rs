//! The `strata-chaos` command: `run` a cluster under faults and check it, or `check` the
//! history of an earlier run again. Exit status 0 only when no anomaly was found.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use strata_chaos::run::{self, Options};
use strata_chaos::schedule::FaultKind;

#[derive(Parser, Debug)]
#[command(
    name = "strata-chaos",
    about = "Runs a Strata cluster under seeded faults with real clients and checks that nothing acknowledged is lost"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a cluster under faults, then checks the history.
    Run(RunArgs),
    /// Checks the history of an earlier run directory again.
    Check {
        /// The run directory.
        dir: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Seed of the fault schedule (default: from the clock; printed and saved).
    #[arg(long)]
    seed: Option<u64>,
    /// Replays the run in this directory: its options and seed (other flags are ignored).
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Seconds of load and faults.
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// Brokers.
    #[arg(long, default_value_t = 3)]
    brokers: usize,
    /// Partitions of the topic under test.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Producers (the first half idempotent).
    #[arg(long, default_value_t = 4)]
    producers: u32,
    /// Messages per second of each producer.
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// Consumers in the group.
    #[arg(long, default_value_t = 2)]
    consumers: u32,
    /// Fault kinds, comma-separated (default: all of them).
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// A broker setting after the defaults (`key=value`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Secure the cluster's own links: SASL_SSL (SCRAM-SHA-512) between brokers, mutual TLS
    /// to the controllers, ACLs on (clients stay on PLAINTEXT).
    #[arg(long)]
    secure_links: bool,
    /// The transactional workload too: a transactional writer, a consume-transform-produce
    /// worker with read_committed consumers, and the checker's transactional anomalies.
    #[arg(long)]
    transactions: bool,
    /// Run directory (default: target/strata-chaos/<seed>).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The `strata` binary (default: next to this one).
    #[arg(long)]
    strata_bin: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => run_cmd(args),
        Command::Check { dir } => check_cmd(&dir),
    };
    match code {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("strata-chaos: {e}");
            std::process::exit(2);
        }
    }
}

fn run_cmd(a: RunArgs) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let opts = match &a.replay {
        Some(dir) => serde_json::from_slice::<Options>(&std::fs::read(dir.join("options.json"))?)?,
        None => Options {
            seed: a.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007)
            }),
            duration_s: a.duration,
            brokers: a.brokers,
            partitions: a.partitions,
            producers: a.producers,
            rate: a.rate,
            consumers: a.consumers,
            settings: a.set.clone(),
            secure_links: a.secure_links,
            transactions: a.transactions,
            faults: if a.faults.is_empty() {
                FaultKind::ALL
                    .iter()
                    .map(|k| k.name().to_string())
                    .collect()
            } else {
                a.faults.clone()
            },
        },
    };
    let bin = strata_testkit::strata_bin(a.strata_bin.as_deref())?;
    let dir = a.dir.clone().unwrap_or_else(|| run::default_dir(opts.seed));
    eprintln!(
        "strata-chaos: seed {} for {} s, faults {}; run directory {}",
        opts.seed,
        opts.duration_s,
        opts.faults.join(","),
        dir.display()
    );
    let outcome = run::run(&opts, &bin, &dir)?;
    print!("{}", run::summary(&outcome));
    for a in outcome.findings.anomalies.iter().take(20) {
        println!(
            "  {:<20} partition {} offset {}: {}",
            a.kind.name(),
            a.partition,
            a.offset,
            a.detail
        );
    }
    println!(
        "run directory: {}  (replay: strata-chaos run --replay {})",
        dir.display(),
        dir.display()
    );
    Ok(outcome.clean())
}

fn check_cmd(dir: &std::path::Path) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let events = strata_chaos::history::load(&dir.join("history.jsonl"))?;
    let findings = strata_chaos::checker::check(&events);
    print!("{}", findings.table());
    for a in findings.anomalies.iter().take(20) {
        println!(
            "  {:<20} partition {} offset {}: {}",
            a.kind.name(),
            a.partition,
            a.offset,
            a.detail
        );
    }
    Ok(findings.clean())
}
