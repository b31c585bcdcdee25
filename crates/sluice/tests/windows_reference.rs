//! Windows against a deliberately simple reference: one thread, event by
//! event, plain maps.
//!
//! Random event streams (random keys, disorder, late events, partitions that
//! run ahead of or behind each other, and end early) run through Sluice with
//! 1 to 8 workers, every flush policy and random poll sizes. The final
//! results (the highest revision per key and window, retractions applied)
//! must equal the reference's exactly.
//!
//! Which events end up beyond the allowed lateness depends on when
//! watermarks reach the window operator, which (as in every parallel
//! engine) depends on batching and timing. So the reference takes the late
//! events Sluice reported, checks that each one really is beyond the
//! lateness by the per-event watermark of its own partition (the latest
//! watermark it could have been judged against), and computes the windows
//! over every other event. With one event per poll, the judgment is exact,
//! and the late events must be exactly the reference's.

use proptest::prelude::*;
use sluice::prelude::*;
use sluice::watermark::WatermarkStrategy;
use sluice::window::{Change, LateEvent, WindowResult};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
struct Event {
    id: usize,
    partition: usize,
    key: u8,
    value: i64,
    time: i64,
}

const OUT_OF_ORDERNESS: i64 = 50;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
    Count(u64),
}

impl Kind {
    fn window(self) -> Window {
        let ms = |v: i64| Duration::from_millis(v as u64);
        match self {
            Kind::Tumbling(s) => Window::tumbling(ms(s)),
            Kind::Sliding(s, d) => Window::sliding(ms(s), ms(d)),
            Kind::Session(g) => Window::session(ms(g)),
            Kind::Count(n) => Window::count(n),
        }
    }

