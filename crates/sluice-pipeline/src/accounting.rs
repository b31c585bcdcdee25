//! What happened to every record of a run, counted where it happens.
//!
//! Per input: records `read` (framed), `decoded`, and `dead_letter` (refused
//! by the decoder). Per transform: rows `in`, `out`, `filtered` (a false
//! condition), `aggregated` (folded into a window), `late` and `dead_letter`.
//! Per stream, the rows it carried; per sink, the rows it `emitted`.
//!
//! Per input record, one outcome, counted once: `processed` (it reached at
//! least one transform or sink that did not refuse it), or else `late` (every
//! reader of the input refused it, and none as a dead letter) or
//! `dead_letter`. Each reader of the input (a transform or sink with `from =
//! "source"`) gives each record one verdict; with one reader that is the
//! outcome, with several the first acceptance (or the last of the refusals)
//! decides, through a tally by line that holds a record from its first
//! verdict until every reader has judged it.
//!
//! [`Accounting::check`] says at the end of a run whether the counts add up;
//! they are counted at different places, so a record lost or counted twice
//! anywhere shows.

use crate::rows::Rows;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A counter shared by the instances of an operator.
#[derive(Debug, Default)]
pub struct Count(AtomicU64);

impl Count {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        if n > 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Rows through one transform, summed over its instances.
#[derive(Debug, Default)]
pub struct TransformCounts {
    /// Rows that reached it.
    pub rows_in: Count,
    /// Rows it dropped because its condition was false.
    pub filtered: Count,
    /// Rows a window folded into at least one window.
    pub aggregated: Count,
    /// Rows a window refused as too late for every window they fall in.
    pub late: Count,
    /// Rows an expression failed on.
    pub dead_letter: Count,
}

/// What a transform kind promises of its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Filter, select, rule: every row goes out, is filtered, or is a dead
    /// letter.
    Row,
    /// A window: every row is aggregated, late, or a dead letter.
    Window,
}

/// How the readers of the input judged its records, when there are several:
/// a record is held from its first verdict until every reader has judged it
/// (memory bounded by the records in flight between the readers).
#[derive(Debug, Default)]
struct Tally {
    /// By line: verdicts so far, whether one accepted it, whether a refusal
    /// was a dead letter.
    open: HashMap<u64, (u32, bool, bool)>,
}

/// A record's outcome, decided by one verdict.
enum Outcome {
    Processed,
    Late,
    Dead,
}

impl Tally {
    /// One reader's verdict on `line`; the record's outcome if this verdict
    /// decides it (the first acceptance, or the last of the refusals).
    fn judge(&mut self, line: u64, accepted: bool, dead: bool, readers: u32) -> Option<Outcome> {
        let entry = self.open.entry(line).or_insert((0, false, false));
        entry.0 += 1;
        let first_acceptance = accepted && !entry.1;
        entry.1 |= accepted;
        entry.2 |= dead;
        let (judged, any_accepted, any_dead) = *entry;
        if judged >= readers {
            self.open.remove(&line);
        }
        if first_acceptance {
            Some(Outcome::Processed)
        } else if judged >= readers && !any_accepted {
            Some(if any_dead {
                Outcome::Dead
            } else {
                Outcome::Late
            })
        } else {
            None
        }
    }
}

/// The counts of one run.
#[derive(Debug)]
pub struct Accounting {
    /// Rows each stream carried (`source`, and each transform's output).
    streams: IndexMap<String, Arc<Count>>,
    transforms: IndexMap<String, (Kind, Vec<String>, Arc<TransformCounts>)>,
    /// Readers of the input: each judges every decoded record once.
    readers: u32,
    processed: Count,
    late: Count,
    dead_letter: Count,
    tally: Option<Mutex<Tally>>,
}

impl Accounting {
    /// The counts of a run whose input has `readers` readers, with
    /// `transforms` (name, kind, the streams it reads) in the plan's order.
    pub fn new(readers: usize, transforms: &[(String, Kind, Vec<String>)]) -> Self {
        let readers = readers.max(1) as u32;
        let mut streams = IndexMap::new();
        streams.insert("source".to_string(), Arc::default());
        for (name, _, _) in transforms {
            streams.insert(name.clone(), Arc::default());
        }
        Self {
            streams,
            transforms: transforms
                .iter()
                .map(|(name, kind, from)| (name.clone(), (*kind, from.clone(), Arc::default())))
                .collect(),
            readers,
            processed: Count::default(),
            late: Count::default(),
            dead_letter: Count::default(),
            tally: (readers > 1).then(Mutex::default),
        }
    }

    /// The counts of transform `name`.
    pub fn transform(&self, name: &str) -> Option<Arc<TransformCounts>> {
        self.transforms.get(name).map(|(_, _, c)| c.clone())
    }

    /// Rows carried by stream `name`: counted where the stream passes.
    pub fn stream(&self, name: &str) -> Option<Arc<Count>> {
        self.streams.get(name).cloned()
    }

