//! Sluice's Nexmark generator against the `nexmark` crate (the reference
//! model): the same event mix, ids and timestamps exactly; the same random
//! distributions (hot shares, prices, lifetimes, payload lengths) within
//! statistical tolerance.

use sluice_connectors::nexmark::{Event, NexmarkSource, DEFAULT_BASE_TIME};

const EVENTS: u64 = 200_000;

/// The fields both generators have, as plain numbers.
#[derive(Debug, Default)]
struct Stats {
    persons: u64,
    auctions: u64,
    bids: u64,
    hot_auction_bids: u64,
    hot_bidder_bids: u64,
    hot_seller_auctions: u64,
    prices: Vec<f64>,
    lifetime_sum: u64,
    lifetime_min: u64,
    lifetime_max: u64,
    bid_extra: (u64, u64),
    auction_extra: (u64, u64),
    categories: [u64; 5],
    hot_channel_bids: u64,
    person_ids: Vec<u64>,
    auction_ids: Vec<u64>,
    times: Vec<i64>,
}

fn hot_auction(e: u64) -> u64 {
    let (q, r) = (e / 50, e % 50);
    let last = match r {
        0 => (3 * q).saturating_sub(1),
        1..=3 => 3 * q + r - 1,
        _ => 3 * q + 2,
    };
    1000 + last / 100 * 100
}

fn hot_person(e: u64) -> u64 {
    1000 + (e / 50) / 100 * 100
}

