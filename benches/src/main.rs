//! `strata-bench`: Strata's benchmark tool. Every figure is printed next to a baseline measured
//! in the same run, on the same disk, so that results from a noisy shared machine can still be
//! compared as ratios.
//!
//! Subcommands:
//! - `engine`: the storage engine against a plain sequential-write loop of the same bytes.

mod engine;

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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Engine(args) => engine::run(args),
    };
    if let Err(e) = result {
        eprintln!("strata-bench: {e}");
        std::process::exit(1);
    }
}