    fn rows_of(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |c| c.get())
    }

    /// A reader of the input accepted the records of `lines`.
    pub fn accepted(&self, lines: impl ExactSizeIterator<Item = u64>) {
        match &self.tally {
            None => self.processed.add(lines.len() as u64),
            Some(_) => self.judge(lines, true, false),
        }
    }

    /// A reader of the input refused the records of `lines`, as dead
    /// letters when `dead`, else as late.
    pub fn refused(&self, lines: impl ExactSizeIterator<Item = u64>, dead: bool) {
        match &self.tally {
            None if dead => self.dead_letter.add(lines.len() as u64),
            None => self.late.add(lines.len() as u64),
            Some(_) => self.judge(lines, false, dead),
        }
    }

    fn judge(&self, lines: impl Iterator<Item = u64>, accepted: bool, dead: bool) {
        let Some(tally) = &self.tally else {
            return;
        };
        let (mut processed, mut late, mut dead_letter) = (0, 0, 0);
        {
            let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
            for line in lines {
                match tally.judge(line, accepted, dead, self.readers) {
                    Some(Outcome::Processed) => processed += 1,
                    Some(Outcome::Late) => late += 1,
                    Some(Outcome::Dead) => dead_letter += 1,
                    None => {}
                }
            }
        }
        self.processed.add(processed);
        self.late.add(late);
        self.dead_letter.add(dead_letter);
    }

    /// Input records whose outcome is decided: processed, late, dead
    /// letter (the decoder's refusals, counted by the source, included).
    pub fn outcomes(&self, input: &SourceCounters) -> (u64, u64, u64) {
        (
            self.processed.get(),
            self.late.get(),
            self.dead_letter.get() + input.dead_letter.load(Ordering::Relaxed),
        )
    }

    /// The per-input and per-transform counts, for the summary.
    pub fn report(&self, input: &SourceCounters) -> Report {
        Report {
            input: InputReport {
                read: input.read.load(Ordering::Relaxed),
                decoded: input.decoded.load(Ordering::Relaxed),
                dead_letter: input.dead_letter.load(Ordering::Relaxed),
            },
            transforms: self
                .transforms
                .iter()
                .map(|(name, (kind, _, c))| {
                    let out = self.rows_of(name);
                    (
                        name.clone(),
                        TransformReport {
                            rows_in: c.rows_in.get(),
                            out,
                            filtered: c.filtered.get(),
                            aggregated: (*kind == Kind::Window).then(|| c.aggregated.get()),
                            late: c.late.get(),
                            dead_letter: c.dead_letter.get(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Whether the counts add up, at the end of a run whose source counted
    /// `input`; `sinks` are (label, stream, rows emitted) of the sinks,
    /// `reserved` the records the `late` and `dead_letter` streams took,
    /// `gave_up` the rows sinks gave up on (dead letters too). One line per
    /// mismatch.
    pub fn check(
        &self,
        input: &SourceCounters,
        sinks: &[(String, String, u64)],
        reserved: (u64, u64),
        gave_up: u64,
    ) -> Vec<String> {
        let mut wrong = Vec::new();
        let mut expect = |what: String, left: u64, right: u64| {
            if left != right {
                wrong.push(format!("{what}: {left} != {right}"));
            }
        };
        let read = input.read.load(Ordering::Relaxed);
        let decoded = input.decoded.load(Ordering::Relaxed);
        let decode_dead = input.dead_letter.load(Ordering::Relaxed);
        expect(
            "input: read = decoded + dead_letter".into(),
            read,
            decoded + decode_dead,
        );
        let (processed, late, dead_letter) = self.outcomes(input);
        expect(
            format!(
                "records: read = processed + late + dead_letter ({processed} + {late} + \
                 {dead_letter})"
            ),
            read,
            processed + late + dead_letter,
        );
        let source = self.rows_of("source");
        expect("stream source: rows = decoded".into(), source, decoded);
        let (mut late_rows, mut dead_rows) = (0, decode_dead);
        for (name, (kind, from, c)) in &self.transforms {
            let upstream = from.iter().map(|f| self.rows_of(f)).sum();
            expect(
                format!("transform {name}: in = rows of `{}`", from.join("` + `")),
                c.rows_in.get(),
                upstream,
            );
            let out = self.rows_of(name);
            match kind {
                Kind::Row => expect(
                    format!("transform {name}: in = out + filtered + dead_letter"),
                    c.rows_in.get(),
                    out + c.filtered.get() + c.dead_letter.get(),
                ),
                Kind::Window => expect(
                    format!("transform {name}: in = aggregated + late + dead_letter"),
                    c.rows_in.get(),
                    c.aggregated.get() + c.late.get() + c.dead_letter.get(),
                ),
            }
            late_rows += c.late.get();
            dead_rows += c.dead_letter.get();
        }
        for (label, stream, emitted) in sinks {
            let rows = match stream.as_str() {
                "late" => reserved.0,
                "dead_letter" => reserved.1,
                _ => self.rows_of(stream),
            };
            expect(
                format!("sink {label}: emitted = rows of `{stream}`"),
                *emitted,
                rows,
            );
        }
        expect(
            "stream late: records = late rows of the transforms".into(),
            reserved.0,
            late_rows,
        );
        expect(
            "stream dead_letter: records = dead letters of the input, transforms and sinks".into(),
            reserved.1,
            dead_rows + gave_up,
        );
        if let Some(tally) = &self.tally {
            let open = tally.lock().unwrap_or_else(|p| p.into_inner()).open.len();
            expect(
                "records judged by only some readers of the input".into(),
                open as u64,
                0,
            );
        }
        wrong
    }
}

/// The counts of a run, by input and by transform.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// The input's records.
    pub input: InputReport,
    /// Each transform's rows, in the file's order.
    pub transforms: IndexMap<String, TransformReport>,
}

/// The input's records.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct InputReport {
    /// Records read (decoded or not).
    pub read: u64,
    /// Records decoded into rows.
    pub decoded: u64,
    /// Records the decoder refused.
    pub dead_letter: u64,
}

/// One transform's rows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TransformReport {
    /// Rows that reached it.
    #[serde(rename = "in")]
    pub rows_in: u64,
    /// Rows it passed on (a window: results).
    pub out: u64,
    /// Rows its condition dropped.
    pub filtered: u64,
    /// Rows a window folded into windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregated: Option<u64>,
    /// Rows too late for every window they fall in.
    pub late: u64,
    /// Rows an expression failed on.
    pub dead_letter: u64,
}

/// Counters a source keeps for the run's summary and progress bar. A
/// source read by several readers keeps one per reader (for its position
/// in checkpoints), each adding to the source's as well.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Records read (decoded or not).
    pub read: AtomicU64,
    /// Records decoded into rows.
    pub decoded: AtomicU64,
    /// Records the decoder refused (dead letters).
    pub dead_letter: AtomicU64,
    /// Bytes read, for the progress bar.
    pub bytes: AtomicU64,
    /// The source's counters, when these are one reader's.
    total: Option<Arc<SourceCounters>>,
}

impl SourceCounters {
    /// Counters of one reader of the source counted by `total`.
    pub fn reader(total: &Arc<SourceCounters>) -> Arc<SourceCounters> {
        Arc::new(SourceCounters {
            total: Some(total.clone()),
            ..SourceCounters::default()
        })
    }

    /// Adds `n` to the counter `field` picks, here and in the source's.
    fn add(&self, field: fn(&SourceCounters) -> &AtomicU64, n: u64) {
        field(self).fetch_add(n, Ordering::Relaxed);
        if let Some(total) = &self.total {
            total.add(field, n);
        }
    }

    /// Counts `n` records read.
    pub fn add_read(&self, n: u64) {
        self.add(|c| &c.read, n);
    }

    /// Counts `n` records decoded into rows.
    pub fn add_decoded(&self, n: u64) {
        self.add(|c| &c.decoded, n);
    }

    /// Counts `n` records refused by the decoder.
    pub fn add_dead_letter(&self, n: u64) {
        self.add(|c| &c.dead_letter, n);
    }

    /// Counts `n` bytes read.
    pub fn add_bytes(&self, n: u64) {
        self.add(|c| &c.bytes, n);
    }

    /// Counts what a decoder made of a region: `rows`, and `dead` records.
    pub fn decoded_into(&self, rows: Option<&Rows>, dead: &[crate::format::DeadLetter]) {
        self.add_decoded(rows.map_or(0, Rows::len) as u64);
        self.add_dead_letter(dead.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::{Outcome, Tally};

    fn outcome(o: Option<Outcome>) -> &'static str {
        match o {
            None => "-",
            Some(Outcome::Processed) => "processed",
            Some(Outcome::Late) => "late",
            Some(Outcome::Dead) => "dead",
        }
    }

    #[test]
    fn the_first_acceptance_or_the_last_refusal_decides_once() {
        let mut tally = Tally::default();
        // Refused late, then accepted, then refused: processed, once.
        assert_eq!(outcome(tally.judge(1, false, false, 3)), "-");
        assert_eq!(outcome(tally.judge(1, true, false, 3)), "processed");
        assert_eq!(outcome(tally.judge(1, false, true, 3)), "-");
        // Accepted twice: processed once.
        assert_eq!(outcome(tally.judge(2, true, false, 2)), "processed");
        assert_eq!(outcome(tally.judge(2, true, false, 2)), "-");
        // Refused by all: late, or dead when one refusal was a dead letter.
        assert_eq!(outcome(tally.judge(3, false, false, 2)), "-");
        assert_eq!(outcome(tally.judge(3, false, false, 2)), "late");
        assert_eq!(outcome(tally.judge(4, false, true, 2)), "-");
        assert_eq!(outcome(tally.judge(4, false, false, 2)), "dead");
        // Every record judged by every reader: nothing held.
        assert!(tally.open.is_empty());
        assert_eq!(outcome(tally.judge(5, false, false, 2)), "-");
        assert_eq!(
            tally.open.len(),
            1,
            "a record some readers have not judged is held"
        );
    }
}