impl Stats {
    fn new() -> Self {
        Self {
            lifetime_min: u64::MAX,
            bid_extra: (u64::MAX, 0),
            auction_extra: (u64::MAX, 0),
            ..Self::default()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bid(
        &mut self,
        e: u64,
        auction: u64,
        bidder: u64,
        price: u64,
        hot_channel: bool,
        extra: u64,
    ) {
        self.bids += 1;
        self.hot_auction_bids += u64::from(auction == hot_auction(e));
        self.hot_bidder_bids += u64::from(bidder == hot_person(e) + 1);
        self.hot_channel_bids += u64::from(hot_channel);
        self.prices.push(price as f64);
        self.bid_extra = (self.bid_extra.0.min(extra), self.bid_extra.1.max(extra));
    }

    fn auction(&mut self, e: u64, id: u64, seller: u64, lifetime: u64, category: u64, extra: u64) {
        self.auctions += 1;
        self.auction_ids.push(id);
        self.hot_seller_auctions += u64::from(seller == hot_person(e));
        self.lifetime_sum += lifetime;
        self.lifetime_min = self.lifetime_min.min(lifetime);
        self.lifetime_max = self.lifetime_max.max(lifetime);
        self.categories[(category - 10) as usize] += 1;
        self.auction_extra = (
            self.auction_extra.0.min(extra),
            self.auction_extra.1.max(extra),
        );
    }
}

fn reference() -> Stats {
    let config = nexmark::config::NexmarkConfig {
        base_time: DEFAULT_BASE_TIME as u64,
        ..Default::default()
    };
    let mut stats = Stats::new();
    for (e, event) in nexmark::EventGenerator::new(config)
        .take(EVENTS as usize)
        .enumerate()
    {
        let e = e as u64;
        match event {
            nexmark::event::Event::Person(p) => {
                stats.persons += 1;
                stats.person_ids.push(p.id as u64);
                stats.times.push(p.date_time as i64);
            }
            nexmark::event::Event::Auction(a) => {
                stats.auction(
                    e,
                    a.id as u64,
                    a.seller as u64,
                    a.expires - a.date_time,
                    a.category as u64,
                    a.extra.len() as u64,
                );
                stats.times.push(a.date_time as i64);
            }
            nexmark::event::Event::Bid(b) => {
                let hot = ["Google", "Facebook", "Baidu", "Apple"].contains(&b.channel.as_str());
                stats.bid(
                    e,
                    b.auction as u64,
                    b.bidder as u64,
                    b.price as u64,
                    hot,
                    b.extra.len() as u64,
                );
                stats.times.push(b.date_time as i64);
            }
        }
    }
    stats
}

fn ours() -> Stats {
    let source = NexmarkSource::partition(EVENTS, 0, 1);
    let mut stats = Stats::new();
    for e in 0..EVENTS {
        match source.event(e) {
            Event::Person(p) => {
                stats.persons += 1;
                stats.person_ids.push(p.id);
                stats.times.push(p.date_time);
            }
            Event::Auction(a) => {
                stats.auction(
                    e,
                    a.id,
                    a.seller,
                    (a.expires - a.date_time) as u64,
                    a.category,
                    u64::from(a.extra_len),
                );
                stats.times.push(a.date_time);
            }
            Event::Bid(b) => {
                stats.bid(
                    e,
                    b.auction,
                    b.bidder,
                    b.price,
                    b.channel < 4,
                    u64::from(b.extra_len),
                );
                stats.times.push(b.date_time);
            }
        }
    }
    stats
}

/// Two shares agree within four standard errors of their difference.
fn shares_agree(name: &str, a: u64, b: u64, n: u64) {
    let (pa, pb) = (a as f64 / n as f64, b as f64 / n as f64);
    let p = (pa + pb) / 2.0;
    let sigma = (2.0 * p * (1.0 - p) / n as f64).sqrt();
    assert!(
        (pa - pb).abs() <= 4.0 * sigma,
        "{name}: {pa:.4} (ours) vs {pb:.4} (nexmark crate), sigma {sigma:.5}"
    );
}

#[test]
fn the_generator_follows_the_nexmark_model() {
    let (ours, reference) = (ours(), reference());

    // Deterministic parts: exactly the same.
    assert_eq!(
        (ours.persons, ours.auctions, ours.bids),
        (reference.persons, reference.auctions, reference.bids)
    );
    assert_eq!(
        (ours.persons, ours.auctions, ours.bids),
        (EVENTS / 50, 3 * EVENTS / 50, 46 * EVENTS / 50)
    );
    assert_eq!(ours.person_ids, reference.person_ids);
    assert_eq!(ours.auction_ids, reference.auction_ids);
    assert_eq!(
        ours.times, reference.times,
        "event times follow the same f32 formula"
    );

    // Random parts: the same distributions.
    shares_agree(
        "bids on the hot auction",
        ours.hot_auction_bids,
        reference.hot_auction_bids,
        ours.bids,
    );
    shares_agree(
        "bids by the hot bidder",
        ours.hot_bidder_bids,
        reference.hot_bidder_bids,
        ours.bids,
    );
    shares_agree(
        "bids on a hot channel",
        ours.hot_channel_bids,
        reference.hot_channel_bids,
        ours.bids,
    );
    shares_agree(
        "auctions by the hot seller",
        ours.hot_seller_auctions,
        reference.hot_seller_auctions,
        ours.auctions,
    );
    for c in 0..5 {
        shares_agree(
            "category share",
            ours.categories[c],
            reference.categories[c],
            ours.auctions,
        );
    }
    assert_eq!(
        (ours.lifetime_min, ours.lifetime_max),
        (reference.lifetime_min, reference.lifetime_max)
    );
    let (mean_ours, mean_ref) = (
        ours.lifetime_sum as f64 / ours.auctions as f64,
        reference.lifetime_sum as f64 / reference.auctions as f64,
    );
    assert!(
        (mean_ours - mean_ref).abs() / mean_ref < 0.01,
        "lifetime mean {mean_ours} vs {mean_ref}"
    );
    assert_eq!(ours.bid_extra, reference.bid_extra);
    assert_eq!(ours.auction_extra, reference.auction_extra);

    // Prices: log-uniform on [100, 1e8]: a KS test of log10(price/100)/6
    // against U[0, 1), and the means within a few percent.
    let mut u: Vec<f64> = ours
        .prices
        .iter()
        .map(|p| (p / 100.0).log10() / 6.0)
        .collect();
    u.sort_by(f64::total_cmp);
    let n = u.len() as f64;
    let d = u
        .iter()
        .enumerate()
        .map(|(i, x)| {
            ((i as f64 + 1.0) / n - x)
                .abs()
                .max((x - i as f64 / n).abs())
        })
        .fold(0.0, f64::max);
    assert!(
        d < 1.63 / n.sqrt(),
        "KS statistic {d} (1% level: {})",
        1.63 / n.sqrt()
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mo, mr) = (mean(&ours.prices), mean(&reference.prices));
    assert!((mo - mr).abs() / mr < 0.05, "mean price {mo} vs {mr}");
}
