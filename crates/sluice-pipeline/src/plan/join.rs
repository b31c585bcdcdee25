//! Checking a join: its two inputs, the key columns they share, and the
//! range of event time between a pair's rows.

use super::*;
use crate::join::JoinPlan;
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;

/// A signed duration in milliseconds: `"-10s"`, `"0s"`, `"1h"`.
fn signed(value: &Spanned<String>) -> Result<i64, Failure> {
    let text = value.get_ref().trim();
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let d = duration(&Spanned::new(value.span(), rest.to_string()), "`between`")?;
    Ok(sign * i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A column of `schema` named by `name`, or an error at `span`.
fn column(schema: &Schema, stream: &str, name: &str, span: Span) -> Result<usize, Failure> {
    schema.index_of(name).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        at(
            span,
            format!(
                "`{stream}` has no column `{name}`; it has: {}",
                names.join(", ")
            ),
        )
    })
}

/// Checks a `join` transform reading `from` (left) and its `right`.
pub(super) fn join(
    t: &TransformSpec,
    name: &str,
    from: &str,
    schemas: &IndexMap<String, SchemaRef>,
) -> Result<(Operation, SchemaRef, String), Failure> {
    let right = t.right.as_ref().ok_or_else(|| {
        at(
            t.name.span(),
            "a join transform needs `right`, the stream it joins `from` with, like right = \"persons\"",
        )
    })?;
    let right_name = right.get_ref().as_str();
    if matches!(right_name, "late" | "dead_letter") {
        return Err(at(
            right.span(),
            format!("`{right_name}` is a reserved stream that only sinks can read"),
        ));
    }
    if !schemas.contains_key(right_name) {
        return Err(at(
            right.span(),
            format!(
                "no stream `{right_name}` before this transform; a join reads `source` or an \
                 earlier transform's stream"
            ),
        ));
    }
    if right_name == from {
        return Err(at(
            right.span(),
            format!("`{from}` joined with itself: make a second stream of it (a select or filter) and join the two"),
        ));
    }
    let (left_schema, right_schema) = (schemas[from].clone(), schemas[right_name].clone());
    for (stream, schema) in [(from, &left_schema), (right_name, &right_schema)] {
        if super::is_changelog(schema) {
            return Err(at(
                t.kind.span(),
                format!(
                    "`{stream}` is a changelog (rows with op and revision, which update earlier \
                     rows): joining it is not supported; join the streams it is made from"
                ),
            ));
        }
    }
    let on = t.on.as_ref().ok_or_else(|| {
        at(
            t.name.span(),
            "a join transform needs `on`, left key columns to the right ones they equal, like on = { seller = \"id\" }",
        )
    })?;
    if on.get_ref().is_empty() {
        return Err(at(
            on.span(),
            "name at least one pair of key columns: on = { seller = \"id\" }",
        ));
    }
    let (mut left_keys, mut right_keys, mut key_types, mut pairs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (l, r) in on.get_ref() {
        let li = column(&left_schema, from, l, on.span())?;
        let ri = column(&right_schema, right_name, r.get_ref(), r.span())?;
        let (lt, rt) = (
            left_schema.field(li).data_type(),
            right_schema.field(ri).data_type(),
        );
        let common = comparison_coercion(lt, rt)
            .filter(|t| arrow::row::RowConverter::supports_fields(&[SortField::new(t.clone())]))
            .ok_or_else(|| {
                at(
                    r.span(),
                    format!("`{l}` ({lt}) and `{}` ({rt}) cannot be compared; cast one in a select first", r.get_ref()),
                )
            })?;
        left_keys.push(li);
        right_keys.push(ri);
        key_types.push(common);
        pairs.push(format!("{from}.{l} = {right_name}.{}", r.get_ref()));
    }
    let between = t.between.as_ref().ok_or_else(|| {
        at(
            t.name.span(),
            "a join of two streams needs `between`, the range of the right row's event time minus \
             the left row's, like between = [\"-10s\", \"10s\"]: without one it would keep every \
             row forever",
        )
    })?;
    let [lower, upper] = between.get_ref().as_slice() else {
        return Err(at(
            between.span(),
            "`between` takes two durations: [\"-10s\", \"10s\"]",
        ));
    };
    let (lower_ms, upper_ms) = (signed(lower)?, signed(upper)?);
    if lower_ms > upper_ms {
        return Err(at(
            between.span(),
            format!(
                "`between` runs from {lower_ms} ms to {upper_ms} ms: the first must not be larger"
            ),
        ));
    }
    let mut fields = Vec::new();
    for (stream, schema) in [(from, &left_schema), (right_name, &right_schema)] {
        for f in schema.fields() {
            fields.push(
                f.as_ref()
                    .clone()
                    .with_name(format!("{stream}.{}", f.name())),
            );
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let describe = format!(
        "{from} with {right_name} on {} where {right_name}'s time - {from}'s is in [{lower_ms}, {upper_ms}] ms",
        pairs.join(" and ")
    );
    let plan = JoinPlan {
        name: name.to_string(),
        left: from.to_string(),
        right: right_name.to_string(),
        left_keys,
        right_keys,
        key_types,
        lower: lower_ms,
        upper: upper_ms,
        left_schema,
        right_schema,
        schema: schema.clone(),
    };
    Ok((Operation::Join(Arc::new(plan)), schema, describe))
}
