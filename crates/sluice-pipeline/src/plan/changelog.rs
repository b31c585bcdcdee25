//! Checking a running aggregate of a changelog: the columns that identify
//! its rows, and aggregates that can take an updated value back out.

use super::transform::{window_aggregates, window_keys, WindowKeys};
use super::*;
use crate::changelog::RetractPlan;
use crate::config::KeySpec;

/// A `type = "aggregate"` over a changelog, with `changelog_key = by`.
pub(super) fn aggregate(
    t: &TransformSpec,
    name: &str,
    input: &SchemaRef,
    sql: &SqlContext,
    by: &Spanned<KeySpec>,
) -> Result<(Operation, SchemaRef, String), Failure> {
    let key_fields: Vec<String> = t
        .key
        .as_ref()
        .map(|k| k.get_ref().fields())
        .unwrap_or_default();
    let WindowKeys {
        keys,
        sort_fields,
        mut out_fields,
    } = window_keys(t, input, &key_fields)?;
    let mut by_columns = Vec::new();
    let mut by_fields = Vec::new();
    for field in by.get_ref().fields() {
        let (index, f) = input.column_with_name(&field).ok_or_else(|| {
            at(
                by.span(),
                format!(
                    "`{field}` is not a column of the changelog read; it has: {}",
                    format::field_names(input)
                ),
            )
        })?;
        by_columns.push(index);
        by_fields.push(SortField::new(f.data_type().clone()));
    }
    // No columns: the changelog has one row (an aggregate without keys).
    for column in ["op", "revision"] {
        if out_fields.iter().any(|f| f.name() == column) {
            return Err(at(
                span_of(&t.key).unwrap_or(t.name.span()),
                format!("the key `{column}` clashes with the aggregate's own `{column}` column"),
            ));
        }
    }
    out_fields.push(Field::new("op", DataType::Utf8, false));
    out_fields.push(Field::new("revision", DataType::UInt32, false));
    let aggregates = window_aggregates(t, sql, &mut out_fields)?;
    for (_, a) in &aggregates {
        a.retracting_accumulator().map_err(|e| {
            at(
                span_of(&t.aggregates).unwrap_or(t.name.span()),
                e.to_string(),
            )
        })?;
    }
    // Fields of aggregates may be nullable where a group can be empty.
    let output = Arc::new(Schema::new(
        out_fields
            .into_iter()
            .map(|f| {
                let nullable = !matches!(f.name().as_str(), "op" | "revision") || f.is_nullable();
                f.with_nullable(nullable)
            })
            .collect::<Vec<_>>(),
    ));
    let op = input.index_of("op").unwrap_or_default();
    let describe = format!(
        "of a changelog (rows identified by [{}]) by [{}], {} aggregate(s) that take updated \
         values back out; rows say what they change (op, revision)",
        by.get_ref().fields().join(", "),
        key_fields.join(", "),
        aggregates.len()
    );
    let plan = RetractPlan {
        name: name.to_string(),
        keys,
        key_fields: sort_fields,
        by: by_columns,
        by_fields,
        op,
        aggregates,
        output: output.clone(),
    };
    Ok((Operation::Retract(Arc::new(plan)), output, describe))
}
