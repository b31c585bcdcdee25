//! Checks and compiles a postgres sink's table.

use super::{columns, Mode, PostgresTarget};
use crate::config::diag::{at, Failure};
use crate::config::duration;
use crate::connectors::{names, CompiledSource, SinkConnector, SinkTable, SourceTable};
use crate::format;
use std::time::Duration;
use toml::Spanned;

/// A table that rows are appended to or upserted into:
///
/// ```toml
/// [[sink]]
/// from = "revenue"
/// type = "postgres"
/// url = "postgresql://sluice@127.0.0.1:5432/shop"
/// table = "revenue"
/// mode = "upsert"
/// key = ["product", "window_start"]
/// create = true
/// ```
pub(super) fn sink(t: &SinkTable<'_>) -> Result<Box<dyn SinkConnector>, Failure> {
    let url = t.need("url", "postgresql://sluice@127.0.0.1:5432/shop")?;
    if let Err(e) = url.get_ref().parse::<postgres::Config>() {
        return Err(at(
            url.span(),
            format!(
                "`url` is not a PostgreSQL connection string ({e}); write it like \
                 \"postgresql://user@host:5432/database\" or \"host=... user=... dbname=...\""
            ),
        ));
    }
    let table = t.need("table", "revenue")?;
    if columns::quoted_name(table.get_ref()).is_none() {
        return Err(at(
            table.span(),
            format!(
                "table \"{}\" is not a table's name: a name, or schema.name, each part \
                 non-empty",
                table.get_ref()
            ),
        ));
    }
    let key = names(&t.spec.settings, "key")?;
    // `key` alone means an upsert.
    let upsert = match t.get::<String>("mode")? {
        None => None,
        Some(m) => match m.get_ref().as_str() {
            "append" => Some((false, m.span())),
            "upsert" => Some((true, m.span())),
            other => {
                return Err(at(
                    m.span(),
                    format!("mode \"{other}\" is not known; use \"append\" or \"upsert\""),
                ))
            }
        },
    };
    let mode = match (upsert, key) {
        (Some((true, span)), None) => {
            return Err(at(
                span,
                "an upsert needs the key it replaces rows by: key = [\"product\", \
                 \"window_start\"]",
            ))
        }
        (Some((false, _)), Some(key)) => {
            return Err(at(
                key.span(),
                "`key` applies to mode = \"upsert\"; an append inserts every row",
            ))
        }
        (_, None) => Mode::Append,
        (_, Some(key)) => {
            if let Some(schema) = t.schema {
                let missing = key
                    .get_ref()
                    .iter()
                    .find(|k| schema.field_with_name(k).is_err());
                if let Some(missing) = missing {
                    return Err(at(
                        key.span(),
                        format!(
                            "key `{missing}`: stream `{}` has no such field; fields: {}",
                            t.spec.from.get_ref(),
                            format::field_names(schema)
                        ),
                    ));
                }
            }
            Mode::Upsert {
                key: key.into_inner(),
            }
        }
    };
    if let (Some(schema), Some(create)) = (t.schema, t.get::<bool>("create")?) {
        if *create.get_ref() {
            if let Err(why) = columns::columns(schema, &mode) {
                return Err(at(create.span(), why));
            }
        }
    }
    let max_buffered_rows = match t.get::<u64>("max_buffered_rows")? {
        None => 100_000,
        Some(n) if *n.get_ref() == 0 => {
            return Err(at(n.span(), "max_buffered_rows must be at least 1"))
        }
        Some(n) => usize::try_from(*n.get_ref()).unwrap_or(usize::MAX),
    };
    let time = |key: &str, default: Duration| -> Result<Duration, Failure> {
        t.get::<String>(key)?
            .map_or(Ok(default), |d| duration(&d, &format!("`{key}`")))
    };
    Ok(Box::new(PostgresTarget {
        url: url.into_inner(),
        id: t
            .get::<String>("id")?
            .map_or_else(|| table.get_ref().clone(), Spanned::into_inner),
        table: table.into_inner(),
        mode,
        create: t.get::<bool>("create")?.is_some_and(|c| *c.get_ref()),
        max_buffered_rows,
        flush_interval: time("flush_interval", Duration::from_secs(1))?,
        retry_for: time("retry_for", Duration::from_secs(60))?,
    }))
}

/// A table's changes:
///
/// ```toml
/// [source]
/// type = "postgres-cdc"
/// url = "postgresql://sluice@127.0.0.1:5432/shop"
/// table = "orders"
/// schema = { id = "int", product = "string", amount = "float" }
/// ```
pub(super) fn cdc_source(t: &SourceTable<'_>) -> Result<CompiledSource, Failure> {
    let url = t.need("url", "postgresql://sluice@127.0.0.1:5432/shop")?;
    if let Err(e) = url.get_ref().parse::<postgres::Config>() {
        return Err(at(
            url.span(),
            format!("`url` is not a PostgreSQL connection string ({e})"),
        ));
    }
    let table = t.need("table", "orders")?;
    if columns::quoted_name(table.get_ref()).is_none() {
        return Err(at(table.span(), "table is a name, or schema.name"));
    }
    let fields = t.required_schema("a change stream")?;
    let reserved = ["op", "lsn", super::COMMIT_TIME];
    if let Some((name, _)) = fields
        .iter()
        .find(|(n, _)| reserved.contains(&n.as_str()) || n.starts_with("before_"))
    {
        return Err(at(
            t.span(),
            format!(
                "schema field `{name}`: op, lsn, commit_time and before_* are the change's own \
                 fields; rename the column in a view of the table"
            ),
        ));
    }
    let qualified = if table.get_ref().contains('.') {
        table.get_ref().clone()
    } else {
        format!("public.{}", table.get_ref())
    };
    // A slot's name: lower-case letters, digits and underscores, at most
    // 63 bytes.
    let base: String = qualified
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '_',
        })
        .take(56)
        .collect();
    let mut schema = vec![
        ("op".to_string(), arrow::datatypes::DataType::Utf8),
        ("lsn".to_string(), arrow::datatypes::DataType::Int64),
        (
            super::COMMIT_TIME.to_string(),
            arrow::datatypes::DataType::Int64,
        ),
    ];
    schema.extend(fields.iter().cloned());
    schema.extend(
        fields
            .iter()
            .map(|(n, d)| (format!("before_{n}"), d.clone())),
    );
    Ok(CompiledSource {
        connector: std::sync::Arc::new(super::Cdc(super::cdc::CdcPlan {
            url: url.into_inner(),
            table: qualified,
            slot: t
                .get::<String>("slot")?
                .map_or_else(|| format!("sluice_{base}"), Spanned::into_inner),
            publication: t
                .get::<String>("publication")?
                .map_or_else(|| format!("sluice_{base}"), Spanned::into_inner),
            columns: fields.into_iter().map(|(n, _)| n).collect(),
            end_after_idle: t
                .get::<String>("end_after_idle")?
                .map(|d| duration(&d, "`end_after_idle`"))
                .transpose()?,
            snapshot: t.get::<bool>("snapshot")?.is_some_and(|s| *s.get_ref()),
        })),
        schema: format::explicit_schema(&schema),
    })
}
