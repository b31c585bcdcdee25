//! The windows of pipeline files against a deliberately simple reference.
//!
//! Each case is made from a seed: a JSON-lines input (random sensors, event
//! times out of order, some far behind, some records that cannot be read,
//! nulls, blank lines, CRLF endings, event times as numbers, digit strings
//! or RFC 3339 strings) and a pipeline file with one to four `window`
//! transforms (tumbling, sliding, session, count; keyed or not; with or
//! without `allowed_lateness`; random aggregates), a random number of
//! workers, and a random mode (`event`, `micro-batch` with a random
//! `batch_size`, or `adaptive`). The pipeline runs in-process; its output
//! files are compared with what a plain loop over the records computes.
//! The reference decodes the input itself with `serde_json` and shares no
//! code with the engine's windows.
//!
//! What the reference models (README "Guide: pipeline files" and
//! docs/concepts.md):
//!
//! - the watermark is `max event time seen - max_out_of_orderness`, and it
//!   moves between the source's chunks: in event mode after every
//!   non-blank line, in micro-batch mode after every `batch_size` non-blank
//!   lines (dead ones included: a chunk is cut by lines). A chunk's events
//!   are judged against the watermark of the chunks before it, whatever the
//!   number of workers (the key exchange keeps the chunks and passes each
//!   watermark on right after them);
//! - a time window `[start, end)` takes an event while `end +
//!   allowed_lateness > watermark`; an event that no window of a transform
//!   takes goes to `late` once, for that transform; a session event is
//!   judged on its own window `[t, t + gap)`; count windows judge nothing;
//! - a window's state is dropped once `end + allowed_lateness <= watermark`
//!   (so a later session event does not merge with a dropped session);
//! - sessions merge when their windows overlap (`[t, t + gap)`, half
//!   open: windows that only touch stay apart); a session that fired and
//!   takes a late event fires again at the next watermark past its end;
//! - a time or session window with `allowed_lateness` writes a changelog
//!   (`op`, `revision`): each (key, `window_start`, `window_end`) is
//!   inserted at revision 0, updated at the next revision, and deleted (a
//!   session merged into another) at the next revision; the test checks
//!   that discipline row by row and applies the changelog; a window
//!   without lateness writes neither column and a consumer keeps the last
//!   row per window; count windows emit one row per `size` events of a key
//!   in arrival order, and the partial rest at the end of input, with
//!   bounds `[earliest, latest + 1)`.
//!
//! Compared: the final rows of every window transform (floats to a
//! relative 1e-9), each key's count-window rows in order, the `late` rows
//! (transform, line, event time and, in event and micro-batch modes, the
//! watermark they were judged against), the dead letters (line and text),
//! and the summary: `read`, `processed` (records some window took),
//! `late` (records every window refused), `dead_letter`, each sink's rows,
//! and each transform's rows in, out, aggregated and late.
//!
//! In the adaptive mode the chunks follow timing, so which events are late
//! would depend on it. Its cases are made so that lateness does not depend
//! on the cut: every event is within `max_out_of_orderness` plus the
//! smallest allowed lateness of the latest event time before it (so it is
//! on time for all its windows whatever the watermark, which is never
//! ahead of the per-event one), and the events meant to be late are far
//! behind the *first* record's time (beyond every window's size or gap plus
//! its lateness) and at least 20 lines in: the adaptive source starts with
//! chunks of one line, so the first record's time has raised the watermark
//! before any of them is read. The late events' `watermark` is then only
//! checked to justify them (between the one that closed their windows and
//! the per-event watermark).
//!
//! `SLUICE_WINDOWS_SEED=0x...` runs one case; `SLUICE_WINDOWS_CASES=n`
//! runs n cases.

use serde_json::Value;
use sluice_pipeline::load_str;
use sluice_pipeline::{progress, run};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// Cases run by default.
const CASES: u64 = 40;

// ---------------------------------------------------------------------------
// A seeded generator (SplitMix64).

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------
// Cases.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Event,
    MicroBatch(usize),
    /// With a target latency in ms, or the default.
    Adaptive(Option<u64>),
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
    Count(usize),
}

