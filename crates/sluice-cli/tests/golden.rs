//! Golden tests: every pipeline of `examples/pipelines/` runs on its data
//! and its outputs match `examples/pipelines/expected/<name>/`.
//!
//! Rows are compared sorted (workers write in any order; a CSV keeps its
//! header first); Parquet files are compared as JSON lines. After a change
//! that alters results on purpose, regenerate the expected files with
//! `UPDATE_GOLDEN=1 cargo test -p sluice-cli --test golden` and review the
//! diff.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_file() {
            fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

fn sorted_lines(text: &str, keep_header: bool) -> String {
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let header = if keep_header && !lines.is_empty() {
        Some(lines.remove(0))
    } else {
        None
    };
    lines.sort_unstable();
    header
        .into_iter()
        .chain(lines)
        .map(|l| format!("{l}\n"))
        .collect()
}

fn parquet_as_jsonl(path: &Path) -> String {
    let file = fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
        for batch in reader {
            writer.write(&batch.unwrap()).unwrap();
        }
        writer.finish().unwrap();
    }
    String::from_utf8(out).unwrap()
}

/// Every output of one run, normalised, by file name.
fn outputs(dir: &Path, stdout: &str, summary: &serde_json::Value) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    if dir.exists() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let mut name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".parquet") {
                name.push_str(".jsonl");
            }
            let text = match path.extension().and_then(|e| e.to_str()) {
                Some("parquet") => sorted_lines(&parquet_as_jsonl(&path), false),
                Some("csv") => sorted_lines(&fs::read_to_string(&path).unwrap(), true),
                _ => sorted_lines(&fs::read_to_string(&path).unwrap(), false),
            };
            files.insert(name, text);
        }
    }
    if !stdout.trim().is_empty() {
        files.insert("stdout.jsonl".into(), sorted_lines(stdout, false));
    }
    files.insert(
        "summary.json".into(),
        serde_json::to_string_pretty(summary).unwrap() + "\n",
    );
    files
}

#[test]
fn every_example_pipeline_produces_its_expected_outputs() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut pipelines: Vec<PathBuf> = fs::read_dir(examples().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml" || e == "sql"))
        .collect();
    pipelines.sort();
    assert!(
        pipelines.len() >= 6,
        "the examples are missing: {pipelines:?}"
    );
    let mut failures = Vec::new();
    for pipeline in &pipelines {
        let name = pipeline.file_stem().unwrap().to_string_lossy().into_owned();
        let work = tempfile::tempdir().unwrap();
        copy_dir(
            &examples().join("pipelines"),
            &work.path().join("pipelines"),
        );
        copy_dir(&examples().join("data"), &work.path().join("data"));
        let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("run")
            .arg(
                work.path()
                    .join("pipelines")
                    .join(pipeline.file_name().unwrap()),
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name} failed:\n{stderr}");
        let summary_line = stderr
            .lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .unwrap_or_else(|| panic!("{name}: no summary line in\n{stderr}"));
        let mut summary: serde_json::Value = serde_json::from_str(summary_line).unwrap();
        let count = |k: &str| summary[k].as_u64().unwrap();
        assert_eq!(
            count("read"),
            count("processed") + count("late") + count("dead_letter"),
            "{name}: read != processed + late + dead_letter"
        );
        assert!(summary["seconds"].as_f64().unwrap() >= 0.0);
        summary.as_object_mut().unwrap().remove("seconds");

        let out_dir = work.path().join("pipelines/out").join(&name);
        let actual = outputs(&out_dir, &String::from_utf8_lossy(&output.stdout), &summary);
        let expected_dir = examples().join("pipelines/expected").join(&name);
        if update {
            let _ = fs::remove_dir_all(&expected_dir);
            fs::create_dir_all(&expected_dir).unwrap();
            for (file, text) in &actual {
                fs::write(expected_dir.join(file), text).unwrap();
            }
            continue;
        }
        let mut expected = BTreeMap::new();
        for entry in fs::read_dir(&expected_dir)
            .unwrap_or_else(|_| panic!("no {}: run with UPDATE_GOLDEN=1", expected_dir.display()))
        {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            expected.insert(file, fs::read_to_string(&path).unwrap());
        }
        if actual.keys().ne(expected.keys()) {
            failures.push(format!(
                "{name}: outputs {:?}, expected {:?}",
                actual.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>()
            ));
            continue;
        }
        for (file, text) in &actual {
            if expected[file] != *text {
                failures.push(format!(
                    "{name}/{file} differs:\n--- expected\n{}\n--- actual\n{text}",
                    expected[file]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The SQL version of an example writes what its TOML version writes, file
/// for file (the summaries differ only in names): two front ends, one
/// dataflow.
#[test]
fn a_sql_pipeline_writes_what_its_toml_twin_writes() {
    let expected = examples().join("pipelines/expected");
    for (sql, toml) in [("sensors_sql", "sensors")] {
        for file in [
            "per_sensor.jsonl",
            "late.jsonl",
            "dead_letter.jsonl",
            "stdout.jsonl",
        ] {
            let read = |name: &str| {
                fs::read_to_string(expected.join(name).join(file))
                    .unwrap_or_else(|e| panic!("{name}/{file}: {e}"))
            };
            let (a, b) = (read(sql), read(toml));
            assert!(!b.trim().is_empty(), "{toml}/{file} is empty: a weak check");
            assert_eq!(a, b, "{sql}/{file} differs from {toml}/{file}");
        }
    }
}
