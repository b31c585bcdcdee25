//! Connectors: where a pipeline's rows come from and where they go, one
//! folder or file per `type =` of a source or sink. What a connector
//! implements (its table's keys and checks, schema, positions for replay,
//! commit after a checkpoint, durability) is in `docs/connectors.md`.
//!
//! This file is the registry: [`SOURCES`] and [`SINKS`] list every
//! connector by its `type =`, and are the only place that names them. The
//! plan looks a table's type up here and lets the connector check and
//! compile the rest of the table into a [`SourceConnector`] or a
//! [`SinkConnector`], which the run, the dashboard and distributed runs ask
//! what they need.
//!
//! - [`replay`]: what every replayable source implements, and the wrapper
//!   that takes its checkpoints;
//! - `crate::output`: what every sink writes through (`RowWriter`);
//! - [`file`]: files (JSON lines, CSV, Parquet), stdin and stdout;
//! - [`generator`]: generated inputs; [`paced`]: a rate limit on any source;
//! - [`nats`]: NATS JetStream, partitioned, for distributed runs;
//! - [`postgres`]: PostgreSQL tables, appended to or upserted;
//! - [`http`]: rows POSTed to a URL;
//! - [`kafka`]: Kafka topics, read by offset and written exactly once.
//!
//! Connectors read their tables from [`crate::config`] and never import the
//! plan: each holds its own settings type.

pub mod file;
pub mod generator;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "nats")]
pub mod nats;
pub mod paced;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod replay;

use crate::checkpoint::Guarantee;
use crate::config::diag::{at, Failure, Span};
use crate::config::{SinkSpec, SourceSpec};
use crate::error::{Error, Result};
use crate::format::{self, EventTime, Format};
use crate::output::RowWriter;
use crate::side_outputs::Reserved;
use arrow::datatypes::{DataType, SchemaRef};
#[cfg(feature = "nats")]
use nats::{NatsClaim, NatsSourcePlan, NatsTarget};
use replay::{ReplayableSource, SourceCounters};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Every source connector, by its `type =`: adding one is a folder and a
/// line here.
pub const SOURCES: &[SourceType] = &[
    file::FILE_SOURCE,
    file::STDIN,
    generator::GENERATOR,
    generator::NEXMARK,
    generator::FORMULA,
    #[cfg(feature = "nats")]
    nats::SOURCE,
    #[cfg(feature = "http")]
    http::SOURCE,
    #[cfg(feature = "postgres")]
    postgres::CDC_SOURCE,
    #[cfg(feature = "kafka")]
    kafka::SOURCE,
];

/// Every sink connector, by its `type =`: adding one is a folder and a line
/// here.
pub const SINKS: &[SinkType] = &[
    file::STDOUT,
    file::FILE_SINK,
    #[cfg(feature = "nats")]
    nats::SINK,
    #[cfg(feature = "postgres")]
    postgres::SINK,
    #[cfg(feature = "http")]
    http::SINK,
    #[cfg(feature = "kafka")]
    kafka::SINK,
];

/// A source connector in the registry.
pub struct SourceType {
    /// Its `type =`.
    pub name: &'static str,
    /// The keys its table takes, besides those every source takes
    /// ([`COMMON_SOURCE_KEYS`]), with the types of their values.
    pub keys: &'static [Key],
    /// Checks its table and compiles it.
    pub compile: fn(&SourceTable<'_>) -> Result<CompiledSource, Failure>,
}

/// A sink connector in the registry.
pub struct SinkType {
    /// Its `type =`.
    pub name: &'static str,
    /// The keys its table takes, besides `from` and `type`, with the
    /// types of their values.
    pub keys: &'static [Key],
    /// Checks its table and compiles it.
    pub compile: fn(&SinkTable<'_>) -> Result<Box<dyn SinkConnector>, Failure>,
}

/// The keys every source takes, whatever its connector: the plan reads
/// them.
pub const COMMON_SOURCE_KEYS: [&str; 4] =
    ["event_time", "max_out_of_orderness", "idle_timeout", "rate"];

/// A source's table, for its connector to read.
pub struct SourceTable<'a> {
    /// The table as written.
    pub spec: &'a SourceSpec,
    /// The folder that relative paths start from (the pipeline file's).
    pub base: &'a Path,
    /// The pipeline's name (what names its state, and a kafka source's
    /// consumer group by default).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub pipeline: &'a str,
    /// The schema the table gives, checked.
    schema: Option<Vec<(String, DataType)>>,
}

/// What a source's table compiles to.
pub struct CompiledSource {
    /// The connector, with its settings.
    pub connector: Arc<dyn SourceConnector>,
    /// The schema of its rows.
    pub schema: SchemaRef,
}

/// A sink's table, for its connector to read.
pub struct SinkTable<'a> {
    /// The table as written.
    pub spec: &'a SinkSpec,
    /// The folder that relative paths start from (the pipeline file's).
    pub base: &'a Path,
    /// The schema of the stream it writes (`None` for `late` and
    /// `dead_letter`, whose rows are checked when written).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub schema: Option<&'a SchemaRef>,
}

