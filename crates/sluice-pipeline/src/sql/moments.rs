//! `var`, `var_pop`, `stddev` and `stddev_pop` with a merge that is exact
//! when it restores a checkpoint.
//!
//! They replace DataFusion's functions of the same names in pipeline files
//! and compute the same thing the same way (Welford's online update, and
//! Chan et al.'s pairwise merge), with one difference: merging a state into
//! an empty accumulator copies it. DataFusion's merge rescales the mean
//! (`mean * n / n`), which can change its last bit, so a window restored
//! from a checkpoint would drift from one that never stopped.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, UInt64Array};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{not_impl_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use std::sync::Arc;

/// Which statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Statistic {
    Variance,
    StdDev,
}

/// A variance or standard deviation, of a sample or a population.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Moments {
    name: &'static str,
    aliases: Vec<String>,
    statistic: Statistic,
    sample: bool,
    signature: Signature,
}

/// The four functions, to register in place of DataFusion's.
pub fn functions() -> Vec<AggregateUDF> {
    let make = |name, aliases: &[&str], statistic, sample| {
        AggregateUDF::from(Moments {
            name,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            statistic,
            sample,
            signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
        })
    };
    vec![
        make(
            "var",
            &["var_sample", "var_samp"],
            Statistic::Variance,
            true,
        ),
        make("var_pop", &["var_population"], Statistic::Variance, false),
        make("stddev", &["stddev_samp"], Statistic::StdDev, true),
        make("stddev_pop", &[], Statistic::StdDev, false),
    ]
}

impl AggregateUDFImpl for Moments {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let name = args.name;
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(name, "count"),
                DataType::UInt64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(name, "mean"),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(name, "m2"),
                DataType::Float64,
                true,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct {
            return not_impl_err!("{}(DISTINCT ...) is not supported", self.name);
        }
        Ok(Box::new(One {
            state: State::default(),
            statistic: self.statistic,
            sample: self.sample,
        }))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups {
            states: Vec::new(),
            statistic: self.statistic,
            sample: self.sample,
        }))
    }
}

/// Count, mean and sum of squared deviations.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    count: u64,
    mean: f64,
    m2: f64,
}

impl State {
    /// Welford's update.
    #[inline]
    fn update(&mut self, value: f64) {
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
    }

    /// Chan et al.'s merge; into an empty state it copies, exactly.
    #[inline]
    fn merge(&mut self, other: State) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other;
            return;
        }
        let count = self.count + other.count;
        let mean = self.mean * self.count as f64 / count as f64
            + other.mean * other.count as f64 / count as f64;
        let delta = self.mean - other.mean;
        self.m2 += other.m2 + delta * delta * self.count as f64 * other.count as f64 / count as f64;
        self.mean = mean;
        self.count = count;
    }

    fn finish(&self, statistic: Statistic, sample: bool) -> Option<f64> {
        let divisor = if sample {
            self.count.checked_sub(1)?
        } else {
            self.count
        };
        if divisor == 0 {
            return (self.count == 1 && !sample).then_some(0.0);
        }
        let variance = self.m2 / divisor as f64;
        Some(match statistic {
            Statistic::Variance => variance,
            Statistic::StdDev => variance.sqrt(),
        })
    }
}

fn states(values: &[ArrayRef]) -> Result<impl Iterator<Item = State> + '_> {
    let [counts, means, m2s] = values else {
        return not_impl_err!("a variance state has three columns, not {}", values.len());
    };
    let counts = counts.as_primitive::<UInt64Type>();
    let means = means.as_primitive::<Float64Type>();
    let m2s = m2s.as_primitive::<Float64Type>();
    Ok((0..counts.len()).map(move |i| State {
        count: if counts.is_null(i) {
            0
        } else {
            counts.value(i)
        },
        mean: means.value(i),
        m2: m2s.value(i),
    }))
}

