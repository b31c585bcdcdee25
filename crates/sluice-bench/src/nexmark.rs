//! Nexmark queries q0–q5, q7, q8 (Flink SQL semantics) as Sluice
//! pipelines, with plain single-threaded reference implementations to check
//! them against.
//!
//! Every query reduces its result rows to a [`QueryChecksum`] (row count and
//! a wrapping sum of a per-row value) on the worker that makes them. Joins
//! and the per-window maxima of q5/q7/q8 are [`KeyedProcess`]es that emit at
//! the end of the (bounded) input.

use sluice::prelude::*;
use sluice::watermark::WatermarkStrategy;
use sluice::{Batch, KeyedProcess, Timestamp};
use sluice_connectors::nexmark::{Event, NexmarkSource, STATES};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The result of a query run: how many rows, and a checksum over them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryChecksum {
    /// Result rows.
    pub rows: u64,
    /// Wrapping sum of the rows' values.
    pub checksum: u64,
}

impl QueryChecksum {
    fn add(&mut self, value: u64) {
        self.rows += 1;
        self.checksum = self.checksum.wrapping_add(value);
    }

    /// Adds another partial checksum.
    pub fn merge(&mut self, other: &QueryChecksum) {
        self.rows += other.rows;
        self.checksum = self.checksum.wrapping_add(other.checksum);
    }
}

/// The queries `sluice bench` runs.
pub const QUERIES: [&str; 8] = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8"];

const TEN_SECONDS: i64 = 10_000;

fn tumble(t: i64) -> i64 {
    t - t.rem_euclid(TEN_SECONDS)
}

fn source(pipeline: &Pipeline, events: u64, policy: FlushPolicy) -> Stream<Event> {
    let partitions = pipeline.workers();
    pipeline
        .partitioned_source(partitions, |p| {
            NexmarkSource::partition(events, p, partitions)
        })
        .batch(policy)
}

fn wrap(v: i64) -> u64 {
    v as u64
}

/// Runs query `query` over the first `events` events; the stream carries
/// one partial checksum per batch.
pub fn query(
    pipeline: &Pipeline,
    query: &str,
    events: u64,
    policy: FlushPolicy,
) -> Option<Stream<QueryChecksum>> {
    let events = source(pipeline, events, policy);
    let checksums = |values: &[u64]| {
        let mut c = QueryChecksum::default();
        values.iter().for_each(|v| c.add(*v));
        c
    };
    Some(match query {
        "q0" => events
            .flat_map(|e| match e {
                Event::Bid(b) => Some(b),
                _ => None,
            })
            .map(|b| {
                (b.auction * 31)
                    .wrapping_add(b.bidder * 17)
                    .wrapping_add(b.price)
                    .wrapping_add(wrap(b.date_time))
                    .wrapping_add(u64::from(b.extra_len))
            })
            .map_batch(checksums),
        // price in euro-thousandths: 0.908 * price exactly, as DECIMAL(23, 3).
        "q1" => events
            .flat_map(|e| match e {
                Event::Bid(b) => Some(b.price * 908),
                _ => None,
            })
            .map_batch(checksums),
        "q2" => events
            .flat_map(|e| match e {
                Event::Bid(b) if b.auction % 123 == 0 => Some(b.auction.wrapping_add(b.price)),
                _ => None,
            })
            .map_batch(checksums),
        "q3" => events
            .flat_map(|e| match e {
                Event::Person(p) if ["or", "id", "ca"].contains(&p.state()) => {
                    Some(Q3::Person(p.id, q3_person_value(&p)))
                }
                Event::Auction(a) if a.category == 10 => Some(Q3::Auction(a.seller, a.id)),
                _ => None,
            })
            .key_by(|s: &Q3| match s {
                Q3::Person(id, _) | Q3::Auction(id, _) => *id,
            })
            .process(Q3Join)
            .map_batch(checksums),
        "q4" => events
            .flat_map(|e| match e {
                Event::Auction(a) => Some(Q4::Auction(a.id, a.date_time, a.expires, a.category)),
                Event::Bid(b) => Some(Q4::Bid(b.auction, b.date_time, b.price)),
                Event::Person(_) => None,
            })
            .key_by(|s: &Q4| match s {
                Q4::Auction(id, ..) | Q4::Bid(id, ..) => *id,
            })
            .process(Q4ClosingPrice)
            .key_by(|(category, _): &(u64, u64)| *category)
            .aggregate((Count, Sum.over(|(_, price): &(u64, u64)| *price)))
            .map(|(category, (count, sum))| q4_value(category, sum / count.max(1)))
            .map_batch(checksums),
        "q5" => events
            .flat_map(|e| match e {
                Event::Bid(b) => Some(b.auction),
                _ => None,
            })
            .with_watermarks(WatermarkStrategy::bounded(Duration::from_secs(4)))
            .events
            .key_by(|auction: &u64| *auction)
            .window(Window::sliding(
                Duration::from_secs(10),
                Duration::from_secs(2),
            ))
            .aggregate(Count)
            .results
            .key_by(|r: &sluice::window::WindowResult<u64, u64>| r.window_start)
            .process(Q5HotItems)
            .map_batch(checksums),
        "q7" => events
            .flat_map(|e| match e {
                Event::Bid(b) => {
                    let ws = tumble(b.date_time);
                    let member = Some((ws, true, b.auction, b.price, b.bidder, b.date_time));
                    // The range is inclusive: a bid at a window's end also
                    // matches the window before.
                    let boundary = (b.date_time == ws).then_some((
                        ws - TEN_SECONDS,
                        false,
                        b.auction,
                        b.price,
                        b.bidder,
                        b.date_time,
                    ));
                    [member, boundary]
                }
                _ => [None, None],
            })
            .flat_map(|entry: Option<Q7Entry>| entry)
            // Two phases, as Flink plans it: a window's bids spread over the
            // workers by auction, each keeping the bids that can still be
            // the highest; then the window's highest of those.
            .key_by(|entry: &Q7Entry| (entry.0, entry.2 % Q7_SHARES))
            .process(Q7Candidates)
            .key_by(|entry: &Q7Entry| entry.0)
            .process(Q7HighestBid)
            .map_batch(checksums),
        "q8" => events
            .flat_map(|e| match e {
                Event::Person(p) => Some((p.id, tumble(p.date_time), true)),
                Event::Auction(a) => Some((a.seller, tumble(a.date_time), false)),
                Event::Bid(_) => None,
            })
            .key_by(|(id, ws, _): &(u64, i64, bool)| (*id, *ws))
            .process(Q8NewUsers)
            .map_batch(checksums),
        _ => return None,
    })
}

