//! Test-only switches that break a guarantee on purpose, and a trace of the
//! writes, syncs and commits a run makes: the tests of each guarantee show
//! with them that they catch its violation.
//!
//! Both exist only in this crate's unit tests and with the feature
//! `fault-injection`, which only the workspace's dev-dependencies turn on: a
//! build of the `sluice` command for use (`cargo build --release -p
//! sluice-cli`, `cargo install`) does not have them (there, [`on`] is `false`
//! and [`record`] does nothing, and both compile away). A build that includes
//! test targets (`cargo test`, also `--release`, or `--examples`) does, and a
//! run of such a binary with `SLUICE_FAULT` set says so on stderr.
//!
//! A fault is switched on for the processes a test starts by the environment
//! variable `SLUICE_FAULT` (names separated by commas), or in a test's own
//! process for the paths under a folder (`Recorder::with_faults`).

use std::path::{Path, PathBuf};

/// A guarantee broken on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A run with a checkpoint starts from nothing, as if the state were
    /// empty (outputs are written anew).
    SkipRestore,
    /// A resumed run writes on after what its outputs hold, without cutting
    /// back what was written after the checkpoint.
    SkipTruncate,
    /// Outputs are flushed at the end of a run but not synced before the run
    /// is committed as completed.
    SkipFinalSync,
    /// A new output file's directory entry is not synced.
    SkipDirSync,
    /// A partition of a distributed run taken over from another process
    /// starts from its beginning instead of its last checkpoint.
    #[cfg(feature = "nats")]
    SkipPartitionResume,
    /// A resumed run's readers of a source read in parallel, all but the
    /// first, start their share of the input from its beginning instead of
    /// their checkpointed positions.
    ReaderStartsOver,
    /// A filter leaves the first rows it drops out of its counts.
    Miscount,
    /// A session window does not delete a session that a late event merged
    /// into another: its old row stays in the changelog.
    KeepMergedSessions,
    /// A join restored from a checkpoint starts without the rows it held.
    ForgetJoinState,
    /// An aggregate of a changelog restored from a checkpoint starts
    /// without the rows it held.
    ForgetChangelogState,
    /// A postgres sink that appends leaves in the table what it committed
    /// after the checkpoint a run resumes from.
    #[cfg(feature = "postgres")]
    SkipPostgresUndo,
    /// A postgres-cdc source moves its slot as soon as it has read the
    /// changes, before a checkpoint holds them.
    #[cfg(feature = "postgres")]
    CdcAdvanceEarly,
    /// An http source answers 202 as soon as it has queued a request's
    /// records, before a checkpoint holds them.
    #[cfg(feature = "http")]
    HttpAnswerEarly,
    /// A resumed http sink numbers its rows from 0 again, not from its
    /// checkpoint: a replay's keys name other rows.
    #[cfg(feature = "http")]
    HttpSinkRenumber,
    /// A resumed kafka sink does not read back what it wrote after its
    /// checkpoint: the replay writes those records again.
    #[cfg(feature = "kafka")]
    KafkaSinkNoSkip,
    /// A kafka sink hands the records it holds back (while the broker has
    /// not answered) to the producer only at a checkpoint or the end, not
    /// when the broker answers: the last records before the input goes
    /// quiet wait.
    #[cfg(feature = "kafka")]
    KafkaSinkHoldsBack,
}

impl Fault {
    /// Its name in `SLUICE_FAULT`.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn name(self) -> &'static str {
        match self {
            Fault::SkipRestore => "skip-restore",
            Fault::SkipTruncate => "skip-truncate",
            Fault::SkipFinalSync => "skip-final-sync",
            Fault::SkipDirSync => "skip-dir-sync",
            #[cfg(feature = "nats")]
            Fault::SkipPartitionResume => "skip-partition-resume",
            Fault::ReaderStartsOver => "reader-starts-over",
            Fault::Miscount => "miscount",
            Fault::KeepMergedSessions => "keep-merged-sessions",
            Fault::ForgetJoinState => "forget-join-state",
            Fault::ForgetChangelogState => "forget-changelog-state",
            #[cfg(feature = "postgres")]
            Fault::SkipPostgresUndo => "skip-postgres-undo",
            #[cfg(feature = "postgres")]
            Fault::CdcAdvanceEarly => "cdc-advance-early",
            #[cfg(feature = "http")]
            Fault::HttpAnswerEarly => "http-answer-early",
            #[cfg(feature = "http")]
            Fault::HttpSinkRenumber => "http-sink-renumber",
            #[cfg(feature = "kafka")]
            Fault::KafkaSinkNoSkip => "kafka-sink-no-skip",
            #[cfg(feature = "kafka")]
            Fault::KafkaSinkHoldsBack => "kafka-sink-holds-back",
        }
    }
}