/// A source connector with its settings: what a run opens and reports.
pub trait SourceConnector: fmt::Debug + Send + Sync {
    /// Opens the source.
    fn open(&self, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>>;

    /// What `sluice validate` says of it.
    fn describe(&self) -> String;

    /// A short name, for the dashboard's graph.
    fn label(&self) -> String;

    /// The event-time field when the table names none, if the connector
    /// has one (generated inputs: `ts`).
    fn default_time_field(&self) -> Option<&str> {
        None
    }

    /// The input's size in bytes, when known (for the progress bar).
    fn total_bytes(&self) -> Option<u64> {
        None
    }

    /// Why this source cannot keep `guarantee` across a crash, if it cannot.
    fn refuses(&self, _guarantee: Guarantee) -> Option<Error> {
        None
    }

    /// The settings of a NATS source, if it is one.
    #[cfg(feature = "nats")]
    fn nats(&self) -> Option<&NatsSourcePlan> {
        None
    }

    /// Where the processes of a distributed run of this source meet, if it
    /// runs as one (a nats source; a kafka source with `coordination`).
    fn coordination(&self) -> Option<Coordination> {
        None
    }

    /// How many readers read it in parallel, at most `most` (the run's
    /// workers; one when the pipeline needs its records in order): each is
    /// opened with its [`Reader`] and reads its share of the input. One
    /// unless the connector can split its input (files in stripes, Kafka
    /// partitions). A resumed run keeps the number its checkpoint has.
    fn readers(&self, _most: usize) -> Result<usize> {
        Ok(1)
    }

    /// How many partitions a distributed run shares out (the broker is
    /// asked where the source does not say).
    fn partition_count(&self) -> Result<u32> {
        Ok(1)
    }

    /// The settings that identify the pipeline's state, as text for its
    /// fingerprint: without those that do not change results.
    fn identity(&self) -> String {
        format!("{self:?}")
    }
}

/// A sink connector with its settings: what a run opens and reports.
pub trait SinkConnector: fmt::Debug + Send + Sync {
    /// Opens the target for rows of `schema`, resuming at `length` bytes
    /// when given (after a checkpoint): what it holds beyond it was written
    /// after the checkpoint and is cut off. The error names the target.
    fn open_at(&self, schema: SchemaRef, length: Option<u64>) -> Result<Box<dyn RowWriter>>;

    /// Opens the target as [`SinkConnector::open_at`] does, for a stream
    /// other than `late` and `dead_letter`, with where the rows go that it
    /// gives up on (`Reserved::dead_from_sink`, at its checkpoints and at
    /// the end). A sink that never gives up a row keeps this default.
    fn open_with_dead_letters(
        &self,
        schema: SchemaRef,
        length: Option<u64>,
        _dead_letters: &Arc<Reserved>,
    ) -> Result<Box<dyn RowWriter>> {
        self.open_at(schema, length)
    }

    /// Opens the target for rows of `schema`, resuming where a checkpoint
    /// left it (`resume`: its length, and the state it recorded), with
    /// where the rows go that it gives up on (none for `late` and
    /// `dead_letter`). A sink that records nothing beside its length keeps
    /// this default.
    fn open_resuming(
        &self,
        schema: SchemaRef,
        resume: Option<&Resume>,
        dead_letters: Option<&Arc<Reserved>>,
    ) -> Result<Box<dyn RowWriter>> {
        let length = resume.map(|r| r.length);
        match dead_letters {
            Some(dead_letters) => self.open_with_dead_letters(schema, length, dead_letters),
            None => self.open_at(schema, length),
        }
    }