fn q3_person_value(p: &sluice_connectors::nexmark::Person) -> u64 {
    (p.name().len() as u64) + 7 * p.city().len() as u64 + 13 * u64::from(p.state)
}

fn q4_value(category: u64, average: u64) -> u64 {
    category.wrapping_mul(1_000_000_007).wrapping_add(average)
}

/// q3 inputs: persons of the right states, auctions of category 10.
#[derive(Debug, Clone, Copy)]
pub enum Q3 {
    /// Person id and the value of its fields.
    Person(u64, u64),
    /// Seller and auction id.
    Auction(u64, u64),
}

#[derive(Clone)]
struct Q3Join;

impl KeyedProcess<u64, Q3> for Q3Join {
    type State = (Option<u64>, Vec<u64>);
    type Output = u64;
    fn on_event(
        &self,
        _: &u64,
        state: &mut Self::State,
        event: Q3,
        time: Timestamp,
        out: &mut Batch<u64>,
    ) {
        match event {
            Q3::Person(_, value) => {
                state.0 = Some(value);
                for auction in state.1.drain(..) {
                    out.push(value.wrapping_add(auction), time);
                }
            }
            Q3::Auction(_, auction) => match state.0 {
                Some(value) => out.push(value.wrapping_add(auction), time),
                None => state.1.push(auction),
            },
        }
    }
}

/// q4 inputs: auctions (id, time, expires, category) and bids (auction, time, price).
#[derive(Debug, Clone, Copy)]
pub enum Q4 {
    /// An auction.
    Auction(u64, i64, i64, u64),
    /// A bid.
    Bid(u64, i64, u64),
}

#[derive(Clone)]
struct Q4ClosingPrice;

#[derive(Default)]
struct Q4State {
    auction: Option<(i64, i64, u64)>,
    early_bids: Vec<(i64, u64)>,
    max: Option<u64>,
}

impl KeyedProcess<u64, Q4> for Q4ClosingPrice {
    type State = Q4State;
    type Output = (u64, u64);
    fn on_event(
        &self,
        _: &u64,
        state: &mut Q4State,
        event: Q4,
        _: Timestamp,
        _: &mut Batch<(u64, u64)>,
    ) {
        match event {
            Q4::Auction(_, start, expires, category) => {
                state.auction = Some((start, expires, category));
                for (time, price) in std::mem::take(&mut state.early_bids) {
                    if (start..=expires).contains(&time) {
                        state.max = Some(state.max.map_or(price, |m| m.max(price)));
                    }
                }
            }
            Q4::Bid(_, time, price) => match state.auction {
                Some((start, expires, _)) if (start..=expires).contains(&time) => {
                    state.max = Some(state.max.map_or(price, |m| m.max(price)));
                }
                Some(_) => {}
                None => state.early_bids.push((time, price)),
            },
        }
    }
    fn on_end(&self, _: &u64, state: &mut Q4State, out: &mut Batch<(u64, u64)>) {
        if let (Some((_, _, category)), Some(max)) = (state.auction, state.max) {
            out.push((category, max), 0);
        }
    }
}

