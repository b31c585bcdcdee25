//! SQL expressions and aggregates, compiled by DataFusion and evaluated on
//! Arrow record batches.

mod aggregates;
mod join;
mod lookup;
pub(crate) mod moments;
mod pipeline;
mod query;
mod table;
mod text;
mod transform;
mod window;

pub(crate) use pipeline::parse as parse_pipeline;
pub(crate) use transform::expand as expand_queries;

use crate::error::{Error, Result};
use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::concat;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Accumulator, Expr, GroupsAccumulator, ScalarUDF};
use datafusion::optimizer::simplify_expressions::{ExprSimplifier, SimplifyContext};
use datafusion::physical_expr::aggregate::{AggregateFunctionExpr, LoweredAggregateBuilder};
use datafusion::physical_expr::GroupsAccumulatorAdapter;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// Functions written in Rust that pipelines may call, in SQL files, SQL
/// transforms and every expression of a TOML file (`where`, `columns`,
/// `when`, `emit`, aggregates' arguments). Hand them to
/// [`crate::load_with`].
///
/// ```
/// use datafusion::arrow::datatypes::DataType;
/// use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
/// use sluice_pipeline::Functions;
/// use std::sync::Arc;
///
/// let double = create_udf(
///     "double",
///     vec![DataType::Float64],
///     DataType::Float64,
///     Volatility::Immutable,
///     Arc::new(|args: &[ColumnarValue]| {
///         let arrays = ColumnarValue::values_to_arrays(args)?;
///         let x = datafusion::common::cast::as_float64_array(&arrays[0])?;
///         let doubled: datafusion::arrow::array::Float64Array =
///             x.iter().map(|v| v.map(|v| v * 2.0)).collect();
///         Ok(ColumnarValue::Array(Arc::new(doubled)))
///     }),
/// );
/// let functions = Functions::new().scalar(double);
/// assert_eq!(functions.names(), vec!["double"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Functions {
    scalars: Vec<Arc<ScalarUDF>>,
}

impl Functions {
    /// No functions beyond SQL's and DataFusion's own.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a scalar function (DataFusion's `ScalarUDF`, made with
    /// `create_udf` or by implementing `ScalarUDFImpl`).
    pub fn scalar(mut self, function: ScalarUDF) -> Self {
        self.scalars.push(Arc::new(function));
        self
    }

    /// The names of the functions added.
    pub fn names(&self) -> Vec<&str> {
        self.scalars.iter().map(|f| f.name()).collect()
    }
}

/// Compiles SQL against one input schema.
pub struct SqlContext {
    ctx: SessionContext,
    schema: SchemaRef,
    df_schema: DFSchema,
}

impl SqlContext {
    /// A compiler for expressions over rows of `schema`.
    pub fn new(schema: SchemaRef, functions: &Functions) -> Result<Self> {
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(clean)?;
        let ctx = SessionContext::new();
        for function in &functions.scalars {
            ctx.register_udf(function.as_ref().clone());
        }
        // Variances whose state restores exactly from a checkpoint.
        for function in crate::sql::moments::functions() {
            ctx.register_udaf(function);
        }
        Ok(Self {
            ctx,
            schema,
            df_schema,
        })
    }

    /// Parses `sql` and applies SQL's type coercion.
    fn logical(&self, sql: &str) -> Result<Expr> {
        let expr = self
            .ctx
            .parse_sql_expr(sql, &self.df_schema)
            .map_err(clean)?;
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(Arc::new(self.df_schema.clone()))
                .build(),
        );
        simplifier.coerce(expr, &self.df_schema).map_err(clean)
    }

    /// A scalar expression (`temperature > 80`, `upper(sensor)`).
    pub fn scalar(&self, sql: &str) -> Result<ScalarExpr> {
        let expr = self.logical(sql)?;
        if contains_aggregate(&expr) {
            return Err(Error::sql(format!(
                "`{sql}` is an aggregate; aggregates belong in a window's `aggregates`"
            )));
        }
        let physical = self
            .ctx
            .create_physical_expr(expr, &self.df_schema)
            .map_err(clean)?;
        let field = physical.return_field(&self.schema).map_err(clean)?;
        Ok(ScalarExpr {
            sql: sql.to_string(),
            data_type: field.data_type().clone(),
            nullable: field.is_nullable(),
            expr: physical,
        })
    }

    /// An aggregate function call (`avg(temperature)`, `count(*)`,
    /// `approx_percentile_cont(latency, 0.99)`).
    pub fn aggregate(&self, sql: &str) -> Result<AggregateExpr> {
        let mut expr = self.logical(sql)?;
        while let Expr::Alias(alias) = expr {
            expr = *alias.expr;
        }
        if !matches!(expr, Expr::AggregateFunction(_)) {
            return Err(Error::sql(format!(
                "`{sql}` is not one aggregate function call (count, sum, avg, min, max, \
                 stddev, var, approx_distinct, approx_percentile_cont, ...); compute \
                 expressions of aggregates in a `select` after the window"
            )));
        }
        let props = ExecutionProps::new();
        let planning = PhysicalPlanningContext::default();
        let lowered =
            LoweredAggregateBuilder::new(&expr, &self.df_schema, &self.schema, &props, &planning)
                .build()
                .map_err(clean)?;
        let (aggregate, filter) = (lowered.aggregate, lowered.filter);
        if filter.is_some() {
            return Err(Error::sql(format!(
                "`{sql}`: FILTER clauses are not supported; filter before the window"
            )));
        }
        // Fail now, not at the first event, if the accumulator can't be made.
        aggregate.create_accumulator().map_err(clean)?;
        let field = aggregate.field();
        Ok(AggregateExpr {
            sql: sql.to_string(),
            basic: Basic::of(&aggregate, &self.schema),
            args: aggregate.expressions(),
            data_type: field.data_type().clone(),
            aggregate,
        })
    }
}

