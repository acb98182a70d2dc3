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
    };
    if let Err(e) = result {
        eprintln!("strata: {e:#}");
        std::process::exit(1);
    }
}