impl Kind {
    /// The time windows `[start, end)` holding `t`: starts are multiples
    /// of the slide, newest first.
    fn windows(self, t: i64) -> Vec<(i64, i64)> {
        let (size, slide) = match self {
            Kind::Tumbling(size) => (size, size),
            Kind::Sliding(size, slide) => (size, slide),
            Kind::Session(_) | Kind::Count(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        let mut start = t.div_euclid(slide) * slide;
        while start > t - size {
            out.push((start, start + size));
            start -= slide;
        }
        out
    }

    /// How far after an event its windows may end: size or gap.
    fn extent(self) -> Option<i64> {
        match self {
            Kind::Tumbling(size) | Kind::Sliding(size, _) => Some(size),
            Kind::Session(gap) => Some(gap),
            Kind::Count(_) => None,
        }
    }

    fn toml(self) -> String {
        match self {
            Kind::Tumbling(size) => format!("{{ type = \"tumbling\", size = \"{size}ms\" }}"),
            Kind::Sliding(size, slide) => {
                format!("{{ type = \"sliding\", size = \"{size}ms\", slide = \"{slide}ms\" }}")
            }
            Kind::Session(gap) => format!("{{ type = \"session\", gap = \"{gap}ms\" }}"),
            Kind::Count(size) => format!("{{ type = \"count\", size = {size} }}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Temperature,
    Ts,
    Sensor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// Of a sample (n - 1), as `stddev` and `var` are (src/sql/moments.rs).
    Stddev,
    StddevPop,
    Var,
    VarPop,
}

#[derive(Debug)]
struct Aggregate {
    name: &'static str,
    sql: &'static str,
    func: Func,
    col: Col,
    /// Needs an int64 `ts` column (not one of strings).
    numeric_ts: bool,
}

const fn agg(name: &'static str, sql: &'static str, func: Func, col: Col) -> Aggregate {
    Aggregate {
        name,
        sql,
        func,
        col,
        numeric_ts: matches!(col, Col::Ts),
    }
}

const AGGREGATES: &[Aggregate] = &[
    agg(
        "n_temp",
        "count(temperature)",
        Func::Count,
        Col::Temperature,
    ),
    agg("n_sensor", "count(sensor)", Func::Count, Col::Sensor),
    agg("total", "sum(temperature)", Func::Sum, Col::Temperature),
    agg("mean", "avg(temperature)", Func::Avg, Col::Temperature),
    agg("low", "min(temperature)", Func::Min, Col::Temperature),
    agg("high", "max(temperature)", Func::Max, Col::Temperature),
    agg("sd", "stddev(temperature)", Func::Stddev, Col::Temperature),
    agg(
        "sd_pop",
        "stddev_pop(temperature)",
        Func::StddevPop,
        Col::Temperature,
    ),
    agg("variance", "var(temperature)", Func::Var, Col::Temperature),
    agg(
        "variance_pop",
        "var_pop(temperature)",
        Func::VarPop,
        Col::Temperature,
    ),
    agg("first_ts", "min(ts)", Func::Min, Col::Ts),
    agg("last_ts", "max(ts)", Func::Max, Col::Ts),
    agg("ts_sum", "sum(ts)", Func::Sum, Col::Ts),
    agg("ts_mean", "avg(ts)", Func::Avg, Col::Ts),
];

impl Aggregate {
    /// Its result is a float64 column (else int64).
    fn float(&self) -> bool {
        match (self.func, self.col) {
            (Func::CountStar | Func::Count, _) => false,
            (Func::Avg, _) => true,
            (_, Col::Ts) => false,
            _ => true,
        }
    }
}

const COUNT_STAR: Aggregate = agg("n", "count(*)", Func::CountStar, Col::Ts);

#[derive(Debug)]
struct WindowSpec {
    name: String,
    kind: Kind,
    keyed: bool,
    /// `key = ["sensor"]` rather than `key = "sensor"`.
    key_list: bool,
    lateness: Option<i64>,
    aggregates: Vec<&'static Aggregate>,
}

impl WindowSpec {
    fn lateness(&self) -> i64 {
        self.lateness.unwrap_or(0)
    }

    fn toml(&self) -> String {
        let mut out = format!(
            "[[transform]]\nname = \"{}\"\ntype = \"window\"\nfrom = \"source\"\n",
            self.name
        );
        if self.keyed {
            out.push_str(if self.key_list {
                "key = [\"sensor\"]\n"
            } else {
                "key = \"sensor\"\n"
            });
        }
        let _ = writeln!(out, "window = {}", self.kind.toml());
        let aggregates: Vec<String> = self
            .aggregates
            .iter()
            .map(|a| format!("{} = \"{}\"", a.name, a.sql))
            .collect();
        let _ = writeln!(out, "aggregates = {{ {} }}", aggregates.join(", "));
        if let Some(lateness) = self.lateness {
            let _ = writeln!(out, "allowed_lateness = \"{lateness}ms\"");
        }
        out
    }
}

struct Case {
    seed: u64,
    mode: Mode,
    workers: usize,
    /// The file is read by one reader per worker (in stripes), not by one.
    parallel: bool,
    ooo: Option<i64>,
    windows: Vec<WindowSpec>,
    input: String,
}

impl Case {
    fn ooo(&self) -> i64 {
        self.ooo.unwrap_or(0)
    }

    /// Lateness must not depend on how the source cuts chunks, nor on
    /// how far each of its readers is.
    fn robust(&self) -> bool {
        matches!(self.mode, Mode::Adaptive(_)) || self.parallel
    }

    /// Rows per chunk when they are known: 1 in event mode.
    fn chunk_rows(&self) -> usize {
        match self.mode {
            Mode::Event | Mode::Adaptive(_) => 1,
            Mode::MicroBatch(n) => n,
        }
    }

    fn pipeline(&self) -> String {
        let mut out = format!(
            "name = \"windows-reference-{:x}\"\n\n[source]\ntype = \"file\"\n\
             path = \"input.jsonl\"\nevent_time = \"ts\"\n",
            self.seed
        );
        if let Some(ooo) = self.ooo {
            let _ = writeln!(out, "max_out_of_orderness = \"{ooo}ms\"");
        }
        if self.parallel {
            // A reader per worker, whatever the file's size.
            let _ = writeln!(out, "readers = {}", self.workers);
        } else {
            // One reader: events are judged in the file's order.
            out.push_str("readers = 1\n");
        }
        out.push_str("\n[execution]\n");
        match self.mode {
            Mode::Event => out.push_str("mode = \"event\"\n"),
            Mode::MicroBatch(n) => {
                let _ = writeln!(out, "mode = \"micro-batch\"\nbatch_size = {n}");
            }
            Mode::Adaptive(target) => {
                out.push_str("mode = \"adaptive\"\n");
                if let Some(ms) = target {
                    let _ = writeln!(out, "target_latency = \"{ms}ms\"");
                }
            }
        }
        let _ = writeln!(out, "workers = {}\n", self.workers);
        for w in &self.windows {
            out.push_str(&w.toml());
            out.push('\n');
        }
        for w in &self.windows {
            let _ = writeln!(
                out,
                "[[sink]]\nfrom = \"{0}\"\ntype = \"file\"\npath = \"{0}.jsonl\"\n",
                w.name
            );
        }
        out.push_str(
            "[[sink]]\nfrom = \"late\"\ntype = \"file\"\npath = \"late.jsonl\"\n\n\
             [[sink]]\nfrom = \"dead_letter\"\ntype = \"file\"\npath = \"dead_letter.jsonl\"\n",
        );
        out
    }
}

// ---------------------------------------------------------------------------
// RFC 3339, written and read here (not with the engine's chrono).

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `ms` as RFC 3339 with milliseconds, at an offset of `offset_min`.
fn rfc3339(ms: i64, offset_min: i64) -> String {
    let local = ms + offset_min * 60_000;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400_000));
    let in_day = local.rem_euclid(86_400_000);
    let (h, min, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let zone = if offset_min == 0 {
        "Z".to_string()
    } else {
        let sign = if offset_min < 0 { '-' } else { '+' };
        let o = offset_min.abs();
        format!("{sign}{:02}:{:02}", o / 60, o % 60)
    };
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}{zone}")
}

/// Reads what [`rfc3339`] writes (and fractions of any length).
fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut milli = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        let padded = format!("{:0<3}", &fraction[..digits]);
        milli = padded[..3].parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let minutes = rest[1..3].parse::<i64>().ok()? * 60 + rest[4..6].parse::<i64>().ok()?;
            if rest.starts_with('-') {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let local = days_from_civil(y, mo, d) * 86_400_000 + ((h * 60 + mi) * 60 + s) * 1000 + milli;
    Some(local - offset * 60_000)
}

// ---------------------------------------------------------------------------
// Making a case.

fn generate(seed: u64) -> Case {
    let mut rng = Rng(seed);
    let mode = match rng.below(3) {
        0 => Mode::Event,
        1 => Mode::MicroBatch(if rng.chance(0.5) {
            rng.pick(&[1, 2, 3, 10, 64, 257, 1000, 4096])
        } else {
            rng.between(1, 700) as usize
        }),
        _ => Mode::Adaptive(if rng.chance(0.5) {
            None
        } else {
            Some(rng.pick(&[1, 5, 20]))
        }),
    };
    let workers = rng.between(1, 4) as usize;
    // Several readers: each has its own watermark, and the windows' is the
    // slowest one's, so which events are late depends on how far each
    // reader is; count windows take events in arrival order, which mixes
    // the readers'. Parallel cases are robust (no event is late, whatever
    // the watermark) and have no count windows.
    let parallel = workers > 1 && rng.chance(0.4);
    // Mean milliseconds between two records.
    let step: i64 = rng.pick(&[1, 3, 10, 30, 100]);
    let ooo = if rng.chance(0.2) {
        None
    } else if rng.chance(0.2) {
        Some(0)
    } else {
        Some(rng.between(0, step * 60))
    };
    let ts_strings = rng.chance(0.3);

    let mut windows = Vec::new();
    for i in 0..rng.between(1, 4) {
        let kind = match rng.below(if parallel { 3 } else { 4 }) {
            0 => Kind::Tumbling(rng.between(1, step * 100)),
            1 => {
                let slide = rng.between(1, step * 40);
                let size = slide * rng.between(1, 6)
                    + if rng.chance(0.3) {
                        rng.between(0, slide - 1)
                    } else {
                        0
                    };
                Kind::Sliding(size, slide)
            }
            2 => Kind::Session(rng.between(1, step * 20)),
            _ => Kind::Count(rng.between(1, 40) as usize),
        };
        let lateness = match kind {
            Kind::Count(_) => None,
            _ if rng.chance(0.5) => None,
            _ => Some(rng.between(0, step * 100)),
        };
        let keyed = rng.chance(0.8);
        let mut aggregates: Vec<&'static Aggregate> = vec![&COUNT_STAR];
        for _ in 0..rng.between(1, 5) {
            let a = &AGGREGATES[rng.below(AGGREGATES.len() as u64) as usize];
            if !(aggregates.iter().any(|b| b.name == a.name) || a.numeric_ts && ts_strings) {
                aggregates.push(a);
            }
        }
        windows.push(WindowSpec {
            name: format!("w{i}"),
            kind,
            keyed,
            key_list: rng.chance(0.3),
            lateness,
            aggregates,
        });
    }

    let records = rng.between(300, 2000);
    let keys = rng.between(1, 10) as u64;
    let dead_share = rng.pick(&[0.0, 0.01, 0.03, 0.06]);
    let crlf = rng.chance(0.15);
    let final_newline = !rng.chance(0.2);
    let ooo_ms = ooo.unwrap_or(0);
    let time_windows: Vec<&WindowSpec> = windows
        .iter()
        .filter(|w| w.kind.extent().is_some())
        .collect();
    // The furthest after an event any of its windows stays open.
    let reach = time_windows
        .iter()
        .map(|w| w.kind.extent().unwrap_or(0) + w.lateness())
        .max()
        .unwrap_or(0);
    // Robust cases: the most an event may be behind the latest event time
    // before it and still be on time for all its windows whatever the
    // watermark (a time window holding t ends after t).
    let safe_behind = time_windows
        .iter()
        .map(|w| w.lateness())
        .min()
        .map(|lateness| ooo_ms + lateness);
    let robust = matches!(mode, Mode::Adaptive(_)) || parallel;

    // Sometimes near the epoch, so that events far behind are before it.
    let t0: i64 = if rng.chance(0.15) {
        rng.between(0, 3000)
    } else {
        1_700_000_000_000 + rng.between(0, 1_000_000_000)
    };
    let mut clock = t0;
    let mut max_seen = i64::MIN;
    let mut lines: Vec<String> = Vec::new();
    for i in 0..records {
        if i > 0 && rng.chance(0.01) {
            lines.push(rng.pick(&["", "   ", "\t"]).to_string());
        }
        clock += rng.between(0, 2 * step);
        if i > 0 && rng.chance(dead_share) {
            lines.push(dead_line(&mut rng, clock, keys, ts_strings));
            continue;
        }
        // Far behind the first record: late for every time window once the
        // first record's time is in the watermark.
        let hopeless = t0 - ooo_ms - reach - 1 - rng.between(0, 10_000);
        let t = if i == 0 {
            t0
        } else if robust {
            match rng.below(100) {
                0..=59 => clock,
                60..=96 => clock - rng.between(0, safe_behind.unwrap_or(ooo_ms + reach)),
                _ if i >= 20 && !time_windows.is_empty() && !parallel => hopeless,
                _ => clock,
            }
        } else {
            let wide = ooo_ms + reach;
            match rng.below(100) {
                0..=54 => clock,
                55..=79 => clock - rng.between(0, ooo_ms),
                80..=89 => clock - rng.between(0, wide),
                90..=94 if !time_windows.is_empty() => {
                    // Near the edge of lateness of one window, judged by
                    // the watermark of one event per chunk.
                    let w = time_windows[rng.below(time_windows.len() as u64) as usize];
                    let closed = max_seen - ooo_ms - w.lateness();
                    let edge = match w.kind {
                        // The first start of a window still open.
                        Kind::Tumbling(size) => ((closed - size).div_euclid(size) + 1) * size,
                        Kind::Sliding(size, slide) => {
                            ((closed - size).div_euclid(slide) + 1) * slide
                        }
                        Kind::Session(gap) => closed - gap + 1,
                        Kind::Count(_) => clock,
                    };
                    edge + rng.between(-2, 1)
                }
                90..=97 => clock - rng.between(wide, 5 * wide + 10_000),
                _ => hopeless,
            }
        };
        if robust && i > 0 && t != hopeless {
            if let Some(safe) = safe_behind {
                assert!(t >= max_seen - safe, "generator: an unsafe time {t}");
            }
        }
        max_seen = max_seen.max(t);
        lines.push(valid_line(&mut rng, t, keys, ts_strings));
    }
    let newline = if crlf { "\r\n" } else { "\n" };
    let mut input = lines.join(newline);
    if final_newline {
        input.push_str(newline);
    }
    Case {
        seed,
        mode,
        workers,
        parallel,
        ooo,
        windows,
        input,
    }
}

fn sensor(rng: &mut Rng, keys: u64) -> u64 {
    // Skewed: low numbers more often.
    if rng.chance(0.5) {
        rng.below(keys).min(rng.below(keys))
    } else {
        rng.below(keys)
    }
}

fn ts_text(rng: &mut Rng, t: i64, strings: bool) -> String {
    if !strings || rng.chance(0.6) {
        return t.to_string();
    }
    match rng.below(3) {
        0 => format!("\"{t}\""),
        1 => format!("\"{}\"", rfc3339(t, 0)),
        _ => format!("\"{}\"", rfc3339(t, rng.pick(&[120, -330, 345, -600]))),
    }
}

fn valid_line(rng: &mut Rng, t: i64, keys: u64, ts_strings: bool) -> String {
    let mut fields = Vec::new();
    if !rng.chance(0.02) {
        fields.push(if rng.chance(0.01) {
            "\"sensor\":null".to_string()
        } else {
            format!("\"sensor\":\"s{}\"", sensor(rng, keys))
        });
    }
    match rng.below(100) {
        0..=2 => fields.push("\"temperature\":null".into()),
        3..=4 => {}
        5..=14 => fields.push(format!("\"temperature\":{}", rng.between(-10, 45))),
        _ => fields.push(format!(
            "\"temperature\":{:.1}",
            rng.between(-150, 450) as f64 / 10.0
        )),
    }
    fields.push(format!("\"ts\":{}", ts_text(rng, t, ts_strings)));
    if rng.chance(0.2) {
        fields.reverse();
    }
    let separator = if rng.chance(0.1) { ", " } else { "," };
    format!("{{{}}}", fields.join(separator))
}

fn dead_line(rng: &mut Rng, t: i64, keys: u64, ts_strings: bool) -> String {
    let s = sensor(rng, keys);
    match rng.below(if ts_strings { 5 } else { 4 }) {
        0 => rng
            .pick(&[
                "{not json",
                "sensor=s1 temperature=20.5 ts=1",
                "{\"sensor\":\"s1\",\"temperature\":2",
            ])
            .to_string(),
        1 => format!(
            "{{\"sensor\":\"s{s}\",\"temperature\":\"{}\",\"ts\":{t}}}",
            rng.pick(&["hot", "n/a"])
        ),
        2 => format!("{{\"sensor\":\"s{s}\",\"temperature\":20.5}}"),
        3 => format!("{{\"sensor\":\"s{s}\",\"temperature\":20.5,\"ts\":null}}"),
        _ => format!(
            "{{\"sensor\":\"s{s}\",\"temperature\":20.5,\"ts\":\"{}\"}}",
            rng.pick(&["yesterday", "2023-13-45T99:00:00Z", ""])
        ),
    }
}

// ---------------------------------------------------------------------------
// The reference: decoding.

#[derive(Debug, Clone)]
struct Record {
    line: u64,
    sensor: Option<String>,
    temperature: Option<f64>,
    ts: i64,
}

struct Decoded {
    /// Per non-blank line, in order: the index of its record, if it has one.
    nonblank: Vec<Option<usize>>,
    records: Vec<Record>,
    /// Line number and text (without the line end) of each dead letter.
    dead: Vec<(u64, String)>,
}

fn decode(input: &str) -> Decoded {
    let mut out = Decoded {
        nonblank: Vec::new(),
        records: Vec::new(),
        dead: Vec::new(),
    };
    for (i, raw) in input.split('\n').enumerate() {
        let line = i as u64 + 1;
        if raw.bytes().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let text = raw.strip_suffix('\r').unwrap_or(raw);
        match parse_record(text, line) {
            Some(record) => {
                out.nonblank.push(Some(out.records.len()));
                out.records.push(record);
            }
            None => {
                out.nonblank.push(None);
                out.dead.push((line, text.to_string()));
            }
        }
    }
    out
}

/// A record, or `None` for a dead letter: not a JSON object, a temperature
/// that is not a number, an event time missing or neither epoch
/// milliseconds nor RFC 3339.
fn parse_record(text: &str, line: u64) -> Option<Record> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let sensor = match map.get("sensor") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => panic!("the generator writes no sensor like {other}"),
    };
    let temperature = match map.get("temperature") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(_)) => return None,
        Some(other) => panic!("the generator writes no temperature like {other}"),
    };
    let ts = match map.get("ts") {
        None | Some(Value::Null) => return None,
        Some(Value::Number(n)) => n.as_i64()?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| parse_rfc3339(s.trim()))?,
        Some(other) => panic!("the generator writes no ts like {other}"),
    };
    Some(Record {
        line,
        sensor,
        temperature,
        ts,
    })
}

