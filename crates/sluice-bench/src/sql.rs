//! The Nexmark queries written in SQL (`examples/nexmark/qN.sql`): their
//! text, and how their output rows reduce to the checksums of the typed
//! queries ([`crate::nexmark`]), so that both are checked against one
//! reference.

use crate::nexmark::{reference as typed_reference, QueryChecksum};
use serde_json::Value;
use sluice_connectors::nexmark::{Event, NexmarkSource, STATES};

/// The queries written in SQL.
pub const QUERIES: [&str; 8] = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8"];

/// How many events each file generates as written (`events = ...`).
pub const EVENTS: u64 = 100_000;

/// The text of `examples/nexmark/{query}.sql`.
pub fn text(query: &str) -> Option<&'static str> {
    Some(match query {
        "q0" => include_str!("../../../examples/nexmark/q0.sql"),
        "q1" => include_str!("../../../examples/nexmark/q1.sql"),
        "q2" => include_str!("../../../examples/nexmark/q2.sql"),
        "q3" => include_str!("../../../examples/nexmark/q3.sql"),
        "q4" => include_str!("../../../examples/nexmark/q4.sql"),
        "q5" => include_str!("../../../examples/nexmark/q5.sql"),
        "q7" => include_str!("../../../examples/nexmark/q7.sql"),
        "q8" => include_str!("../../../examples/nexmark/q8.sql"),
        _ => return None,
    })
}

fn unsigned(row: &Value, field: &str) -> Option<u64> {
    row.get(field)?.as_u64()
}

fn signed(row: &Value, field: &str) -> Option<u64> {
    row.get(field)?.as_i64().map(|v| v as u64)
}

fn text_of<'r>(row: &'r Value, field: &str) -> Option<&'r str> {
    row.get(field)?.as_str()
}

/// The value a row of `query` adds to the checksum: the typed query's
/// value of the same row. `None` when the row lacks a field.
pub fn row_value(query: &str, row: &Value) -> Option<u64> {
    Some(match query {
        // The typed q0's value without `extra`, which the rows do not carry.
        "q0" => (unsigned(row, "auction")? * 31)
            .wrapping_add(unsigned(row, "bidder")? * 17)
            .wrapping_add(unsigned(row, "price")?)
            .wrapping_add(signed(row, "date_time")?),
        // Euro thousandths, exactly.
        "q1" => (row.get("price")?.as_f64()? * 1000.0).round() as u64,
        "q2" => unsigned(row, "auction")?.wrapping_add(unsigned(row, "price")?),
        "q3" => {
            let state = STATES
                .iter()
                .position(|s| Some(*s) == text_of(row, "state"))? as u64;
            let person = text_of(row, "name")?.len() as u64
                + 7 * text_of(row, "city")?.len() as u64
                + 13 * state;
            person.wrapping_add(unsigned(row, "id")?)
        }
        "q4" => unsigned(row, "category")?
            .wrapping_mul(1_000_000_007)
            .wrapping_add(unsigned(row, "average")?),
        "q5" => unsigned(row, "auction")?
            .wrapping_mul(1000)
            .wrapping_add(unsigned(row, "num")?),
        "q7" => unsigned(row, "auction")?
            .wrapping_add(unsigned(row, "price")?)
            .wrapping_add(unsigned(row, "bidder")?)
            .wrapping_add(signed(row, "date_time")?),
        "q8" => unsigned(row, "id")?.wrapping_add(signed(row, "starttime")?),
        _ => return None,
    })
}

/// Whether the rows of `query` are a changelog, to be applied before they
/// are summed (q4's averages are updated as closing prices rise).
pub fn is_changelog(query: &str) -> bool {
    query == "q4"
}

/// The rows a consumer of a changelog holds after applying it: by `key`,
/// the latest insert or update, unless a delete came after it.
pub fn apply<'r>(rows: impl IntoIterator<Item = &'r Value>, key: &str) -> Vec<&'r Value> {
    let mut held: std::collections::BTreeMap<String, &'r Value> = Default::default();
    for row in rows {
        let id = row.get(key).map(Value::to_string).unwrap_or_default();
        if row.get("op").and_then(Value::as_str) == Some("delete") {
            held.remove(&id);
        } else {
            held.insert(id, row);
        }
    }
    held.into_values().collect()
}

/// A result row without the fields its query's value needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadRow {
    /// The query.
    pub query: String,
    /// The row, as JSON.
    pub row: String,
}

impl std::fmt::Display for UnreadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: a row without its fields: {}", self.query, self.row)
    }
}

impl std::error::Error for UnreadRow {}

/// The checksum of `rows` of `query` (all of them, for a changelog), or
/// the first row it cannot read.
pub fn checksum<'r>(
    query: &str,
    rows: impl IntoIterator<Item = &'r Value>,
) -> Result<QueryChecksum, UnreadRow> {
    let rows: Vec<&Value> = if is_changelog(query) {
        apply(rows, "category")
    } else {
        rows.into_iter().collect()
    };
    let mut sum = QueryChecksum::default();
    for row in rows {
        let value = row_value(query, row).ok_or_else(|| UnreadRow {
            query: query.to_string(),
            row: row.to_string(),
        })?;
        sum.merge(&QueryChecksum {
            rows: 1,
            checksum: value,
        });
    }
    Ok(sum)
}

/// What the rows of `query` over the first `events` events reduce to: the
/// typed query's reference (for q0 without `extra`).
pub fn reference(query: &str, events: u64) -> Option<QueryChecksum> {
    if query != "q0" {
        return text(query).and_then(|_| typed_reference(query, events));
    }
    let source = NexmarkSource::partition(events, 0, 1);
    let mut sum = QueryChecksum::default();
    for n in 0..events {
        if let Event::Bid(b) = source.event(n) {
            let value = (b.auction * 31)
                .wrapping_add(b.bidder * 17)
                .wrapping_add(b.price)
                .wrapping_add(b.date_time as u64);
            sum.merge(&QueryChecksum {
                rows: 1,
                checksum: value,
            });
        }
    }
    Some(sum)
}