/// True when `expr` calls an aggregate function anywhere.
fn contains_aggregate(expr: &Expr) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        if matches!(e, Expr::AggregateFunction(_)) {
            found = true;
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    found
}

/// DataFusion's error, its message without the error-kind prefixes and
/// backtraces.
pub fn clean(error: impl std::fmt::Display) -> Error {
    Error::sql(message(error))
}

/// DataFusion's message, without the error-kind prefixes and backtraces.
pub fn message(error: impl std::fmt::Display) -> String {
    let text = error.to_string();
    let mut text = text.as_str();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "SQL error: ",
        "Arrow error: ",
        "Execution error: ",
        "Internal error: ",
        "This feature is not implemented: ",
        "Optimizer rule 'simplify_expressions' failed\ncaused by\n",
    ] {
        text = text.strip_prefix(prefix).unwrap_or(text);
    }
    text.lines().next().unwrap_or(text).trim().to_string()
}

/// A compiled scalar expression.
#[derive(Debug, Clone)]
pub struct ScalarExpr {
    /// The SQL it was compiled from.
    pub sql: String,
    /// The type of its result.
    pub data_type: DataType,
    /// Whether its result may be null.
    pub nullable: bool,
    expr: Arc<dyn PhysicalExpr>,
}

impl ScalarExpr {
    /// Evaluates the expression on every row of `batch`.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        self.expr
            .evaluate(batch)
            .and_then(|value| value.into_array(batch.num_rows()))
            .map_err(clean)
    }

    /// The output field named `name`.
    pub fn field(&self, name: &str) -> Field {
        Field::new(name, self.data_type.clone(), self.nullable)
    }
}

/// Evaluates an expression on a batch.
pub type Evaluator = dyn Fn(&RecordBatch) -> Result<ArrayRef>;

/// The result of evaluating expressions row by row after a batch failed.
pub struct Evaluated {
    /// One array per expression, over the rows that succeeded.
    pub columns: Vec<ArrayRef>,
    /// The rows that succeeded, by index in the input.
    pub ok_rows: Vec<u32>,
    /// The rows that failed, with the reason.
    pub failed: Vec<(u32, String)>,
}

/// Evaluates `exprs` on `batch`. When the batch fails as a whole (a
/// division by zero in one row, say), evaluates row by row and reports the
/// failing rows, so that one bad record doesn't fail the others.
pub fn evaluate_all(exprs: &[&Evaluator], batch: &RecordBatch) -> Result<Vec<ArrayRef>, Evaluated> {
    let whole: Result<Vec<ArrayRef>> = exprs.iter().map(|e| e(batch)).collect();
    if let Ok(columns) = whole {
        return Ok(columns);
    }
    let mut per_expr: Vec<Vec<ArrayRef>> = vec![Vec::new(); exprs.len()];
    let mut ok_rows = Vec::new();
    let mut failed = Vec::new();
    for row in 0..batch.num_rows() {
        let one = batch.slice(row, 1);
        match exprs.iter().map(|e| e(&one)).collect::<Result<Vec<_>, _>>() {
            Ok(values) => {
                ok_rows.push(row as u32);
                for (column, value) in per_expr.iter_mut().zip(values) {
                    column.push(value);
                }
            }
            Err(reason) => failed.push((row as u32, reason.to_string())),
        }
    }
    let columns = per_expr
        .into_iter()
        .zip(exprs)
        .map(|(parts, e)| {
            if parts.is_empty() {
                // No row succeeded: an empty array of the right type.
                e(&batch.slice(0, 0))
                    .unwrap_or_else(|_| arrow::array::new_empty_array(&DataType::Null))
            } else {
                let refs: Vec<&dyn arrow::array::Array> =
                    parts.iter().map(|a| a.as_ref()).collect();
                concat(&refs).unwrap_or_else(|_| arrow::array::new_empty_array(&DataType::Null))
            }
        })
        .collect();
    Err(Evaluated {
        columns,
        ok_rows,
        failed,
    })
}