    /// The target's name, for reports.
    fn describe(&self) -> String;

    /// The target as the file names it, for the summary (`out/x.jsonl`).
    fn label(&self) -> String;

    /// Why this target cannot take part in checkpoints under `guarantee`,
    /// if it cannot.
    fn refuses(&self, _guarantee: Guarantee) -> Option<Error> {
        None
    }

    /// Why this target cannot be written by whichever process owns a
    /// partition of a distributed run under `guarantee`, if it cannot.
    fn refuses_distributed(&self, guarantee: Guarantee) -> Option<Error>;

    /// The file it writes, if it writes one.
    fn path(&self) -> Option<&Path> {
        None
    }

    /// What no other sink of the pipeline may write too, if anything: the
    /// file it writes, a kafka writer's topic and name.
    fn exclusive(&self) -> Option<String> {
        self.path().map(|p| format!("file {}", p.display()))
    }

    /// Why this target cannot take a changelog (rows that update earlier
    /// ones, with `op` and `revision`), if it cannot. A target that writes
    /// rows as they come takes one, its `op` column written like any other
    /// (every sink so far); one that applies rows to a table must apply
    /// updates and deletes, or say here that it does not.
    fn refuses_changelog(&self) -> Option<String> {
        None
    }

    /// The settings of a NATS sink, if it is one.
    #[cfg(feature = "nats")]
    fn nats(&self) -> Option<&NatsTarget> {
        None
    }

    /// Whether a run that starts afresh takes its first checkpoint before
    /// reading anything: a sink that appends to what outlives the run, and
    /// finds its own writes after a crash from what a checkpoint recorded,
    /// could not find those of a run that never committed one.
    fn checkpoint_at_start(&self) -> bool {
        false
    }

    /// The shortest lease a distributed run may give its partitions when it
    /// writes this sink (a writer whose records must land within a part of
    /// it), if it asks for one.
    fn least_lease_ttl(&self) -> Option<Duration> {
        None
    }

    /// Makes this sink the writer of one partition of a distributed run
    /// (its message ids, its writer's name, its fence). A sink that
    /// `refuses_distributed` nothing and needs nothing keeps this default.
    fn in_partition(&mut self, _claim: &SinkClaim) {}
}

/// Where the processes of a distributed run meet: NATS JetStream key-value
/// buckets hold the group's members, the partitions' leases and their
/// checkpoints (docs/distributed.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordination {
    /// The NATS servers (`nats://host:4222`, comma-separated).
    pub url: String,
    /// How long a lease or member lives unrenewed: how soon a dead
    /// process's partitions are taken over.
    pub lease_ttl: Duration,
    /// Copies of the buckets.
    pub replicas: usize,
}

/// Whether the process that runs a partition still owns it: false once its
/// lease has gone unrenewed for half its time to live (another process may
/// take it over once the whole has passed), after which it must not write.
#[derive(Clone)]
pub struct Fence(Arc<dyn Fn() -> bool + Send + Sync>);

impl Fence {
    /// A fence that asks `holds`.
    pub fn new(holds: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(holds))
    }

    /// Whether the partition is still this process's.
    pub fn holds(&self) -> bool {
        (self.0)()
    }
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fence")
    }
}

/// What the writer of one partition of a distributed run is told.
#[derive(Debug, Clone)]
pub struct SinkClaim {
    /// The partition.
    pub partition: u32,
    /// Unique to this sink, partition and state: `GROUP.EPOCH.pP.sI`
    /// (`--fresh` starts a new epoch).
    pub prefix: String,
    /// Whether the partition is still this process's.
    pub fence: Fence,
    /// The lease's time to live. The fence falls once the lease has gone
    /// unrenewed for half of it; another process takes the partition over
    /// once all of it has passed. A writer that must not write after that
    /// gives what it handed over a sixth of it to land (a third is left for
    /// the clocks of the server and the process to differ).
    pub lease_ttl: Duration,
}

