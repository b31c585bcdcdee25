//! A stream's columns as a PostgreSQL table's: names quoted, Arrow types
//! as PostgreSQL's, and rows as the text form of `COPY ... FROM STDIN`.

use super::Mode;
use crate::error::{Error, Result};
use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use std::fmt::Write as _;

/// A column written to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name, as in the stream.
    pub name: String,
    /// Its PostgreSQL type.
    pub sql_type: String,
    /// Its index in the stream's batches.
    pub index: usize,
}

/// The columns of `schema` that go into the table: all, but a changelog's
/// `op` in an upsert (which applies it instead of storing it).
pub fn columns(schema: &Schema, mode: &Mode) -> Result<Vec<Column>, String> {
    let upsert = matches!(mode, Mode::Upsert { .. });
    let mut out = Vec::new();
    for (index, field) in schema.fields().iter().enumerate() {
        if upsert && field.name() == "op" {
            continue;
        }
        let sql_type = sql_type(field.data_type()).ok_or_else(|| {
            format!(
                "column `{}` is of type {}, which the postgres sink does not write; cast it \
                 in a select (to text, a number, a boolean or a timestamp)",
                field.name(),
                field.data_type()
            )
        })?;
        out.push(Column {
            name: field.name().clone(),
            sql_type,
            index,
        });
    }
    Ok(out)
}

/// The PostgreSQL type that holds values of `t`, if there is one.
fn sql_type(t: &DataType) -> Option<String> {
    Some(
        match t {
            DataType::Boolean => "boolean",
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
            DataType::Int32 | DataType::UInt16 => "integer",
            DataType::Int64 | DataType::UInt32 => "bigint",
            DataType::UInt64 => "numeric(20)",
            DataType::Float16 | DataType::Float32 => "real",
            DataType::Float64 => "double precision",
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
            DataType::Date32 | DataType::Date64 => "date",
            DataType::Timestamp(_, None) => "timestamp",
            DataType::Timestamp(_, Some(_)) => "timestamptz",
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
                return Some(format!("numeric({p},{s})"))
            }
            _ => return None,
        }
        .to_string(),
    )
}

/// `name` as a quoted SQL identifier (`"a""b"`).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table's name as written (`revenue`, `shop.revenue`), quoted part by
/// part; `None` if a part is empty or there are more than two.
pub fn quoted_name(table: &str) -> Option<String> {
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(parts.iter().map(|p| ident(p)).collect::<Vec<_>>().join("."))
}

/// The columns' names, quoted and separated by commas.
pub fn list(columns: &[Column]) -> String {
    let names: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    names.join(", ")
}

/// Appends the rows of `batch` to `out` in `COPY`'s text form: one line a
/// row, the columns' values separated by tabs, `\N` for null, and
/// backslash, tab, newline and carriage return escaped. With `seq`, each
/// line starts with the row's number from `seq` on and its `op` (or null).
pub fn copy_text(
    batch: &RecordBatch,
    columns: &[Column],
    ops: Option<usize>,
    seq: Option<u64>,
    out: &mut String,
) -> Result<()> {
    let options = FormatOptions::default();
    let formatters = columns
        .iter()
        .map(|c| ArrayFormatter::try_new(batch.column(c.index).as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::output("postgres sink: a column cannot be written").caused_by(e))?;
    let ops = ops
        .map(|i| ArrayFormatter::try_new(batch.column(i).as_ref(), &options))
        .transpose()
        .map_err(|e| Error::output("postgres sink: `op` cannot be read").caused_by(e))?;
    let mut value = String::new();
    for row in 0..batch.num_rows() {
        if let Some(first) = seq {
            let _ = write!(out, "{}\t", first + row as u64);
            // One formatting of `op` per row, into the reused buffer.
            value.clear();
            if let Some(f) = &ops {
                let _ = write!(value, "{}", f.value(row));
            }
            if value.is_empty() {
                out.push_str("\\N");
            } else {
                push_value(out, &value);
            }
            out.push('\t');
        }
        for (i, (column, f)) in columns.iter().zip(&formatters).enumerate() {
            if i > 0 {
                out.push('\t');
            }
            if batch.column(column.index).is_null(row) {
                out.push_str("\\N");
            } else {
                value.clear();
                let _ = write!(value, "{}", f.value(row));
                push_value(out, &value);
            }
        }
        out.push('\n');
    }
    Ok(())
}

/// Appends `value` escaped for `COPY`'s text form.
fn push_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::Field;
    use std::sync::Arc;

    #[test]
    fn rows_become_copy_text_with_escapes_and_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a\tb\\c\nd"), None])),
                Arc::new(Int64Array::from(vec![None, Some(-3)])),
                Arc::new(Float64Array::from(vec![1.5, f64::NAN])),
            ],
        )
        .unwrap();
        let cols = columns(&schema, &Mode::Append).unwrap();
        let mut out = String::new();
        copy_text(&batch, &cols, None, None, &mut out).unwrap();
        assert_eq!(out, "a\\tb\\\\c\\nd\t\\N\t1.5\n\\N\t-3\tNaN\n");
        out.clear();
        copy_text(&batch, &cols[1..2], None, Some(7), &mut out).unwrap();
        assert_eq!(out, "7\t\\N\t\\N\n8\t\\N\t-3\n");
    }

    #[test]
    fn names_are_quoted_part_by_part() {
        assert_eq!(quoted_name("shop.rev\"x").unwrap(), "\"shop\".\"rev\"\"x\"");
        assert_eq!(quoted_name("a..b"), None);
        assert_eq!(quoted_name("a.b.c"), None);
    }

    #[test]
    fn an_upsert_applies_op_rather_than_storing_it() {
        let schema = Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("op", DataType::Utf8, false),
            Field::new(
                "t",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                false,
            ),
        ]);
        let upsert = Mode::Upsert {
            key: vec!["k".into()],
        };
        let names: Vec<String> = columns(&schema, &upsert)
            .unwrap()
            .into_iter()
            .map(|c| format!("{} {}", c.name, c.sql_type))
            .collect();
        assert_eq!(names, ["k text", "t timestamp"]);
        assert_eq!(columns(&schema, &Mode::Append).unwrap().len(), 3);
    }
}