/// The source's chunks and the watermark before and after each.
struct Timeline {
    /// The records of each chunk.
    chunks: Vec<Vec<usize>>,
    /// The watermark each chunk's events are judged against.
    before: Vec<i64>,
    /// The watermark once the chunk has gone through.
    after: Vec<i64>,
}

fn timeline(decoded: &Decoded, chunk_rows: usize, ooo: i64) -> Timeline {
    let mut tl = Timeline {
        chunks: Vec::new(),
        before: Vec::new(),
        after: Vec::new(),
    };
    let mut max_seen: Option<i64> = None;
    for lines in decoded.nonblank.chunks(chunk_rows) {
        let records: Vec<usize> = lines.iter().flatten().copied().collect();
        let watermark = |m: Option<i64>| m.map_or(i64::MIN, |m| m - ooo);
        tl.before.push(watermark(max_seen));
        for &r in &records {
            max_seen =
                Some(max_seen.map_or(decoded.records[r].ts, |m| m.max(decoded.records[r].ts)));
        }
        tl.after.push(watermark(max_seen));
        tl.chunks.push(records);
    }
    tl
}

// ---------------------------------------------------------------------------
// The reference: aggregates and windows.

#[derive(Debug, Clone, Copy)]
enum Val {
    Null,
    Int(i64),
    Float(f64),
}

