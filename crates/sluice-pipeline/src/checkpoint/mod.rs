//! Checkpoints: the state of a run, committed to an embedded store (redb)
//! in a state directory, so that a run killed at any moment resumes with
//! results identical to a run that never stopped.
//!
//! The protocol (aligned barriers, as in Flink's asynchronous barrier
//! snapshots, here taken synchronously):
//! 1. the source asks [`Checkpointing::due`] after each poll; when the
//!    interval has passed and no checkpoint is in flight, it records its
//!    position (everything it emitted so far) and injects a barrier;
//! 2. every operator with state snapshots it when the barrier has come
//!    from all its inputs, releases the dead letters and late events it
//!    held since the last barrier, and passes the barrier on;
//! 3. every sink makes what it wrote durable and records its length;
//! 4. the last participant to report commits everything in one redb
//!    write transaction: source position, operator states, sink lengths.
//!
//! On recovery, sink files are cut back to their committed lengths, the
//! operators load their states and the source seeks to its position.
//! Only one checkpoint is in flight at a time, so what a stage does after
//! reporting checkpoint `n` never reaches checkpoint `n`'s commit.

use crate::error::{Error, Fix, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The version of the state format; a state directory of another version
/// is refused.
pub const FORMAT_VERSION: u64 = 1;

/// The file of the store in a state directory.
pub const STATE_FILE: &str = "state.redb";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

/// The delivery guarantee a checkpointed run asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Every record affects the output exactly once, across crashes:
    /// replayable sources and transactional sinks only.
    ExactlyOnce,
    /// Allows stdout sinks: after a crash, what they printed since the
    /// last checkpoint is printed again.
    AtLeastOnce,
    /// Also allows stdin: after a crash, what was read from it since the
    /// last checkpoint is lost.
    AtMostOnce,
}

impl Guarantee {
    /// Parses `exactly-once`, `at-least-once` or `at-most-once`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "exactly-once" => Ok(Self::ExactlyOnce),
            "at-least-once" => Ok(Self::AtLeastOnce),
            "at-most-once" => Ok(Self::AtMostOnce),
            other => Err(Error::Invalid(format!(
                "unknown guarantee `{other}`: use exactly-once, at-least-once or at-most-once"
            ))),
        }
    }
}

/// Where a run's checkpoints are kept.
#[derive(Clone)]
pub enum StateLocation {
    /// A state directory on this machine (`--state-dir`): a redb store.
    Dir(PathBuf),
    /// A store somewhere else, opened already (a partition's state in
    /// NATS key-value, for a distributed run).
    External(Arc<dyn CheckpointStore>),
}

impl std::fmt::Debug for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateLocation::Dir(dir) => f.debug_tuple("Dir").field(dir).finish(),
            StateLocation::External(store) => {
                f.debug_tuple("External").field(&store.describe()).finish()
            }
        }
    }
}

/// Keeps the last committed checkpoint of a run: the embedded redb
/// [`Store`] of a state directory, or a partition's key in NATS.
pub trait CheckpointStore: Send + Sync {
    /// The last committed checkpoint, if any.
    fn load(&self) -> Result<Option<Snapshot>>;
    /// Replaces the committed checkpoint with `snapshot`, atomically; an
    /// error if that is not possible (a store that lost its right to write
    /// says so here, and the run stops).
    fn commit(&self, snapshot: &Snapshot) -> Result<()>;
    /// Where it is, for messages.
    fn describe(&self) -> String;
}

/// What a checkpointed run needs to know.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Where the checkpoints are kept.
    pub location: StateLocation,
    /// Time between checkpoints.
    pub interval: Duration,
    /// Start over: discard the state (and the outputs are rewritten).
    pub fresh: bool,
    /// What the run promises.
    pub guarantee: Guarantee,
    /// Says on stderr when each checkpoint commits, after this prefix
    /// (`""`, or `"partition 3: "`); quiet when `None`.
    pub log: Option<String>,
}

/// A committed checkpoint, as loaded from the store.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Its number.
    pub id: u64,
    /// True when the run that wrote it reached the end of its input.
    pub completed: bool,
    /// State entries by key (`source`, `window/NAME/INSTANCE`, `sink/N`...).
    pub entries: BTreeMap<String, Vec<u8>>,
}

impl Snapshot {
    /// The entry under `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }
}

/// The store of a state directory.
pub struct Store {
    db: Database,
    path: PathBuf,
}

