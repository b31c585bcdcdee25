//! Pipelines written in SQL: what they compute (against results worked out
//! by hand from small inputs) and what they refuse, with the place in the
//! SQL text (`file:line:col`).

use serde_json::Value;
use sluice_pipeline::{load_str, progress, run};
use std::path::Path;

const INPUT: &str = r#"{"k":"a","v":1.0,"ts":0}
{"k":"a","v":3.0,"ts":100}
{"k":"b","v":5.0,"ts":200}
{"k":"a","v":10.0,"ts":1500}
{"k":"b","v":7.0,"ts":2600}
{"k":"a","v":2.0,"ts":2700}
"#;

/// Runs `sql` over [`INPUT`] (as `in.jsonl`); returns the rows written to
/// `out.jsonl`.
fn rows(sql: &str) -> Vec<Value> {
    let mut rows = rows_in_order(sql);
    rows.sort_by_key(|r| r.to_string());
    rows
}

/// The error loading `sql` gives.
fn error(sql: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), INPUT).unwrap();
    match load_str(sql, Path::new("p.sql"), dir.path(), None) {
        Ok(_) => panic!("loads:\n{sql}"),
        Err(e) => e.to_string(),
    }
}

const TABLES: &str = "CREATE TABLE r WITH (connector = 'file', path = 'in.jsonl', event_time = 'ts', watermark = '0s');
CREATE TABLE out WITH (connector = 'file', path = 'out.jsonl');
";

fn json(text: &str) -> Vec<Value> {
    let mut rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    rows.sort_by_key(|r| r.to_string());
    rows
}

#[test]
fn where_and_a_projection_become_a_filter_and_a_select() {
    let got = rows(&format!(
        "{TABLES}INSERT INTO out SELECT k, v * 2 AS double FROM r WHERE v > 4;"
    ));
    assert_eq!(
        got,
        json(
            r#"{"k":"b","double":10.0}
{"k":"a","double":20.0}
{"k":"b","double":14.0}"#
        )
    );
}

#[test]
fn a_tumbling_window_with_expressions_of_aggregates_and_having() {
    // Windows of 1 s: a has [0,1000): 1, 3; [1000,2000): 10; [2000,3000): 2.
    // b has [0,1000): 5; [2000,3000): 7. HAVING keeps the windows of two
    // events; the select list reorders and computes.
    let got = rows(&format!(
        "{TABLES}INSERT INTO out
            SELECT window_start, k, sum(v) / count(*) AS mean, max(v) - min(v) AS spread
            FROM r
            GROUP BY tumble(ts, INTERVAL '1' SECOND), k
            HAVING count(*) >= 2;"
    ));
    assert_eq!(
        got,
        json(r#"{"window_start":0,"k":"a","mean":2.0,"spread":2.0}"#)
    );
}

#[test]
fn hop_and_session_windows() {
    // hop: windows of 2 s every 1 s. a: [-1000,1000): 1+3; [0,2000):
    // 1+3+10; [1000,3000): 10+2; [2000,4000): 2.
    let got = rows(&format!(
        "{TABLES}INSERT INTO out
            SELECT k, window_start, window_end, sum(v) AS total
            FROM r WHERE k = 'a'
            GROUP BY hop(ts, INTERVAL '1' SECOND, INTERVAL '2' SECOND), k;"
    ));
    assert_eq!(
        got,
        json(
            r#"{"k":"a","window_start":-1000,"window_end":1000,"total":4.0}
{"k":"a","window_start":0,"window_end":2000,"total":14.0}
{"k":"a","window_start":1000,"window_end":3000,"total":12.0}
{"k":"a","window_start":2000,"window_end":4000,"total":2.0}"#
        )
    );
    // session, gap 1 s: a has [0, 1100) (0 and 100), then 1500 (< 1100? no:
    // 1500 >= 1100 starts [1500, 2500)), then 2700 ([2700, 3700)).
    let got = rows(&format!(
        "{TABLES}INSERT INTO out
            SELECT k, window_start, window_end, count(*) AS n
            FROM r WHERE k = 'a'
            GROUP BY session(ts, INTERVAL '1' SECOND), k;"
    ));
    assert_eq!(
        got,
        json(
            r#"{"k":"a","window_start":0,"window_end":1100,"n":2}
{"k":"a","window_start":1500,"window_end":2500,"n":1}
{"k":"a","window_start":2700,"window_end":3700,"n":1}"#
        )
    );
}

#[test]
fn views_chain_and_a_watermark_clause_and_lateness_make_a_changelog() {
    let got = rows(
        "CREATE TABLE r (
            k VARCHAR,
            v DOUBLE,
            ts BIGINT,
            WATERMARK FOR ts AS ts - INTERVAL '0' SECOND
        ) WITH (connector = 'file', path = 'in.jsonl', allowed_lateness = '10s');
        CREATE TABLE out WITH (connector = 'file', path = 'out.jsonl');
        CREATE VIEW big AS SELECT * FROM r WHERE v >= 3;
        CREATE VIEW per_k AS
            SELECT k, window_start, window_end, count(*) AS n
            FROM big GROUP BY tumble(ts, INTERVAL '10' SECOND), k;
        INSERT INTO out SELECT * FROM per_k;",
    );
    assert_eq!(
        got,
        json(
            r#"{"k":"a","window_start":0,"window_end":10000,"op":"insert","revision":0,"n":2}
{"k":"b","window_start":0,"window_end":10000,"op":"insert","revision":0,"n":2}"#
        )
    );
}