/// What the run of one partition of a distributed run opens its source
/// with.
#[cfg(feature = "nats")]
#[derive(Clone, Debug)]
pub struct PartitionContext {
    /// The partition.
    pub partition: u32,
    /// What a nats source reads it with.
    pub nats: Option<NatsClaim>,
}

/// Where a sink resumes after a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// Its length (bytes, rows or messages: the sink says).
    pub length: u64,
    /// What else it recorded at the checkpoint (`Durable::with_state`).
    pub state: Vec<u8>,
}

/// The connector of a source's table, with the table's keys checked: each
/// is one the connector takes, with a value of its type.
pub fn check_source(spec: &SourceSpec) -> Result<&'static SourceType, Failure> {
    let kind = &spec.kind;
    let Some(connector) = SOURCES.iter().find(|c| c.name == kind.get_ref()) else {
        return Err(at(
            kind.span(),
            format!(
                "source type \"{}\" is not known; use {}",
                kind.get_ref(),
                choices(SOURCES.iter().map(|c| c.name))
            ),
        ));
    };
    let mut given: Vec<Given<'_>> = Vec::new();
    if let Some(format) = &spec.format {
        given.push(("format", format.span(), format.span()));
    }
    if let Some(schema) = &spec.schema {
        given.push(("schema", schema.span(), schema.span()));
    }
    given.extend(spec.settings.given());
    let takes: Vec<Key> = connector
        .keys
        .iter()
        .copied()
        .chain(COMMON_SOURCE_KEYS.map(|k| Key(k, Kind::Text)))
        .collect();
    let known: Vec<&str> = SOURCES
        .iter()
        .flat_map(|c| c.keys.iter().map(|k| k.0))
        .chain(["type", "format", "schema"])
        .chain(COMMON_SOURCE_KEYS)
        .collect();
    only(kind, &given, &takes, &known)?;
    check_types(&spec.settings, connector.keys)?;
    Ok(connector)
}

/// The connector of a sink's table, with the table's keys checked.
pub fn check_sink(spec: &SinkSpec) -> Result<&'static SinkType, Failure> {
    let kind = &spec.kind;
    let Some(connector) = SINKS.iter().find(|c| c.name == kind.get_ref()) else {
        return Err(at(
            kind.span(),
            format!(
                "sink type \"{}\" is not known; use {}",
                kind.get_ref(),
                choices(SINKS.iter().map(|c| c.name))
            ),
        ));
    };
    let given: Vec<Given<'_>> = spec.settings.given().collect();
    let known: Vec<&str> = SINKS
        .iter()
        .flat_map(|c| c.keys.iter().map(|k| k.0))
        .chain(["from", "type"])
        .collect();
    only(kind, &given, connector.keys, &known)?;
    check_types(&spec.settings, connector.keys)?;
    Ok(connector)
}

/// Checks the source table of pipeline `pipeline` against the registry and
/// compiles it.
pub fn compile_source(
    spec: &SourceSpec,
    base: &Path,
    pipeline: &str,
) -> Result<CompiledSource, Failure> {
    let connector = check_source(spec)?;
    let schema = explicit_schema(spec)?;
    (connector.compile)(&SourceTable {
        spec,
        base,
        pipeline,
        schema,
    })
}

/// Checks a sink's table against the registry and compiles it for a stream
/// of `schema` (`None` for `late` and `dead_letter`).
pub fn compile_sink(
    spec: &SinkSpec,
    base: &Path,
    schema: Option<&SchemaRef>,
) -> Result<Box<dyn SinkConnector>, Failure> {
    let connector = check_sink(spec)?;
    (connector.compile)(&SinkTable { spec, base, schema })
}

/// A key given: its name, where the key is, where its value is.
type Given<'a> = (&'a str, Span, Span);

