//! The Nexmark generator: each event as a pure function of its number, and a source of them.

use super::{Auction, Bid, Event, Person};
use sluice_core::Batch;
use sluice_runtime::{BoxError, Source, SourceStatus};

/// The default base time: 2023-11-14T22:13:20Z, a multiple of 10 s (the
/// windowed statistics of the model depend on that).
pub const DEFAULT_BASE_TIME: i64 = 1_700_000_000_000;

const PROPORTION: u64 = 50;
const FIRST_ID: u64 = 1000;
const ACTIVE_PEOPLE: u64 = 1000;
const IN_FLIGHT_AUCTIONS: u64 = 100;
const ID_LEAD: u64 = 10;
const HOT_BATCH: u64 = 100;
/// Microseconds of event time between events: 10,000 events per second.
const DELAY_US: f32 = 100.0;

/// A small, fast, seedable generator (SplitMix64).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    #[inline]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-40
    /// for the ranges used here).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The event time of event number `n`: `base + round(n * 0.1 ms)`,
/// computed in `f32` as the model does.
#[inline]
pub(crate) fn timestamp(base: i64, n: u64) -> i64 {
    base + (n as f32 * DELAY_US / 1000.0).round() as i64
}

#[inline]
fn last_person(e: u64) -> u64 {
    e / PROPORTION
}

#[inline]
fn last_auction(e: u64) -> u64 {
    let (q, r) = (e / PROPORTION, e % PROPORTION);
    match r {
        0 => (3 * q).saturating_sub(1),
        1..=3 => 3 * q + r - 1,
        _ => 3 * q + 2,
    }
}

#[inline]
fn next_person(e: u64, rng: &mut SplitMix) -> u64 {
    let people = last_person(e) + 1;
    let active = people.min(ACTIVE_PEOPLE);
    people - active + rng.below(active + ID_LEAD)
}

#[inline]
fn next_auction(e: u64, rng: &mut SplitMix) -> u64 {
    let max = last_auction(e);
    let min = max.saturating_sub(IN_FLIGHT_AUCTIONS);
    min + rng.below(max - min + 1 + ID_LEAD)
}

/// Log-uniform on [100, 1e8] cents.
#[inline]
fn price(rng: &mut SplitMix) -> u64 {
    (100.0 * 10f64.powf(6.0 * rng.unit())).round() as u64
}

/// The length of an extra payload after `current` bytes, around `average`.
#[inline]
fn extra_len(current: u64, average: u64, rng: &mut SplitMix) -> u16 {
    if current > average {
        return 0;
    }
    let d = average - current;
    let delta = (d + 2) / 5;
    let len = d - delta + if delta > 0 { rng.below(2 * delta) } else { 0 };
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// Event number `n` (id `n`) of the stream.
pub(crate) fn event(n: u64, base: i64) -> Event {
    let e = n;
    let mut rng = SplitMix::new(e);
    let time = timestamp(base, n);
    match n % PROPORTION {
        0 => {
            let first_name = rng.below(11) as u8;
            let last_name = rng.below(9) as u8;
            let credit_card = [0; 4].map(|_: u16| rng.below(10_000) as u16);
            let city = rng.below(10) as u8;
            let state = rng.below(6) as u8;
            let name_len = super::FIRST_NAMES[usize::from(first_name)].len()
                + 1
                + super::LAST_NAMES[usize::from(last_name)].len();
            let current = 8 + name_len + 17 + 19 + super::CITIES[usize::from(city)].len() + 2;
            Event::Person(Person {
                id: FIRST_ID + last_person(e),
                first_name,
                last_name,
                city,
                state,
                credit_card,
                date_time: time,
                extra_len: extra_len(current as u64, 200, &mut rng),
            })
        }
        1..=3 => {
            let initial_bid = price(&mut rng);
            let reserve = initial_bid + price(&mut rng);
            let horizon = (timestamp(base, n + 1666) - time).max(0) as u64;
            let expires = time + 1 + rng.below((2 * horizon).max(1)) as i64;
            let seller = if rng.below(4) > 0 {
                (last_person(e) / HOT_BATCH) * HOT_BATCH
            } else {
                next_person(e, &mut rng)
            };
            Event::Auction(Auction {
                id: FIRST_ID + last_auction(e),
                initial_bid,
                reserve,
                date_time: time,
                expires,
                seller: FIRST_ID + seller,
                category: 10 + rng.below(5),
                extra_len: extra_len(168, 500, &mut rng),
            })
        }
        _ => {
            let auction = if rng.below(2) > 0 {
                (last_auction(e) / HOT_BATCH) * HOT_BATCH
            } else {
                next_auction(e, &mut rng)
            };
            let bidder = if rng.below(4) > 0 {
                (last_person(e) / HOT_BATCH) * HOT_BATCH + 1
            } else {
                next_person(e, &mut rng)
            };
            let price = price(&mut rng);
            let channel = if rng.below(2) > 0 {
                rng.below(4) as u16
            } else {
                4 + rng.below(10_000) as u16
            };
            Event::Bid(Bid {
                auction: FIRST_ID + auction,
                bidder: FIRST_ID + bidder,
                price,
                channel,
                date_time: time,
                extra_len: extra_len(32, 100, &mut rng),
            })
        }
    }
}

/// Nexmark events `start, start + step, …` below `end`, generated straight
/// into the batch the stage loop hands in.
///
/// ```
/// use sluice_connectors::nexmark::{Event, NexmarkSource};
/// use sluice_runtime::{Batch, Source};
///
/// let mut source = NexmarkSource::partition(100, 0, 1);
/// let mut batch = Batch::new();
/// source.poll(&mut batch, 1000)?;
/// let bids = batch.items().iter().filter(|e| matches!(e, Event::Bid(_))).count();
/// assert_eq!(bids, 92); // 46 of every 50
/// # Ok::<(), sluice_runtime::BoxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct NexmarkSource {
    next: u64,
    end: u64,
    step: u64,
    base_time: i64,
}

impl NexmarkSource {
    /// Partition `partition` of `partitions` of the first `events` events.
    pub fn partition(events: u64, partition: usize, partitions: usize) -> Self {
        Self {
            next: partition as u64,
            end: events,
            step: partitions.max(1) as u64,
            base_time: DEFAULT_BASE_TIME,
        }
    }

    /// Starts the event times at `base_time` (ms) instead of the default.
    pub fn with_base_time(mut self, base_time: i64) -> Self {
        self.base_time = base_time;
        self
    }

    /// Event number `n`.
    pub fn event(&self, n: u64) -> Event {
        event(n, self.base_time)
    }
}

impl Source<Event> for NexmarkSource {
    fn poll(&mut self, out: &mut Batch<Event>, max: usize) -> Result<SourceStatus, BoxError> {
        for _ in 0..max {
            if self.next >= self.end {
                break;
            }
            let e = event(self.next, self.base_time);
            out.push(e, e.date_time());
            self.next += self.step;
        }
        Ok(if self.next >= self.end {
            SourceStatus::Exhausted
        } else {
            SourceStatus::Ready
        })
    }

    fn exact_len(&self) -> Option<u64> {
        Some(self.end.saturating_sub(self.next).div_ceil(self.step))
    }
}