/// Each refusal: the SQL, where the error points (line:col) and words it
/// must say.
#[test]
fn what_a_sql_pipeline_refuses_is_said_at_its_place() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "SET execution.speed = 'fast';",
            "p.sql:3:5:",
            "unknown setting `execution.speed`",
        ),
        (
            "INSERT INTO out SELECT k FROM r JOIN r2 ON r.k = r2.k;",
            "p.sql:3:38:",
            "no table or view `r2`",
        ),
        (
            "INSERT INTO out SELECT v, count(*) AS n FROM r GROUP BY k;",
            "p.sql:3:24:",
            "`v` is neither a GROUP BY key nor inside an aggregate",
        ),
        (
            "INSERT INTO out SELECT window_start, count(*) AS n FROM r GROUP BY k;",
            "p.sql:3:24:",
            "`window_start` is neither",
        ),
        (
            "INSERT INTO out SELECT v + 1 FROM r;",
            "p.sql:3:24:",
            "name the column",
        ),
        (
            "INSERT INTO out SELECT v, count(*) AS n FROM r GROUP BY tumble(ts, INTERVAL '1' SECOND), k;",
            "p.sql:3:24:",
            "`v` is neither a GROUP BY key nor inside an aggregate",
        ),
        (
            "INSERT INTO out SELECT * FROM nowhere;",
            "p.sql:3:31:",
            "no table or view `nowhere`",
        ),
        (
            "INSERT INTO out SELECT k, count(*) AS n FROM r GROUP BY tumble(v, INTERVAL '1' SECOND), k;",
            "p.sql:3:64:",
            "a window runs on each row's event time, which `ts` holds here",
        ),
        (
            "INSERT INTO out SELECT k, count(*) AS n FROM r GROUP BY tumble(ts, 5), k;",
            "p.sql:3:68:",
            "a duration",
        ),
        (
            "INSERT INTO out SELEC * FROM r;",
            "p.sql:3:17:",
            "Expected",
        ),
        (
            "CREATE TABLE unused WITH (connector = 'stdout');\nINSERT INTO out SELECT * FROM r;",
            "p.sql:3:14:",
            "table `unused` is neither read nor written",
        ),
        (
            "INSERT INTO out SELECT * FROM r WHERE count(*) > 1;",
            "p.sql:3:39:",
            "belongs in the SELECT list or HAVING",
        ),
        (
            "INSERT INTO out SELECT * FROM r;\nINSERT INTO out SELECT * FROM r;",
            "p.sql:4:13:",
            "written by an earlier INSERT",
        ),
        (
            "INSERT INTO out SELECT k FROM r GROUP BY k;",
            "p.sql:3:17:",
            "needs at least one aggregate",
        ),
        (
            "CREATE TABLE late WITH (connector = 'stdout');",
            "p.sql:3:14:",
            "`late` is a reserved stream",
        ),
        (
            "INSERT INTO out SELECT k, count(*) AS _agg0 FROM r GROUP BY tumble(ts, INTERVAL '1' SECOND), k;",
            "p.sql:3:39:",
            "are the translator's own",
        ),
        (
            "CREATE VIEW totals AS SELECT k, count(*) AS n FROM r GROUP BY k;\nINSERT INTO out SELECT sum(n) AS all_n FROM totals GROUP BY tumble(ts, INTERVAL '1' SECOND);",
            "p.sql:4:68:",
            "no column of this stream holds it",
        ),
        (
            "CREATE VIEW totals AS SELECT k, count(*) AS n FROM r GROUP BY k;\nCREATE VIEW plain AS SELECT n FROM totals;\nINSERT INTO out SELECT sum(n) AS all_n FROM plain;",
            "p.sql:5:45:",
            "`plain` is a changelog",
        ),
        (
            "INSERT INTO out SELECT * FROM r ORDER BY v;",
            "p.sql:3:17:",
            "ORDER BY and LIMIT are not supported",
        ),
    ];
    let mut wrong = Vec::new();
    for (statement, place, words) in cases {
        let sql = format!("{TABLES}{statement}");
        let message = error(&sql);
        if !(message.starts_with(place) && message.contains(words)) {
            wrong.push(format!(
                "{statement}\n  expected {place} ... {words}\n  got {message}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_connector_setting_is_checked_by_its_connector_at_its_place() {
    let message = error(
        "CREATE TABLE r WITH (connector = 'file', pth = 'in.jsonl', event_time = 'ts');
CREATE TABLE out WITH (connector = 'file', path = 'out.jsonl');
INSERT INTO out SELECT * FROM r;",
    );
    assert!(
        message.starts_with("p.sql:1:42:") && message.contains("pth"),
        "{message}"
    );
}

const TOML_HEAD: &str = r#"name = "t"

[source]
type = "file"
path = "in.jsonl"
event_time = "ts"
max_out_of_orderness = "0ms"

[[sink]]
from = "per_k"
type = "file"
path = "out.jsonl"
"#;

/// Loads and runs a TOML pipeline; the rows of `out.jsonl`, or the error.
fn toml_rows(text: &str) -> Result<Vec<Value>, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), INPUT).unwrap();
    let plan = load_str(text, Path::new("p.toml"), dir.path(), None).map_err(|e| e.to_string())?;
    let watch = progress(&plan);
    run(plan, &watch).unwrap();
    let written = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    Ok(json(&written))
}

#[test]
fn a_sql_transform_in_a_toml_file_runs_its_query() {
    let got = toml_rows(&format!(
        r#"{TOML_HEAD}
[[transform]]
name = "per_k"
type = "sql"
query = """
SELECT k, window_start, count(*) AS n, max(v) AS hi
FROM source
WHERE v > 1
GROUP BY tumble(ts, INTERVAL '1' SECOND), k
"""
"#
    ))
    .unwrap();
    assert_eq!(
        got,
        json(
            r#"{"k":"a","window_start":0,"n":1,"hi":3.0}
{"k":"b","window_start":0,"n":1,"hi":5.0}
{"k":"a","window_start":1000,"n":1,"hi":10.0}
{"k":"b","window_start":2000,"n":1,"hi":7.0}
{"k":"a","window_start":2000,"n":1,"hi":2.0}"#
        )
    );
}