/// A key of a connector's table and the type of its value.
#[derive(Debug, Clone, Copy)]
pub struct Key(pub &'static str, pub Kind);

/// The type of a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "nats"), allow(dead_code))] // only nats has some kinds yet
pub enum Kind {
    /// A string.
    Text,
    /// A whole number of 0 or more.
    Unsigned,
    /// A whole number of 0 to 2^32 - 1.
    Unsigned32,
    /// A whole number.
    Integer,
    /// A table (`schema`), checked where it is read.
    Table,
    /// `true` or `false`.
    Bool,
    /// A name, or a list of names (`key = "id"`, `key = ["a", "b"]`).
    Names,
}

/// Checks that every value given has the type of its key.
fn check_types(settings: &crate::config::Settings, keys: &[Key]) -> Result<(), Failure> {
    for Key(key, kind) in keys {
        match kind {
            Kind::Text => settings.get::<String>(key).map(drop)?,
            Kind::Unsigned => settings.get::<u64>(key).map(drop)?,
            Kind::Unsigned32 => settings.get::<u32>(key).map(drop)?,
            Kind::Integer => settings.get::<i64>(key).map(drop)?,
            Kind::Bool => settings.get::<bool>(key).map(drop)?,
            Kind::Names => names(settings, key).map(drop)?,
            Kind::Table => {}
        }
    }
    Ok(())
}

/// A key's names: one name, a list of them, or names separated by commas
/// (`"a, b"`, as a SQL table's settings give them); at least one, none
/// empty.
pub fn names(
    settings: &crate::config::Settings,
    key: &str,
) -> Result<Option<toml::Spanned<Vec<String>>>, Failure> {
    let Some(value) = settings.get::<toml::Value>(key)? else {
        return Ok(None);
    };
    let span = value.span();
    let list: Option<Vec<String>> = match value.into_inner() {
        toml::Value::String(names) => {
            Some(names.split(',').map(|n| n.trim().to_string()).collect())
        }
        toml::Value::Array(items) => items
            .into_iter()
            .map(|i| i.as_str().map(String::from))
            .collect(),
        _ => None,
    };
    match list {
        Some(list) if !list.is_empty() && list.iter().all(|n| !n.is_empty()) => {
            Ok(Some(toml::Spanned::new(span, list)))
        }
        _ => Err(at(
            span,
            format!(
                "`{key}` takes a name or a list of names: {key} = \"id\" or {key} = [\"a\", \"b\"]"
            ),
        )),
    }
}

/// The schema a source's table gives (`schema = { field = "type", ... }`).
fn explicit_schema(spec: &SourceSpec) -> Result<Option<Vec<(String, DataType)>>, Failure> {
    let Some(fields) = &spec.schema else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (name, t) in fields.get_ref() {
        let dt = format::parse_type(t.get_ref()).ok_or_else(|| {
            at(
                t.span(),
                format!(
                    "type \"{}\" of field `{name}` is not known; use one of: {}",
                    t.get_ref(),
                    format::TYPE_NAMES
                ),
            )
        })?;
        out.push((name.clone(), dt));
    }
    Ok(Some(out))
}

/// `"a", "b" or "c"`.
fn choices<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Refuses a key given that type `kind` does not take: first a key no type
/// takes (a misspelling, at the key, in the order written), then a key of
/// another type (it "does not apply", at its value, in the order of
/// `known`).
fn only(
    kind: &toml::Spanned<String>,
    given: &[Given<'_>],
    takes: &[Key],
    known: &[&str],
) -> Result<(), Failure> {
    let names: Vec<&str> = takes.iter().map(|k| k.0).collect();
    let list = names.join(", ");
    let foreign = given.iter().filter(|(key, ..)| !names.contains(key));
    if let Some((key, span, _)) = foreign.clone().find(|(key, ..)| !known.contains(key)) {
        let near = names
            .iter()
            .find(|k| strsim::levenshtein(k, key) <= 2)
            .map(|k| format!(" (`{k}`?)"))
            .unwrap_or_default();
        return Err(at(
            span.clone(),
            format!(
                "unknown field `{key}`{near}; remove it or fix its spelling; type \"{}\" \
                 takes: {list}",
                kind.get_ref()
            ),
        ));
    }
    let first = foreign.min_by_key(|(key, ..)| known.iter().position(|k| k == key));
    if let Some((key, _, value)) = first {
        return Err(at(
            value.clone(),
            format!(
                "`{key}` does not apply to type \"{}\"; it takes: {list}",
                kind.get_ref()
            ),
        ));
    }
    Ok(())
}

/// The text `key` of a `what` table of type `kind` must give, or an error
/// at the table's type that shows how to give it.
fn needed(
    settings: &crate::config::Settings,
    kind: &toml::Spanned<String>,
    what: &str,
    key: &str,
    example: &str,
) -> Result<toml::Spanned<String>, Failure> {
    settings.get::<String>(key)?.ok_or_else(|| {
        at(
            kind.span(),
            format!(
                "a {} {what} needs `{key}`: {key} = \"{example}\"",
                kind.get_ref()
            ),
        )
    })
}

impl SourceTable<'_> {
    /// The value of a connector's `key`, read as a `T`.
    pub fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<toml::Spanned<T>>, Failure> {
        self.spec.settings.get(key)
    }

    /// Where the table says `type =`: errors about the table as a whole
    /// point there.
    pub fn span(&self) -> Span {
        self.spec.kind.span()
    }

    /// The text a connector needs, or an error that shows how to give it.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // only nats has such keys yet
    pub fn need(&self, key: &str, example: &str) -> Result<toml::Spanned<String>, Failure> {
        needed(&self.spec.settings, &self.spec.kind, "source", key, example)
    }

    /// The format the table says, or `default`.
    pub fn format(&self, default: Option<Format>) -> Result<Format, Failure> {
        match &self.spec.format {
            Some(f) => Format::from_name(f.get_ref()).ok_or_else(|| {
                at(
                    f.span(),
                    format!(
                        "format \"{}\" is not known; use \"jsonl\", \"csv\" or \"parquet\"",
                        f.get_ref()
                    ),
                )
            }),
            None => default.ok_or_else(|| {
                at(
                    self.span(),
                    "say the input's format: format = \"jsonl\", \"csv\" or \"parquet\"",
                )
            }),
        }
    }

    /// `end = "never" | "caught-up"` of a source that may read forever:
    /// whether it ends once it has read what `what` held at the start.
    #[cfg_attr(not(any(feature = "nats", feature = "kafka")), allow(dead_code))]
    pub fn ends_when_caught_up(&self, what: &str) -> Result<bool, Failure> {
        let Some(end) = self.get::<String>("end")? else {
            return Ok(false);
        };
        match end.get_ref().as_str() {
            "never" => Ok(false),
            "caught-up" => Ok(true),
            other => Err(at(
                end.span(),
                format!(
                    "end = \"{other}\" is not known; use \"never\" (read forever) or \
                     \"caught-up\" (end once what {what} held at the start is read)"
                ),
            )),
        }
    }

    /// `readers = N`: at most how many readers read the source in
    /// parallel (1 reads it in order).
    pub fn readers(&self) -> Result<Option<usize>, Failure> {
        match self.get::<u64>("readers")? {
            None => Ok(None),
            Some(n) if *n.get_ref() == 0 => Err(at(
                n.span(),
                "readers = 0 reads nothing; say how many readers read the input in parallel \
                 (readers = 1 reads it in order), or remove it for one per worker",
            )),
            Some(n) => Ok(Some(usize::try_from(*n.get_ref()).unwrap_or(usize::MAX))),
        }
    }

    /// The schema the table gives (`schema = { field = "type", ... }`).
    pub fn schema(&self) -> Option<&[(String, DataType)]> {
        self.schema.as_deref()
    }

    /// The schema the table gives, required: `what` cannot be read ahead
    /// to infer one.
    pub fn required_schema(&self, what: &str) -> Result<Vec<(String, DataType)>, Failure> {
        self.schema.clone().ok_or_else(|| {
            at(
                self.span(),
                format!(
                    "a {} source needs `schema = {{ field = \"type\", ... }}`: {what} can't be \
                     read ahead to infer one",
                    self.spec.kind.get_ref()
                ),
            )
        })
    }
}

impl SinkTable<'_> {
    /// A table of text values (`headers = { name = "value" }`), in the
    /// order written; `refuse` says why a pair is not taken, if it is not.
    #[cfg_attr(not(any(feature = "http", feature = "kafka")), allow(dead_code))]
    pub fn text_table(
        &self,
        key: &str,
        refuse: impl Fn(&str, &str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, Failure> {
        let Some(table) = self.get::<toml::Table>(key)? else {
            return Ok(Vec::new());
        };
        let mut pairs = Vec::new();
        for (name, value) in table.get_ref() {
            let Some(value) = value.as_str() else {
                return Err(at(
                    table.span(),
                    format!("`{key}`: the value of `{name}` is a string in quotes"),
                ));
            };
            if let Some(why) = refuse(name, value) {
                return Err(at(table.span(), why));
            }
            pairs.push((name.clone(), value.to_string()));
        }
        Ok(pairs)
    }

    /// The value of a connector's `key`, read as a `T`.
    pub fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<toml::Spanned<T>>, Failure> {
        self.spec.settings.get(key)
    }

    /// Where the table says `type =`.
    pub fn span(&self) -> Span {
        self.spec.kind.span()
    }

    /// The text a connector needs, or an error that shows how to give it.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))] // only nats has such keys yet
    pub fn need(&self, key: &str, example: &str) -> Result<toml::Spanned<String>, Failure> {
        needed(&self.spec.settings, &self.spec.kind, "sink", key, example)
    }

    /// The format the table says, if it says one.
    pub fn format(&self) -> Result<Option<toml::Spanned<Format>>, Failure> {
        let Some(f) = self.get::<String>("format")? else {
            return Ok(None);
        };
        match Format::from_name(f.get_ref()) {
            Some(format) => Ok(Some(toml::Spanned::new(f.span(), format))),
            None => Err(at(
                f.span(),
                format!(
                    "format \"{}\" is not known; use \"jsonl\", \"csv\" or \"parquet\"",
                    f.get_ref()
                ),
            )),
        }
    }
}

/// What a source needs to open besides its settings.
pub struct Opening<'a> {
    /// The rows' schema.
    pub schema: SchemaRef,
    /// The event-time column.
    pub time: EventTime,
    /// Rows per chunk.
    pub chunk_rows: usize,
    /// How long a partial chunk waits for more input.
    pub batch_interval: Duration,
    /// The adaptive mode steers the chunk size.
    pub adaptive: bool,
    /// Where dead letters go.
    pub reserved: &'a Arc<Reserved>,
    /// The source's counters.
    pub counters: &'a Arc<SourceCounters>,
    /// The first checkpoint is taken at the first poll: a source that can
    /// gives nothing until it has committed (see
    /// [`SinkConnector::checkpoint_at_start`]).
    pub first_checkpoint_at_once: bool,
    /// The partition to read, in a distributed run.
    #[cfg(feature = "nats")]
    pub partition: Option<&'a PartitionContext>,
    /// Which of the source's readers this is.
    pub reader: Reader,
}

/// One of the readers of a source read in parallel
/// ([`SourceConnector::readers`]): reader `index` of `readers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    /// Its number, from 0.
    pub index: usize,
    /// How many read the source.
    pub readers: usize,
}

impl Reader {
    /// The only reader of a source.
    pub const ONLY: Reader = Reader {
        index: 0,
        readers: 1,
    };

    /// Whether the `n`-th of the parts it shares out in turn (a stripe, a
    /// partition) is this reader's.
    pub fn reads(&self, n: u64) -> bool {
        n % self.readers as u64 == self.index as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_names_each_connector_once_and_none_takes_a_common_key() {
        for names in [
            SOURCES.iter().map(|c| c.name).collect::<Vec<_>>(),
            SINKS.iter().map(|c| c.name).collect(),
        ] {
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{names:?}");
        }
        for c in SOURCES {
            for Key(key, _) in c.keys {
                assert!(!COMMON_SOURCE_KEYS.contains(key), "{}: {key}", c.name);
                assert_ne!(*key, "type", "{}", c.name);
            }
        }
        for c in SINKS {
            assert!(!c.keys.iter().any(|k| ["from", "type"].contains(&k.0)));
        }
    }

    #[test]
    fn choices_read_as_a_list() {
        assert_eq!(choices(["a"].into_iter()), "\"a\"");
        assert_eq!(
            choices(["a", "b", "c"].into_iter()),
            "\"a\", \"b\" or \"c\""
        );
    }
}
