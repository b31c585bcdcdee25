//! Nexmark q0-q2 written in SQL (`examples/nexmark/`) give the results of
//! the typed queries on the same generated events: the same rows, reduced
//! to the typed queries' checksums (`sluice_bench::nexmark`).

use sluice_bench::nexmark::{reference, QueryChecksum};
use sluice_connectors::nexmark::{Event, NexmarkSource};
use std::path::Path;

/// The events each file generates (`events = ...` in its table).
const EVENTS: u64 = 100_000;

/// Runs `examples/nexmark/{query}.sql`; the rows it wrote.
fn run_query(query: &str) -> Vec<serde_json::Value> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/nexmark");
    let text = std::fs::read_to_string(examples.join(format!("{query}.sql"))).unwrap();
    assert!(text.contains(&format!("events = {EVENTS}")), "{query}.sql");
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
