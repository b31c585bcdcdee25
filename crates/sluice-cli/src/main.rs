//! The `sluice` command.

mod bench;
mod demo;
mod pipeline;
mod ui;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Sluice: one dataflow that runs event by event or in micro-batches.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a pipeline file to the end of its input; prints a `summary: `
    /// line of JSON on stderr. Exit codes: 0 done, 1 the run failed (input
    /// or output), 2 the file or the command line is invalid.
    Run(pipeline::RunArgs),
    /// Checks a pipeline file (TOML or SQL) and prints its dataflow
    /// without running it.
    Validate(pipeline::ValidateArgs),
    /// Prints the dataflow a pipeline file compiles to: its source, every
    /// stream with its schema, the transforms (a SQL query's steps), the
    /// sinks.
    Explain(pipeline::ValidateArgs),
    /// Creates the NATS streams a pipeline with a nats source reads and
    /// writes (partitioned by key), so producers can publish before the
    /// first `sluice run`.
    Setup(pipeline::SetupArgs),
    /// Runs the two seed scenarios, event by event and in micro-batches,
    /// and shows that the results agree.
    Demo(demo::DemoArgs),
    /// Runs a benchmark workload and prints one JSON line of figures and
    /// checksums; exits non-zero if the checksums are wrong.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => return pipeline::run(&args),
        Command::Validate(args) => return pipeline::validate(&args),
        Command::Explain(args) => return pipeline::describe(&args),
        Command::Setup(args) => return pipeline::setup(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