/// What a run did to its files and its state, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Output `key` of the checkpoints (`sink/0`, `reserved/late/0`) is
    /// written to `path`.
    Opened {
        /// The output's key in a checkpoint.
        key: String,
        /// Its file.
        path: PathBuf,
    },
    /// A file or folder was created (a file also when truncated to
    /// nothing).
    Created(PathBuf),
    /// The directory's entries were synced.
    SyncedDir(PathBuf),
    /// A file's data was synced: it holds `length` bytes on disk.
    SyncedFile {
        /// The file.
        path: PathBuf,
        /// Its length when the sync returned.
        length: u64,
    },
    /// The state store at `state` committed checkpoint `id`.
    Committed {
        /// The store's file.
        state: PathBuf,
        /// The checkpoint.
        id: u64,
        /// Whether it says the run completed.
        completed: bool,
        /// The lengths it holds, by output key.
        lengths: Vec<(String, u64)>,
    },
}

#[cfg(any(test, feature = "fault-injection"))]
impl Event {
    fn path(&self) -> &Path {
        match self {
            Event::Opened { path, .. } | Event::Created(path) | Event::SyncedDir(path) => path,
            Event::SyncedFile { path, .. } => path,
            Event::Committed { state, .. } => state,
        }
    }
}

#[cfg(any(test, feature = "fault-injection"))]
mod imp {
    use super::{Event, Fault};
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex, OnceLock};

    struct Watch {
        root: PathBuf,
        faults: Vec<Fault>,
        events: Arc<Mutex<Vec<Event>>>,
    }

    fn watches() -> &'static Mutex<Vec<Watch>> {
        static WATCHES: OnceLock<Mutex<Vec<Watch>>> = OnceLock::new();
        WATCHES.get_or_init(Default::default)
    }

    fn from_env() -> &'static [String] {
        static FAULTS: OnceLock<Vec<String>> = OnceLock::new();
        FAULTS.get_or_init(|| {
            let faults: Vec<String> = std::env::var("SLUICE_FAULT")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if !faults.is_empty() {
                eprintln!(
                    "warning: test-only faults are on (SLUICE_FAULT={}): this run breaks \
                     guarantees on purpose",
                    faults.join(",")
                );
            }
            faults
        })
    }

    pub fn on(fault: Fault, path: &Path) -> bool {
        if from_env().iter().any(|f| f == fault.name()) {
            return true;
        }
        let watches = watches().lock().unwrap_or_else(|p| p.into_inner());
        watches
            .iter()
            .any(|w| path.starts_with(&w.root) && w.faults.contains(&fault))
    }

    pub fn record(event: Event) {
        let watches = watches().lock().unwrap_or_else(|p| p.into_inner());
        for w in watches.iter().filter(|w| event.path().starts_with(&w.root)) {
            w.events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(event.clone());
        }
    }

    pub fn watch(root: PathBuf, faults: Vec<Fault>) -> Arc<Mutex<Vec<Event>>> {
        let events = Arc::new(Mutex::new(Vec::new()));
        watches()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Watch {
                root,
                faults,
                events: events.clone(),
            });
        events
    }

    pub fn unwatch(events: &Arc<Mutex<Vec<Event>>>) {
        watches()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|w| !Arc::ptr_eq(&w.events, events));
    }
}