/// One group.
#[derive(Debug)]
struct One {
    state: State,
    statistic: Statistic,
    sample: bool,
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for value in values[0].as_primitive::<Float64Type>().iter().flatten() {
            self.state.update(value);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states_: &[ArrayRef]) -> Result<()> {
        for state in states(states_)? {
            self.state.merge(state);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::from(self.state.count),
            ScalarValue::from(self.state.mean),
            ScalarValue::from(self.state.m2),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(
            self.state.finish(self.statistic, self.sample),
        ))
    }

    fn size(&self) -> usize {
        size_of::<Self>()
    }
}

/// Many groups, by index.
#[derive(Debug)]
struct Groups {
    states: Vec<State>,
    statistic: Statistic,
    sample: bool,
}

impl Groups {
    fn take(&mut self, emit_to: EmitTo) -> Vec<State> {
        emit_to.take_needed(&mut self.states)
    }
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.states.resize(total_num_groups, State::default());
        let values = values[0].as_primitive::<Float64Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            let kept = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            if kept && values.is_valid(row) {
                self.states[group].update(values.value(row));
            }
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.states.resize(total_num_groups, State::default());
        for (state, &group) in states(values)?.zip(group_indices) {
            self.states[group].merge(state);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (statistic, sample) = (self.statistic, self.sample);
        let values: Float64Array = self
            .take(emit_to)
            .iter()
            .map(|s| s.finish(statistic, sample))
            .collect();
        Ok(Arc::new(values))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let states = self.take(emit_to);
        Ok(vec![
            Arc::new(UInt64Array::from_iter_values(
                states.iter().map(|s| s.count),
            )),
            Arc::new(Float64Array::from_iter_values(
                states.iter().map(|s| s.mean),
            )),
            Arc::new(Float64Array::from_iter_values(states.iter().map(|s| s.m2))),
        ])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row on its own: a state of one value, or an empty one.
        let values = values[0].as_primitive::<Float64Type>();
        let kept = |row: usize| {
            values.is_valid(row) && opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row))
        };
        let rows = 0..values.len();
        Ok(vec![
            Arc::new(UInt64Array::from_iter_values(
                rows.clone().map(|r| u64::from(kept(r))),
            )),
            Arc::new(Float64Array::from_iter_values(rows.clone().map(|r| {
                if kept(r) {
                    values.value(r)
                } else {
                    0.0
                }
            }))),
            Arc::new(Float64Array::from_iter_values(rows.map(|_| 0.0))),
        ])
    }

    fn size(&self) -> usize {
        self.states.capacity() * size_of::<State>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_into_an_empty_state_is_a_copy() {
        let mut a = State::default();
        for v in [0.1, 0.7, 13.25, -4.0, 2.0 / 3.0] {
            a.update(v);
        }
        let mut restored = State::default();
        restored.merge(a);
        assert_eq!(restored.mean.to_bits(), a.mean.to_bits());
        assert_eq!(restored.m2.to_bits(), a.m2.to_bits());
    }

    #[test]
    fn merged_halves_agree_with_one_pass() {
        let values: Vec<f64> = (0..1000).map(|i| ((i * 37) % 101) as f64 / 7.0).collect();
        let mut whole = State::default();
        values.iter().for_each(|v| whole.update(*v));
        let (mut left, mut right) = (State::default(), State::default());
        values[..400].iter().for_each(|v| left.update(*v));
        values[400..].iter().for_each(|v| right.update(*v));
        left.merge(right);
        let (a, b) = (
            whole.finish(Statistic::StdDev, true).unwrap(),
            left.finish(Statistic::StdDev, true).unwrap(),
        );
        assert!((a - b).abs() < 1e-12 * a.abs(), "{a} vs {b}");
        assert_eq!(State::default().finish(Statistic::Variance, true), None);
        let mut one = State::default();
        one.update(5.0);
        assert_eq!(one.finish(Statistic::Variance, true), None);
        assert_eq!(one.finish(Statistic::Variance, false), Some(0.0));
    }
}