#[derive(Clone)]
struct Q5HotItems;

impl KeyedProcess<i64, sluice::window::WindowResult<u64, u64>> for Q5HotItems {
    type State = Vec<(u64, u64)>;
    type Output = u64;
    fn on_event(
        &self,
        _: &i64,
        state: &mut Self::State,
        row: sluice::window::WindowResult<u64, u64>,
        _: Timestamp,
        _: &mut Batch<u64>,
    ) {
        state.push((row.key, row.value));
    }
    fn on_end(&self, _: &i64, state: &mut Self::State, out: &mut Batch<u64>) {
        let max = state.iter().map(|(_, n)| *n).max().unwrap_or(0);
        for (auction, num) in state.iter().filter(|(_, n)| *n == max) {
            out.push(auction.wrapping_mul(1000).wrapping_add(*num), 0);
        }
    }
}

/// q7 entries: window start, member of the window (or only a candidate at
/// its end), auction, price, bidder, time.
type Q7Entry = (i64, bool, u64, u64, u64, i64);

/// How many shares of a window's auctions q7's first phase keeps apart.
const Q7_SHARES: u64 = 64;

/// Adds `entry` to a q7 state: the highest price of the window's own bids
/// so far, and the entries at or above it.
fn q7_add(state: &mut (Option<u64>, Vec<Q7Entry>), entry: Q7Entry) {
    let price = entry.3;
    if entry.1 {
        state.0 = Some(state.0.map_or(price, |m| m.max(price)));
    }
    let floor = state.0.unwrap_or(0);
    if price >= floor {
        state.1.retain(|e| e.3 >= floor);
        state.1.push(entry);
    }
}

/// q7's first phase, per window and share of its auctions: the entries
/// that can still be the window's highest (none below this share's own
/// highest bid, which the window's highest is at least).
#[derive(Clone)]
struct Q7Candidates;

impl KeyedProcess<(i64, u64), Q7Entry> for Q7Candidates {
    type State = (Option<u64>, Vec<Q7Entry>);
    type Output = Q7Entry;
    fn on_event(
        &self,
        _: &(i64, u64),
        state: &mut Self::State,
        entry: Q7Entry,
        _: Timestamp,
        _: &mut Batch<Q7Entry>,
    ) {
        q7_add(state, entry);
    }
    fn on_end(&self, _: &(i64, u64), state: &mut Self::State, out: &mut Batch<Q7Entry>) {
        for e in state.1.drain(..) {
            out.push(e, e.5);
        }
    }
}

/// q7's second phase, per window: the highest of the candidates.
#[derive(Clone)]
struct Q7HighestBid;

impl KeyedProcess<i64, Q7Entry> for Q7HighestBid {
    type State = (Option<u64>, Vec<Q7Entry>);
    type Output = u64;
    fn on_event(
        &self,
        _: &i64,
        state: &mut Self::State,
        entry: Q7Entry,
        _: Timestamp,
        _: &mut Batch<u64>,
    ) {
        q7_add(state, entry);
    }
    fn on_end(&self, _: &i64, state: &mut Self::State, out: &mut Batch<u64>) {
        if let Some(max) = state.0 {
            for e in state.1.iter().filter(|e| e.3 == max) {
                out.push(q7_value(e.2, e.3, e.4, e.5), 0);
            }
        }
    }
}

fn q7_value(auction: u64, price: u64, bidder: u64, time: i64) -> u64 {
    auction
        .wrapping_add(price)
        .wrapping_add(bidder)
        .wrapping_add(wrap(time))
}

#[derive(Clone)]
struct Q8NewUsers;

impl KeyedProcess<(u64, i64), (u64, i64, bool)> for Q8NewUsers {
    type State = (bool, bool, bool);
    type Output = u64;
    fn on_event(
        &self,
        key: &(u64, i64),
        state: &mut Self::State,
        (_, _, person): (u64, i64, bool),
        time: Timestamp,
        out: &mut Batch<u64>,
    ) {
        if person {
            state.0 = true;
        } else {
            state.1 = true;
        }
        if state.0 && state.1 && !state.2 {
            state.2 = true;
            out.push(key.0.wrapping_add(wrap(key.1)), time);
        }
    }
}

