//! The fuzz targets' properties (`fuzz/`), run for a bounded number of
//! inputs on every `cargo test`: each target starts from a corpus of real
//! inputs (the example pipelines and data) and mutates them (bytes flipped,
//! inserted, deleted, lines spliced from other inputs). `cargo fuzz` (nightly)
//! runs the same checks with coverage guidance for as long as one wants; its
//! build of DataFusion with instrumentation takes too long for CI.
//!
//! `SLUICE_FUZZ_RUNS` sets the inputs per target (default 600 pipeline
//! files, 2,000 JSON-lines and 1,000 CSV inputs), and
//! `SLUICE_FUZZ_SEED` replays a run (each prints its seed).

#[path = "../../../fuzz/fuzz_targets/checks.rs"]
mod checks;

use sluice_pipeline::Format;
use std::path::Path;

/// SplitMix64.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that tend to matter to the parsers.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"=",
    b"\n",
    b"\r\n",
    b"\\",
    b"\0",
    b"0",
    b"-1",
    b"1e309",
    b"NaN",
    b"null",
    b"true",
    b"\xff\xfe",
    b"500us",
    b"0s",
    b"11y",
    b"9223372036854775807",
    b"\"ts\"",
    b"type = \"window\"",
    b"[[transform]]",
    b"window = { type = \"sliding\", size = \"1s\", slide = \"1ms\" }",
];

fn mutate(input: &[u8], corpus: &[Vec<u8>], random: &mut Random) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + random.below(4) {
        let at = random.below(out.len() + 1);
        match random.below(6) {
            0 if !out.is_empty() => {
                let at = at.min(out.len() - 1);
                out[at] ^= 1 << random.below(8);
            }
            1 => {
                let bytes = INTERESTING[random.below(INTERESTING.len())];
                out.splice(at..at, bytes.iter().copied());
            }
            2 if !out.is_empty() => {
                let end = (at + 1 + random.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 => {
                // A line of another input.
                let other = &corpus[random.below(corpus.len())];
                if let Some(line) = other.split(|b| *b == b'\n').nth(random.below(40)) {
                    let mut line = line.to_vec();
                    line.push(b'\n');
                    out.splice(at..at, line);
                }
            }
            4 if !out.is_empty() => {
                // Repeat a piece.
                let end = (at + 1 + random.below(32)).min(out.len());
                let piece = out[at.min(end)..end].to_vec();
                out.splice(at..at, piece);
            }
            _ => {
                out.insert(at, random.next() as u8);
            }
        }
    }
    out
}

/// Inputs per target: `SLUICE_FUZZ_RUNS`, or `default`.
fn runs(default: usize) -> usize {
    std::env::var("SLUICE_FUZZ_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("SLUICE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

fn files(folder: &str, extension: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("a corpus file"))
        .collect()
}

/// Runs `check` on `runs()` mutations of `corpus`; a panic names the seed
/// and the input.
fn fuzz(
    name: &str,
    corpus: &[Vec<u8>],
    inputs: usize,
    check: impl Fn(&[u8]) + std::panic::RefUnwindSafe,
) {
    assert!(!corpus.is_empty(), "{name}: no corpus");
    let seed = seed();
    println!("{name}: {inputs} inputs, seed {seed}");
    let mut random = Random(seed);
    for corpus_input in corpus {
        check(corpus_input);
    }
    for run in 0..inputs {
        let base = &corpus[random.below(corpus.len())];
        let input = mutate(base, corpus, &mut random);
        if let Err(panic) = std::panic::catch_unwind(|| check(&input)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "{name}: input {run} of seed {seed} failed ({message}); the input:\n{}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

#[test]
fn pipeline_files_are_refused_at_a_position_or_compiled() {
    let mut corpus = files("examples/pipelines", "toml");
    corpus.extend(files("benches/pipelines", "toml"));
    // Relative to the examples, so that their inputs are found and checking
    // goes on to the transforms and their SQL.
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pipelines");
    fuzz("pipeline_file", &corpus, runs(600), |data| {
        checks::pipeline_file(&base, data)
    });
}

#[test]
fn json_lines_become_rows_or_dead_letters() {
    let corpus = files("examples/data", "jsonl");
    fuzz("decode_jsonl", &corpus, runs(2_000), |data| {
        checks::decode(Format::Jsonl, data)
    });
}

#[test]
fn csv_lines_become_rows_or_dead_letters() {
    let corpus = files("examples/data", "csv");
    fuzz("decode_csv", &corpus, runs(1_000), |data| {
        checks::decode(Format::Csv, data)
    });
}
