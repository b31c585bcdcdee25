//! The pipeline file as written: TOML, read with the position of every
//! value so that an error can say `file:line:col`.
//!
//! Every table denies unknown keys. The `type` of a transform or window
//! decides which keys apply, and [`crate::plan`] checks that the keys given
//! fit it. A source or sink table keeps the keys its connector reads in
//! [`Settings`], and the connector checks them.

pub mod diag;
mod settings;

pub use settings::{duration, Settings};

use crate::error::{Error, Result};
use diag::Diagnostic;
use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

/// A map of names to SQL expressions, in the order written.
pub type Expressions = IndexMap<String, Spanned<String>>;

/// A whole pipeline file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// The pipeline's name, shown in logs and metrics.
    pub name: Spanned<String>,
    /// Where the events come from.
    pub source: Spanned<SourceSpec>,
    /// How the dataflow runs.
    #[serde(default)]
    pub execution: ExecutionSpec,
    /// The transforms, in order.
    #[serde(default, rename = "transform")]
    pub transforms: Vec<Spanned<TransformSpec>>,
    /// The sinks.
    #[serde(default, rename = "sink")]
    pub sinks: Vec<Spanned<SinkSpec>>,
}

/// `[source]`: the keys every source takes, and its connector's own.
#[derive(Debug)]
pub struct SourceSpec {
    /// The connector: `file`, `stdin`, `generator`, `nexmark`, `formula`,
    /// `nats` (see the registry, `crate::connectors`).
    pub kind: Spanned<String>,
    /// `jsonl`, `csv` or `parquet`, for connectors that read text or files.
    pub format: Option<Spanned<String>>,
    /// Field names to types; inferred from the input where it can be.
    pub schema: Option<Spanned<IndexMap<String, Spanned<String>>>>,
    /// The field that holds the event time (epoch milliseconds, or an
    /// RFC 3339 string).
    pub event_time: Option<Spanned<String>>,
    /// The watermark's lag behind the largest event time seen.
    pub max_out_of_orderness: Option<Spanned<String>>,
    /// A partition that sends nothing for this long stops holding the
    /// watermark back.
    pub idle_timeout: Option<Spanned<String>>,
    /// Reads at most this many records per second (demos, replays at a
    /// steady pace); as fast as the dataflow takes them by default.
    pub rate: Option<Spanned<f64>>,
    /// Every other key, for the connector of `kind` to read and check.
    pub settings: Settings,
}

impl<'de> Deserialize<'de> for SourceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = SourceSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of source settings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SourceSpec, A::Error> {
                let (mut kind, mut format, mut schema, mut event_time) = (None, None, None, None);
                let (mut lag, mut idle_timeout, mut rate) = (None, None, None);
                let mut settings = Settings::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    match key.get_ref().as_str() {
                        "type" => kind = Some(map.next_value()?),
                        "format" => format = Some(map.next_value()?),
                        "schema" => schema = Some(map.next_value()?),
                        "event_time" => event_time = Some(map.next_value()?),
                        "max_out_of_orderness" => lag = Some(map.next_value()?),
                        "idle_timeout" => idle_timeout = Some(map.next_value()?),
                        "rate" => rate = Some(map.next_value()?),
                        _ => settings.insert(key, map.next_value()?),
                    }
                }
                Ok(SourceSpec {
                    kind: kind.ok_or_else(|| serde::de::Error::missing_field("type"))?,
                    format,
                    schema,
                    event_time,
                    max_out_of_orderness: lag,
                    idle_timeout,
                    rate,
                    settings,
                })
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// `[execution]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionSpec {
    /// `event`, `micro-batch` or `adaptive`.
    pub mode: Option<Spanned<String>>,
    /// The latency the adaptive mode stays under.
    pub target_latency: Option<Spanned<String>>,
    /// Rows per batch in micro-batch mode.
    pub batch_size: Option<Spanned<i64>>,
    /// The longest a partial batch waits, in micro-batch mode.
    pub batch_interval: Option<Spanned<String>>,
    /// Parallel workers for keyed work.
    pub workers: Option<Spanned<i64>>,
}