#[test]
fn an_error_in_a_sql_transform_points_into_its_query() {
    // The query's lines are the file's 18 and 19.
    let message = toml_rows(&format!(
        r#"{TOML_HEAD}
[[transform]]
name = "per_k"
type = "sql"
query = """
SELECT k, count(*) AS n
FROM source WHERE (v > 1 GROUP BY tumble(ts, INTERVAL '1' SECOND), k
"""
"#
    ))
    .expect_err("loads");
    assert!(
        message.starts_with("p.toml:19:26:") && message.contains("found: GROUP"),
        "{message}"
    );
    let message = toml_rows(&format!(
        r#"{TOML_HEAD}
[[transform]]
name = "per_k"
type = "sql"
query = "SELECT v, count(*) AS n FROM source GROUP BY tumble(ts, INTERVAL '1' SECOND), k"
"#
    ))
    .expect_err("loads");
    assert!(
        message.starts_with("p.toml:17:17:") && message.contains("`v` is neither"),
        "{message}"
    );
}

/// `twice(x)`, a function written in Rust.
fn twice() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::Float64Array;
    use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
    create_udf(
        "twice",
        vec![datafusion::arrow::datatypes::DataType::Float64],
        datafusion::arrow::datatypes::DataType::Float64,
        Volatility::Immutable,
        std::sync::Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let x = datafusion::common::cast::as_float64_array(&arrays[0])?;
            let out: Float64Array = x.iter().map(|v| v.map(|v| v * 2.0)).collect();
            Ok(ColumnarValue::Array(std::sync::Arc::new(out)))
        }),
    )
}

#[test]
fn a_function_written_in_rust_is_called_from_sql_and_from_toml() {
    let functions = sluice_pipeline::Functions::new().scalar(twice());
    let sql = format!(
        "{TABLES}INSERT INTO out SELECT k, max(twice(v)) AS hi FROM r
            GROUP BY tumble(ts, INTERVAL '10' SECOND), k;"
    );
    let toml = format!(
        r#"{TOML_HEAD}
[[transform]]
name = "per_k"
type = "select"
columns = {{ k = "k", d = "twice(v)" }}
"#
    );
    for (text, file, expected) in [
        (
            sql.as_str(),
            "p.sql",
            r#"{"k":"a","hi":20.0}
{"k":"b","hi":14.0}"#,
        ),
        (
            toml.as_str(),
            "p.toml",
            r#"{"k":"a","d":2.0}
{"k":"a","d":6.0}
{"k":"b","d":10.0}
{"k":"a","d":20.0}
{"k":"b","d":14.0}
{"k":"a","d":4.0}"#,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.jsonl"), INPUT).unwrap();
        // Without the function, the file is refused where it calls it.
        let Err(refused) = load_str(text, Path::new(file), dir.path(), None) else {
            panic!("{file} loads without the function");
        };
        let refused = refused.to_string();
        assert!(refused.contains("twice"), "{refused}");
        let plan =
            sluice_pipeline::load_str_with(text, Path::new(file), dir.path(), None, &functions)
                .unwrap();
        let watch = progress(&plan);
        run(plan, &watch).unwrap();
        let written = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
        assert_eq!(json(&written), json(expected), "{file}");
    }
}

/// Applies a changelog (`op`, `revision`) in order, checking its
/// discipline; what a consumer holds, by the row's `key` columns.
fn apply(rows: &[Value], key: &[&str]) -> std::collections::BTreeMap<String, Value> {
    let mut held: std::collections::BTreeMap<String, Value> = Default::default();
    for row in rows {
        let id: String = key.iter().map(|k| row[*k].to_string()).collect();
        let revision = row["revision"].as_u64().unwrap();
        let before = held.get(&id).map(|r| r["revision"].as_u64().unwrap());
        match (row["op"].as_str().unwrap(), before) {
            ("insert", None) => assert_eq!(revision, 0, "{row}"),
            ("update", Some(b)) => assert_eq!(revision, b + 1, "{row}"),
            other => panic!("{other:?}: {row}"),
        }
        held.insert(id, row.clone());
    }
    held
}

/// Rows in the order written (a changelog's order matters).
fn rows_in_order(sql: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), INPUT).unwrap();
    let plan =
        load_str(sql, Path::new("p.sql"), dir.path(), None).unwrap_or_else(|e| panic!("{e}"));
    let watch = progress(&plan);
    run(plan, &watch).unwrap();
    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_aggregate_without_a_window_writes_a_changelog_of_running_results() {
    // Event by event, one worker: every event updates its key's row.
    let got = rows_in_order(&format!(
        "SET execution.mode = 'event';
        SET execution.workers = 1;
        {TABLES}INSERT INTO out SELECT k, count(*) AS n, sum(v) AS total FROM r GROUP BY k;"
    ));
    let in_order: Vec<Value> = r#"{"k":"a","op":"insert","revision":0,"n":1,"total":1.0}
{"k":"a","op":"update","revision":1,"n":2,"total":4.0}
{"k":"b","op":"insert","revision":0,"n":1,"total":5.0}
{"k":"a","op":"update","revision":2,"n":3,"total":14.0}
{"k":"b","op":"update","revision":1,"n":2,"total":12.0}
{"k":"a","op":"update","revision":3,"n":4,"total":16.0}"#
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got, in_order);
    // In any mode and with several workers, the changelog applied holds
    // the totals.
    for mode in ["micro-batch", "adaptive"] {
        let got = rows_in_order(&format!(
            "SET execution.mode = '{mode}';
            SET execution.workers = 2;
            {TABLES}INSERT INTO out
                SELECT k, count(*) AS n, sum(v) AS total FROM r GROUP BY k;"
        ));
        let held = apply(&got, &["k"]);
        let finals: Vec<(i64, f64)> = held
            .values()
            .map(|r| (r["n"].as_i64().unwrap(), r["total"].as_f64().unwrap()))
            .collect();
        assert_eq!(finals, vec![(4, 16.0), (2, 12.0)], "{mode}: {got:?}");
    }
    // No GROUP BY: one running row.
    let got = rows_in_order(&format!(
        "{TABLES}INSERT INTO out SELECT count(*) AS n FROM r;"
    ));
    let held = apply(&got, &[]);
    assert_eq!(held.len(), 1);
    assert_eq!(held.values().next().unwrap()["n"], 6);
}