impl Val {
    fn close(self, other: Val) -> bool {
        match (self, other) {
            (Val::Null, Val::Null) => true,
            (Val::Int(a), Val::Int(b)) => a == b,
            (Val::Float(a), Val::Float(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            _ => false,
        }
    }
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Val::Null => write!(f, "null"),
            Val::Int(v) => write!(f, "{v}"),
            Val::Float(v) => write!(f, "{v:?}"),
        }
    }
}

fn evaluate(a: &Aggregate, records: &[Record], members: &[usize]) -> Val {
    let rows = || members.iter().map(|&i| &records[i]);
    match (a.func, a.col) {
        (Func::CountStar, _) => Val::Int(members.len() as i64),
        (Func::Count, Col::Temperature) => {
            Val::Int(rows().filter(|r| r.temperature.is_some()).count() as i64)
        }
        (Func::Count, Col::Sensor) => {
            Val::Int(rows().filter(|r| r.sensor.is_some()).count() as i64)
        }
        (Func::Count, Col::Ts) => Val::Int(members.len() as i64),
        (func, Col::Ts) => {
            let ts: Vec<i64> = rows().map(|r| r.ts).collect();
            if ts.is_empty() {
                return Val::Null;
            }
            match func {
                Func::Sum => Val::Int(ts.iter().sum()),
                Func::Min => Val::Int(*ts.iter().min().unwrap_or(&0)),
                Func::Max => Val::Int(*ts.iter().max().unwrap_or(&0)),
                Func::Avg => Val::Float(ts.iter().sum::<i64>() as f64 / ts.len() as f64),
                other => panic!("no {other:?} of ts"),
            }
        }
        (func, _) => {
            let xs: Vec<f64> = rows().filter_map(|r| r.temperature).collect();
            let n = xs.len() as f64;
            let sum: f64 = xs.iter().sum();
            let m2 = || {
                let mean = sum / n;
                xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>()
            };
            let sample = |f: fn(f64) -> f64| {
                if xs.len() < 2 {
                    Val::Null
                } else {
                    Val::Float(f(m2() / (n - 1.0)))
                }
            };
            let population = |f: fn(f64) -> f64| {
                if xs.is_empty() {
                    Val::Null
                } else {
                    Val::Float(f(m2() / n))
                }
            };
            if xs.is_empty() {
                return Val::Null;
            }
            match func {
                Func::Sum => Val::Float(sum),
                Func::Avg => Val::Float(sum / n),
                Func::Min => Val::Float(xs.iter().copied().fold(f64::INFINITY, f64::min)),
                Func::Max => Val::Float(xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
                Func::Stddev => sample(f64::sqrt),
                Func::Var => sample(|v| v),
                Func::StddevPop => population(f64::sqrt),
                Func::VarPop => population(|v| v),
                Func::CountStar | Func::Count => unreachable!(),
            }
        }
    }
}

type Key = Option<String>;
type WindowId = (Key, i64, i64);
/// Count windows: each key's rows `(start, end, values)`, in order.
type CountRows = BTreeMap<Key, Vec<(i64, i64, Vec<Val>)>>;

fn key_of(w: &WindowSpec, r: &Record) -> Key {
    if w.keyed {
        r.sensor.clone()
    } else {
        None
    }
}

fn values(w: &WindowSpec, records: &[Record], members: &[usize]) -> Vec<Val> {
    w.aggregates
        .iter()
        .map(|a| evaluate(a, records, members))
        .collect()
}

/// A row of `late`, as the reference expects it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Late {
    transform: String,
    line: u64,
    event_time: i64,
    watermark: i64,
}