/// A compiled aggregate function call.
#[derive(Debug, Clone)]
pub struct AggregateExpr {
    /// The SQL it was compiled from.
    pub sql: String,
    /// The type of its result.
    pub data_type: DataType,
    /// The argument expressions, evaluated on input rows.
    pub args: Vec<Arc<dyn PhysicalExpr>>,
    /// What it is when Sluice folds it itself (session windows).
    pub basic: Option<Basic>,
    aggregate: Arc<AggregateFunctionExpr>,
}

/// An aggregate that session windows fold in flat vectors by session
/// (`window/fold.rs`): `count`, or `sum`, `avg`, `min`, `max` of one
/// 64-bit number column whose result has the column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Basic {
    /// `count(*)` (`rows`: every row counts) or `count(x)` (non-null x).
    Count {
        /// Every row counts.
        rows: bool,
    },
    /// `sum(x)`, x of this type.
    Sum(DataType),
    /// `avg(x)`, x a float.
    Avg,
    /// `min(x)`, x of this type.
    Min(DataType),
    /// `max(x)`, x of this type.
    Max(DataType),
}

impl Basic {
    /// What `aggregate` is, if basic, over rows of `schema`.
    fn of(aggregate: &AggregateFunctionExpr, schema: &Schema) -> Option<Self> {
        if aggregate.is_distinct() {
            return None;
        }
        let name = aggregate.fun().name().to_lowercase();
        let output = aggregate.field().data_type().clone();
        let args = aggregate.expressions();
        if name == "count" {
            let rows = match args.as_slice() {
                [] => true,
                [arg] if arg.data_type(schema).ok()? != DataType::Null => false,
                _ => return None,
            };
            return (output == DataType::Int64).then_some(Basic::Count { rows });
        }
        let [arg] = args.as_slice() else {
            return None;
        };
        let input = arg.data_type(schema).ok()?;
        if input != output
            || !matches!(
                input,
                DataType::Int64 | DataType::UInt64 | DataType::Float64
            )
        {
            return None;
        }
        match name.as_str() {
            "sum" => Some(Basic::Sum(input)),
            "avg" | "mean" if input == DataType::Float64 => Some(Basic::Avg),
            "min" => Some(Basic::Min(input)),
            "max" => Some(Basic::Max(input)),
            _ => None,
        }
    }
}

impl AggregateExpr {
    /// A new, empty accumulator.
    pub fn accumulator(&self) -> Result<Box<dyn Accumulator>> {
        self.aggregate.create_accumulator().map_err(clean)
    }

    /// A new, empty accumulator that can take any value it was given back
    /// out (`retract_batch`): of `count`, `sum` and `avg`. Others are
    /// refused: a minimum or maximum cannot give a value back without
    /// keeping every value.
    pub fn retracting_accumulator(&self) -> Result<Box<dyn Accumulator>> {
        let name = self.aggregate.fun().name().to_lowercase();
        // A DISTINCT aggregate's state holds each value once, not how many
        // rows hold it: taking one row out would take the value out.
        if self.aggregate.is_distinct() || !["count", "sum", "avg", "mean"].contains(&name.as_str())
        {
            return Err(Error::sql(format!(
                "`{}` cannot take an updated value back out of its result; over a changelog, \
                 use count, sum or avg",
                self.sql
            )));
        }
        let acc = self.aggregate.create_sliding_accumulator().map_err(clean)?;
        if !acc.supports_retract_batch() {
            return Err(Error::sql(format!(
                "`{}` cannot take an updated value back out of its result",
                self.sql
            )));
        }
        Ok(acc)
    }

    /// A new, empty accumulator of many groups at once (vectorised by
    /// group index); aggregates without one get DataFusion's adapter.
    pub fn groups_accumulator(&self) -> Result<Box<dyn GroupsAccumulator>> {
        if self.aggregate.groups_accumulator_supported() {
            return self.aggregate.create_groups_accumulator().map_err(clean);
        }
        let aggregate = self.aggregate.clone();
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
            aggregate.create_accumulator()
        })))
    }

    /// Evaluates the arguments on `batch`.
    pub fn arguments(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.args
            .iter()
            .map(|arg| {
                arg.evaluate(batch)
                    .and_then(|v| v.into_array(batch.num_rows()))
                    .map_err(clean)
            })
            .collect()
    }

    /// The output field named `name` (aggregates may be null: no input).
    pub fn field(&self, name: &str) -> Field {
        Field::new(name, self.data_type.clone(), true)
    }
}
