//! The micro-batch scenario: 100,000 values uniform in [0, 1) from a fixed
//! seed, cut into micro-batches; the mean of each batch; the global mean
//! merged from the batches' (sum, count), checked against a one-pass mean.
//!
//! Run: `cargo run --release --example seed_micro_batch`

use sluice::aggregate::{CompensatedSum, MeanAcc};
use sluice::prelude::*;

const SEED: u64 = 42;
const EVENTS: u64 = 100_000;

/// Runs one cut: returns each batch's partial state and the engine's merged mean.
fn run(policy: FlushPolicy) -> Result<(Vec<MeanAcc<CompensatedSum>>, f64), sluice::Error> {
    let pipeline = Pipeline::new();
    // The batch algorithm of one micro-batch: its (sum, count).
    let partials = pipeline
        .source(UniformSource::new(SEED, EVENTS))
        .batch(policy)
        .map_batch(|batch: &[f64]| Mean.fold(batch))
        .collect();
    // The engine's own merge of the same cut.
    let merged = pipeline
        .source(UniformSource::new(SEED, EVENTS))
        .batch(policy)
        .aggregate(Mean)
        .collect();
    pipeline.run()?;
    let merged = merged.take().pop().flatten().unwrap_or(f64::NAN);
    Ok((partials.take(), merged))
}

fn main() -> Result<(), sluice::Error> {
    let values = UniformSource::values(SEED, EVENTS);
    // One pass over all values, no batches.
    let one_pass = Mean.finish(&Mean.fold(&values)).unwrap_or(f64::NAN);
    println!("{EVENTS} values uniform in [0, 1), seed {SEED}; one-pass mean {one_pass:.15}");

    let cuts = [
        ("1,000 events per batch", FlushPolicy::Count(1_000)),
        (
            "1,000 batches, as numpy.array_split(data, 1000)",
            FlushPolicy::Batches(1_000),
        ),
        (
            "7 balanced batches (sizes differ by one)",
            FlushPolicy::Batches(7),
        ),
    ];
    for (label, policy) in cuts {
        let (partials, merged) = run(policy)?;
        let means: Vec<f64> = partials.iter().filter_map(|p| Mean.finish(p)).collect();
        let mean_of_means = means.iter().sum::<f64>() / means.len() as f64;
        let sizes: Vec<u64> = partials.iter().map(|p| p.count).collect();
        let (smallest, largest) = (
            sizes.iter().min().copied().unwrap_or(0),
            sizes.iter().max().copied().unwrap_or(0),
        );
        println!();
        println!(
            "{label}: {} batches of {smallest}..={largest} events",
            partials.len()
        );
        let first: Vec<String> = means.iter().take(5).map(|m| format!("{m:.4}")).collect();
        println!("  first batch means:   {}", first.join(", "));
        println!(
            "  merged (sum, count): {merged:.15}   error {:.1e}",
            (merged - one_pass).abs()
        );
        println!(
            "  mean of the means:   {mean_of_means:.15}   error {:.1e}",
            (mean_of_means - one_pass).abs()
        );
        assert!(
            (merged - one_pass).abs() <= 1e-12 * one_pass,
            "merged mean must equal the one-pass mean"
        );
        assert_eq!(
            sizes.iter().sum::<u64>(),
            EVENTS,
            "every value is in exactly one batch"
        );
    }
    println!();
    println!("Averaging per-batch means is exact only when every batch has the same size;");
    println!("Sluice merges each batch's (sum, count), which is exact for any cut.");
    Ok(())
}
