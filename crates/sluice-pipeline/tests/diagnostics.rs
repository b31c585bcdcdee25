//! One case per diagnostic of `crates/sluice-pipeline/src/plan.rs` (every
//! error that points into the pipeline file), plus a few of the TOML and
//! serde errors that `spec.rs` positions: a new diagnostic without a case
//! here is visible in review.
//!
//! Each case is a valid base pipeline (each base loads, see
//! `every_base_pipeline_loads`) with one or two of its lines replaced, so
//! that line numbers stay those of the base. A case checks the error's line
//! (`p.toml:LINE:`) and some words of its message; every failing case is
//! reported at once.
//!
//! Sites without a case, because no pipeline file reaches them:
//! - `input_schema`, "a schema is needed": its only caller (file sources)
//!   always passes the input's path.
//! - `transform`, the error of `SqlContext::new`: it only wraps
//!   `DFSchema::try_from(Schema)`, which does not check field names in
//!   DataFusion 55 and so cannot fail.
//!
//! NATS, PostgreSQL and HTTP sources and sinks are covered: loading a
//! pipeline only checks their settings, connects to no server and starts
//! none (`service_cases`).

use sluice_pipeline::load_str;
use sluice_pipeline::Error;
use std::collections::HashSet;
use std::path::Path;

/// A generator source, every transform type, and stdout, file and NATS sinks.
const GEN: &str = r#"name = "diag"

[source]
type = "generator"
events = 100
keys = 3
max_out_of_orderness = "1s"
idle_timeout = "5s"
rate = 1000.0

[execution]
mode = "micro-batch"
batch_size = 16
batch_interval = "100ms"
workers = 2

[[transform]]
name = "valid"
type = "filter"
where = "temperature > 0"

[[transform]]
name = "fahrenheit"
type = "select"
columns = { sensor = "sensor", f = "temperature * 1.8 + 32", ts = "ts" }

[[transform]]
name = "per_sensor"
type = "window"
from = "valid"
key = ["sensor"]
window = { type = "tumbling", size = "10s" }
aggregates = { n = "count(*)", high = "max(temperature)" }
allowed_lateness = "2s"

[[transform]]
name = "hot"
type = "rule"
from = "per_sensor"
when = "high > 80"
emit = { sensor = "sensor", high = "high" }

[[sink]]
from = "hot"
type = "stdout"

[[sink]]
from = "fahrenheit"
type = "file"
path = "out/fahrenheit.csv"

[[sink]]
from = "per_sensor"
type = "nats"
url = "nats://127.0.0.1:4222"
subject = "alerts.{sensor}"
stream = "alerts"

[[sink]]
from = "dead_letter"
type = "file"
path = "out/dead.jsonl"
"#;

/// A JSON lines file source whose schema is inferred (`data.jsonl`).
const JSONL: &str = r#"name = "diag"

[source]
type = "file"
path = "data.jsonl"
format = "jsonl"
event_time = "ts"

[[sink]]
from = "source"
type = "stdout"
"#;

/// A CSV file source with a `schema` (`data.csv`).
const CSV: &str = r#"name = "diag"

[source]
type = "file"
path = "data.csv"
event_time = "ts"
schema = { k = "string", v = "float64", ts = "int64" }

[[sink]]
from = "source"
type = "stdout"
"#;

/// A stdin source.
const STDIN: &str = r#"name = "diag"

[source]
type = "stdin"
format = "jsonl"
schema = { k = "string", ts = "int64" }
event_time = "ts"

[[sink]]
from = "source"
type = "stdout"
"#;

/// A NATS source (never connected to: loading only checks it).
const NATS: &str = r#"name = "diag"

[source]
type = "nats"
url = "nats://127.0.0.1:4222"
stream = "readings"
subject = "readings.*"
partitions = 4
schema = { sensor = "string", temperature = "float64", ts = "int64" }
event_time = "ts"
end = "caught-up"
lease_ttl = "5s"
max_ack_pending = 100

[[sink]]
from = "source"
type = "stdout"
"#;

/// An http source, a postgres sink and an http sink (loading connects to
/// nothing and starts no server).
const SERVICES: &str = r#"name = "diag"

[source]
type = "http"
listen = "127.0.0.1:8080"
schema = { sensor = "string", temperature = "float64", ts = "int64" }
event_time = "ts"

[[sink]]
from = "source"
type = "postgres"
url = "postgresql://sluice@127.0.0.1:5432/shop"
table = "readings"
key = ["sensor", "ts"]
create = true

[[sink]]
from = "source"
type = "http"
url = "http://127.0.0.1:9000/hook"
batch_rows = 10
"#;

/// A postgres-cdc source.
const CDC: &str = r#"name = "diag"

[source]
type = "postgres-cdc"
url = "postgresql://sluice@127.0.0.1:5432/shop"
table = "orders"
schema = { id = "int64", product = "string" }

[[sink]]
from = "source"
type = "stdout"
"#;

/// A kafka source and sink (loading connects to nothing).
const KAFKA: &str = r#"name = "diag"

[source]
type = "kafka"
brokers = "127.0.0.1:9092"
topic = "readings"
schema = { sensor = "string", temperature = "float64", ts = "int64" }
event_time = "ts"

[[sink]]
from = "source"
type = "kafka"
brokers = "127.0.0.1:9092"
topic = "copy"
key = "sensor"
"#;

const BASES: [(&str, &str); 8] = [
    ("GEN", GEN),
    ("JSONL", JSONL),
    ("CSV", CSV),
    ("STDIN", STDIN),
    ("NATS", NATS),
    ("SERVICES", SERVICES),
    ("KAFKA", KAFKA),
    ("CDC", CDC),
];