/// What one window transform should output.
enum Expected {
    /// The final row per window (sessions: the final sessions).
    Final(BTreeMap<WindowId, Vec<Val>>),
    /// Count windows: each key's rows in order.
    Counts(CountRows),
}

fn time_windows(
    w: &WindowSpec,
    records: &[Record],
    tl: &Timeline,
    late: &mut Vec<Late>,
) -> Expected {
    let mut members: BTreeMap<WindowId, Vec<usize>> = BTreeMap::new();
    for (chunk, watermark) in tl.chunks.iter().zip(&tl.before) {
        for &r in chunk {
            let t = records[r].ts;
            let mut taken = false;
            for (start, end) in w.kind.windows(t) {
                if end + w.lateness() > *watermark {
                    members
                        .entry((key_of(w, &records[r]), start, end))
                        .or_default()
                        .push(r);
                    taken = true;
                }
            }
            if !taken {
                late.push(Late {
                    transform: w.name.clone(),
                    line: records[r].line,
                    event_time: t,
                    watermark: *watermark,
                });
            }
        }
    }
    Expected::Final(
        members
            .into_iter()
            .map(|(id, m)| (id, values(w, records, &m)))
            .collect(),
    )
}

struct Session {
    start: i64,
    end: i64,
    members: Vec<usize>,
}

fn sessions(
    w: &WindowSpec,
    gap: i64,
    records: &[Record],
    tl: &Timeline,
    late: &mut Vec<Late>,
) -> Expected {
    let lateness = w.lateness();
    let mut open: BTreeMap<Key, Vec<Session>> = BTreeMap::new();
    let mut finals: BTreeMap<WindowId, Vec<Val>> = BTreeMap::new();
    // The watermark passes `watermark`: sessions beyond their lateness are
    // dropped, final.
    let mut advance = |open: &mut BTreeMap<Key, Vec<Session>>, watermark: i64| {
        for (key, list) in open.iter_mut() {
            list.retain(|s| {
                let keep = s.end.saturating_add(lateness) > watermark;
                if !keep {
                    finals.insert(
                        (key.clone(), s.start, s.end),
                        values(w, records, &s.members),
                    );
                }
                keep
            });
        }
    };
    for (k, chunk) in tl.chunks.iter().enumerate() {
        let watermark = tl.before[k];
        for &r in chunk {
            let t = records[r].ts;
            if t + gap + lateness <= watermark {
                late.push(Late {
                    transform: w.name.clone(),
                    line: records[r].line,
                    event_time: t,
                    watermark,
                });
                continue;
            }
            let list = open.entry(key_of(w, &records[r])).or_default();
            let mut merged = Session {
                start: t,
                end: t + gap,
                members: vec![r],
            };
            let mut i = 0;
            while i < list.len() {
                if list[i].start < merged.end && merged.start < list[i].end {
                    let s = list.swap_remove(i);
                    merged.start = merged.start.min(s.start);
                    merged.end = merged.end.max(s.end);
                    merged.members.extend(s.members);
                } else {
                    i += 1;
                }
            }
            list.push(merged);
        }
        if tl.after[k] > watermark {
            advance(&mut open, tl.after[k]);
        }
    }
    advance(&mut open, i64::MAX);
    Expected::Final(finals)
}