    /// The time windows an event belongs to (for tumbling and sliding).
    fn assign(self, t: i64) -> Vec<(i64, i64)> {
        match self {
            Kind::Tumbling(s) => vec![(t - t.rem_euclid(s), t - t.rem_euclid(s) + s)],
            Kind::Sliding(s, d) => {
                let last = t - t.rem_euclid(d);
                (0..)
                    .map(|i| last - i * d)
                    .take_while(|st| *st > t - s)
                    .map(|st| (st, st + s))
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

type Key = (u8, i64, i64);
type Value = (u64, i64);

/// Random partitions: times advance with random steps and jitter; some
/// events jump far back (late), partitions differ in pace and length.
fn streams() -> impl Strategy<Value = Vec<Event>> {
    let partition = prop::collection::vec((0u8..4, -100i64..100, 0i64..40, 0u8..20), 0..80);
    prop::collection::vec(partition, 1..4).prop_map(|partitions| {
        let mut events = Vec::new();
        for (p, steps) in partitions.into_iter().enumerate() {
            let mut clock = 0i64;
            for (key, value, step, jitter) in steps {
                clock += step;
                let time = match jitter {
                    0 => clock - 400,                        // far behind: late
                    1..=4 => clock - i64::from(jitter) * 10, // within the bound
                    _ => clock,
                };
                events.push(Event {
                    id: events.len(),
                    partition: p,
                    key,
                    value,
                    time: time.max(0),
                });
            }
        }
        events
    })
}

fn policies() -> impl Strategy<Value = FlushPolicy> {
    prop_oneof![
        Just(FlushPolicy::EachEvent),
        (1usize..32).prop_map(FlushPolicy::Count),
        (1usize..32).prop_map(|n| FlushPolicy::CountOrInterval(n, Duration::from_millis(1))),
        (1u64..100).prop_map(|ms| FlushPolicy::EventTime(Duration::from_millis(ms))),
        Just(FlushPolicy::Forward),
    ]
}

struct Outcome {
    results: BTreeMap<Key, Value>,
    late: Vec<LateEvent<Event>>,
}

fn run_sluice(
    events: &[Event],
    kind: Kind,
    lateness: i64,
    workers: usize,
    poll: usize,
    policy: FlushPolicy,
) -> Outcome {
    let partitions = events
        .iter()
        .map(|e| e.partition)
        .max()
        .map_or(1, |p| p + 1);
    let by_partition: Vec<Vec<Event>> = (0..partitions)
        .map(|p| {
            events
                .iter()
                .filter(|e| e.partition == p)
                .cloned()
                .collect()
        })
        .collect();
    let pipeline = Pipeline::new()
        .with_workers(workers)
        .with_poll_size(poll)
        .with_channel_capacity(2);
    let windowed = pipeline
        .partitioned_source(partitions, |p| {
            IterSource::new(by_partition[p].clone()).with_event_time(|e: &Event| e.time)
        })
        .with_watermarks(WatermarkStrategy::bounded(Duration::from_millis(
            OUT_OF_ORDERNESS as u64,
        )))
        .events
        .batch(policy)
        .key_by(|e: &Event| e.key)
        .window(kind.window())
        .allowed_lateness(Duration::from_millis(lateness as u64))
        .aggregate((Count, Sum.over(|e: &Event| e.value)));
    let rows = windowed.results.collect();
    let late = windowed.late.collect();
    pipeline.run().unwrap();
    Outcome {
        results: final_results(rows.take(), matches!(kind, Kind::Count(_))),
        late: late.take(),
    }
}

/// What a consumer keeps: the changelog applied, checked row by row. Per
/// key and window, [`WindowResult::change`] is insert (a window not held,
/// revision 0), update or delete (a window held, at the revision after its
/// last row): the same discipline the pipeline windows' `op` column keeps.
/// Count windows are appends (each row a result of its own, revision 0,
/// and two of a key can have the same bounds): the last one is kept.
fn final_results(rows: Vec<WindowResult<u8, Value>>, appends: bool) -> BTreeMap<Key, Value> {
    let mut held: BTreeMap<Key, (u32, Value)> = BTreeMap::new();
    for row in rows {
        let id = (row.key, row.window_start, row.window_end);
        let before = held.get(&id).map(|(revision, _)| *revision);
        let change = row.change();
        match (change, before) {
            (Change::Insert, None) if row.revision == 0 => {}
            (Change::Insert, _) if appends && row.revision == 0 => {}
            (Change::Update | Change::Delete, Some(b)) if row.revision == b + 1 => {}
            _ => panic!(
                "{change:?} of {id:?} at revision {} ({:?}); the window's last row: {before:?}",
                row.revision, row.emission
            ),
        }
        if change == Change::Delete {
            held.remove(&id);
        } else {
            held.insert(id, (row.revision, row.value));
        }
    }
    held.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

/// The watermark each event is judged against at the latest: that of its
/// own partition just before it (`max time before it - out-of-orderness`).
fn watermark_before(events: &[Event]) -> Vec<i64> {
    let mut max_seen: BTreeMap<usize, i64> = BTreeMap::new();
    events
        .iter()
        .map(|e| {
            let before = max_seen
                .get(&e.partition)
                .map_or(i64::MIN, |m| m - OUT_OF_ORDERNESS);
            let m = max_seen.entry(e.partition).or_insert(i64::MIN);
            *m = (*m).max(e.time);
            before
        })
        .collect()
}

/// The reference: windows over every event that is not in `late`, one at a time.
fn reference(events: &[Event], kind: Kind, late: &BTreeSet<(usize, i64)>) -> BTreeMap<Key, Value> {
    let mut out: BTreeMap<Key, Value> = BTreeMap::new();
    match kind {
        Kind::Tumbling(_) | Kind::Sliding(..) => {
            for e in events {
                for (start, end) in kind.assign(e.time) {
                    if !late.contains(&(e.id, start)) {
                        let v = out.entry((e.key, start, end)).or_default();
                        v.0 += 1;
                        v.1 += e.value;
                    }
                }
            }
        }
        Kind::Session(gap) => {
            let keys: BTreeSet<u8> = events.iter().map(|e| e.key).collect();
            for key in keys {
                let mut times: Vec<&Event> = events
                    .iter()
                    .filter(|e| e.key == key && !late.contains(&(e.id, e.time)))
                    .collect();
                times.sort_by_key(|e| e.time);
                let mut current: Option<(i64, i64, Value)> = None;
                for e in times {
                    current = match current {
                        Some((s, end, v)) if e.time < end => {
                            Some((s, end.max(e.time + gap), (v.0 + 1, v.1 + e.value)))
                        }
                        Some((s, end, v)) => {
                            out.insert((key, s, end), v);
                            Some((e.time, e.time + gap, (1, e.value)))
                        }
                        None => Some((e.time, e.time + gap, (1, e.value))),
                    };
                }
                if let Some((s, end, v)) = current {
                    out.insert((key, s, end), v);
                }
            }
        }
        Kind::Count(n) => {
            let mut open: BTreeMap<u8, (u64, i64, i64, i64)> = BTreeMap::new();
            for e in events {
                let slot = open.entry(e.key).or_insert((0, 0, i64::MAX, i64::MIN));
                slot.0 += 1;
                slot.1 += e.value;
                slot.2 = slot.2.min(e.time);
                slot.3 = slot.3.max(e.time);
                if slot.0 == n {
                    out.insert((e.key, slot.2, slot.3 + 1), (slot.0, slot.1));
                    open.remove(&e.key);
                }
            }
            for (key, (count, sum, first, last)) in open {
                out.insert((key, first, last + 1), (count, sum));
            }
        }
    }
    out
}

fn late_set(late: &[LateEvent<Event>]) -> BTreeSet<(usize, i64)> {
    late.iter().map(|l| (l.event.id, l.window_start)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any workers, policy, poll size: results equal the reference given the
    /// late events, and every late event is justified.
    #[test]
    fn time_windows_equal_the_reference(
        events in streams(),
        kind in prop_oneof![
            (1i64..200).prop_map(Kind::Tumbling),
            (1i64..5, 1i64..60).prop_map(|(k, d)| Kind::Sliding(k * d, d)),
        ],
        lateness in prop_oneof![Just(0i64), 1i64..300],
        workers in 1usize..9,
        poll in 1usize..40,
        policy in policies(),
    ) {
        let outcome = run_sluice(&events, kind, lateness, workers, poll, policy);
        let watermarks = watermark_before(&events);
        for l in &outcome.late {
            let judged = watermarks[l.event.id];
            prop_assert!(l.window_end + lateness <= judged,
                "event {:?} was reported late for [{}, {}) but its partition's watermark was only {}", l.event, l.window_start, l.window_end, judged);
            prop_assert!(kind.assign(l.time).contains(&(l.window_start, l.window_end)));
        }
        let late = late_set(&outcome.late);
        prop_assert_eq!(late.len(), outcome.late.len(), "an event was reported late twice for one window");
        prop_assert_eq!(&outcome.results, &reference(&events, kind, &late));
    }

    /// One event per poll: lateness is judged event by event, exactly as
    /// the reference does.
    #[test]
    fn with_one_event_per_poll_the_late_events_are_exactly_the_references(
        events in streams(),
        kind in (1i64..200).prop_map(Kind::Tumbling),
        lateness in 0i64..200,
        workers in 1usize..9,
    ) {
        let outcome = run_sluice(&events, kind, lateness, workers, 1, FlushPolicy::EachEvent);
        let watermarks = watermark_before(&events);
        let expected: BTreeSet<(usize, i64)> = events
            .iter()
            .flat_map(|e| kind.assign(e.time).into_iter().map(move |w| (e, w)))
            .filter(|(e, (_, end))| end + lateness <= watermarks[e.id])
            .map(|(e, (start, _))| (e.id, start))
            .collect();
        prop_assert_eq!(late_set(&outcome.late), expected.clone());
        prop_assert_eq!(&outcome.results, &reference(&events, kind, &expected));
    }

    /// Session and count windows, any workers and policy. Sessions: with a
    /// lateness that covers all disorder, so that no session is dropped
    /// before a late event could bridge it. Count windows: one partition,
    /// whose per-key order every exchange keeps.
    #[test]
    fn session_and_count_windows_equal_the_reference(
        events in streams(),
        kind in prop_oneof![(1i64..100).prop_map(Kind::Session), (1u64..5).prop_map(Kind::Count)],
        workers in 1usize..9,
        poll in 1usize..40,
        policy in policies(),
    ) {
        let events: Vec<Event> = match kind {
            Kind::Count(_) => events.into_iter().map(|e| Event { partition: 0, ..e }).collect(),
            _ => events,
        };
        let outcome = run_sluice(&events, kind, 1_000_000, workers, poll, policy);
        prop_assert!(outcome.late.is_empty());
        prop_assert_eq!(&outcome.results, &reference(&events, kind, &BTreeSet::new()));
    }
}

#[test]
fn every_kind_emits_every_open_window_at_the_end_of_input() {
    let events: Vec<Event> = (0..10)
        .map(|i| Event {
            id: i,
            partition: 0,
            key: (i % 2) as u8,
            value: i as i64,
            time: i as i64 * 100,
        })
        .collect();
    for kind in [
        Kind::Tumbling(1000),
        Kind::Sliding(1000, 500),
        Kind::Session(50),
        Kind::Count(3),
    ] {
        let outcome = run_sluice(&events, kind, 0, 2, 4, FlushPolicy::Count(3));
        let total: u64 = outcome.results.values().map(|v| v.0).sum();
        let per_event = match kind {
            Kind::Sliding(..) => 2,
            _ => 1,
        };
        assert_eq!(total, 10 * per_event, "{kind:?}: {:?}", outcome.results);
        assert_eq!(
            outcome.results,
            reference(&events, kind, &BTreeSet::new()),
            "{kind:?}"
        );
    }
}
