//! Nexmark q0-q5, q7 and q8 written in SQL (`examples/nexmark/`) give the
//! results of the typed queries on the same generated events: their rows
//! reduce to the typed queries' checksums (`sluice_bench::sql`), on one
//! worker, on several in small chunks, and event by event.

use sluice_bench::sql::{checksum, reference, text, EVENTS};

/// How a test runs a query file: SET statements added, and the events
/// generated.
struct Split {
    settings: &'static str,
    events: u64,
}

/// One worker as written; three workers in small chunks; two workers event
/// by event (on fewer events: each is a chunk of its own, slow in a debug
/// build).
const SPLITS: [Split; 3] = [
    Split {
        settings: "",
        events: EVENTS,
    },
    Split {
        settings: "\nSET execution.workers = 3;\nSET execution.batch_size = 777;",
        events: EVENTS,
    },
    Split {
        settings: "\nSET execution.workers = 2;\nSET execution.mode = 'event';",
        events: 15_000,
    },
];

/// Runs `examples/nexmark/{query}.sql` as `split` says; the rows it wrote.
fn run_with(query: &str, split: &Split) -> Vec<serde_json::Value> {
    let text = text(query).unwrap();
    let events = format!("events = {EVENTS}");
    assert!(text.contains(&events), "{query}.sql");
    let mut text = text.replace(&events, &format!("events = {}", split.events));
    text.push_str(split.settings);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{query}.sql"));
    let plan = sluice_pipeline::load_str(&text, &path, dir.path(), None).unwrap();
    let watch = sluice_pipeline::progress(&plan);
    sluice_pipeline::run(plan, &watch).unwrap();
    let written = std::fs::read_to_string(dir.path().join(format!("out/{query}.jsonl"))).unwrap();
    written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The query's rows, under every split, reduce to the reference.
fn check(query: &str, splits: &[Split]) {
    for split in splits {
        let rows = run_with(query, split);
        let got = checksum(query, &rows).unwrap();
        let expected = reference(query, split.events).unwrap();
        assert!(expected.rows > 0, "{query}: {expected:?}");
        assert_eq!(got, expected, "{query}{}", split.settings);
    }
}

#[test]
fn q0_passes_every_bid_through() {
    check("q0", &SPLITS[..1]);
}

#[test]
fn q1_converts_every_price_to_euros() {
    check("q1", &SPLITS[..1]);
}

#[test]
fn q2_selects_the_bids_of_every_123rd_auction() {
    check("q2", &SPLITS[..1]);
}

#[test]
fn q3_joins_auctions_with_their_sellers() {
    check("q3", &SPLITS);
}

#[test]
fn q4_averages_each_auction_s_closing_price_per_category() {
    check("q4", &SPLITS);
}

#[test]
fn q5_joins_each_sliding_window_s_counts_with_their_maximum() {
    check("q5", &SPLITS);
}

#[test]
fn q7_joins_each_window_s_highest_price_with_its_bids() {
    check("q7", &SPLITS);
}

#[test]
fn q8_joins_new_people_with_their_auctions_in_one_window() {
    check("q8", &SPLITS);
}