fn count_windows(w: &WindowSpec, size: usize, records: &[Record]) -> Expected {
    let mut open: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    let mut rows: CountRows = BTreeMap::new();
    let row = |members: &[usize]| {
        let first = members.iter().map(|&i| records[i].ts).min().unwrap_or(0);
        let last = members.iter().map(|&i| records[i].ts).max().unwrap_or(0);
        (first, last + 1, values(w, records, members))
    };
    for (i, r) in records.iter().enumerate() {
        let key = key_of(w, r);
        let members = open.entry(key.clone()).or_default();
        members.push(i);
        if members.len() == size {
            let done = std::mem::take(members);
            rows.entry(key).or_default().push(row(&done));
        }
    }
    for (key, members) in open {
        if !members.is_empty() {
            rows.entry(key).or_default().push(row(&members));
        }
    }
    Expected::Counts(rows)
}

// ---------------------------------------------------------------------------
// The engine's output.

struct OutRow {
    key: Key,
    start: i64,
    end: i64,
    values: Vec<Val>,
    /// `op` and `revision`, if the row has them.
    change: Option<(String, u64)>,
}

fn read_lines(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}: {l}", path.display())))
        .collect()
}

fn out_rows(dir: &Path, w: &WindowSpec) -> Result<Vec<OutRow>, String> {
    read_lines(&dir.join(format!("{}.jsonl", w.name)))?
        .into_iter()
        .map(|v| {
            let int = |name: &str| {
                v.get(name)
                    .and_then(Value::as_i64)
                    .ok_or_else(|| format!("{}: no {name} in {v}", w.name))
            };
            let values = w
                .aggregates
                .iter()
                .map(|a| {
                    match v.get(a.name) {
                        None | Some(Value::Null) => Some(Val::Null),
                        Some(x) if a.float() => x.as_f64().map(Val::Float),
                        Some(x) => x.as_i64().map(Val::Int),
                    }
                    .ok_or_else(|| {
                        format!(
                            "{}: {} is not a {}: {v}",
                            w.name,
                            a.name,
                            if a.float() { "number" } else { "integer" }
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(OutRow {
                key: if w.keyed {
                    v.get("sensor").and_then(Value::as_str).map(str::to_string)
                } else {
                    None
                },
                start: int("window_start")?,
                end: int("window_end")?,
                values,
                change: match (v.get("op"), v.get("revision")) {
                    (None, None) => None,
                    (Some(Value::String(op)), Some(r)) if r.is_u64() => {
                        Some((op.clone(), r.as_u64().unwrap_or_default()))
                    }
                    _ => return Err(format!("{}: a bad op or revision: {v}", w.name)),
                },
            })
        })
        .collect()
}

/// What a consumer keeps: the last row per window, or, for a window with
/// allowed lateness, what its changelog says, checked row by row: every
/// row has `op` and `revision`; `insert` names a window not held, at
/// revision 0; `update` and `delete` one held, at the revision after its
/// last row. A window without lateness has neither column.
fn consumed(
    w: &WindowSpec,
    rows: &[OutRow],
    diffs: &mut Vec<String>,
) -> BTreeMap<WindowId, Vec<Val>> {
    let changelog = w.lateness() > 0 && !matches!(w.kind, Kind::Count(_));
    let mut held: BTreeMap<WindowId, (u64, Vec<Val>)> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let id = (r.key.clone(), r.start, r.end);
        let wrong = |why: &str| format!("{}: row {i} ({}): {why}", w.name, show(w, &id, &r.values));
        let Some((op, revision)) = &r.change else {
            if changelog {
                diffs.push(wrong("no op and revision, with allowed_lateness"));
            }
            held.insert(id, (0, r.values.clone()));
            continue;
        };
        if !changelog {
            diffs.push(wrong("op and revision, without allowed_lateness"));
        }
        let before = held.get(&id).map(|(revision, _)| *revision);
        match (op.as_str(), before) {
            ("insert", None) if *revision == 0 => {
                held.insert(id, (0, r.values.clone()));
            }
            ("update", Some(b)) if *revision == b + 1 => {
                held.insert(id, (*revision, r.values.clone()));
            }
            ("delete", Some(b)) if *revision == b + 1 => {
                held.remove(&id);
            }
            _ => diffs.push(wrong(&format!(
                "{op} at revision {revision}, the window's last row {}",
                before.map_or("none".to_string(), |b| format!("was at revision {b}"))
            ))),
        }
    }
    held.into_iter().map(|(id, (_, v))| (id, v)).collect()
}

/// A row, with the window's aggregates named.
fn show(w: &WindowSpec, id: &WindowId, values: &[Val]) -> String {
    let values: Vec<String> = w
        .aggregates
        .iter()
        .zip(values)
        .map(|(a, v)| format!("{}={v}", a.name))
        .collect();
    format!(
        "key {:?} [{}, {}) {{ {} }}",
        id.0,
        id.1,
        id.2,
        values.join(", ")
    )
}

fn same(a: &[Val], b: &[Val]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.close(*y))
}

/// The differences between expected and written final rows.
fn compare_final(
    w: &WindowSpec,
    expected: &BTreeMap<WindowId, Vec<Val>>,
    actual: &BTreeMap<WindowId, Vec<Val>>,
    diffs: &mut Vec<String>,
) {
    let name = &w.name;
    for (id, want) in expected {
        match actual.get(id) {
            None => diffs.push(format!("{name}: missing {}", show(w, id, want))),
            Some(got) if !same(want, got) => diffs.push(format!(
                "{name}: expected {}\n      written {}",
                show(w, id, want),
                show(w, id, got)
            )),
            Some(_) => {}
        }
    }
    for (id, got) in actual {
        if !expected.contains_key(id) {
            diffs.push(format!("{name}: unexpected {}", show(w, id, got)));
        }
    }
}

/// Count windows: each key's rows, in order.
fn compare_counts(
    w: &WindowSpec,
    expected: &CountRows,
    rows: Vec<OutRow>,
    diffs: &mut Vec<String>,
) {
    let mut actual: CountRows = BTreeMap::new();
    for r in rows {
        actual
            .entry(r.key)
            .or_default()
            .push((r.start, r.end, r.values));
    }
    let keys: BTreeSet<&Key> = expected.keys().chain(actual.keys()).collect();
    for key in keys {
        let want = expected.get(key).map_or(&[][..], Vec::as_slice);
        let got = actual.get(key).map_or(&[][..], Vec::as_slice);
        let differs = |i: &usize| match (want.get(*i), got.get(*i)) {
            (Some(a), Some(b)) => a.0 != b.0 || a.1 != b.1 || !same(&a.2, &b.2),
            _ => true,
        };
        if let Some(i) = (0..want.len().max(got.len())).find(differs) {
            let row = |r: Option<&(i64, i64, Vec<Val>)>| {
                r.map_or("nothing".to_string(), |(start, end, v)| {
                    show(w, &(key.clone(), *start, *end), v)
                })
            };
            diffs.push(format!(
                "{}: key {key:?}: {} rows expected, {} written; row {i}: expected {}\n      \
                 written {}",
                w.name,
                want.len(),
                got.len(),
                row(want.get(i)),
                row(got.get(i))
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// One case.

#[derive(Default)]
struct Stats {
    cases: usize,
    records: usize,
    dead: usize,
    late: usize,
    rows: usize,
    /// Rows that delete a session merged into another.
    deletes: usize,
    /// Rows that update a window.
    updates: usize,
    by_mode: BTreeMap<&'static str, usize>,
}

fn check(case: &Case, stats: &mut Stats) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let result = run_and_compare(case, dir.path(), stats);
    if result.is_err() {
        // Keep the files for a look (and `sluice run` of the pipeline).
        let kept = dir.keep();
        let _ = std::fs::write(kept.join("pipeline.toml"), case.pipeline());
        return result.map_err(|e| {
            format!(
                "{e}\n(input, pipeline and outputs kept in {})",
                kept.display()
            )
        });
    }
    result
}

fn run_and_compare(case: &Case, dir: &Path, stats: &mut Stats) -> Result<(), String> {
    std::fs::write(dir.join("input.jsonl"), &case.input).map_err(|e| e.to_string())?;
    let text = case.pipeline();
    let plan = load_str(&text, Path::new("windows_reference.toml"), dir, None)
        .map_err(|e| format!("the pipeline does not load: {e}"))?;
    let watch = progress(&plan);
    let summary = run(plan, &watch).map_err(|e| format!("the run failed: {e}"))?;

    let decoded = decode(&case.input);
    let records = &decoded.records;
    let exact = timeline(&decoded, case.chunk_rows(), case.ooo());

    let mut diffs: Vec<String> = Vec::new();
    let mut late: Vec<Late> = Vec::new();
    let mut rows_written: BTreeMap<String, u64> = BTreeMap::new();
    for w in &case.windows {
        let expected = match w.kind {
            Kind::Tumbling(_) | Kind::Sliding(..) => time_windows(w, records, &exact, &mut late),
            Kind::Session(gap) => sessions(w, gap, records, &exact, &mut late),
            Kind::Count(size) => count_windows(w, size, records),
        };
        let rows = out_rows(dir, w)?;
        stats.rows += rows.len();
        rows_written.insert(w.name.clone(), rows.len() as u64);
        let emitted = summary
            .emitted
            .get(&format!("{0} -> {0}.jsonl", w.name))
            .copied();
        if emitted != Some(rows.len() as u64) {
            diffs.push(format!(
                "{}: the summary says {emitted:?} rows emitted, the file has {}",
                w.name,
                rows.len()
            ));
        }
        let ops = |wanted: &str| {
            rows.iter()
                .filter(|r| r.change.as_ref().is_some_and(|(op, _)| op == wanted))
                .count()
        };
        stats.deletes += ops("delete");
        stats.updates += ops("update");
        match expected {
            Expected::Final(want) => {
                let got = consumed(w, &rows, &mut diffs);
                compare_final(w, &want, &got, &mut diffs);
            }
            Expected::Counts(want) => compare_counts(w, &want, rows, &mut diffs),
        }
    }
    compare_late(case, &decoded, &late, dir, &mut diffs)?;
    compare_dead(&decoded, dir, &mut diffs)?;

    // The summary: per input record one outcome; per transform its rows.
    let valid = records.len() as u64;
    let mut late_lines: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for l in &late {
        late_lines.entry(&l.transform).or_default().insert(l.line);
    }
    let refused_by_all = records
        .iter()
        .filter(|r| {
            case.windows.iter().all(|w| {
                late_lines
                    .get(w.name.as_str())
                    .is_some_and(|lines| lines.contains(&r.line))
            })
        })
        .count() as u64;
    let counts = (
        summary.read,
        summary.processed,
        summary.late,
        summary.dead_letter,
    );
    let want_counts = (
        decoded.nonblank.len() as u64,
        valid - refused_by_all,
        refused_by_all,
        decoded.dead.len() as u64,
    );
    if counts != want_counts {
        diffs.push(format!(
            "summary: (read, processed, late, dead_letter) = {counts:?}, expected \
             {want_counts:?}"
        ));
    }
    for w in &case.windows {
        let late_rows = late_lines.get(w.name.as_str()).map_or(0, BTreeSet::len) as u64;
        let got = summary.transforms.get(&w.name).map(|t| {
            (
                t.rows_in,
                t.out,
                t.aggregated,
                t.late,
                t.filtered + t.dead_letter,
            )
        });
        let want = (
            valid,
            rows_written[&w.name],
            Some(valid - late_rows),
            late_rows,
            0,
        );
        if got != Some(want) {
            diffs.push(format!(
                "summary of {}: (in, out, aggregated, late, filtered + dead_letter) = {got:?}, \
                 expected {want:?}",
                w.name
            ));
        }
    }

    stats.cases += 1;
    stats.records += records.len();
    stats.dead += decoded.dead.len();
    stats.late += late.len();
    let mode = match case.mode {
        Mode::Event => "event",
        Mode::MicroBatch(_) => "micro-batch",
        Mode::Adaptive(_) => "adaptive",
    };
    *stats.by_mode.entry(mode).or_default() += 1;

    if diffs.is_empty() {
        return Ok(());
    }
    let shown = diffs.len().min(15);
    Err(format!(
        "{} difference(s) from the reference (records {}, late {}, dead letters {}); the first \
         {shown}:\n  {}",
        diffs.len(),
        records.len(),
        late.len(),
        decoded.dead.len(),
        diffs[..shown].join("\n  ")
    ))
}

/// `late.jsonl` against the reference's late events; each written one must
/// also be justified: all its windows had closed by the watermark it was
/// judged against, which is no later than the per-event watermark (one
/// event per chunk).
fn compare_late(
    case: &Case,
    decoded: &Decoded,
    expected: &[Late],
    dir: &Path,
    diffs: &mut Vec<String>,
) -> Result<(), String> {
    let records = &decoded.records;
    let per_event = timeline(decoded, 1, case.ooo());
    let mut per_event_watermark = vec![i64::MIN; records.len()];
    for (chunk, watermark) in per_event.chunks.iter().zip(&per_event.before) {
        for &r in chunk {
            per_event_watermark[r] = *watermark;
        }
    }
    let by_line: BTreeMap<u64, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.line, i))
        .collect();
    let written: Vec<Late> = read_lines(&dir.join("late.jsonl"))?
        .into_iter()
        .map(|v| Late {
            transform: v["transform"].as_str().unwrap_or_default().to_string(),
            line: v["line"].as_u64().unwrap_or_default(),
            event_time: v["event_time"].as_i64().unwrap_or_default(),
            watermark: v["watermark"].as_i64().unwrap_or_default(),
        })
        .collect();
    for l in &written {
        let Some(w) = case.windows.iter().find(|w| w.name == l.transform) else {
            diffs.push(format!("late: no transform {:?}", l.transform));
            continue;
        };
        let Some(&r) = by_line.get(&l.line) else {
            diffs.push(format!("late: line {} is not a record", l.line));
            continue;
        };
        let closed = match w.kind {
            Kind::Session(gap) => l.event_time + gap + w.lateness() <= l.watermark,
            kind => kind
                .windows(l.event_time)
                .iter()
                .all(|(_, end)| end + w.lateness() <= l.watermark),
        };
        if records[r].ts != l.event_time || !closed || l.watermark > per_event_watermark[r] {
            diffs.push(format!(
                "late: {l:?} is not justified (event time {}, per-event watermark {})",
                records[r].ts, per_event_watermark[r]
            ));
        }
    }
    // Adaptive runs: the watermark depends on the chunks (justified above).
    let sorted = |rows: &[Late]| -> Vec<Late> {
        let mut rows: Vec<Late> = rows
            .iter()
            .map(|l| Late {
                watermark: if case.robust() { 0 } else { l.watermark },
                ..l.clone()
            })
            .collect();
        rows.sort();
        rows
    };
    let (want, got) = (sorted(expected), sorted(&written));
    if want != got {
        let want_set: BTreeSet<&Late> = want.iter().collect();
        let got_set: BTreeSet<&Late> = got.iter().collect();
        let list = |a: &BTreeSet<&Late>, b: &BTreeSet<&Late>| -> String {
            a.difference(b)
                .take(8)
                .map(|l| format!("\n        {l:?}"))
                .collect()
        };
        diffs.push(format!(
            "late: {} expected, {} written\n      missing:{}\n      unexpected:{}",
            want.len(),
            got.len(),
            list(&want_set, &got_set),
            list(&got_set, &want_set)
        ));
    }
    Ok(())
}

/// `dead_letter.jsonl` against the lines the reference could not read.
fn compare_dead(decoded: &Decoded, dir: &Path, diffs: &mut Vec<String>) -> Result<(), String> {
    let mut dead: Vec<(u64, String)> = Vec::new();
    for v in read_lines(&dir.join("dead_letter.jsonl"))? {
        if v["origin"] != "source" {
            diffs.push(format!("dead_letter: not from the source: {v}"));
        }
        dead.push((
            v["line"].as_u64().unwrap_or_default(),
            v["record"].as_str().unwrap_or_default().to_string(),
        ));
    }
    dead.sort();
    if dead != decoded.dead {
        let want: BTreeSet<&(u64, String)> = decoded.dead.iter().collect();
        let got: BTreeSet<&(u64, String)> = dead.iter().collect();
        diffs.push(format!(
            "dead_letter: {} expected, {} written; missing {:?}; unexpected {:?}",
            decoded.dead.len(),
            dead.len(),
            want.difference(&got).take(5).collect::<Vec<_>>(),
            got.difference(&want).take(5).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

fn seeds() -> Vec<u64> {
    let parse = |s: &str| {
        let s = s.trim();
        match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        }
        .unwrap_or_else(|e| panic!("not a seed: {s:?}: {e}"))
    };
    if let Ok(seed) = std::env::var("SLUICE_WINDOWS_SEED") {
        return vec![parse(&seed)];
    }
    let cases = std::env::var("SLUICE_WINDOWS_CASES").map_or(CASES, |n| parse(&n));
    (0..cases).map(|i| 0x5EED_0000 + i).collect()
}

#[test]
fn declarative_windows_equal_the_reference() {
    let started = Instant::now();
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for (i, seed) in seeds().into_iter().enumerate() {
        let case = generate(seed);
        let case_started = Instant::now();
        let before = (stats.records, stats.late, stats.dead, stats.deletes);
        let result = check(&case, &mut stats);
        eprintln!(
            "case {i} seed {seed:#x}: {:?}, {} worker(s){}, {:?}: {} records, {} late, {} dead, \
             {} deleted sessions, {:.2}s{}",
            case.mode,
            case.workers,
            if case.parallel {
                " reading in parallel"
            } else {
                ""
            },
            case.windows.iter().map(|w| w.kind).collect::<Vec<_>>(),
            stats.records - before.0,
            stats.late - before.1,
            stats.dead - before.2,
            stats.deletes - before.3,
            case_started.elapsed().as_secs_f64(),
            if result.is_ok() { "" } else { ": FAILED" }
        );
        if let Err(error) = result {
            failures.push(format!(
                "case {i}, seed {seed:#x} (rerun with SLUICE_WINDOWS_SEED={seed:#x}): {error}\n\
                 --- pipeline ---\n{}",
                case.pipeline()
            ));
        }
    }
    eprintln!(
        "{} case(s) in {:.1}s {:?}: {} records, {} dead letters, {} late, {} rows; \
         {} session(s) deleted by a merge",
        stats.cases,
        started.elapsed().as_secs_f64(),
        stats.by_mode,
        stats.records,
        stats.dead,
        stats.late,
        stats.rows,
        stats.deletes
    );
    if std::env::var_os("SLUICE_WINDOWS_SEED").is_none() && stats.cases >= 40 {
        assert!(
            stats.deletes > 0 && stats.updates > 0,
            "{} deletes, {} updates: the cases miss late updates or merges of fired sessions",
            stats.deletes,
            stats.updates
        );
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ from the reference:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_reference_reads_the_rfc3339_it_writes() {
    for ms in [0, 1, 999, 86_399_999, 1_700_000_000_123, 951_782_400_000] {
        for offset in [0, 120, -330, 345, -600] {
            let text = rfc3339(ms, offset);
            assert_eq!(parse_rfc3339(&text), Some(ms), "{text}");
        }
    }
    assert_eq!(rfc3339(1_700_000_000_123, 0), "2023-11-14T22:13:20.123Z");
    assert_eq!(
        rfc3339(1_700_000_000_123, 120),
        "2023-11-15T00:13:20.123+02:00"
    );
    assert_eq!(parse_rfc3339("2023-13-45T99:00:00Z"), None);
}
