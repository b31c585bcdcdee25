//! `sluice bench nexmark-sql-qN`: a Nexmark query written in SQL
//! (`examples/nexmark/qN.sql`, built into the binary) over `--events`
//! generated events, its rows written to a JSON-lines file in a temporary
//! folder, then read back and checked against the typed query's reference.

use super::report::{cpu_seconds, Report};
use super::{BenchArgs, Mode};
use anyhow::{Context, Result};
use serde_json::json;
use sluice_bench::sql;
use std::io::BufRead;
use std::time::Instant;

/// Runs `query` as its SQL file says, with the bench's events, workers,
/// mode and batch size.
pub fn run(args: &BenchArgs, query: &str, report: &mut Report) -> Result<()> {
    let text = sql::text(query).with_context(|| format!("no SQL file for `{query}`"))?;
    let written = format!("events = {}", sql::EVENTS);
    let mut text = text.replace(&written, &format!("events = {}", args.events));
    text.push_str(&format!(
        "\nSET execution.workers = {};\nSET execution.batch_size = {};\n",
        args.workers(),
        args.batch_size
    ));
    if args.mode == Mode::Event {
        text.push_str("SET execution.mode = 'event';\n");
    }
    let dir = std::env::temp_dir().join(format!("sluice-bench-{query}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = measure(args, query, &text, &dir, report);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(
    args: &BenchArgs,
    query: &str,
    text: &str,
    dir: &std::path::Path,
    report: &mut Report,
) -> Result<()> {
    let path = dir.join(format!("{query}.sql"));
    let plan = sluice_pipeline::load_str(text, &path, dir, None)?;
    let watch = sluice_pipeline::progress(&plan);
    let (started, cpu) = (Instant::now(), cpu_seconds());
    sluice_pipeline::run(plan, &watch)?;
    let cpu = cpu_seconds().zip(cpu).map(|(after, before)| after - before);
    report.throughput(args.events, started.elapsed().as_secs_f64(), cpu);
    let out = std::fs::File::open(dir.join(format!("out/{query}.jsonl")))?;
    let mut rows = Vec::new();
    let mut got = sluice_bench::nexmark::QueryChecksum::default();
    for line in std::io::BufReader::new(out).lines() {
        rows.push(serde_json::from_str(&line?)?);
        // A chunk at a time: q0 writes millions of rows (a changelog is
        // applied whole).
        if rows.len() == 65_536 && !sql::is_changelog(query) {
            got.merge(&sql::checksum(query, &rows)?);
            rows.clear();
        }
    }
    got.merge(&sql::checksum(query, &rows)?);
    let want = sql::reference(query, args.events).context("no reference")?;
    report.check_exact("result_rows", got.rows, want.rows);
    report.check_exact("checksum", got.checksum, want.checksum);
    report.set(
        "reference",
        json!("the typed query's plain single-threaded loop over the same events"),
    );
    report.set("output", json!("JSON lines in a temporary folder"));
    Ok(())
}
