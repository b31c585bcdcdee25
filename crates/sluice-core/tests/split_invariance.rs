//! Split invariance of the built-in aggregates: for random inputs, random cut
//! points and random merge orders, merging the partial results of the pieces
//! gives the one-pass result.
//!
//! Exact for count, min, max and integer sums. Floating-point results agree
//! within a relative 1e-12 of the magnitude of the input (the standard bound
//! for a backward-stable sum): `S = Σ|x|` for sums, `Σ|x| / n` for means and
//! `Σx² / n` for variances and their square roots.

use proptest::prelude::*;
use sluice_core::aggregate::{Aggregate, Count, Max, Mean, Min, StdDev, Sum, Variance};

const TOLERANCE: f64 = 1e-12;

/// Folds each piece of `data` cut at `cuts`, then merges the partials in the
/// order given by `order` (a pairwise merge tree built by repeatedly merging
/// the partials at two chosen positions).
fn split_merge<In, A: Aggregate<In>>(
    agg: &A,
    data: &[In],
    cuts: &[usize],
    order: &[usize],
) -> A::Acc
where
    In: Clone,
{
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    bounds.push(0);
    bounds.push(data.len());
    bounds.sort_unstable();
    let mut partials: Vec<A::Acc> = bounds
        .windows(2)
        .map(|w| agg.fold(&data[w[0]..w[1]]))
        .collect();
    let mut choices = order.iter().cycle();
    while partials.len() > 1 {
        let i = choices.next().copied().unwrap_or(0) % partials.len();
        let taken = partials.swap_remove(i);
        let j = choices.next().copied().unwrap_or(0) % partials.len();
        agg.merge(&mut partials[j], &taken);
    }
    partials.pop().unwrap_or_else(|| agg.init())
}

fn close(a: Option<f64>, b: Option<f64>, scale: f64) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= TOLERANCE * scale.max(f64::MIN_POSITIVE),
        (None, None) => true,
        _ => false,
    }
}

fn float_values() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![-1e6..1e6_f64, -1.0..1.0_f64, Just(0.0), 1e3..1e9_f64],
        0..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn integer_aggregates_are_exact(
        data in prop::collection::vec(any::<i64>(), 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        order in prop::collection::vec(any::<usize>(), 1..40),
    ) {
        let agg = (Count, Sum, Min, Max);
        let one_pass = agg.finish(&agg.fold(&data));
        let merged = agg.finish(&split_merge(&agg, &data, &cuts, &order));
        prop_assert_eq!(one_pass, merged);
        prop_assert_eq!(one_pass.0, data.len() as u64);
        prop_assert_eq!(one_pass.2, data.iter().copied().min());
        prop_assert_eq!(one_pass.3, data.iter().copied().max());
    }

    #[test]
    fn float_aggregates_agree_within_tolerance(
        data in float_values(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        order in prop::collection::vec(any::<usize>(), 1..40),
    ) {
        let agg = (Sum, Mean, Variance::Sample, Variance::Population, StdDev::Sample, Min, Max);
        let one = agg.finish(&agg.fold(&data));
        let split = agg.finish(&split_merge(&agg, &data, &cuts, &order));
        let n = data.len().max(1) as f64;
        let abs_sum: f64 = data.iter().map(|x| x.abs()).sum();
        let square_mean: f64 = data.iter().map(|x| x * x).sum::<f64>() / n;

        prop_assert!(close(Some(one.0), Some(split.0), abs_sum), "sum {} vs {}", one.0, split.0);
        prop_assert!(close(one.1, split.1, abs_sum / n), "mean {:?} vs {:?}", one.1, split.1);
        prop_assert!(close(one.2, split.2, square_mean), "var {:?} vs {:?}", one.2, split.2);
        prop_assert!(close(one.3, split.3, square_mean), "pop var {:?} vs {:?}", one.3, split.3);
        prop_assert!(close(one.4, split.4, square_mean.sqrt()), "stddev {:?} vs {:?}", one.4, split.4);
        // min and max are exact for floats too
        prop_assert_eq!(one.5, split.5);
        prop_assert_eq!(one.6, split.6);
    }

    #[test]
    fn mean_merges_sums_not_means(
        data in prop::collection::vec(-1e3..1e3_f64, 1..300),
        cut in any::<usize>(),
    ) {
        // Compare with an exact reference: values scaled to integers.
        let ints: Vec<i64> = data.iter().map(|x| (x * 1e3).round() as i64).collect();
        let floats: Vec<f64> = ints.iter().map(|&i| i as f64 / 1e3).collect();
        let exact = ints.iter().map(|&i| i as i128).sum::<i128>() as f64 / 1e3 / floats.len() as f64;
        let merged = Mean.finish(&split_merge(&Mean, &floats, &[cut], &[0, 1]));
        let scale = floats.iter().map(|x| x.abs()).sum::<f64>() / floats.len() as f64;
        prop_assert!(close(merged, Some(exact), scale), "{:?} vs {}", merged, exact);
    }
}

#[test]
fn variance_matches_a_two_pass_reference_on_shifted_data() {
    // Large offset, small spread: the naive sum-of-squares formula loses
    // every digit here; Welford and Chan do not.
    let data: Vec<f64> = (0..10_000).map(|i| 1e9 + f64::from(i % 7)).collect();
    let mean = data.iter().sum::<f64>() / data.len() as f64;
    let two_pass = data.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (data.len() - 1) as f64;
    let merged = Variance::Sample.finish(&split_merge(
        &Variance::Sample,
        &data,
        &[1234, 5000, 9999],
        &[3, 1, 2],
    ));
    let merged = merged.unwrap();
    assert!(
        (merged - two_pass).abs() <= 1e-9 * two_pass,
        "{merged} vs {two_pass}"
    );
}
