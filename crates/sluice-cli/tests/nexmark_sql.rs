//! Nexmark q0-q3, q7 and q8 written in SQL (`examples/nexmark/`) give the results of
//! the typed queries on the same generated events: the same rows, reduced
//! to the typed queries' checksums (`sluice_bench::nexmark`).

use sluice_bench::nexmark::{reference, QueryChecksum};
use sluice_connectors::nexmark::{Event, NexmarkSource};
use std::path::Path;

/// The events each file generates (`events = ...` in its table).
const EVENTS: u64 = 100_000;

/// Runs `examples/nexmark/{query}.sql`; the rows it wrote.
fn run_query(query: &str) -> Vec<serde_json::Value> {
    run_with(query, &Split::default())
}

/// How a test runs a query file: SET statements added, and the events
/// generated.
struct Split {
    settings: &'static str,
    events: u64,
}

impl Default for Split {
    fn default() -> Self {
        Self {
            settings: "",
            events: EVENTS,
        }
    }
}

/// Runs `examples/nexmark/{query}.sql` as `split` says; the rows it wrote.
fn run_with(query: &str, split: &Split) -> Vec<serde_json::Value> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/nexmark");
    let text = std::fs::read_to_string(examples.join(format!("{query}.sql"))).unwrap();
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

fn checksum(
    rows: &[serde_json::Value],
    value: impl Fn(&serde_json::Value) -> u64,
) -> QueryChecksum {
    let mut sum = QueryChecksum::default();
    for row in rows {
        sum.merge(&QueryChecksum {
            rows: 1,
            checksum: value(row),
        });
    }
    sum
}

fn u(row: &serde_json::Value, field: &str) -> u64 {
    row[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {row}"))
}

#[test]
fn q0_passes_every_bid_through() {
    let rows = run_query("q0");
    // The typed q0's checksum without its `extra` padding, which the
    // pipeline's rows do not carry.
    let source = NexmarkSource::partition(EVENTS, 0, 1);
    let expected = checksum(
        &(0..EVENTS)
            .filter_map(|n| match source.event(n) {
                Event::Bid(b) => Some(serde_json::json!({
                    "auction": b.auction, "bidder": b.bidder, "price": b.price,
                    "date_time": b.date_time,
                })),
                _ => None,
            })
            .collect::<Vec<_>>(),
        q0_value,
    );
    assert!(expected.rows > 0);
    assert_eq!(checksum(&rows, q0_value), expected);
}

fn q0_value(r: &serde_json::Value) -> u64 {
    (u(r, "auction") * 31)
        .wrapping_add(u(r, "bidder") * 17)
        .wrapping_add(u(r, "price"))
        .wrapping_add(r["date_time"].as_i64().unwrap() as u64)
}

#[test]
fn q1_converts_every_price_to_euros() {
    let rows = run_query("q1");
    // Euro thousandths, exactly: the typed query's value.
    let got = checksum(&rows, |r| {
        (r["price"].as_f64().unwrap() * 1000.0).round() as u64
    });
    assert_eq!(Some(got), reference("q1", EVENTS));
}

#[test]
fn q2_selects_the_bids_of_every_123rd_auction() {
    let rows = run_query("q2");
    let got = checksum(&rows, |r| u(r, "auction").wrapping_add(u(r, "price")));
    let expected = reference("q2", EVENTS).unwrap();
    assert!(expected.rows > 0);
    assert_eq!(got, expected);
}

/// The join queries on 1 and 3 workers, in small chunks and event by
/// event: the rows of a pair meet on one worker, whatever the split.
/// (Event by event on fewer events: each is a chunk of its own, slow in
/// a debug build.)
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

#[test]
fn q3_joins_auctions_with_their_sellers() {
    for split in &SPLITS {
        q3(split);
    }
}

fn q3(split: &Split) {
    let rows = run_with("q3", split);
    // The typed query's value: the person's fields, plus the auction id.
    let got = checksum(&rows, |r| {
        let text = |f: &str| r[f].as_str().unwrap_or_else(|| panic!("{f} in {r}"));
        let state = sluice_connectors::nexmark::STATES
            .iter()
            .position(|s| *s == text("state"))
            .unwrap() as u64;
        let person = text("name").len() as u64 + 7 * text("city").len() as u64 + 13 * state;
        person.wrapping_add(u(r, "id"))
    });
    let expected = reference("q3", split.events).unwrap();
    assert!(expected.rows > 0, "{expected:?}");
    assert_eq!(got, expected, "{}", split.settings);
}

#[test]
fn q7_joins_each_window_s_highest_price_with_its_bids() {
    for split in &SPLITS {
        q7(split);
    }
}

fn q7(split: &Split) {
    let rows = run_with("q7", split);
    let got = checksum(&rows, |r| {
        u(r, "auction")
            .wrapping_add(u(r, "price"))
            .wrapping_add(u(r, "bidder"))
            .wrapping_add(r["date_time"].as_i64().unwrap() as u64)
    });
    let expected = reference("q7", split.events).unwrap();
    assert!(expected.rows > 0, "{expected:?}");
    assert_eq!(got, expected, "{}", split.settings);
}

#[test]
fn q8_joins_new_people_with_their_auctions_in_one_window() {
    for split in &SPLITS {
        q8(split);
    }
}

fn q8(split: &Split) {
    let rows = run_with("q8", split);
    let got = checksum(&rows, |r| {
        u(r, "id").wrapping_add(r["starttime"].as_i64().unwrap() as u64)
    });
    let expected = reference("q8", split.events).unwrap();
    assert!(expected.rows > 0, "{expected:?}");
    assert_eq!(got, expected, "{}", split.settings);
}
