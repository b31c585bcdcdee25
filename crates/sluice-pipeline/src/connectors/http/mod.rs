//! `type = "http"`: a source that takes records POSTed to a server, and a
//! sink that POSTs rows to a URL (a webhook called when a rule fires, a
//! service's bulk endpoint).
//!
//! - [`source`]: the server: records answered once durable, backpressure
//!   as 429, idempotency keys remembered;
//! - [`sink`]: the writer: requests with an idempotency key, retries with
//!   backoff, dead letters once the retries run out.

mod sink;
mod source;

use super::replay::ReplayableSource;
use super::{
    CompiledSource, Key, Kind, Opening, SinkConnector, SinkTable, SinkType, SourceConnector,
    SourceTable, SourceType,
};
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

/// `type = "http"` as a source.
pub const SOURCE: SourceType = SourceType {
    name: "http",
    keys: &[
        Key("format", Kind::Text),
        Key("schema", Kind::Table),
        Key("listen", Kind::Text),
        Key("path", Kind::Text),
        Key("token_env", Kind::Text),
        Key("max_body", Kind::Unsigned),
        Key("max_pending", Kind::Unsigned),
        Key("end_after_idle", Kind::Text),
    ],
    compile: source_table,
};

/// A server that takes records POSTed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSourcePlan {
    /// The address it listens on (loopback by default).
    pub listen: std::net::SocketAddr,
    /// The path records are POSTed to.
    pub path: String,
    /// The bearer token requests must carry, if any (read from the
    /// environment variable `token_env` names when the file is loaded).
    pub token: Option<String>,
    /// The largest body taken, in bytes (larger: 413).
    pub max_body: usize,
    /// Rows that may wait to be processed before requests are answered
    /// 429.
    pub max_pending: usize,
    /// End the input once no request has come for this long (and every
    /// request is answered); by default the source runs until stopped.
    pub end_after_idle: Option<Duration>,
}

/// An http source, as the registry holds it.
#[derive(Debug, Clone)]
pub struct HttpSourceConnector(pub HttpSourcePlan);

impl SourceConnector for HttpSourceConnector {
    fn open(&self, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>> {
        let decoder = crate::format::TextDecoder::new(
            crate::format::Format::Jsonl,
            at.schema.clone(),
            at.time.clone(),
            format!("http:{}{}", self.0.listen, self.0.path),
        );
        Ok(Box::new(source::HttpSource::open(
            &self.0,
            decoder,
            at.counters.clone(),
            crate::side_outputs::ReservedHandle::new(at.reserved.clone()),
            at.reserved.holds(),
            at.batch_interval.max(Duration::from_millis(1)),
        )?))
    }

    fn describe(&self) -> String {
        format!("http server at {}{}", self.0.listen, self.0.path)
    }

    fn label(&self) -> String {
        format!("http {}{}", self.0.listen, self.0.path)
    }

    fn identity(&self) -> String {
        // The token and limits do not change results.
        format!("http {}{}", self.0.listen, self.0.path)
    }
}

/// Checks and compiles an http source's table:
///
/// ```toml
/// [source]
/// type = "http"
/// listen = "127.0.0.1:8080"
/// path = "/ingest"
/// schema = { sensor = "string", temperature = "float", ts = "int" }
/// event_time = "ts"
/// ```
fn source_table(t: &SourceTable<'_>) -> Result<CompiledSource, Failure> {
    if let Some(f) = &t.spec.format {
        if f.get_ref() != "jsonl" && f.get_ref() != "json" {
            return Err(at(
                f.span(),
                format!(
                    "format \"{}\": an http source takes JSON (lines, or an array): \
                     format = \"jsonl\"",
                    f.get_ref()
                ),
            ));
        }
    }
    let fields = t.required_schema("a request that has not come yet")?;
    let listen = match t.get::<String>("listen")? {
        None => std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(l) => l.get_ref().parse().map_err(|_| {
            at(
                l.span(),
                format!(
                    "listen \"{}\" is not an address and port: listen = \"127.0.0.1:8080\" \
                     (\"0.0.0.0:8080\" takes requests from other machines)",
                    l.get_ref()
                ),
            )
        })?,
    };
    let path = match t.get::<String>("path")? {
        None => "/ingest".to_string(),
        Some(p) if p.get_ref().starts_with('/') && !p.get_ref().contains(['{', '}', '*']) => {
            p.into_inner()
        }
        Some(p) => {
            return Err(at(
                p.span(),
                "path is a plain path that starts with /: path = \"/ingest\"",
            ))
        }
    };
    let token = match t.get::<String>("token_env")? {
        None => None,
        Some(name) => match std::env::var(name.get_ref()) {
            Ok(token) if !token.is_empty() => Some(token),
            _ => {
                return Err(at(
                    name.span(),
                    format!(
                        "the environment variable {} that token_env names is not set: set it \
                         to the bearer token requests must carry",
                        name.get_ref()
                    ),
                ))
            }
        },
    };
    let count = |key: &str, default: usize| -> Result<usize, Failure> {
        match t.get::<u64>(key)? {
            None => Ok(default),
            Some(n) if *n.get_ref() == 0 => Err(at(n.span(), format!("{key} must be at least 1"))),
            Some(n) => Ok(usize::try_from(*n.get_ref()).unwrap_or(usize::MAX)),
        }
    };
    Ok(CompiledSource {
        connector: Arc::new(HttpSourceConnector(HttpSourcePlan {
            listen,
            path,
            token,
            max_body: count("max_body", 10 << 20)?,
            max_pending: count("max_pending", 100_000)?,
            end_after_idle: t
                .get::<String>("end_after_idle")?
                .map(|d| duration(&d, "`end_after_idle`"))
                .transpose()?,
        })),
        schema: crate::format::explicit_schema(&fields),
    })
}

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
    let headers = t.text_table("headers", |name, value| {
        (ureq::http::HeaderName::try_from(name).is_err()
            || ureq::http::HeaderValue::try_from(value).is_err())
        .then(|| format!("header `{name}` is not a valid HTTP header name and value"))
    })?;
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