/// Applies an upsert changelog: insert and update set a key's row, delete
/// removes it (if held).
fn upserts(rows: &[Value], key: &str) -> std::collections::BTreeMap<String, Value> {
    let mut held: std::collections::BTreeMap<String, Value> = Default::default();
    for row in rows {
        let id = row[key].to_string();
        match row["op"].as_str().unwrap() {
            "delete" => {
                held.remove(&id);
            }
            _ => {
                held.insert(id, row.clone());
            }
        }
    }
    held
}

#[test]
fn having_over_a_running_aggregate_deletes_the_keys_that_stop_passing() {
    // a's total goes 1, 4, 14, 16 and b's 5, 12: HAVING total < 10 holds
    // a until its third event, and b until its second. A consumer of the
    // changelog holds no key at the end; with a plain filter it would
    // keep a's and b's last passing rows.
    let got = rows_in_order(&format!(
        "SET execution.mode = 'event';
        SET execution.workers = 1;
        {TABLES}INSERT INTO out SELECT k, sum(v) AS total FROM r GROUP BY k HAVING sum(v) < 10;"
    ));
    assert!(got.iter().any(|r| r["op"] == "delete"), "{got:?}");
    assert!(upserts(&got, "k").is_empty(), "{got:?}");
    // And one that passes in the end is held with its final row.
    let got = rows_in_order(&format!(
        "{TABLES}INSERT INTO out SELECT k, sum(v) AS total FROM r GROUP BY k HAVING sum(v) > 13;"
    ));
    let held = upserts(&got, "k");
    assert_eq!(held.len(), 1, "{got:?}");
    assert_eq!(held.values().next().unwrap()["total"], 16.0);
}

#[test]
fn a_watermark_clause_keeps_the_places_of_what_follows_and_comments_stay_comments() {
    // The error on line 9 is reported on line 9, after a clause that spans
    // lines; a commented-out clause and one in a string are not clauses.
    let message = error(
        "CREATE TABLE r (
    k VARCHAR, -- the key
    ts BIGINT,
    -- WATERMARK FOR nothing AS nothing
    WATERMARK FOR ts AS ts - INTERVAL '1' SECOND -- one second
) WITH (connector = 'file', path = 'in.jsonl');
CREATE TABLE out WITH (connector = 'file', path = 'out.jsonl');
INSERT INTO out SELECT k, 'WATERMARK FOR x' AS note FROM r
    WHERE nosuch > 1;",
    );
    assert!(message.starts_with("p.sql:9:11:"), "{message}");
    assert!(message.contains("nosuch"), "{message}");
}