/// The checksum of `query` over the first `events` events, computed by a
/// plain loop (one thread, hash maps).
pub fn reference(query: &str, events: u64) -> Option<QueryChecksum> {
    let source = NexmarkSource::partition(events, 0, 1);
    let all = (0..events).map(|n| source.event(n));
    let mut c = QueryChecksum::default();
    match query {
        "q0" | "q1" | "q2" => {
            for e in all {
                if let Event::Bid(b) = e {
                    match query {
                        "q0" => c.add(
                            (b.auction * 31)
                                .wrapping_add(b.bidder * 17)
                                .wrapping_add(b.price)
                                .wrapping_add(wrap(b.date_time))
                                .wrapping_add(u64::from(b.extra_len)),
                        ),
                        "q1" => c.add(b.price * 908),
                        _ if b.auction % 123 == 0 => c.add(b.auction.wrapping_add(b.price)),
                        _ => {}
                    }
                }
            }
        }
        "q3" => {
            let mut persons = HashMap::new();
            let mut auctions = Vec::new();
            for e in all {
                match e {
                    Event::Person(p)
                        if ["or", "id", "ca"].contains(&STATES[usize::from(p.state)]) =>
                    {
                        persons.insert(p.id, q3_person_value(&p));
                    }
                    Event::Auction(a) if a.category == 10 => auctions.push((a.seller, a.id)),
                    _ => {}
                }
            }
            for (seller, id) in auctions {
                if let Some(value) = persons.get(&seller) {
                    c.add(value.wrapping_add(id));
                }
            }
        }
        "q4" => {
            let auctions: HashMap<u64, (i64, i64, u64)> = all
                .filter_map(|e| match e {
                    Event::Auction(a) => Some((a.id, (a.date_time, a.expires, a.category))),
                    _ => None,
                })
                .collect();
            let mut max: HashMap<u64, u64> = HashMap::new();
            for e in (0..events).map(|n| source.event(n)) {
                if let Event::Bid(b) = e {
                    if let Some((start, expires, _)) = auctions.get(&b.auction) {
                        if (*start..=*expires).contains(&b.date_time) {
                            let m = max.entry(b.auction).or_insert(0);
                            *m = (*m).max(b.price);
                        }
                    }
                }
            }
            let mut per_category: HashMap<u64, (u64, u64)> = HashMap::new();
            for (auction, price) in max {
                let category = auctions[&auction].2;
                let s = per_category.entry(category).or_default();
                s.0 += 1;
                s.1 += price;
            }
            for (category, (count, sum)) in per_category {
                c.add(q4_value(category, sum / count));
            }
        }
        "q5" => {
            let mut counts: HashMap<(i64, u64), u64> = HashMap::new();
            for e in all {
                if let Event::Bid(b) = e {
                    let last = b.date_time - b.date_time.rem_euclid(2_000);
                    for start in (0..5).map(|i| last - i * 2_000) {
                        *counts.entry((start, b.auction)).or_default() += 1;
                    }
                }
            }
            let mut max: HashMap<i64, u64> = HashMap::new();
            for ((start, _), n) in &counts {
                let m = max.entry(*start).or_default();
                *m = (*m).max(*n);
            }
            for ((start, auction), n) in counts {
                if n == max[&start] {
                    c.add(auction.wrapping_mul(1000).wrapping_add(n));
                }
            }
        }
        "q7" => {
            let bids = || {
                (0..events).filter_map(|n| match source.event(n) {
                    Event::Bid(b) => Some(b),
                    _ => None,
                })
            };
            let mut max: HashMap<i64, u64> = HashMap::new();
            for b in bids() {
                let m = max.entry(tumble(b.date_time)).or_default();
                *m = (*m).max(b.price);
            }
            for b in bids() {
                let ws = tumble(b.date_time);
                // In its own window, and (a second row) at the end of the one before.
                let own = max.get(&ws) == Some(&b.price);
                let previous = b.date_time == ws && max.get(&(ws - TEN_SECONDS)) == Some(&b.price);
                for _ in 0..u8::from(own) + u8::from(previous) {
                    c.add(q7_value(b.auction, b.price, b.bidder, b.date_time));
                }
            }
        }
        "q8" => {
            let mut persons = HashSet::new();
            let mut sellers = HashSet::new();
            for e in all {
                match e {
                    Event::Person(p) => {
                        persons.insert((p.id, tumble(p.date_time)));
                    }
                    Event::Auction(a) => {
                        sellers.insert((a.seller, tumble(a.date_time)));
                    }
                    Event::Bid(_) => {}
                }
            }
            for (id, ws) in persons.intersection(&sellers) {
                c.add(id.wrapping_add(wrap(*ws)));
            }
        }
        _ => return None,
    }
    Some(c)
}
