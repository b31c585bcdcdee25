//! Nexmark events, generated in-process following the Nexmark generator's
//! model (the `nexmark` crate, 0.2): persons, auctions and bids in the
//! ratio 1 : 3 : 46, their id, price and time distributions, and the hot
//! auctions, bidders and sellers.
//!
//! The events are plain `Copy` values: strings (names, e-mail, extra
//! payload, URLs) are not allocated per event. Each is a pure function of
//! the event's id and is produced only when asked for ([`Bid::url`],
//! [`Person::name`], …); their lengths are known up front. The random draws
//! come from a SplitMix64 stream seeded by the event id, so a partition of
//! the stream can be generated anywhere and the same event is always the
//! same; the values are not bit-identical to the `nexmark` crate's (which
//! uses `rand` 0.8's `SmallRng`), but follow the same distributions (see
//! this crate's tests, which compare the two).

mod generator;

pub use generator::{NexmarkSource, DEFAULT_BASE_TIME};

/// A person (seller or bidder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Person {
    /// Person id, from 1000.
    pub id: u64,
    /// Index of the first name in [`FIRST_NAMES`].
    pub first_name: u8,
    /// Index of the last name in [`LAST_NAMES`].
    pub last_name: u8,
    /// Index of the city in [`CITIES`].
    pub city: u8,
    /// Index of the state in [`STATES`].
    pub state: u8,
    /// The four groups of the credit card number.
    pub credit_card: [u16; 4],
    /// Event time, ms.
    pub date_time: i64,
    /// Length of the extra payload.
    pub extra_len: u16,
}

/// An item put up for auction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auction {
    /// Auction id, from 1000.
    pub id: u64,
    /// Initial bid, cents.
    pub initial_bid: u64,
    /// Reserve price, cents.
    pub reserve: u64,
    /// Event time, ms.
    pub date_time: i64,
    /// When the auction closes, ms.
    pub expires: i64,
    /// The seller's person id.
    pub seller: u64,
    /// Category, 10 to 14.
    pub category: u64,
    /// Length of the extra payload.
    pub extra_len: u16,
}

/// A bid on an auction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bid {
    /// The auction's id.
    pub auction: u64,
    /// The bidder's person id.
    pub bidder: u64,
    /// Price, cents.
    pub price: u64,
    /// 0..4: a hot channel ([`HOT_CHANNELS`]); from 4: `channel-(n - 4)`.
    pub channel: u16,
    /// Event time, ms.
    pub date_time: i64,
    /// Length of the extra payload.
    pub extra_len: u16,
}

/// A Nexmark event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A bid.
    Bid(Bid),
}

impl Event {
    /// The event time, ms.
    pub fn date_time(&self) -> i64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }
}

/// First names.
pub const FIRST_NAMES: [&str; 11] = [
    "peter", "paul", "luke", "john", "saul", "vicky", "kate", "julie", "sarah", "deiter", "walter",
];
/// Last names.
pub const LAST_NAMES: [&str; 9] = [
    "shultz", "abrams", "spencer", "white", "bartels", "walton", "smith", "jones", "noris",
];
/// Cities.
pub const CITIES: [&str; 10] = [
    "phoenix",
    "los angeles",
    "san francisco",
    "boise",
    "portland",
    "bend",
    "redmond",
    "seattle",
    "kent",
    "cheyenne",
];
/// States (lower case, as the `nexmark` crate writes them).
pub const STATES: [&str; 6] = ["az", "ca", "id", "or", "wa", "wy"];
/// The hot channels.
pub const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

impl Person {
    /// `first last`.
    pub fn name(&self) -> String {
        format!(
            "{} {}",
            FIRST_NAMES[usize::from(self.first_name)],
            LAST_NAMES[usize::from(self.last_name)]
        )
    }
    /// The state, lower case.
    pub fn state(&self) -> &'static str {
        STATES[usize::from(self.state)]
    }
    /// The city.
    pub fn city(&self) -> &'static str {
        CITIES[usize::from(self.city)]
    }
}

impl Bid {
    /// The channel's name.
    pub fn channel_name(&self) -> String {
        match self.channel {
            c @ 0..=3 => HOT_CHANNELS[usize::from(c)].to_string(),
            c => format!("channel-{}", c - 4),
        }
    }

    /// The bid's URL: `https://www.nexmark.com/A/B/C/item.htm?query=1`, with
    /// `&channel_id=…` for most non-hot channels.
    pub fn url(&self) -> String {
        let key = u64::from(self.channel);
        let mut rng = generator::SplitMix::new(key.wrapping_mul(0x9e37_79b9) ^ 0x5eed);
        let mut segment = || -> String {
            let len = 3 + rng.below(2);
            (0..len)
                .map(|_| {
                    if rng.below(13) == 0 {
                        '_'
                    } else {
                        char::from(b'a' + rng.below(26) as u8)
                    }
                })
                .collect()
        };
        let base = format!(
            "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
            segment(),
            segment(),
            segment()
        );
        if self.channel >= 4 && rng.below(10_000) < 9_072 {
            let k = u32::from(self.channel - 4);
            format!(
                "{base}&channel_id={}",
                (k.reverse_bits() as i32).unsigned_abs()
            )
        } else {
            base
        }
    }
}
