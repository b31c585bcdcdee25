//! `type = "http"`: a sink that POSTs rows to a URL (a webhook called when
//! a rule fires, a service's bulk endpoint).
//!
//! - [`sink`]: the writer: requests with an idempotency key, retries with
//!   backoff, dead letters once the retries run out.

mod sink;

use super::{Key, Kind, SinkConnector, SinkTable, SinkType};
use crate::checkpoint::Guarantee;
use crate::config::diag::{at, Failure};
use crate::config::duration;
use crate::error::{Error, Result};
use crate::output::RowWriter;
use crate::side_outputs::Reserved;
use arrow::datatypes::SchemaRef;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// `type = "http"` as a sink.
pub const SINK: SinkType = SinkType {
    name: "http",
    keys: &[
        Key("url", Kind::Text),
        Key("format", Kind::Text),
        Key("batch_rows", Kind::Unsigned),
        Key("timeout", Kind::Text),
        Key("retries", Kind::Unsigned32),
        Key("headers", Kind::Table),
        Key("id", Kind::Text),
    ],
    compile: sink_table,
};

/// A URL that rows are POSTed to.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// Where.
    pub url: String,
    /// A request's body: a JSON array of rows, or JSON lines.
    pub lines: bool,
    /// Rows per request (1: a request per row).
    pub batch_rows: usize,
    /// How long a request may take before it is tried again.
    pub timeout: Duration,
    /// How many times a failed request is tried again.
    pub retries: u32,
    /// Headers sent with every request (`Authorization`, say).
    pub headers: Vec<(String, String)>,
    /// The start of each request's `Idempotency-Key` (default: the stream's
    /// name); the key ends with the number of the request's first row.
    pub id: String,
}

impl SinkConnector for HttpTarget {
    fn open_at(&self, schema: SchemaRef, length: Option<u64>) -> Result<Box<dyn RowWriter>> {
        Ok(Box::new(sink::HttpWriter::open(
            self, schema, length, None,
        )?))
    }

    fn open_with_dead_letters(
        &self,
        schema: SchemaRef,
        length: Option<u64>,
        dead_letters: &Arc<Reserved>,
    ) -> Result<Box<dyn RowWriter>> {
        Ok(Box::new(sink::HttpWriter::open(
            self,
            schema,
            length,
            Some(dead_letters.clone()),
        )?))
    }

    fn describe(&self) -> String {
        format!(
            "http POST {} ({} rows a request)",
            self.url, self.batch_rows
        )
    }

    fn label(&self) -> String {
        format!("http:{}", self.url)
    }

    fn refuses_distributed(&self, _guarantee: Guarantee) -> Option<Error> {
        Some(Error::refused(format!(
            "http:{}: the http sink numbers its rows for one writer; a distributed run \
             writes from several",
            self.url
        )))
    }
}

/// Checks and compiles an http sink's table:
///
/// ```toml
/// [[sink]]
/// from = "overheat"
/// type = "http"
/// url = "http://127.0.0.1:9000/alerts"
/// headers = { Authorization = "Bearer ..." }
/// ```
fn sink_table(t: &SinkTable<'_>) -> Result<Box<dyn SinkConnector>, Failure> {
    let url = t.need("url", "http://127.0.0.1:9000/alerts")?;
    if url
        .get_ref()
        .parse::<ureq::http::Uri>()
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        .is_none()
    {
        return Err(at(
            url.span(),
            format!(
                "url \"{}\" is not an http:// or https:// address with a host",
                url.get_ref()
            ),
        ));
    }
    let lines = match t.get::<String>("format")? {
        None => false,
        Some(f) => match f.get_ref().as_str() {
            "json" => false,
            "jsonl" => true,
            other => {
                return Err(at(
                    f.span(),
                    format!(
                        "format \"{other}\" is not one an http sink sends; use \"json\" (a \
                         JSON array of rows) or \"jsonl\""
                    ),
                ))
            }
        },
    };
    let batch_rows = match t.get::<u64>("batch_rows")? {
        None => 1,
        Some(n) if *n.get_ref() == 0 => return Err(at(n.span(), "batch_rows must be at least 1")),
        Some(n) => usize::try_from(*n.get_ref()).unwrap_or(usize::MAX),
    };
    let mut headers = Vec::new();
    if let Some(table) = t.get::<toml::Table>("headers")? {
        for (name, value) in table.get_ref() {
            let Some(value) = value.as_str() else {
                return Err(at(
                    table.span(),
                    format!("header `{name}`: its value is a string in quotes"),
                ));
            };
            if ureq::http::HeaderName::try_from(name.as_str()).is_err()
                || ureq::http::HeaderValue::try_from(value).is_err()
            {
                return Err(at(
                    table.span(),
                    format!("header `{name}` is not a valid HTTP header name and value"),
                ));
            }
            headers.push((name.clone(), value.to_string()));
        }
    }
    Ok(Box::new(HttpTarget {
        url: url.into_inner(),
        lines,
        batch_rows,
        timeout: t
            .get::<String>("timeout")?
            .map_or(Ok(Duration::from_secs(10)), |d| duration(&d, "`timeout`"))?,
        retries: t.get::<u32>("retries")?.map_or(5, Spanned::into_inner),
        headers,
        id: t
            .get::<String>("id")?
            .map_or_else(|| t.spec.from.get_ref().clone(), Spanned::into_inner),
    }))
}
