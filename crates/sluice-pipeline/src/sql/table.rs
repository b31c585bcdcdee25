//! A `CREATE TABLE` of a SQL pipeline: its columns and settings, and the
//! source table as the `[source]` a TOML file would give.

use super::text::Watermark;
use crate::config::diag::{Diagnostic, Span};
use crate::config::{Settings, SourceSpec};
use indexmap::IndexMap;
use toml::Spanned;

/// A column of a `CREATE TABLE`: its name and type.
pub(super) type Column = (Spanned<String>, Spanned<String>);

/// A `CREATE TABLE`: its place, columns and settings.
pub(super) struct Table {
    pub(super) span: Span,
    pub(super) columns: Vec<Column>,
    pub(super) options: IndexMap<String, (Span, Spanned<toml::Value>)>,
    /// `WATERMARK FOR ts AS ts - INTERVAL ...`: the field and the lag.
    pub(super) watermark: Option<Watermark>,
    pub(super) read: bool,
    pub(super) written: bool,
}

/// The source table as a `[source]`: the keys every source takes, the
/// rest for its connector.
pub(super) fn source_spec(table: &Table) -> Result<SourceSpec, Diagnostic> {
    let mut options = table.options.clone();
    let kind = take_connector(&mut options, &table.span)?;
    let mut text = |key: &str| -> Result<Option<Spanned<String>>, Diagnostic> {
        match options.shift_remove(key) {
            None => Ok(None),
            Some((_, value)) => match value.get_ref() {
                toml::Value::String(s) => Ok(Some(Spanned::new(value.span(), s.clone()))),
                _ => Err(Diagnostic::at(
                    value.span(),
                    format!("`{key}`: a string in quotes"),
                )),
            },
        }
    };
    let format = text("format")?;
    let mut event_time = text("event_time")?;
    let mut lag = text("watermark")?;
    let idle_timeout = text("idle_timeout")?;
    text("allowed_lateness")?;
    if let Some((field, by)) = &table.watermark {
        if let Some(given) = &event_time {
            return Err(Diagnostic::at(
                given.span(),
                "the WATERMARK clause names the event time already: remove `event_time`",
            ));
        }
        if let Some(given) = &lag {
            return Err(Diagnostic::at(
                given.span(),
                "the WATERMARK clause gives the lag already: remove `watermark`",
            ));
        }
        event_time = Some(field.clone());
        lag = Some(by.clone());
    }
    let rate = match options.shift_remove("rate") {
        None => None,
        Some((_, value)) => match value.get_ref() {
            toml::Value::Float(r) => Some(Spanned::new(value.span(), *r)),
            toml::Value::Integer(r) => Some(Spanned::new(value.span(), *r as f64)),
            _ => {
                return Err(Diagnostic::at(
                    value.span(),
                    "`rate`: a number of records per second",
                ))
            }
        },
    };
    let schema = table.columns.first().map(|(first, _)| {
        let end = table
            .columns
            .last()
            .map_or(first.span().end, |(_, t)| t.span().end);
        let fields = table
            .columns
            .iter()
            .map(|(n, t)| (n.get_ref().clone(), t.clone()))
            .collect();
        Spanned::new(first.span().start..end, fields)
    });
    let settings = settings_of(options);
    Ok(SourceSpec {
        kind,
        format,
        schema,
        event_time,
        max_out_of_orderness: lag,
        idle_timeout,
        rate,
        settings,
    })
}

/// What is left of a table's settings, for its connector to read.
pub(super) fn settings_of(options: IndexMap<String, (Span, Spanned<toml::Value>)>) -> Settings {
    let mut settings = Settings::default();
    for (key, (key_span, value)) in options {
        settings.insert(Spanned::new(key_span, key), value);
    }
    settings
}

/// The table's `connector`, taken out of its settings.
pub(super) fn take_connector(
    options: &mut IndexMap<String, (Span, Spanned<toml::Value>)>,
    span: &Span,
) -> Result<Spanned<String>, Diagnostic> {
    match options.shift_remove("connector") {
        Some((_, value)) => match value.get_ref() {
            toml::Value::String(s) => Ok(Spanned::new(value.span(), s.clone())),
            _ => Err(Diagnostic::at(
                value.span(),
                "`connector`: a name in quotes, like 'file'",
            )),
        },
        None => Err(Diagnostic::at(
            span.clone(),
            "a table needs its connector: WITH (connector = 'file', ...)",
        )),
    }
}