/// One `[[transform]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// The name of the stream this transform produces.
    pub name: Spanned<String>,
    /// `filter`, `select`, `window` or `rule`.
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// The input stream; by default the previous one.
    pub from: Option<Spanned<String>>,
    /// `filter`: the predicate rows must satisfy.
    #[serde(rename = "where")]
    pub predicate: Option<Spanned<String>>,
    /// `select`: output columns.
    pub columns: Option<Spanned<Expressions>>,
    /// `window`: the key fields.
    pub key: Option<Spanned<KeySpec>>,
    /// `window`: the window kind and sizes.
    pub window: Option<Spanned<WindowSpec>>,
    /// `window`: output names to aggregate expressions.
    pub aggregates: Option<Spanned<Expressions>>,
    /// `window`: how long after its end a window still takes late events.
    pub allowed_lateness: Option<Spanned<String>>,
    /// `rule`: the trigger condition.
    pub when: Option<Spanned<String>>,
    /// `rule`: the action's output columns; all input columns if absent.
    pub emit: Option<Spanned<Expressions>>,
    /// `sql`: one SELECT over an earlier stream (docs/sql.md).
    pub query: Option<Spanned<String>>,
    /// `join`: the right input stream (`from` is the left).
    pub right: Option<Spanned<String>>,
    /// `join`: left key columns to the right key columns they equal.
    pub on: Option<Spanned<Expressions>>,
    /// `join`: the range of the right row's time minus the left row's,
    /// like `["-10s", "10s"]`.
    pub between: Option<Spanned<Vec<Spanned<String>>>>,
    /// `lookup`: the table looked up, read whole at start.
    pub table: Option<Spanned<LookupTableSpec>>,
    /// `aggregate` of a changelog: the columns that identify its rows (an
    /// update replaces the earlier row of its key, a delete removes it).
    pub changelog_key: Option<Spanned<KeySpec>>,
}

/// `table = { path = "products.csv" }`: a file read whole when the
/// pipeline starts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupTableSpec {
    /// The file, against the pipeline file's folder.
    pub path: Spanned<String>,
    /// `jsonl` or `csv`; by default from the extension.
    pub format: Option<Spanned<String>>,
    /// What its columns are called after the lookup (`name.column`); by
    /// default the file's name without its extension.
    pub name: Option<Spanned<String>>,
}

/// `key = "sensor"` or `key = ["sensor", "site"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum KeySpec {
    /// One field.
    One(String),
    /// Several fields.
    Many(Vec<String>),
}

impl KeySpec {
    /// The fields, in order.
    pub fn fields(&self) -> Vec<String> {
        match self {
            KeySpec::One(field) => vec![field.clone()],
            KeySpec::Many(fields) => fields.clone(),
        }
    }
}

/// `window = { type = "tumbling", size = "10s" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// `tumbling`, `sliding`, `session` or `count`.
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// A duration (tumbling, sliding) or a number of events (count).
    pub size: Option<Spanned<toml::Value>>,
    /// Sliding windows: the step between window starts.
    pub slide: Option<Spanned<String>>,
    /// Session windows: the inactivity gap that closes a session.
    pub gap: Option<Spanned<String>>,
}

/// One `[[sink]]`: the keys every sink takes, and its connector's own.
#[derive(Debug)]
pub struct SinkSpec {
    /// The stream written.
    pub from: Spanned<String>,
    /// The connector: `stdout`, `file` or `nats` (see the registry,
    /// `crate::connectors`).
    pub kind: Spanned<String>,
    /// Every other key, for the connector of `kind` to read and check.
    pub settings: Settings,
}