fn store_error(path: &Path, error: impl std::fmt::Display) -> Error {
    Error::checkpoint(format!(
        "the state in {} cannot be read or written: {error}. If it is corrupt, move it \
         away or start over",
        path.display()
    ))
    .with_fix(Fix::StartOver)
}

impl Store {
    /// Opens (or creates) the store in `dir`. `fingerprint` identifies the
    /// pipeline: a store written by another pipeline is refused.
    pub fn open(dir: &Path, fingerprint: &str, fresh: bool) -> Result<Self> {
        crate::output::create_dir_durably(dir)
            .map_err(|e| e.context("cannot create the state directory"))?;
        let path = dir.join(STATE_FILE);
        if fresh && path.exists() {
            std::fs::remove_file(&path).map_err(|e| {
                Error::checkpoint(format!("cannot remove {}", path.display())).caused_by(e)
            })?;
        }
        if !path.exists() {
            Self::create(dir, &path, fingerprint)?;
        }
        let db = Database::open(&path).map_err(|e| store_error(&path, e))?;
        let store = Self { db, path };
        match store.meta("fingerprint")? {
            None => store.init(fingerprint)?,
            Some(found) => {
                let version = store
                    .meta("format")?
                    .and_then(|v| v.try_into().ok().map(u64::from_le_bytes));
                if version != Some(FORMAT_VERSION) {
                    return Err(Error::damaged(format!(
                        "the state in {} has format {:?}, this Sluice reads format \
                         {FORMAT_VERSION}",
                        dir.display(),
                        version
                    )));
                }
                if found != fingerprint.as_bytes() {
                    return Err(Error::checkpoint(format!(
                        "the state in {} was written by another pipeline (or this one \
                         before a change to its sources, transforms, sinks or workers): \
                         its checkpoints cannot be restored here",
                        dir.display()
                    ))
                    .with_fix(Fix::OtherStateOrStartOver));
                }
            }
        }
        Ok(store)
    }