#[test]
fn a_keyless_window_behind_a_keyed_one_sums_every_worker_and_zero_lateness_is_no_changelog() {
    // per_k runs on two workers (keyed); the total per window gathers both:
    // a keyless window over it (TOML windows run on each row's time, and a
    // window's rows are timed at its last millisecond).
    let toml = r#"name = "totals"
[source]
type = "file"
path = "in.jsonl"
event_time = "ts"

[execution]
workers = 2

[[transform]]
name = "per_k"
type = "window"
key = "k"
window = { type = "tumbling", size = "1s" }
aggregates = { n = "count(*)" }

[[transform]]
name = "out"
type = "window"
window = { type = "tumbling", size = "1s" }
aggregates = { total = "sum(n)" }

[[sink]]
from = "out"
type = "file"
path = "out.jsonl"
"#;
    assert_eq!(
        toml_rows(toml).unwrap(),
        json(
            r#"{"window_start":0,"window_end":1000,"total":3}
{"window_start":1000,"window_end":2000,"total":1}
{"window_start":2000,"window_end":3000,"total":2}"#
        )
    );
    // In SQL: grouped by per_k's window bounds (a window over windows).
    let got = rows(&format!(
        "SET execution.workers = 2;
        {TABLES}CREATE VIEW per_k AS
            SELECT k, window_start, window_end, count(*) AS n
            FROM r GROUP BY tumble(ts, INTERVAL '1' SECOND), k;
        INSERT INTO out SELECT window_start, sum(n) AS total FROM per_k
            GROUP BY window_start, window_end;"
    ));
    assert_eq!(
        got,
        json(
            r#"{"window_start":0,"total":3}
{"window_start":1000,"total":1}
{"window_start":2000,"total":2}"#
        )
    );
    // allowed_lateness of zero: no op or revision, and HAVING is a filter.
    let got = rows(
        "CREATE TABLE r WITH (connector = 'file', path = 'in.jsonl', event_time = 'ts',
            watermark = '0s', allowed_lateness = '0s');
        CREATE TABLE out WITH (connector = 'file', path = 'out.jsonl');
        INSERT INTO out SELECT k, count(*) AS n FROM r
            GROUP BY tumble(ts, INTERVAL '10' SECOND), k HAVING count(*) > 2;",
    );
    assert_eq!(got, json(r#"{"k":"a","n":4}"#));
}

#[test]
fn a_watermark_clause_first_in_its_list_or_in_create_or_replace_is_read() {
    for create in [
        "CREATE TABLE r (WATERMARK FOR ts AS ts - INTERVAL '0' SECOND, k VARCHAR, v DOUBLE, ts BIGINT)",
        "CREATE OR REPLACE TABLE r (k VARCHAR, v DOUBLE, ts BIGINT, WATERMARK FOR ts AS ts)",
    ] {
        let got = rows(&format!(
            "{create} WITH (connector = 'file', path = 'in.jsonl');
            CREATE TABLE out WITH (connector = 'file', path = 'out.jsonl');
            INSERT INTO out SELECT k, count(*) AS n FROM r GROUP BY tumble(ts, INTERVAL '10' SECOND), k;"
        ));
        assert_eq!(got, json(r#"{"k":"a","n":4}
{"k":"b","n":2}"#), "{create}");
    }
}

#[test]
fn a_projection_may_name_a_column_like_agg_when_it_is_not_a_hidden_name() {
    let got = rows(&format!(
        "{TABLES}INSERT INTO out SELECT k AS _aggregate_key FROM r WHERE v > 9;"
    ));
    assert_eq!(got, json(r#"{"_aggregate_key":"a"}"#));
}

/// Views of two sides of [`INPUT`]: small and large values.
const SIDES: &str = "CREATE VIEW lo AS SELECT * FROM r WHERE v < 4;
CREATE VIEW hi AS SELECT * FROM r WHERE v >= 4;
";

#[test]
fn an_interval_join_pairs_rows_of_equal_keys_within_its_range() {
    // lo: a@0, a@100, a@2700; hi: b@200, a@1500, b@2600. Within [0, 1.5 s]
    // after a lo row, of the same key: a@1500 for a@0 and a@100 only.
    let sql = format!(
        "{TABLES}{SIDES}INSERT INTO out
            SELECT l.k, l.ts AS lo_at, h.ts AS hi_at, h.v - l.v AS rise
            FROM lo AS l JOIN hi AS h
              ON l.k = h.k AND h.ts BETWEEN l.ts AND l.ts + INTERVAL '1500' MILLISECOND;"
    );
    assert_eq!(
        rows(&sql),
        json(
            r#"{"k":"a","lo_at":0,"hi_at":1500,"rise":9.0}
{"k":"a","lo_at":100,"hi_at":1500,"rise":7.0}"#
        )
    );
    // Strict bounds shut the first pair out; a bound the other way round
    // pairs a@2700 with a@1500.
    let sql = format!(
        "{TABLES}{SIDES}INSERT INTO out
            SELECT l.ts AS lo_at, h.ts AS hi_at FROM lo AS l JOIN hi AS h
              ON h.k = l.k AND h.ts < l.ts + INTERVAL '1500' MILLISECOND AND h.ts > l.ts - INTERVAL '1300' MILLISECOND;"
    );
    assert_eq!(
        rows(&sql),
        json(
            r#"{"lo_at":100,"hi_at":1500}
{"lo_at":2700,"hi_at":1500}"#
        )
    );
}

#[test]
fn a_join_with_a_time_to_live_a_filter_in_on_and_a_window_over_it() {
    // With one time bound, SET state.ttl stands in for the other; the rest
    // of ON filters the pairs; a window counts them, on the time of the
    // later row of each pair (the hi row: it is never the earlier).
    let sql = format!(
        "{TABLES}SET state.ttl = '1h';
{SIDES}CREATE VIEW pairs AS
    SELECT l.k, h.ts, h.v FROM lo AS l JOIN hi AS h ON l.k = h.k AND h.ts >= l.ts AND h.v > l.v * 4;
INSERT INTO out SELECT k, count(*) AS n FROM pairs GROUP BY tumble(ts, INTERVAL '10' SECOND), k;"
    );
    // a: lo 1@0, 3@100 before hi 10@1500: 10 > 4, 10 <= 12; b has no lo rows.
    assert_eq!(rows(&sql), json(r#"{"k":"a","n":1}"#));
    // Without a time condition the pairs are timed by the later row, which
    // neither side's column holds: a window over them is refused.
    let sql = format!(
        "{TABLES}SET state.ttl = '1h';
{SIDES}CREATE VIEW pairs AS SELECT l.k, l.ts FROM lo AS l JOIN hi AS h ON l.k = h.k;
INSERT INTO out SELECT k, count(*) AS n FROM pairs GROUP BY tumble(ts, INTERVAL '10' SECOND), k;"
    );
    let message = error(&sql);
    assert!(
        message.starts_with("p.sql:7:68:") && message.contains("no column of this stream holds it"),
        "{message}"
    );
}

#[test]
fn a_row_behind_the_watermark_of_a_join_goes_to_late() {
    let dir = tempfile::tempdir().unwrap();
    let input = format!("{INPUT}{}\n", r#"{"k":"a","v":20.0,"ts":50}"#);
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let sql = format!(
        "{TABLES}CREATE TABLE late_out WITH (connector = 'file', path = 'late.jsonl');
SET execution.batch_size = 1;
{SIDES}INSERT INTO out SELECT l.ts AS lo_at, h.ts AS hi_at FROM lo AS l JOIN hi AS h
    ON l.k = h.k AND h.ts BETWEEN l.ts - INTERVAL '1' HOUR AND l.ts + INTERVAL '1' HOUR;
INSERT INTO late_out SELECT * FROM late;"
    );
    let plan = load_str(&sql, Path::new("p.sql"), dir.path(), None).unwrap();
    let watch = progress(&plan);
    let summary = run(plan, &watch).unwrap();
    let out = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    // a@50 (v = 20, so hi) comes after the watermark passed 2700: it pairs
    // with nothing, though lo rows at 0 and 100 are within the hour.
    assert!(!out.contains(r#""hi_at":50"#), "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");
    let late = std::fs::read_to_string(dir.path().join("late.jsonl")).unwrap();
    assert_eq!(late.lines().count(), 1, "{late}");
    assert!(
        late.contains("out_join") && late.contains(r#"\"ts\":50"#),
        "{late}"
    );
    // Counted late by the join (the input record reached the filters).
    assert_eq!(summary.transforms["out_join"].late, 1);
    assert_eq!(summary.late, 0);
}

#[test]
fn what_a_join_refuses_is_said_at_its_place() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "INSERT INTO out SELECT l.k FROM lo AS l JOIN hi AS h ON l.k = h.k;",
            "p.sql:5:57:",
            "would keep every row forever",
        ),
        (
            "INSERT INTO out SELECT l.k FROM lo AS l LEFT JOIN hi AS h ON l.k = h.k;",
            "p.sql:5:51:",
            "only inner joins are supported",
        ),
        (
            "INSERT INTO out SELECT k FROM lo AS l JOIN hi AS h ON l.k = h.k AND l.ts = h.ts;",
            "p.sql:5:24:",
            "in a join, name `k` with its side: l.k or h.k",
        ),
        (
            "INSERT INTO out SELECT l.k FROM lo AS l JOIN hi AS h ON l.ts = h.ts;",
            "p.sql:5:57:",
            "needs an equality of a column of each side",
        ),
        (
            "INSERT INTO out SELECT l.k FROM lo AS l JOIN lo AS h ON l.k = h.k AND l.ts = h.ts;",
            "p.sql:5:46:",
            "self-join is not supported",
        ),
        (
            "INSERT INTO out SELECT x.k FROM lo AS l JOIN hi AS h ON l.k = h.k AND l.ts = h.ts;",
            "p.sql:5:24:",
            "no table `x` in this join",
        ),
        (
            "INSERT INTO out SELECT l.k FROM lo AS l JOIN hi AS h ON l.k = h.k AND h.ts > l.ts AND h.ts < l.ts;",
            "p.sql:5:57:",
            "never hold",
        ),
        (
            "CREATE VIEW n AS SELECT k, count(*) AS c FROM r GROUP BY k;
INSERT INTO out SELECT l.k FROM n AS l JOIN hi AS h ON l.k = h.k AND l.ts = h.ts;",
            "p.sql:6:33:",
            "is a changelog",
        ),
        (
            "INSERT INTO out SELECT l.k FROM lo AS l JOIN hi AS h ON l.k = h.k AND l.ts = h.ts JOIN r ON r.k = l.k;",
            "p.sql:5:88:",
            "one JOIN per SELECT",
        ),
        (
            "SET state.ttl = 'forever';",
            "p.sql:5:17:",
            "is not a duration",
        ),
        (
            "INSERT INTO out SELECT l.k, h.k FROM lo AS l JOIN hi AS h ON l.k = h.k AND l.ts = h.ts;",
            "p.sql:5:31:",
            "`k` is named twice",
        ),
    ];
    let mut wrong = Vec::new();
    for (statement, place, words) in cases {
        let sql = format!("{TABLES}{SIDES}{statement}");
        let message = error(&sql);
        if !(message.starts_with(place) && message.contains(words)) {
            wrong.push(format!(
                "{statement}\n  expected {place} ... {words}\n  got {message}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_join_transform_in_a_toml_file_names_columns_by_their_stream() {
    let text = r#"
name = "j"

[source]
type = "file"
path = "in.jsonl"
event_time = "ts"

[[transform]]
name = "lo"
type = "filter"
from = "source"
where = "v < 4"

[[transform]]
name = "hi"
type = "filter"
from = "source"
where = "v >= 4"

[[transform]]
name = "pairs"
type = "join"
from = "lo"
right = "hi"
on = { k = "k" }
between = ["0s", "1500ms"]

[[transform]]
name = "out"
type = "select"
columns = { lo_at = '"lo.ts"', hi_at = '"hi.ts"' }

[[sink]]
from = "out"
type = "file"
path = "out.jsonl"
"#;
    assert_eq!(
        toml_rows(text).unwrap(),
        json(
            r#"{"lo_at":0,"hi_at":1500}
{"lo_at":100,"hi_at":1500}"#
        )
    );
    let bad = text.replace(r#"between = ["0s", "1500ms"]"#, r#"between = ["2s", "1s"]"#);
    let message = toml_rows(&bad).unwrap_err();
    assert!(
        message.contains("the first must not be larger"),
        "{message}"
    );
    let bad = text.replace(r#"on = { k = "k" }"#, r#"on = { k = "kk" }"#);
    let message = toml_rows(&bad).unwrap_err();
    assert!(message.contains("`hi` has no column `kk`"), "{message}");
}

/// Runs `sql` over [`INPUT`] with `files` beside it; the rows written to
/// `out.jsonl`, or the error.
fn rows_with(sql: &str, files: &[(&str, &str)]) -> Result<Vec<Value>, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), INPUT).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let plan = load_str(sql, Path::new("p.sql"), dir.path(), None).map_err(|e| e.to_string())?;
    let watch = progress(&plan);
    run(plan, &watch).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    Ok(json(&text))
}

const NAMES: (&str, &str) = ("names.csv", "k,label\na,alpha\na,first\nb,beta\nc,gamma\n");

#[test]
fn a_lookup_join_pairs_each_row_with_the_rows_of_a_file_read_at_start() {
    let sql = format!(
        "{TABLES}CREATE TABLE names WITH (connector = 'file', path = 'names.csv');
INSERT INTO out SELECT r.ts, n.label FROM r JOIN names AS n ON r.k = n.k WHERE r.v < 6;"
    );
    // a@0, a@100, b@200, a@2700 pass the filter; a has two labels.
    let expected = r#"{"ts":0,"label":"alpha"}
{"ts":0,"label":"first"}
{"ts":100,"label":"alpha"}
{"ts":100,"label":"first"}
{"ts":200,"label":"beta"}
{"ts":2700,"label":"alpha"}
{"ts":2700,"label":"first"}"#;
    assert_eq!(rows_with(&sql, &[NAMES]).unwrap(), json(expected));
    // The rest of ON filters the pairs; a window counts them per label.
    let sql = format!(
        "{TABLES}CREATE TABLE names WITH (connector = 'file', path = 'names.csv');
INSERT INTO out SELECT n.label, count(*) AS c FROM r JOIN names AS n ON n.k = r.k AND n.label <> 'first'
GROUP BY tumble(r.ts, INTERVAL '10' SECOND), n.label;"
    );
    assert_eq!(
        rows_with(&sql, &[NAMES]).unwrap(),
        json(
            r#"{"label":"alpha","c":4}
{"label":"beta","c":2}"#
        )
    );
}

#[test]
fn a_lookup_table_is_a_file_and_says_what_is_wrong_with_it() {
    let lookup = |options: &str| {
        format!(
            "{TABLES}CREATE TABLE names WITH ({options});
INSERT INTO out SELECT r.ts, n.label FROM r JOIN names AS n ON r.k = n.k;"
        )
    };
    let cases = [
        (
            lookup("connector = 'file', path = 'names.csv', event_time = 'ts'"),
            "p.sql:3:66:",
            "`event_time` does not apply to a lookup table",
        ),
        (
            lookup("connector = 'nexmark', events = 10"),
            "p.sql:3:38:",
            "its connector is 'file'",
        ),
        (
            lookup("connector = 'file', path = 'missing.csv'"),
            "p.sql:3:53:",
            "cannot read the lookup table",
        ),
        (
            format!(
                "{TABLES}CREATE TABLE names WITH (connector = 'file', path = 'names.csv');
INSERT INTO out SELECT r.ts FROM r JOIN names AS n ON r.k = n.key;"
            ),
            "p.sql:4:61:",
            "the table `names` has no column `key`; it has: k, label",
        ),
    ];
    let mut wrong = Vec::new();
    for (sql, place, words) in &cases {
        let message = rows_with(sql, &[NAMES]).unwrap_err();
        if !(message.starts_with(place) && message.contains(words)) {
            wrong.push(format!("expected {place} ... {words}\n  got {message}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn where_over_a_changelog_deletes_the_keys_that_stop_passing() {
    // Applying the filtered changelog holds what filtering the applied one
    // holds, for a filter that drops early rows and one that drops late
    // ones, event by event and in one chunk.
    for mode in ["event", "micro-batch"] {
        let totals = |filter: &str| {
            rows_in_order(&format!(
                "SET execution.mode = '{mode}';
                {TABLES}CREATE VIEW totals AS SELECT k, sum(v) AS total FROM r GROUP BY k;
                INSERT INTO out SELECT * FROM totals{filter};"
            ))
        };
        let all = upserts(&totals(""), "k");
        for (filter, keep) in [
            (" WHERE total < 10", (|t: f64| t < 10.0) as fn(f64) -> bool),
            (" WHERE total > 4", |t: f64| t > 4.0),
        ] {
            let got = totals(filter);
            let expected: std::collections::BTreeMap<String, Value> = all
                .iter()
                .filter(|(_, row)| keep(row["total"].as_f64().unwrap()))
                .map(|(k, row)| (k.clone(), row.clone()))
                .collect();
            let held = upserts(&got, "k");
            let totals_of = |m: &std::collections::BTreeMap<String, Value>| {
                m.iter()
                    .map(|(k, r)| (k.clone(), r["total"].clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                totals_of(&held),
                totals_of(&expected),
                "{mode}{filter}: {got:?}"
            );
        }
    }
    // Event by event, a's total goes 1, 4, 14, 16 and b's 5, 12: under
    // `total < 10`, the updates to 14, 16 and 12 come out as deletes.
    let got = rows_in_order(&format!(
        "SET execution.mode = 'event';
        {TABLES}CREATE VIEW totals AS SELECT k, sum(v) AS total FROM r GROUP BY k;
        INSERT INTO out SELECT * FROM totals WHERE total < 10;"
    ));
    let ops: Vec<(String, String, f64)> = got
        .iter()
        .map(|r| {
            (
                r["k"].as_str().unwrap().to_string(),
                r["op"].as_str().unwrap().to_string(),
                r["total"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, f64)> = [
        ("a", "insert", 1.0),
        ("a", "update", 4.0),
        ("b", "insert", 5.0),
        ("a", "delete", 14.0),
        ("b", "delete", 12.0),
        ("a", "delete", 16.0),
    ]
    .iter()
    .map(|(k, op, t)| (k.to_string(), op.to_string(), *t))
    .collect();
    assert_eq!(ops, expected);
}

#[test]
fn a_toml_window_or_join_over_a_changelog_is_refused() {
    let text = |last: &str| {
        format!(
            r#"name = "c"
[source]
type = "file"
path = "in.jsonl"
event_time = "ts"

[[transform]]
name = "totals"
type = "aggregate"
key = "k"
aggregates = {{ total = "sum(v)" }}

[[transform]]
name = "again"
{last}

[[sink]]
from = "again"
type = "file"
path = "out.jsonl"
"#
        )
    };
    let message = toml_rows(&text(
        "type = \"window\"\nwindow = { type = \"tumbling\", size = \"1s\" }\naggregates = { n = \"count(*)\" }",
    ))
    .unwrap_err();
    assert!(
        message.starts_with("p.toml:15:8:")
            && message.contains("aggregating it would count every update again"),
        "{message}"
    );
    let message = toml_rows(&text(
        "type = \"join\"\nfrom = \"source\"\nright = \"totals\"\non = { k = \"k\" }\nbetween = [\"0s\", \"1s\"]",
    ))
    .unwrap_err();
    assert!(message.contains("`totals` is a changelog"), "{message}");
}

#[test]
fn an_aggregate_of_a_changelog_takes_each_key_s_earlier_values_back_out() {
    // totals: a 1, 4, 14, 16; b 5, 12. Over them, the consumer's final
    // rows count each key once, with its latest total, in every mode.
    for mode in ["event", "micro-batch"] {
        let views = format!(
            "SET execution.mode = '{mode}';
            {TABLES}CREATE VIEW totals AS SELECT k, sum(v) AS total FROM r GROUP BY k;
            CREATE VIEW sized AS SELECT k, total, total > 10 AS big FROM totals;"
        );
        let got = rows_in_order(&format!(
            "{views}INSERT INTO out SELECT count(*) AS keys, sum(total) AS everything FROM totals;"
        ));
        let held = upserts(
            &got.iter()
                .map(|r| {
                    let mut r = r.clone();
                    r["one"] = Value::from(1);
                    r
                })
                .collect::<Vec<_>>(),
            "one",
        );
        let last = held.values().next().unwrap();
        assert_eq!(
            (last["keys"].as_i64(), last["everything"].as_f64()),
            (Some(2), Some(28.0)),
            "{mode}: {got:?}"
        );
        // A key that moves from one group to another leaves the first: the
        // small group loses its last key and is deleted.
        let got = rows_in_order(&format!(
            "{views}INSERT INTO out SELECT big, count(*) AS n FROM sized GROUP BY big;"
        ));
        let held = upserts(&got, "big");
        let finals: Vec<(bool, i64)> = held
            .values()
            .map(|r| (r["big"].as_bool().unwrap(), r["n"].as_i64().unwrap()))
            .collect();
        assert_eq!(finals, vec![(true, 2)], "{mode}: {got:?}");
        changelog_discipline(&got, "big");
        if mode == "event" {
            assert!(
                got.iter().any(|r| r["op"] == "delete" && r["big"] == false),
                "{got:?}"
            );
        }
        // An aggregate without keys is a changelog of one row, and can be
        // aggregated too.
        let got = rows_in_order(&format!(
            "{views}CREATE VIEW everything AS SELECT sum(total) AS all_totals FROM totals;
            INSERT INTO out SELECT count(*) AS rows_held, sum(all_totals) AS s FROM everything;"
        ));
        let last = got.last().unwrap();
        assert_eq!(
            (last["rows_held"].as_i64(), last["s"].as_f64()),
            (Some(1), Some(28.0)),
            "{mode}: {got:?}"
        );
    }
    // A group that loses its last row and comes back is inserted again,
    // at its next revision: a key's revisions have no gap.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("in.jsonl"),
        r#"{"k":"a","v":1.0,"ts":0}
{"k":"a","v":20.0,"ts":1}
{"k":"a","v":-19.0,"ts":2}
"#,
    )
    .unwrap();
    let sql = format!(
        "SET execution.mode = 'event';
        {TABLES}CREATE VIEW totals AS SELECT k, sum(v) AS total FROM r GROUP BY k;
        CREATE VIEW sized AS SELECT k, total > 10 AS big FROM totals;
        INSERT INTO out SELECT big, count(*) AS n FROM sized GROUP BY big;"
    );
    let plan = load_str(&sql, Path::new("p.sql"), dir.path(), None).unwrap();
    let watch = progress(&plan);
    run(plan, &watch).unwrap();
    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    let got: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let small: Vec<(String, i64)> = got
        .iter()
        .filter(|r| r["big"] == false)
        .map(|r| {
            (
                r["op"].as_str().unwrap().to_string(),
                r["revision"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, i64)> = [("insert", 0), ("delete", 1), ("insert", 2)]
        .iter()
        .map(|(o, r)| (o.to_string(), *r))
        .collect();
    assert_eq!(small, expected, "{got:?}");
    changelog_discipline(&got, "big");
    // A maximum cannot give an updated value back.
    let message = error(&format!(
        "{TABLES}CREATE VIEW totals AS SELECT k, sum(v) AS total FROM r GROUP BY k;
INSERT INTO out SELECT max(total) AS m FROM totals;"
    ));
    assert!(
        message.contains("`max(total)` cannot take an updated value back out"),
        "{message}"
    );
}

/// Per key: revisions 0, 1, 2, ... without a gap; an insert when the
/// consumer holds no row for the key, an update or delete when it does.
fn changelog_discipline(rows: &[Value], key: &str) {
    let mut held: std::collections::HashMap<String, (bool, i64)> = Default::default();
    for row in rows {
        let id = row[key].to_string();
        let (live, next) = held.get(&id).copied().unwrap_or((false, 0));
        let op = row["op"].as_str().unwrap();
        assert_eq!(row["revision"].as_i64(), Some(next), "{id}: {rows:?}");
        match op {
            "insert" => assert!(!live, "insert of a held row: {rows:?}"),
            "update" | "delete" => assert!(live, "{op} of a row not held: {rows:?}"),
            other => panic!("op {other}"),
        }
        held.insert(id, (op != "delete", next + 1));
    }
}