/// Whether `fault` is switched on for `path` (a file or folder the caller
/// is about to touch).
#[inline]
pub fn on(fault: Fault, path: &Path) -> bool {
    #[cfg(any(test, feature = "fault-injection"))]
    {
        imp::on(fault, path)
    }
    #[cfg(not(any(test, feature = "fault-injection")))]
    {
        let _ = (fault, path);
        false
    }
}

/// Adds `event` to the trace of every `Recorder` watching its path.
#[inline]
pub fn record(event: impl FnOnce() -> Event) {
    #[cfg(any(test, feature = "fault-injection"))]
    imp::record(event());
    #[cfg(not(any(test, feature = "fault-injection")))]
    let _ = event;
}

/// Records what runs do under a folder, and switches faults on there, until
/// dropped.
#[cfg(any(test, feature = "fault-injection"))]
pub struct Recorder {
    events: std::sync::Arc<std::sync::Mutex<Vec<Event>>>,
}

#[cfg(any(test, feature = "fault-injection"))]
impl Recorder {
    /// Records the events under `root`.
    pub fn start(root: &Path) -> Self {
        Self::with_faults(root, &[])
    }

    /// Records the events under `root`, with `faults` switched on there.
    pub fn with_faults(root: &Path, faults: &[Fault]) -> Self {
        Self {
            events: imp::watch(root.to_path_buf(), faults.to_vec()),
        }
    }

    /// The events so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(any(test, feature = "fault-injection"))]
impl Drop for Recorder {
    fn drop(&mut self) {
        imp::unwatch(&self.events);
    }
}

/// What a power cut at any point of `events` would lose: a checkpoint that
/// commits an output length must come after that much of the output (and
/// the file's directory entry) is on disk, and a run committed as completed
/// after all of its output is. `final_lengths` are the outputs' lengths at
/// the end. Recovery starts from the last commit before the cut, and what is
/// on disk only grows, so checking each commit covers every point. Returns
/// one line per violation.
#[cfg(any(test, feature = "fault-injection"))]
pub fn power_cut_losses(events: &[Event], final_lengths: &[(PathBuf, u64)]) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    let mut losses = Vec::new();
    let mut paths: HashMap<&str, &Path> = HashMap::new();
    let mut synced: HashMap<&Path, u64> = HashMap::new();
    let mut created: HashSet<&Path> = HashSet::new();
    let mut entry_synced: HashSet<&Path> = HashSet::new();
    for (at, event) in events.iter().enumerate() {
        match event {
            Event::Opened { key, path } => {
                paths.insert(key, path);
            }
            Event::Created(path) => {
                created.insert(path);
                entry_synced.remove(path.as_path());
                synced.insert(path, 0);
            }
            Event::SyncedDir(dir) => {
                for path in &created {
                    if path.parent() == Some(dir.as_path()) {
                        entry_synced.insert(path);
                    }
                }
            }
            Event::SyncedFile { path, length } => {
                synced.insert(path, *length);
            }
            Event::Committed {
                id,
                completed,
                lengths,
                ..
            } => {
                let mut check = |path: &Path, needed: u64, what: &str| {
                    // The file's entry, and that of every folder made for it.
                    for entry in path.ancestors() {
                        if created.contains(entry) && !entry_synced.contains(entry) {
                            losses.push(format!(
                                "event {at}: checkpoint {id} commits {} whose directory \
                                 entry {} is not synced: a power cut can lose the whole file",
                                path.display(),
                                entry.display()
                            ));
                        }
                    }
                    let on_disk = synced.get(path).copied().unwrap_or(0);
                    if on_disk < needed {
                        losses.push(format!(
                            "event {at}: checkpoint {id} commits {} {what} {needed} bytes \
                             with {on_disk} synced: a power cut loses {} bytes",
                            path.display(),
                            needed - on_disk
                        ));
                    }
                };
                for (key, length) in lengths {
                    if let Some(path) = paths.get(key.as_str()) {
                        check(path, *length, "at");
                    }
                }
                if *completed {
                    for (path, length) in final_lengths {
                        check(path, *length, "as completed, whole:");
                    }
                }
            }
        }
    }
    losses
}