    /// Creates the store under a scratch name and renames it into place once
    /// it holds its format and fingerprint: a kill during creation leaves no
    /// half-written `state.redb` behind (the scratch file is simply redone).
    fn create(dir: &Path, path: &Path, fingerprint: &str) -> Result<()> {
        let scratch = dir.join(format!("{STATE_FILE}.new"));
        if scratch.exists() {
            std::fs::remove_file(&scratch).map_err(|e| {
                Error::checkpoint(format!("cannot remove {}", scratch.display())).caused_by(e)
            })?;
        }
        let db = Database::create(&scratch).map_err(|e| store_error(&scratch, e))?;
        let store = Self {
            db,
            path: scratch.clone(),
        };
        store.init(fingerprint)?;
        drop(store);
        std::fs::File::open(&scratch)
            .and_then(|f| f.sync_all())
            .map_err(|e| store_error(&scratch, e))?;
        std::fs::rename(&scratch, path).map_err(|e| {
            Error::checkpoint(format!(
                "cannot move {} to {}",
                scratch.display(),
                path.display()
            ))
            .caused_by(e)
        })?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| {
                Error::checkpoint(format!("cannot sync the state directory {}", dir.display()))
                    .caused_by(e)
            })
    }

    fn init(&self, fingerprint: &str) -> Result<()> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| store_error(&self.path, e))?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| store_error(&self.path, e))?;
            meta.insert("format", FORMAT_VERSION.to_le_bytes().as_slice())
                .map_err(|e| store_error(&self.path, e))?;
            meta.insert("fingerprint", fingerprint.as_bytes())
                .map_err(|e| store_error(&self.path, e))?;
        }
        txn.commit().map_err(|e| store_error(&self.path, e))
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| store_error(&self.path, e))?;
        let table = match txn.open_table(META) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(store_error(&self.path, e)),
        };
        let value = table.get(key).map_err(|e| store_error(&self.path, e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// The last committed checkpoint, if any.
    pub fn load(&self) -> Result<Option<Snapshot>> {
        let Some(id) = self.meta("checkpoint")? else {
            return Ok(None);
        };
        let id = <[u8; 8]>::try_from(id.as_slice())
            .map(u64::from_le_bytes)
            .map_err(|_| store_error(&self.path, "the checkpoint number is damaged"))?;
        let completed = self.meta("completed")?.is_some_and(|v| v == [1]);
        let txn = self
            .db
            .begin_read()
            .map_err(|e| store_error(&self.path, e))?;
        let mut entries = BTreeMap::new();
        match txn.open_table(STATE) {
            Ok(table) => {
                for item in table.iter().map_err(|e| store_error(&self.path, e))? {
                    let (key, value) = item.map_err(|e| store_error(&self.path, e))?;
                    entries.insert(key.value().to_string(), value.value().to_vec());
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(store_error(&self.path, e)),
        }
        Ok(Some(Snapshot {
            id,
            completed,
            entries,
        }))
    }

    /// Replaces the committed checkpoint with `snapshot`, atomically.
    pub fn commit_redb(&self, snapshot: &Snapshot) -> Result<()> {
        let err = |e: &dyn std::fmt::Display| store_error(&self.path, e);
        let txn = self.db.begin_write().map_err(|e| err(&e))?;
        match txn.delete_table(STATE) {
            Ok(_) => {}
            Err(e) => return Err(err(&e)),
        }
        {
            let mut state = txn.open_table(STATE).map_err(|e| err(&e))?;
            for (key, value) in &snapshot.entries {
                state
                    .insert(key.as_str(), value.as_slice())
                    .map_err(|e| err(&e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| err(&e))?;
            meta.insert("checkpoint", snapshot.id.to_le_bytes().as_slice())
                .map_err(|e| err(&e))?;
            meta.insert("completed", [u8::from(snapshot.completed)].as_slice())
                .map_err(|e| err(&e))?;
        }
        txn.commit().map_err(|e| err(&e))?;
        crate::fault::record(|| crate::fault::Event::Committed {
            state: self.path.clone(),
            id: snapshot.id,
            completed: snapshot.completed,
            lengths: snapshot
                .entries
                .iter()
                .filter(|(key, _)| key.starts_with("sink/") || key.starts_with("reserved/"))
                .filter_map(|(key, value)| {
                    let bytes: [u8; 8] = value.get(..8)?.try_into().ok()?;
                    Some((key.clone(), u64::from_le_bytes(bytes)))
                })
                .collect(),
        });
        Ok(())
    }
}

impl CheckpointStore for Store {
    fn load(&self) -> Result<Option<Snapshot>> {
        Store::load(self)
    }
    fn commit(&self, snapshot: &Snapshot) -> Result<()> {
        self.commit_redb(snapshot)
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// One committed checkpoint, for reports.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    /// Its number.
    pub id: u64,
    /// From the barrier's injection to the commit.
    pub duration: Duration,
    /// Bytes of state written.
    pub bytes: u64,
}

struct InFlight {
    id: u64,
    started: Instant,
    reports: usize,
    entries: BTreeMap<String, Vec<u8>>,
}

struct Inner {
    in_flight: Option<InFlight>,
    next_id: u64,
    participants: usize,
    /// Readers of the source still reading: each injects every barrier
    /// and reports its position.
    readers: usize,
    /// The last positions of the readers that have finished, recorded in
    /// every later checkpoint.
    finished: Vec<(String, Vec<u8>)>,
    last: Option<Committed>,
    error: Option<Error>,
}

/// State each checkpoint records that no barrier carries: the lengths of
/// the writers of the side outputs (`late`, `dead_letter`), which every
/// operator writes to. The last report of a checkpoint asks for it.
pub trait Held: Send + Sync {
    /// Makes what was written durable; the entries to record.
    fn checkpoint(&self) -> Result<Vec<(String, Vec<u8>)>>;
}

/// Coordinates the checkpoints of one run: when they are due, who has
/// reported, and the commit.
pub struct Checkpointing {
    store: Arc<dyn CheckpointStore>,
    interval: Duration,
    held: Arc<dyn Held>,
    /// The checkpoint the run resumed from.
    restored: Option<u64>,
    inner: Mutex<Inner>,
    stop: Arc<AtomicBool>,
    stop_barrier: AtomicU64,
    /// The checkpoint in flight (0 when none): the readers that have not
    /// injected it yet do so at their next poll.
    flying: AtomicU64,
    /// Where `now_ms` counts from.
    epoch: Instant,
    /// No checkpoint is due before this (ms since `epoch`): the next one's
    /// time, `u64::MAX` while one is in flight, 0 after a failure.
    quiet_until: AtomicU64,
    /// A checkpoint failed (the error is in `inner`).
    failed: AtomicBool,
    count: AtomicU64,
    /// The prefix of a line on stderr per commit, when logging.
    log: Option<String>,
}

impl Checkpointing {
    /// Checkpoints every `interval` into `store`; the first gets the
    /// number after `restored` (the checkpoint the run resumed from).
    /// Setting `stop` asks for a last checkpoint and a graceful stop.
    pub fn new(
        store: Arc<dyn CheckpointStore>,
        interval: Duration,
        held: Arc<dyn Held>,
        restored: Option<u64>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            store,
            interval,
            held,
            restored,
            inner: Mutex::new(Inner {
                in_flight: None,
                next_id: restored.unwrap_or(0) + 1,
                participants: 0,
                readers: 1,
                finished: Vec::new(),
                last: None,
                error: None,
            }),
            stop,
            stop_barrier: AtomicU64::new(0),
            flying: AtomicU64::new(0),
            epoch: Instant::now(),
            quiet_until: AtomicU64::new(interval.as_millis() as u64),
            failed: AtomicBool::new(false),
            count: AtomicU64::new(0),
            log: None,
        }
    }

    /// Takes the first checkpoint at the first poll (before the source has
    /// given anything, if its first poll gives nothing: the kafka source's
    /// does not, and then waits for the commit): for sinks that append to
    /// what outlives the run (a Kafka topic), whose writes of a run that
    /// never committed a checkpoint a restart could not find again.
    pub fn first_at_once(self) -> Self {
        self.quiet_until.store(0, Ordering::Relaxed);
        self
    }

    /// Whether the first checkpoint is taken at once (before the source
    /// has given anything).
    pub fn is_first_at_once(&self) -> bool {
        self.restored.is_none()
            && self.count() == 0
            && self.quiet_until.load(Ordering::Relaxed) == 0
    }

    /// Says on stderr when each checkpoint commits (records read, state
    /// size, time from barrier to commit), after `prefix`.
    pub fn logging(mut self, prefix: Option<String>) -> Self {
        self.log = prefix;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a participant: an operator instance or sink that reports
    /// every checkpoint. All register while the dataflow is built, before
    /// the first barrier.
    pub fn register(&self) {
        self.lock().participants += 1;
    }

    /// Says how many readers the source has (one by default): each
    /// injects every barrier and reports its position. Set while the
    /// dataflow is built, before the first barrier.
    pub fn set_readers(&self, readers: usize) {
        self.lock().readers = readers;
    }

    /// A reader has read all of its input: `entries` (its last position,
    /// asked once it may finish) are recorded in every later checkpoint, and later barriers do not
    /// wait for it. False while a checkpoint is in flight (the reader
    /// finishes after it has committed, so that what its operators release
    /// at the end is in no checkpoint that holds the position before it).
    pub fn finish_reader(&self, entries: impl FnOnce() -> Vec<(String, Vec<u8>)>) -> bool {
        let mut inner = self.lock();
        if inner.in_flight.is_some() {
            return false;
        }
        inner.readers = inner.readers.saturating_sub(1);
        inner.finished.extend(entries());
        true
    }

    /// The checkpoint the run resumed from.
    pub fn restored(&self) -> Option<u64> {
        self.restored
    }

    /// True once a graceful stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Called by each reader of the source after each poll, with the last
    /// checkpoint it injected: the number of a checkpoint to inject now,
    /// if one is in flight that it has not injected or one is due (then
    /// it starts). The reader then reports its position. An error if a
    /// checkpoint failed: the run must stop.
    pub fn due(&self, injected: u64) -> Result<Option<u64>> {
        let flying = self.flying.load(Ordering::SeqCst);
        if flying > injected {
            return Ok(Some(flying));
        }
        // Called after every poll (every event, in event mode): no lock
        // until a checkpoint may be due.
        if !self.stopping() && self.now_ms() < self.quiet_until.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let mut inner = self.lock();
        if let Some(error) = &inner.error {
            return Err(error.duplicate());
        }
        if let Some(flight) = inner.in_flight.as_ref().filter(|f| f.id > injected) {
            return Ok(Some(flight.id));
        }
        if inner.in_flight.is_some() || self.stop_barrier.load(Ordering::SeqCst) != 0 {
            return Ok(None);
        }
        let stopping = self.stopping();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.in_flight = Some(InFlight {
            id,
            started: Instant::now(),
            reports: 0,
            entries: BTreeMap::new(),
        });
        self.quiet_until.store(u64::MAX, Ordering::Relaxed);
        if stopping {
            self.stop_barrier.store(id, Ordering::SeqCst);
        }
        self.flying.store(id, Ordering::SeqCst);
        Ok(Some(id))
    }

    /// The checkpoint in flight, if the reader that last injected
    /// `injected` has not injected it.
    pub fn flying(&self, injected: u64) -> Option<u64> {
        let flying = self.flying.load(Ordering::SeqCst);
        (flying > injected).then_some(flying)
    }

    /// A participant could not do its part: no checkpoint commits any more,
    /// and the source stops the run with `error`.
    pub fn fail(&self, error: Error) {
        let mut inner = self.lock();
        inner.in_flight = None;
        self.flying.store(0, Ordering::SeqCst);
        self.failed(&mut inner, error);
    }

    fn failed(&self, inner: &mut Inner, error: Error) {
        inner.error.get_or_insert(error);
        self.failed.store(true, Ordering::SeqCst);
        self.quiet_until.store(0, Ordering::SeqCst);
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The error that stopped the checkpoints, if one did.
    pub fn check(&self) -> Result<()> {
        if !self.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        match &self.lock().error {
            Some(error) => Err(error.duplicate()),
            None => Ok(()),
        }
    }

    /// A participant's part of checkpoint `id`: its state entries (none
    /// for a stateless one). The last report commits the checkpoint.
    pub fn report(&self, id: u64, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        let mut inner = self.lock();
        if let Some(error) = &inner.error {
            return Err(error.duplicate());
        }
        let participants = inner.participants + inner.readers; // each reader reports too
        let Some(flight) = inner.in_flight.as_mut().filter(|f| f.id == id) else {
            return Err(Error::checkpoint(format!(
                "checkpoint {id} is not in flight"
            )));
        };
        flight.entries.extend(entries);
        flight.reports += 1;
        if flight.reports < participants {
            return Ok(());
        }
        let Some(flight) = inner.in_flight.take() else {
            return Ok(());
        };
        self.flying.store(0, Ordering::SeqCst);
        let mut entries = flight.entries;
        entries.extend(inner.finished.iter().cloned());
        match self.held.checkpoint() {
            Ok(lengths) => entries.extend(lengths),
            Err(error) => {
                self.failed(&mut inner, error.duplicate());
                return Err(error);
            }
        }
        let bytes = entries.values().map(|v| v.len() as u64).sum();
        let read = self.log.is_some().then(|| records_read(&entries)).flatten();
        let snapshot = Snapshot {
            id,
            completed: false,
            entries,
        };
        if let Err(error) = self.store.commit(&snapshot) {
            self.failed(&mut inner, error.duplicate());
            return Err(error);
        }
        let committed = Committed {
            id,
            duration: flight.started.elapsed(),
            bytes,
        };
        inner.last = Some(committed);
        if let Some(prefix) = &self.log {
            eprintln!(
                "{prefix}checkpoint {id} committed: {} records read, {bytes} bytes of state, \
                 {:.1} ms",
                read.map_or_else(|| "?".to_string(), |r| r.to_string()),
                committed.duration.as_secs_f64() * 1e3
            );
        }
        let interval = self.interval.as_millis() as u64;
        self.quiet_until
            .store(self.now_ms().saturating_add(interval), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("sluice_checkpoints_total").increment(1);
        metrics::histogram!("sluice_checkpoint_seconds").record(committed.duration.as_secs_f64());
        metrics::gauge!("sluice_checkpoint_bytes").set(bytes as f64);
        Ok(())
    }

    /// Checkpoints committed by this run.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The last checkpoint committed by this run.
    pub fn last(&self) -> Option<Committed> {
        self.lock().last
    }

    /// The stop checkpoint, once it has committed.
    pub fn stopped(&self) -> Option<u64> {
        let stop = self.stop_barrier.load(Ordering::SeqCst);
        self.lock()
            .last
            .filter(|l| stop != 0 && l.id == stop)
            .map(|l| l.id)
    }

    /// True while a checkpoint is in flight.
    pub fn in_flight(&self) -> bool {
        self.lock().in_flight.is_some()
    }

    /// Marks the run complete: its input is all read and its outputs are
    /// final. A later run of the same pipeline with this state says so and
    /// does nothing.
    pub fn complete(&self) -> Result<()> {
        let id = self.lock().next_id;
        self.store.commit(&Snapshot {
            id,
            completed: true,
            entries: BTreeMap::new(),
        })
    }
}

/// The records the source had read when it took the checkpoint of
/// `entries` (its readers' entries, `source` or `source/N`, say).
pub fn records_read(entries: &BTreeMap<String, Vec<u8>>) -> Option<u64> {
    let mut read = None;
    for (key, value) in entries {
        if key == "source" || key.starts_with("source/") {
            let position: serde_json::Value = serde_json::from_slice(value).ok()?;
            *read.get_or_insert(0) += position["read"].as_u64()?;
        }
    }
    read
}

/// A stable fingerprint of a text (FNV-1a, 64 bits), in hex.
pub fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}