impl<'de> Deserialize<'de> for SinkSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = SinkSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of sink settings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SinkSpec, A::Error> {
                let (mut from, mut kind) = (None, None);
                let mut settings = Settings::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    match key.get_ref().as_str() {
                        "from" => from = Some(map.next_value()?),
                        "type" => kind = Some(map.next_value()?),
                        _ => settings.insert(key, map.next_value()?),
                    }
                }
                Ok(SinkSpec {
                    from: from.ok_or_else(|| serde::de::Error::missing_field("from"))?,
                    kind: kind.ok_or_else(|| serde::de::Error::missing_field("type"))?,
                    settings,
                })
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// Reads a pipeline file's text, after applying `--set` overrides.
pub fn parse(text: &str) -> Result<PipelineSpec, Diagnostic> {
    toml::from_str(text).map_err(|error| {
        let message = error.message().trim().to_string();
        let message = explain_toml_error(&message);
        Diagnostic::new(error.span(), message)
    })
}

/// Adds a hint to serde's terse messages.
fn explain_toml_error(message: &str) -> String {
    if message.starts_with("unknown field") {
        format!("{message}; remove it or fix its spelling")
    } else if message.starts_with("missing field") {
        format!("{message}; add it")
    } else {
        message.to_string()
    }
}

/// Applies one `--set key.path=value` to the file's text. The path names
/// tables by key and arrays of tables by index or by their `name` (for
/// transforms) or `from` (for sinks): `transform.valid.where`,
/// `sink.0.path`. The value is read as TOML when it parses (`4`, `true`,
/// `"x"`), as a string otherwise.
pub fn apply_override(text: &str, assignment: &str) -> Result<String> {
    let (path, value) = assignment.split_once('=').ok_or_else(|| {
        Error::Invalid(format!("override `{assignment}`: expected key.path=value"))
    })?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| Error::Invalid(e.message().to_string()))?;
    let value: toml_edit::Value = match format!("v = {value}").parse::<toml_edit::DocumentMut>() {
        Ok(parsed) => match parsed.get("v").and_then(|item| item.as_value()) {
            Some(v) => v.clone(),
            None => toml_edit::Value::from(value),
        },
        Err(_) => toml_edit::Value::from(value),
    };
    let parts: Vec<&str> = path.split('.').collect();
    set_path(doc.as_table_mut(), &parts, value)
        .map_err(|what| what.context(format!("override `{assignment}`")))?;
    Ok(doc.to_string())
}

/// Sets `parts` (a key path) in `table`. Arrays of tables are entered by
/// index or by their `name` (transforms) or `from` (sinks).
fn set_path(
    table: &mut dyn toml_edit::TableLike,
    parts: &[&str],
    value: toml_edit::Value,
) -> Result<()> {
    let [key, rest @ ..] = parts else {
        return Err(Error::Invalid("empty key path".into()));
    };
    if rest.is_empty() {
        table.insert(key, toml_edit::Item::Value(value));
        return Ok(());
    }
    if table.get(key).is_none() {
        table.insert(key, toml_edit::Item::Table(toml_edit::Table::new()));
    }
    let Some(item) = table.get_mut(key) else {
        return Err(Error::Invalid(format!("`{key}` is not in the file")));
    };
    if let Some(array) = item.as_array_of_tables_mut() {
        let [element, rest @ ..] = rest else {
            return Err(Error::Invalid(format!(
                "`{key}` is an array of tables: name an element"
            )));
        };
        let index = match element.parse::<usize>() {
            Ok(index) => Some(index),
            Err(_) => array.iter().position(|t| {
                ["name", "from"]
                    .iter()
                    .any(|k| t.get(k).and_then(|v| v.as_str()) == Some(*element))
            }),
        };
        let Some(table) = index.and_then(|i| array.get_mut(i)) else {
            return Err(Error::Invalid(format!(
                "no `{key}` is named or numbered `{element}`"
            )));
        };
        if rest.is_empty() {
            return Err(Error::Invalid(format!(
                "name a key inside `{key}.{element}`"
            )));
        }
        return set_path(table, rest, value);
    }
    match item.as_table_like_mut() {
        Some(inner) => set_path(inner, rest, value),
        None => Err(Error::Invalid(format!("`{key}` is a value, not a table"))),
    }
}