#[cfg(test)]
mod tests {
    use super::{power_cut_losses, Event, Fault, Recorder};
    use crate::checkpoint::{CheckpointConfig, Guarantee, StateLocation};
    use crate::run::{progress, run_with, RunOptions};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    const PIPELINE: &str = r#"name = "durable"

[source]
type = "generator"
events = 6000
keys = 5
seed = 3
interval_ms = 100
rate = 12000

[execution]
batch_size = 50

[[transform]]
name = "per_sensor"
type = "window"
key = "sensor"
window = { type = "tumbling", size = "2s" }
aggregates = { n = "count(*)", high = "max(temperature)" }

[[transform]]
name = "hot"
type = "filter"
from = "source"
where = "temperature > 20"

[[sink]]
from = "per_sensor"
type = "file"
path = "out/windows/per_sensor.jsonl"

[[sink]]
from = "hot"
type = "file"
path = "out/hot.csv"

[[sink]]
from = "late"
type = "file"
path = "out/late.jsonl"

[[sink]]
from = "dead_letter"
type = "file"
path = "out/dead_letter.jsonl"
"#;

    /// Runs the pipeline with checkpoints every few milliseconds under
    /// `root`, with `faults`; its trace and its outputs' final lengths.
    fn traced_run(root: &Path, faults: &[Fault]) -> (Vec<Event>, Vec<(PathBuf, u64)>) {
        let recorder = Recorder::with_faults(root, faults);
        let plan = crate::plan::load_str(PIPELINE, &root.join("p.toml"), root, Some(2))
            .unwrap_or_else(|e| panic!("{e}"));
        let options = RunOptions {
            checkpoints: Some(CheckpointConfig {
                location: StateLocation::Dir(root.join("state")),
                interval: Duration::from_millis(20),
                fresh: false,
                guarantee: Guarantee::ExactlyOnce,
                log: None,
            }),
            ..RunOptions::default()
        };
        let progress = progress(&plan);
        let summary = run_with(plan, &progress, &options).unwrap().into_summary();
        assert!(summary.checkpoints.is_some_and(|c| c.committed >= 3));
        let finals = [
            "windows/per_sensor.jsonl",
            "hot.csv",
            "late.jsonl",
            "dead_letter.jsonl",
        ]
        .iter()
        .map(|name| {
            let path = root.join("out").join(name);
            let length = std::fs::metadata(&path).map_or(0, |m| m.len());
            (path, length)
        })
        .collect();
        (recorder.events(), finals)
    }

    #[test]
    fn a_power_cut_at_any_point_loses_no_committed_output() {
        let root = tempfile::tempdir().unwrap();
        let (events, finals) = traced_run(root.path(), &[]);
        let commits = events
            .iter()
            .filter(|e| matches!(e, Event::Committed { .. }))
            .count();
        assert!(commits >= 4, "{commits} commits: too few to test");
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::Committed {
                    completed: true,
                    ..
                }
            )),
            "the run was not committed as completed"
        );
        assert!(finals.iter().any(|(_, length)| *length > 1000));
        let losses = power_cut_losses(&events, &finals);
        assert!(losses.is_empty(), "{}", losses.join("\n"));
    }

    #[test]
    fn an_end_of_run_without_a_sync_is_caught() {
        let root = tempfile::tempdir().unwrap();
        let (events, finals) = traced_run(root.path(), &[Fault::SkipFinalSync]);
        let losses = power_cut_losses(&events, &finals);
        assert!(
            losses.iter().any(|l| l.contains("as completed")),
            "the check missed unsynced output at the end: {losses:?}"
        );
    }

    #[test]
    fn a_new_file_without_its_directory_synced_is_caught() {
        let root = tempfile::tempdir().unwrap();
        let (events, finals) = traced_run(root.path(), &[Fault::SkipDirSync]);
        let losses = power_cut_losses(&events, &finals);
        assert!(
            losses.iter().any(|l| l.contains("directory entry")),
            "the check missed an unsynced directory entry: {losses:?}"
        );
    }
}