/// The inputs the file sources read, in a fresh folder (the `base` of
/// every case).
fn inputs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    for (name, text) in [
        (
            "data.jsonl",
            "{\"k\":\"a\",\"v\":1.5,\"ok\":true,\"ts\":1000}\n\
             {\"k\":\"b\",\"v\":2.0,\"ok\":false,\"ts\":2000}\n",
        ),
        ("bad.jsonl", "this is not json\n"),
        ("data.csv", "k,v,ts\na,1.5,1000\nb,2.0,2000\n"),
        ("empty.csv", ""),
    ] {
        std::fs::write(dir.path().join(name), text)
            .unwrap_or_else(|e| panic!("write input {name}: {e}"));
    }
    dir
}

struct Case {
    name: &'static str,
    text: String,
    line: usize,
    words: &'static [&'static str],
}

/// `base` with each `(line, old, new)` applied: its 1-based line `line`,
/// which must read `old`, replaced by `new`. Lines keep their numbers.
fn edit<'a>(base: &'a str, edits: &[(usize, &'a str, &'a str)]) -> String {
    let mut lines: Vec<&str> = base.lines().collect();
    for &(line, old, new) in edits {
        assert!(
            (1..=lines.len()).contains(&line),
            "the base has no line {line}"
        );
        let slot = &mut lines[line - 1];
        assert_eq!(*slot, old, "line {line} of the base is not `{old}`");
        *slot = new;
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn case(
    name: &'static str,
    base: &str,
    edits: &[(usize, &str, &str)],
    line: usize,
    words: &'static [&'static str],
) -> Case {
    Case {
        name,
        text: edit(base, edits),
        line,
        words,
    }
}

/// The first `n` lines of `base`.
fn first_lines(base: &str, n: usize) -> String {
    let mut text = base.lines().take(n).collect::<Vec<_>>().join("\n");
    text.push('\n');
    text
}

/// The window line of `GEN` (its line 32).
const WINDOW: &str = r#"window = { type = "tumbling", size = "10s" }"#;

fn cases() -> Vec<Case> {
    vec![
        // ---- ranges: every duration, size and count with its unit ----
        case(
            "window: a size under a millisecond",
            GEN,
            &[(
                32,
                WINDOW,
                r#"window = { type = "tumbling", size = "500us" }"#,
            )],
            32,
            &["size `500us` is not a whole number of milliseconds"],
        ),
        case(
            "window: a size in fractions of a millisecond",
            GEN,
            &[(
                32,
                WINDOW,
                r#"window = { type = "tumbling", size = "1.5ms" }"#,
            )],
            32,
            &["not a whole number of milliseconds"],
        ),
        case(
            "window: a size over ten years",
            GEN,
            &[(
                32,
                WINDOW,
                r#"window = { type = "tumbling", size = "11y" }"#,
            )],
            32,
            &["size `11y` is longer than ten years"],
        ),
        case(
            "window: a sliding window in too many panes",
            GEN,
            &[(
                32,
                WINDOW,
                r#"window = { type = "sliding", size = "365d", slide = "1ms" }"#,
            )],
            32,
            &[
                "each event falls in",
                "windows; at most 10000",
                "make slide longer",
            ],
        ),
        case(
            "window: a sliding size under a millisecond",
            GEN,
            &[(
                32,
                WINDOW,
                r#"window = { type = "sliding", size = "900us", slide = "1ms" }"#,
            )],
            32,
            &["size `900us` is not a whole number of milliseconds"],
        ),
        case(
            "window: a slide longer than the size",
            GEN,
            &[(
                32,
                WINDOW,
                r#"window = { type = "sliding", size = "1s", slide = "2s" }"#,
            )],
            32,
            &["slide must be longer than zero and no longer than size"],
        ),
        case(
            "window: a session gap under a millisecond",
            GEN,
            &[(32, WINDOW, r#"window = { type = "session", gap = "10us" }"#)],
            32,
            &["gap `10us` is not a whole number of milliseconds"],
        ),
        case(
            "window: allowed_lateness in fractions of a millisecond",
            GEN,
            &[(
                34,
                r#"allowed_lateness = "2s""#,
                r#"allowed_lateness = "0.1ms""#,
            )],
            34,
            &["allowed_lateness `0.1ms` is not a whole number of milliseconds"],
        ),
        case(
            "window: allowed_lateness over ten years",
            GEN,
            &[(
                34,
                r#"allowed_lateness = "2s""#,
                r#"allowed_lateness = "500y""#,
            )],
            34,
            &["allowed_lateness `500y` is longer than ten years"],
        ),
        case(
            "finish_source: max_out_of_orderness under a millisecond",
            GEN,
            &[(
                7,
                r#"max_out_of_orderness = "1s""#,
                r#"max_out_of_orderness = "20us""#,
            )],
            7,
            &["max_out_of_orderness `20us` is not a whole number of milliseconds"],
        ),
        case(
            "finish_source: idle_timeout of zero",
            GEN,
            &[(8, r#"idle_timeout = "5s""#, r#"idle_timeout = "0s""#)],
            8,
            &["idle_timeout must be longer than zero"],
        ),
        case(
            "finish_source: idle_timeout past any clock",
            GEN,
            &[(
                8,
                r#"idle_timeout = "5s""#,
                r#"idle_timeout = "18446744073709551615s""#,
            )],
            8,
            &["idle_timeout", "longer than ten years"],
        ),
        case(
            "source: a generator with no keys",
            GEN,
            &[(6, "keys = 3", "keys = 0")],
            6,
            &["keys must be at least 1"],
        ),
        case(
            "source: generator event times past the last one",
            GEN,
            &[(6, "keys = 3", "interval_ms = 9223372036854775807")],
            6,
            &[
                "go past the last event time",
                "make interval_ms or events smaller",
            ],
        ),
        case(
            "execution: a batch of billions of rows",
            GEN,
            &[(13, "batch_size = 16", "batch_size = 1000000000")],
            13,
            &["batch_size must be at least 1 and at most 4194304 rows"],
        ),
        case(
            "execution: a million workers",
            GEN,
            &[(15, "workers = 2", "workers = 1000000")],
            15,
            &["workers must be at least 1 and at most 1024"],
        ),
        case(
            "execution: batch_interval over ten years",
            GEN,
            &[(
                14,
                r#"batch_interval = "100ms""#,
                r#"batch_interval = "20y""#,
            )],
            14,
            &["batch_interval `20y` is longer than ten years"],
        ),
        // ---- compile ----
        Case {
            name: "compile: the pipeline has no sink",
            text: first_lines(GEN, 42),
            line: 1,
            words: &["the pipeline has no sink", "add [[sink]]"],
        },
        // ---- execution ----
        case(
            "execution: mode is not known",
            GEN,
            &[(12, r#"mode = "micro-batch""#, r#"mode = "turbo""#)],
            12,
            &[r#"mode "turbo" is not known"#],
        ),
        case(
            "execution: target_latency is for mode adaptive",
            GEN,
            &[(16, "", r#"target_latency = "5ms""#)],
            16,
            &["target_latency is for mode", "adaptive"],
        ),
        case(
            "execution: the adaptive target latency fails the flush policy's check",
            GEN,
            &[
                (12, r#"mode = "micro-batch""#, r#"mode = "adaptive""#),
                (16, "", r#"target_latency = "50us""#),
            ],
            16,
            &["target latency must be at least"],
        ),
        case(
            "execution: batch_size must be at least 1",
            GEN,
            &[(13, "batch_size = 16", "batch_size = 0")],
            13,
            &["batch_size must be at least 1"],
        ),
        case(
            "execution: workers must be at least 1",
            GEN,
            &[(15, "workers = 2", "workers = 0")],
            15,
            &["workers must be at least 1"],
        ),
        // ---- duration (called by execution, nats_source, finish_source, window) ----
        case(
            "duration: batch_interval is not a duration",
            GEN,
            &[(
                14,
                r#"batch_interval = "100ms""#,
                r#"batch_interval = "soon""#,
            )],
            14,
            &["batch_interval `soon` is not a duration", "500ms"],
        ),
        case(
            "duration: target_latency is not a duration",
            GEN,
            &[
                (12, r#"mode = "micro-batch""#, r#"mode = "adaptive""#),
                (16, "", r#"target_latency = "soon""#),
            ],
            16,
            &["target_latency `soon` is not a duration"],
        ),
        // ---- source ----
        case(
            "source: type of a schema field is not known",
            JSONL,
            &[(8, "", r#"schema = { ts = "decimal" }"#)],
            8,
            &[r#"type "decimal" of field `ts` is not known"#],
        ),
        case(
            "source: format is not known",
            JSONL,
            &[(6, r#"format = "jsonl""#, r#"format = "xml""#)],
            6,
            &[r#"format "xml" is not known"#],
        ),
        case(
            "source: say the input's format (file without a known extension)",
            JSONL,
            &[
                (5, r#"path = "data.jsonl""#, r#"path = "data.txt""#),
                (6, r#"format = "jsonl""#, ""),
            ],
            4,
            &["say the input's format"],
        ),
        case(
            "source: say the input's format (stdin)",
            STDIN,
            &[(5, r#"format = "jsonl""#, "")],
            4,
            &["say the input's format"],
        ),
        case(
            "source: a file source needs path",
            JSONL,
            &[(5, r#"path = "data.jsonl""#, "")],
            4,
            &["a file source needs `path`"],
        ),
        case(
            "source: stdin takes jsonl or csv, not parquet",
            STDIN,
            &[(5, r#"format = "jsonl""#, r#"format = "parquet""#)],
            5,
            &[r#"stdin takes "jsonl" or "csv""#],
        ),
        case(
            "source: a stdin source needs schema",
            STDIN,
            &[(6, r#"schema = { k = "string", ts = "int64" }"#, "")],
            4,
            &["a stdin source needs `schema"],
        ),
        case(
            "source: source type is not known",
            GEN,
            &[(4, r#"type = "generator""#, r#"type = "kinesis""#)],
            4,
            &[r#"source type "kinesis" is not known"#],
        ),
        case(
            "source: the source needs event_time",
            JSONL,
            &[(7, r#"event_time = "ts""#, "")],
            4,
            &["the source needs `event_time`"],
        ),
        // ---- only (called by source, transform, window) ----
        case(
            "only: a key does not apply to a generator source",
            GEN,
            &[(10, "", r#"path = "in.jsonl""#)],
            10,
            &[r#"`path` does not apply to type "generator""#, "it takes:"],
        ),
        case(
            "only: a key does not apply to a nexmark source",
            GEN,
            &[(4, r#"type = "generator""#, r#"type = "nexmark""#)],
            6,
            &[r#"`keys` does not apply to type "nexmark""#],
        ),
        case(
            "only: a key does not apply to a file source",
            JSONL,
            &[(8, "", "events = 5")],
            8,
            &[r#"`events` does not apply to type "file""#],
        ),
        case(
            "only: a key does not apply to a stdin source",
            STDIN,
            &[(8, "", r#"path = "in.jsonl""#)],
            8,
            &[r#"`path` does not apply to type "stdin""#],
        ),
        case(
            "only: a key does not apply to a nats source",
            NATS,
            &[(14, "", r#"path = "in.jsonl""#)],
            14,
            &[r#"`path` does not apply to type "nats""#],
        ),
        case(
            "only: a key does not apply to a filter transform",
            GEN,
            &[(21, "", r#"columns = { x = "sensor" }"#)],
            21,
            &[
                r#"`columns` does not apply to type "filter""#,
                "it takes: where",
            ],
        ),
        case(
            "only: a key does not apply to a window transform",
            GEN,
            &[(35, "", r#"where = "true""#)],
            35,
            &[r#"`where` does not apply to type "window""#],
        ),
        case(
            "only: a key does not apply to a rule transform",
            GEN,
            &[(42, "", r#"key = "sensor""#)],
            42,
            &[r#"`key` does not apply to type "rule""#],
        ),
        case(
            "only: a key does not apply to a tumbling window",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "tumbling", size = "10s", gap = "1s" }"#,
            )],
            32,
            &[r#"`gap` does not apply to type "tumbling""#],
        ),
        // ---- nats_source ----
        case(
            "nats_source: needs url",
            NATS,
            &[(5, r#"url = "nats://127.0.0.1:4222""#, "")],
            4,
            &["a nats source needs `url`"],
        ),
        case(
            "nats_source: needs subject",
            NATS,
            &[(7, r#"subject = "readings.*""#, "")],
            4,
            &["a nats source needs `subject`"],
        ),
        case(
            "nats_source: reads JSON payloads only",
            NATS,
            &[(14, "", r#"format = "csv""#)],
            14,
            &["a nats source reads JSON payloads"],
        ),
        case(
            "nats_source: the stream's check (subject without its key token)",
            NATS,
            &[(7, r#"subject = "readings.*""#, r#"subject = "readings""#)],
            7,
            &["exactly one `*` token"],
        ),
        case(
            "nats_source: the stream's check (partitions), at the subject",
            NATS,
            &[(8, "partitions = 4", "partitions = 0")],
            7,
            &["partitions = 0 must be between 1 and 1024"],
        ),
        case(
            "nats_source: max_ack_pending must be at least 1",
            NATS,
            &[(13, "max_ack_pending = 100", "max_ack_pending = 0")],
            13,
            &["max_ack_pending must be at least 1"],
        ),
        case(
            "nats_source: end is not known",
            NATS,
            &[(11, r#"end = "caught-up""#, r#"end = "sometimes""#)],
            11,
            &[r#"end = "sometimes" is not known"#],
        ),
        case(
            "nats_source: lease_ttl is not a duration",
            NATS,
            &[(12, r#"lease_ttl = "5s""#, r#"lease_ttl = "soon""#)],
            12,
            &["lease_ttl `soon` is not a duration"],
        ),
        case(
            "nats_source: lease_ttl must be at least 500ms",
            NATS,
            &[(12, r#"lease_ttl = "5s""#, r#"lease_ttl = "100ms""#)],
            12,
            &["lease_ttl must be at least 500ms"],
        ),
        case(
            "nats_source: needs schema",
            NATS,
            &[(
                9,
                r#"schema = { sensor = "string", temperature = "float64", ts = "int64" }"#,
                "",
            )],
            4,
            &["a nats source needs `schema"],
        ),
        // ---- finish_source ----
        case(
            "finish_source: event_time field is not in the input",
            GEN,
            &[(10, "", r#"event_time = "nope""#)],
            10,
            &["event_time field `nope` is not in the input"],
        ),
        case(
            "finish_source: event_time field has a type that holds no time",
            JSONL,
            &[(7, r#"event_time = "ts""#, r#"event_time = "ok""#)],
            7,
            &["event_time field `ok` has type", "RFC 3339"],
        ),
        case(
            "finish_source: max_out_of_orderness is not a duration",
            GEN,
            &[(
                7,
                r#"max_out_of_orderness = "1s""#,
                r#"max_out_of_orderness = "soon""#,
            )],
            7,
            &["max_out_of_orderness `soon` is not a duration"],
        ),
        case(
            "finish_source: idle_timeout is not a duration",
            GEN,
            &[(8, r#"idle_timeout = "5s""#, r#"idle_timeout = "soon""#)],
            8,
            &["idle_timeout `soon` is not a duration"],
        ),
        case(
            "finish_source: rate is not a number of records per second",
            JSONL,
            &[(8, "", "rate = 0.0")],
            8,
            &["is not a number of records per second of at least 0.001"],
        ),
        // ---- input_schema ----
        case(
            "input_schema: no JSON object to infer a schema from",
            JSONL,
            &[(5, r#"path = "data.jsonl""#, r#"path = "bad.jsonl""#)],
            5,
            &["bad.jsonl", "no JSON object in the first lines"],
        ),
        case(
            "input_schema: a CSV header column is not in schema",
            CSV,
            &[(
                7,
                r#"schema = { k = "string", v = "float64", ts = "int64" }"#,
                r#"schema = { k = "string", ts = "int64" }"#,
            )],
            5,
            &["data.csv", "column `v` of the header is not in `schema`"],
        ),
        case(
            "input_schema: the CSV input has no header line",
            CSV,
            &[
                (5, r#"path = "data.csv""#, r#"path = "empty.csv""#),
                (
                    7,
                    r#"schema = { k = "string", v = "float64", ts = "int64" }"#,
                    "",
                ),
            ],
            5,
            &["empty.csv", "the CSV input has no header line"],
        ),
        // ---- compile_exprs ----
        case(
            "compile_exprs: name at least one column (select)",
            GEN,
            &[(
                25,
                r#"columns = { sensor = "sensor", f = "temperature * 1.8 + 32", ts = "ts" }"#,
                "columns = {}",
            )],
            25,
            &["name at least one column"],
        ),
        case(
            "compile_exprs: name at least one column (rule emit)",
            GEN,
            &[(
                41,
                r#"emit = { sensor = "sensor", high = "high" }"#,
                "emit = {}",
            )],
            41,
            &["name at least one column"],
        ),
        case(
            "compile_exprs: an expression does not compile (select)",
            GEN,
            &[(
                25,
                r#"columns = { sensor = "sensor", f = "temperature * 1.8 + 32", ts = "ts" }"#,
                r#"columns = { f = "nope * 2" }"#,
            )],
            25,
            &["in `f`:", "nope"],
        ),
        case(
            "compile_exprs: an expression does not compile (rule emit)",
            GEN,
            &[(
                41,
                r#"emit = { sensor = "sensor", high = "high" }"#,
                r#"emit = { x = "nope" }"#,
            )],
            41,
            &["in `x`:", "nope"],
        ),
        // ---- transform ----
        case(
            "transform: a reserved stream name",
            GEN,
            &[(18, r#"name = "valid""#, r#"name = "late""#)],
            18,
            &["`late` is a reserved stream name"],
        ),
        case(
            "transform: a transform needs a non-empty name",
            GEN,
            &[(18, r#"name = "valid""#, r#"name = """#)],
            18,
            &["a transform needs a non-empty name"],
        ),
        case(
            "transform: a stream with the name already exists",
            GEN,
            &[(23, r#"name = "fahrenheit""#, r#"name = "valid""#)],
            23,
            &["a stream named `valid` already exists"],
        ),
        case(
            "transform: from a reserved stream only sinks can read",
            GEN,
            &[(30, r#"from = "valid""#, r#"from = "dead_letter""#)],
            30,
            &["`dead_letter` is a reserved stream that only sinks can read"],
        ),
        case(
            "transform: from no stream named so before this transform",
            GEN,
            &[(30, r#"from = "valid""#, r#"from = "hot""#)],
            30,
            &["no stream named `hot` before this transform"],
        ),
        case(
            "transform: a filter transform needs where",
            GEN,
            &[(20, r#"where = "temperature > 0""#, "")],
            18,
            &["a filter transform needs `where`"],
        ),
        case(
            "transform: a select transform needs columns",
            GEN,
            &[(
                25,
                r#"columns = { sensor = "sensor", f = "temperature * 1.8 + 32", ts = "ts" }"#,
                "",
            )],
            23,
            &["a select transform needs `columns`"],
        ),
        case(
            "transform: a rule transform needs when",
            GEN,
            &[(40, r#"when = "high > 80""#, "")],
            37,
            &["a rule transform needs `when`"],
        ),
        case(
            "transform: where does not compile",
            GEN,
            &[(20, r#"where = "temperature > 0""#, r#"where = "nope > 1""#)],
            20,
            &["No field named", "nope"],
        ),
        case(
            "transform: where must be true or false",
            GEN,
            &[(
                20,
                r#"where = "temperature > 0""#,
                r#"where = "temperature""#,
            )],
            20,
            &["`where` must be true or false"],
        ),
        case(
            "transform: when does not compile",
            GEN,
            &[(40, r#"when = "high > 80""#, r#"when = "nope > 1""#)],
            40,
            &["No field named", "nope"],
        ),
        case(
            "transform: when must be true or false",
            GEN,
            &[(40, r#"when = "high > 80""#, r#"when = "high""#)],
            40,
            &["`when` must be true or false"],
        ),
        case(
            "transform: transform type is not known",
            GEN,
            &[(29, r#"type = "window""#, r#"type = "merge""#)],
            29,
            &[r#"transform type "merge" is not known"#],
        ),
        // ---- window ----
        case(
            "window: a window transform needs window",
            GEN,
            &[(32, r#"window = { type = "tumbling", size = "10s" }"#, "")],
            28,
            &["a window transform needs `window`"],
        ),
        case(
            "window: a tumbling window needs size",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "tumbling" }"#,
            )],
            32,
            &["a tumbling window needs `size`"],
        ),
        case(
            "window: size is not a duration",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "tumbling", size = "soon" }"#,
            )],
            32,
            &["size `soon` is not a duration"],
        ),
        case(
            "window: size must be longer than zero",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "tumbling", size = "0s" }"#,
            )],
            32,
            &["size must be longer than zero"],
        ),
        case(
            "window: size of a time window is a duration",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "tumbling", size = 10 }"#,
            )],
            32,
            &["size of a time window is a duration"],
        ),
        case(
            "window: a sliding window needs slide",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "sliding", size = "10s" }"#,
            )],
            32,
            &["a sliding window needs `slide`"],
        ),
        case(
            "window: slide no longer than size",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "sliding", size = "10s", slide = "20s" }"#,
            )],
            32,
            &["slide must be longer than zero and no longer than size"],
        ),
        case(
            "window: a session window needs gap",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "session" }"#,
            )],
            32,
            &["a session window needs `gap`"],
        ),
        case(
            "window: gap must be longer than zero",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "session", gap = "0s" }"#,
            )],
            32,
            &["gap must be longer than zero"],
        ),
        case(
            "window: a count window needs size",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "count" }"#,
            )],
            32,
            &["a count window needs `size`"],
        ),
        case(
            "window: size of a count window is a number of events",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "count", size = "10s" }"#,
            )],
            32,
            &["size of a count window is a number of events"],
        ),
        case(
            "window: window type is not known",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "hopping", size = "10s" }"#,
            )],
            32,
            &[r#"window type "hopping" is not known"#],
        ),
        case(
            "window: count windows take no allowed_lateness",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "count", size = 5 }"#,
            )],
            34,
            &["count windows close on a count", "remove allowed_lateness"],
        ),
        case(
            "window: allowed_lateness is not a duration",
            GEN,
            &[(
                34,
                r#"allowed_lateness = "2s""#,
                r#"allowed_lateness = "soon""#,
            )],
            34,
            &["allowed_lateness `soon` is not a duration"],
        ),
        case(
            "window: key field is not in stream",
            GEN,
            &[(31, r#"key = ["sensor"]"#, r#"key = ["nope"]"#)],
            31,
            &["key field `nope` is not in stream"],
        ),
        case(
            "window: a window transform needs aggregates",
            GEN,
            &[(
                33,
                r#"aggregates = { n = "count(*)", high = "max(temperature)" }"#,
                "",
            )],
            28,
            &["a window transform needs `aggregates`"],
        ),
        case(
            "window: name at least one aggregate",
            GEN,
            &[(
                33,
                r#"aggregates = { n = "count(*)", high = "max(temperature)" }"#,
                "aggregates = {}",
            )],
            33,
            &["name at least one aggregate"],
        ),
        case(
            "window: an aggregate's name is already a column of the output",
            GEN,
            &[(
                33,
                r#"aggregates = { n = "count(*)", high = "max(temperature)" }"#,
                r#"aggregates = { sensor = "count(*)" }"#,
            )],
            33,
            &["`sensor` is already a column of the window's output"],
        ),
        case(
            "window: an aggregate does not compile",
            GEN,
            &[(
                33,
                r#"aggregates = { n = "count(*)", high = "max(temperature)" }"#,
                r#"aggregates = { n = "temperature" }"#,
            )],
            33,
            &["in `n`:", "is not one aggregate function call"],
        ),
        // ---- sink ----
        case(
            "sink: no stream named so",
            GEN,
            &[(44, r#"from = "hot""#, r#"from = "nope""#)],
            44,
            &["no stream named `nope`; streams:"],
        ),
        case(
            "sink: format is not known",
            GEN,
            &[(46, "", r#"format = "xml""#)],
            46,
            &[r#"format "xml" is not known"#],
        ),
        case(
            "sink: a key of nats sinks does not apply to a stdout sink",
            GEN,
            &[(46, "", r#"url = "nats://127.0.0.1:4222""#)],
            46,
            &[
                r#"`url` does not apply to type "stdout""#,
                "it takes: format",
            ],
        ),
        case(
            "sink: a nats sink publishes JSON records, path does not apply to it",
            GEN,
            &[(58, "", r#"path = "out.jsonl""#)],
            58,
            &[
                r#"`path` does not apply to type "nats""#,
                "it takes: url, subject",
            ],
        ),
        case(
            "sink: a nats sink needs subject",
            GEN,
            &[(56, r#"subject = "alerts.{sensor}""#, "")],
            54,
            &["a nats sink needs `subject`"],
        ),
        case(
            "sink: a nats sink needs url",
            GEN,
            &[(55, r#"url = "nats://127.0.0.1:4222""#, "")],
            54,
            &["a nats sink needs `url`"],
        ),
        case(
            "sink: a sink's subject has no wildcards",
            GEN,
            &[(
                56,
                r#"subject = "alerts.{sensor}""#,
                r#"subject = "alerts.*""#,
            )],
            56,
            &["without wildcards or spaces"],
        ),
        case(
            "sink: a field goes in the subject as one whole token",
            GEN,
            &[(
                56,
                r#"subject = "alerts.{sensor}""#,
                r#"subject = "alerts.{sensor""#,
            )],
            56,
            &["one whole token"],
        ),
        case(
            "sink: the subject's field is not in the stream",
            GEN,
            &[(
                56,
                r#"subject = "alerts.{sensor}""#,
                r#"subject = "alerts.{nope}""#,
            )],
            56,
            &["stream `per_sensor` has no field `nope`"],
        ),
        case(
            "sink: a stdout sink takes no path",
            GEN,
            &[(46, "", r#"path = "out.jsonl""#)],
            46,
            &[r#"`path` does not apply to type "stdout""#],
        ),
        case(
            "sink: stdout writes JSON lines",
            GEN,
            &[(46, "", r#"format = "csv""#)],
            46,
            &["stdout writes JSON lines"],
        ),
        case(
            "sink: a file sink needs path",
            GEN,
            &[(50, r#"path = "out/fahrenheit.csv""#, "")],
            49,
            &["a file sink needs `path`"],
        ),
        case(
            "sink: can't tell the format from the extension",
            GEN,
            &[(
                50,
                r#"path = "out/fahrenheit.csv""#,
                r#"path = "out/fahrenheit.txt""#,
            )],
            50,
            &["can't tell the format from the extension"],
        ),
        case(
            "sink: sink type is not known",
            GEN,
            &[(45, r#"type = "stdout""#, r#"type = "kinesis""#)],
            45,
            &[r#"sink type "kinesis" is not known"#],
        ),
        // ---- spec.rs: TOML and serde errors ----
        case(
            "spec: unknown field in [source]",
            GEN,
            &[(10, "", r#"evnt_time = "ts""#)],
            10,
            &[
                "unknown field `evnt_time` (`event_time`?)",
                "remove it or fix its spelling",
            ],
        ),
        case(
            "spec: unknown field in a transform",
            GEN,
            &[(21, "", r#"wehre = "temperature > 0""#)],
            21,
            &["unknown field `wehre`", "remove it or fix its spelling"],
        ),
        case(
            "spec: unknown field in an inline window table",
            GEN,
            &[(
                32,
                r#"window = { type = "tumbling", size = "10s" }"#,
                r#"window = { type = "tumbling", size = "10s", slid = "5s" }"#,
            )],
            32,
            &["unknown field `slid`"],
        ),
        case(
            "spec: missing field of [source], at its header",
            GEN,
            &[(4, r#"type = "generator""#, "")],
            3,
            &["missing field `type`", "add it"],
        ),
        case(
            "spec: missing field of the file, at its start",
            GEN,
            &[(1, r#"name = "diag""#, "")],
            1,
            &["missing field `name`", "add it"],
        ),
        case(
            "spec: wrong type (string for an integer)",
            GEN,
            &[(13, "batch_size = 16", r#"batch_size = "big""#)],
            13,
            &["invalid type", "expected i64"],
        ),
        case(
            "spec: wrong type (string for an unsigned integer)",
            GEN,
            &[(6, "keys = 3", r#"keys = "three""#)],
            6,
            &["invalid type", "expected u64"],
        ),
        case(
            "spec: key is neither a field nor a list of fields",
            GEN,
            &[(31, r#"key = ["sensor"]"#, "key = 5")],
            31,
            &["did not match any variant of untagged enum KeySpec"],
        ),
        case(
            "spec: syntax error (an unquoted string)",
            GEN,
            &[(12, r#"mode = "micro-batch""#, "mode = event")],
            12,
            &["string values must be quoted"],
        ),
        case(
            "spec: a misspelt sink key comes before the other tables' errors",
            GEN,
            &[
                (13, "batch_size = 16", "batch_size = 0"),
                (46, "", r#"pth = "out.jsonl""#),
            ],
            46,
            &["unknown field `pth`;", "remove it or fix its spelling"],
        ),
        case(
            "spec: of two keys that do not apply, the first of the registry's",
            GEN,
            &[
                (9, "rate = 1000.0", r#"path = "in.jsonl""#),
                (10, "", r#"format = "csv""#),
            ],
            9,
            &[r#"`path` does not apply to type "generator""#],
        ),
        case(
            "spec: a value of the wrong type in a sink",
            GEN,
            &[(58, "", "replicas = \"three\"")],
            58,
            &["invalid type", "expected u32"],
        ),
        case(
            "spec: syntax error (a duplicate key)",
            GEN,
            &[(10, "", "keys = 4")],
            10,
            &["duplicate key"],
        ),
    ]
}

/// The cases of the postgres and http connectors.
fn service_cases() -> Vec<Case> {
    let listen = r#"listen = "127.0.0.1:8080""#;
    let schema = r#"schema = { sensor = "string", temperature = "float64", ts = "int64" }"#;
    vec![
        case(
            "http source: listen is not an address",
            SERVICES,
            &[(5, listen, r#"listen = "localhost""#)],
            5,
            &["is not an address and port"],
        ),
        case(
            "http source: a schema is needed",
            SERVICES,
            &[(6, schema, "")],
            4,
            &["needs `schema"],
        ),
        case(
            "http source: the token's variable is not set",
            SERVICES,
            &[(5, listen, r#"token_env = "SLUICE_DIAG_NO_SUCH_TOKEN""#)],
            5,
            &["SLUICE_DIAG_NO_SUCH_TOKEN", "is not set"],
        ),
        case(
            "postgres sink: the url is not a connection string",
            SERVICES,
            &[(
                12,
                r#"url = "postgresql://sluice@127.0.0.1:5432/shop""#,
                r#"url = "postgresql://sluice@127.0.0.1:port/shop""#,
            )],
            12,
            &["not a PostgreSQL connection string"],
        ),
        case(
            "postgres sink: a table's name has three parts",
            SERVICES,
            &[(13, r#"table = "readings""#, r#"table = "a.b.c""#)],
            13,
            &["not a table's name"],
        ),
        case(
            "postgres sink: the key names no field",
            SERVICES,
            &[(
                14,
                r#"key = ["sensor", "ts"]"#,
                r#"key = ["sensor", "tss"]"#,
            )],
            14,
            &["key `tss`", "no such field"],
        ),
        case(
            "postgres sink: a key with mode append",
            SERVICES,
            &[(15, "create = true", r#"mode = "append""#)],
            14,
            &["applies to mode = \"upsert\""],
        ),
        case(
            "postgres sink: an unknown mode",
            SERVICES,
            &[(15, "create = true", r#"mode = "merge""#)],
            15,
            &["mode \"merge\" is not known"],
        ),
        case(
            "http sink: not an http url",
            SERVICES,
            &[(
                20,
                r#"url = "http://127.0.0.1:9000/hook""#,
                r#"url = "ftp://x/y""#,
            )],
            20,
            &["not an http:// or https:// address"],
        ),
        case(
            "http sink: no rows a request",
            SERVICES,
            &[(21, "batch_rows = 10", "batch_rows = 0")],
            21,
            &["batch_rows must be at least 1"],
        ),
        case(
            "http sink: a format it does not send",
            SERVICES,
            &[(21, "batch_rows = 10", r#"format = "csv""#)],
            21,
            &["format \"csv\"", "\"json\""],
        ),
        case(
            "postgres-cdc: a column named as a change's own field",
            CDC,
            &[(
                7,
                r#"schema = { id = "int64", product = "string" }"#,
                r#"schema = { id = "int64", op = "string" }"#,
            )],
            4,
            &["schema field `op`", "own fields"],
        ),
        case(
            "kafka source: brokers are not host:port",
            KAFKA,
            &[(5, r#"brokers = "127.0.0.1:9092""#, r#"brokers = "kafka-1""#)],
            5,
            &["is not a list of host:port"],
        ),
        case(
            "kafka source: a start it does not know",
            KAFKA,
            &[(8, r#"event_time = "ts""#, r#"start = "yesterday""#)],
            8,
            &["start = \"yesterday\" is not known", "\"earliest\""],
        ),
        case(
            "kafka source: a topic listed twice",
            KAFKA,
            &[(6, r#"topic = "readings""#, r#"topic = ["a", "a"]"#)],
            4,
            &["topic `a` is listed twice"],
        ),
        case(
            "kafka source: raw records take no schema",
            KAFKA,
            &[(8, r#"event_time = "ts""#, r#"format = "raw""#)],
            7,
            &[
                "format \"raw\" gives rows of `key` and `value`",
                "remove `schema`",
            ],
        ),
        case(
            "kafka source: coordination is not NATS servers",
            KAFKA,
            &[(
                8,
                r#"event_time = "ts""#,
                "event_time = \"ts\"\ncoordination = \"http://127.0.0.1:4222\"",
            )],
            9,
            &[
                "coordination names the NATS servers",
                "nats://127.0.0.1:4222",
            ],
        ),
        case(
            "kafka sink: message.timeout.ms is Sluice's",
            KAFKA,
            &[(
                15,
                r#"key = "sensor""#,
                "key = \"sensor\"\nproperties = { \"message.timeout.ms\" = 1000 }",
            )],
            16,
            &["property `message.timeout.ms` is set by Sluice"],
        ),
        case(
            "kafka source: no readers",
            KAFKA,
            &[(8, r#"event_time = "ts""#, "event_time = \"ts\"\nreaders = 0")],
            9,
            &["readers = 0 reads nothing", "readers = 1"],
        ),
        case(
            "kafka source: a lease shorter than 500ms",
            KAFKA,
            &[(
                8,
                r#"event_time = "ts""#,
                "event_time = \"ts\"\ncoordination = \"nats://127.0.0.1:4222\"\nlease_ttl = \"100ms\"",
            )],
            10,
            &["lease_ttl must be at least 500ms"],
        ),
        case(
            "kafka source: a lease without coordination",
            KAFKA,
            &[(
                8,
                r#"event_time = "ts""#,
                "event_time = \"ts\"\nlease_ttl = \"5s\"",
            )],
            9,
            &["give `coordination` too"],
        ),
        case(
            "kafka source: Avro records bring their fields",
            KAFKA,
            &[(8, r#"event_time = "ts""#, r#"format = "avro""#)],
            7,
            &["Avro records bring their fields", "remove `schema`"],
        ),
        case(
            "kafka source: an Avro schema for JSON records",
            KAFKA,
            &[(8, r#"event_time = "ts""#, r#"avro_schema = "r.avsc""#)],
            8,
            &["avro_schema is the schema of Avro records"],
        ),
        case(
            "kafka sink: two writers of one name to one topic",
            KAFKA,
            &[(
                15,
                r#"key = "sensor""#,
                "key = \"sensor\"\n\n[[sink]]\nfrom = \"source\"\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9092\"\ntopic = \"copy\"",
            )],
            17,
            &["another sink writes kafka topic `copy` at 127.0.0.1:9092 as writer `source` too", "`id`"],
        ),
        case(
            "kafka sink: the key is not a field",
            KAFKA,
            &[(15, r#"key = "sensor""#, r#"key = "room""#)],
            15,
            &["key `room`", "has no such field", "fields: sensor"],
        ),
        case(
            "kafka sink: a property Sluice sets itself",
            KAFKA,
            &[(
                15,
                r#"key = "sensor""#,
                r#"properties = { "enable.idempotence" = false }"#,
            )],
            15,
            &["`enable.idempotence` is set by Sluice"],
        ),
        case(
            "kafka sink: a format it does not write",
            KAFKA,
            &[(15, r#"key = "sensor""#, r#"format = "parquet""#)],
            15,
            &["format \"parquet\" is not one a kafka sink writes"],
        ),
        case(
            "postgres-cdc: the table is needed",
            CDC,
            &[(6, r#"table = "orders""#, "")],
            4,
            &["needs `table`"],
        ),
    ]
}

/// Why `case` fails, if it does.
fn check(case: &Case, base: &Path) -> Result<(), String> {
    let error = match load_str(&case.text, Path::new("p.toml"), base, None) {
        Ok(_) => return Err("loaded without an error".into()),
        Err(Error::Invalid(m)) => m,
        Err(other) => return Err(format!("a runtime error, not invalid: {other}")),
    };
    let at = format!("p.toml:{}:", case.line);
    if !error.starts_with(&at) {
        return Err(format!("wanted line {}: {error}", case.line));
    }
    let missing: Vec<&str> = case
        .words
        .iter()
        .copied()
        .filter(|w| !error.contains(w))
        .collect();
    if !missing.is_empty() {
        return Err(format!("wanted {missing:?} in: {error}"));
    }
    Ok(())
}

#[test]
fn every_base_pipeline_loads() {
    let dir = inputs();
    let mut failures = Vec::new();
    for (name, text) in BASES {
        if let Err(e) = load_str(text, Path::new("p.toml"), dir.path(), None) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "bases that don't load:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_diagnostic_points_at_its_line_and_says_what_is_wrong() {
    let dir = inputs();
    let mut cases = cases();
    cases.extend(service_cases());
    let mut names = HashSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        if !names.insert(case.name) {
            failures.push(format!("{}: two cases have this name", case.name));
        }
        if let Err(why) = check(case, dir.path()) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_missing_input_is_a_runtime_error_not_a_diagnostic() {
    let dir = inputs();
    let text = edit(
        JSONL,
        &[(5, r#"path = "data.jsonl""#, r#"path = "missing.jsonl""#)],
    );
    match load_str(&text, Path::new("p.toml"), dir.path(), None) {
        Err(Error::Invalid(m)) => panic!("wanted a runtime error, got: {m}"),
        Err(other) => assert!(other.to_string().contains("missing.jsonl"), "{other}"),
        Ok(_) => panic!("loaded a pipeline whose input is missing"),
    }
}
