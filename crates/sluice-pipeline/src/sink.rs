//! Writers of rows: JSON lines, CSV and Parquet files, and stdout.

use crate::checkpoint::{Checkpointing, Guarantee};
use crate::error::{Error, Fix, Result};
use crate::fault::{record, Event, Fault};
use crate::format::Format;
use crate::rows::Rows;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use sluice::{Batch, BoxError, Sink};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Writes record batches somewhere.
pub trait RowWriter: Send {
    /// Writes the rows of `batch`.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    /// Flushes and closes the output.
    fn finish(&mut self) -> Result<()>;
    /// Hands what was written to the operating system; returns the
    /// output's length, which a recovery cuts the output back to, and what
    /// makes it durable.
    fn checkpoint(&mut self) -> Result<Durable>;
}

/// An output's length at a checkpoint, and the file to sync before the
/// checkpoint may commit. Syncing can take long (it waits for the disk), so
/// a sink does it on another thread while the dataflow goes on.
pub struct Durable {
    length: u64,
    file: Option<(File, PathBuf)>,
    wait: Option<Wait>,
}

/// What makes an output durable that is not a file (waiting for a broker's
/// acknowledgements).
type Wait = Box<dyn FnOnce() -> Result<()> + Send>;

impl Durable {
    /// An output with nothing to sync (stdout, a discarded stream).
    pub fn nothing() -> Self {
        Self {
            length: 0,
            file: None,
            wait: None,
        }
    }

    /// An output of `length` (bytes, or messages) that is durable once
    /// `wait` returns.
    pub fn after(length: u64, wait: impl FnOnce() -> Result<()> + Send + 'static) -> Self {
        Self {
            length,
            file: None,
            wait: Some(Box::new(wait)),
        }
    }

    /// Waits until the output is durable up to its length; returns it.
    pub fn sync(self) -> Result<u64> {
        if let Some((file, path)) = self.file {
            sync_file(&file, &path)?;
        }
        if let Some(wait) = self.wait {
            wait()?;
        }
        Ok(self.length)
    }
}

/// Where a sink writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// Standard output, as JSON lines.
    Stdout,
    /// A file in a format.
    File {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: Format,
    },
    /// A NATS subject, through JetStream.
    Nats(NatsTarget),
}

/// A NATS sink: each row is published as a JSON record to `subject`.
#[derive(Debug, Clone)]
pub struct NatsTarget {
    /// The servers (comma-separated).
    pub url: String,
    /// Where each row goes; `{field}` in it is replaced by the row's value
    /// of `field` (`readings.{sensor}`: one subject per key).
    pub subject: String,
    /// The stream that captures the subject, created if absent.
    pub stream: Option<String>,
    /// Copies of each message in a cluster, for a stream it creates.
    pub replicas: usize,
    /// When not empty, each message gets the id `PREFIX.N`, `N` counting
    /// the sink's messages from the start of the partition: a replay after
    /// a crash publishes the same records under the same ids, which the
    /// stream drops as duplicates. A distributed run sets it.
    pub id_prefix: String,
}

impl Target {
    /// Opens the target for rows of `schema`, resuming at `length` bytes
    /// when given (after a checkpoint): what the file has beyond it was
    /// written after the checkpoint and is cut off. The error names the path.
    pub fn open_at(&self, schema: SchemaRef, length: Option<u64>) -> Result<Box<dyn RowWriter>> {
        match self {
            Target::Nats(target) => Ok(Box::new(NatsWriter::open(target, length)?)),
            Target::Stdout => Ok(Box::new(JsonLines {
                out: Box::new(std::io::stdout()),
                file: None,
                path: PathBuf::from("stdout"),
            })),
            Target::File { path, format } => {
                let file = match length {
                    None => create_durably(path)?,
                    Some(length) => resume(path, length)?,
                };
                let written = Arc::new(AtomicU64::new(length.unwrap_or(0)));
                let synced = file.try_clone().map_err(|e| io_error(path, e))?;
                let counting = Counting {
                    inner: file,
                    written: written.clone(),
                };
                Ok(match format {
                    Format::Jsonl => Box::new(JsonLines {
                        out: Box::new(BufWriter::with_capacity(1 << 16, counting)),
                        file: Some((synced, written)),
                        path: path.clone(),
                    }),
                    Format::Csv => {
                        let header = length.unwrap_or(0) == 0;
                        let writer = arrow::csv::WriterBuilder::new()
                            .with_header(header)
                            .build(counting);
                        Box::new(Csv {
                            writer: Some(writer),
                            file: (synced, written),
                            path: path.clone(),
                        })
                    }
                    Format::Parquet => Box::new(Parquet {
                        writer: Some(
                            parquet::arrow::ArrowWriter::try_new(counting.inner, schema, None)
                                .map_err(|e| io_error(path, e))?,
                        ),
                        file: synced,
                        path: path.clone(),
                    }),
                })
            }
        }
    }

    /// Why this target cannot take part in checkpoints under `guarantee`,
    /// if it cannot.
    pub fn refuses(&self, guarantee: Guarantee) -> Option<Error> {
        match self {
            Target::Stdout if guarantee == Guarantee::ExactlyOnce => Some(
                Error::refused(
                    "stdout cannot take back what it printed, so after a crash the lines \
                     since the last checkpoint would be printed twice. Write to a file (jsonl \
                     or csv), or accept repeats",
                )
                .with_fix(Fix::AcceptRepeats),
            ),
            Target::Nats(n) if n.id_prefix.is_empty() && guarantee == Guarantee::ExactlyOnce => {
                Some(
                    Error::refused(format!(
                        "nats:{}: outside a distributed run (a nats source) a nats sink \
                         cannot tell a replay from new output, so after a crash what it \
                         published since the last checkpoint is published again. Accept \
                         repeats",
                        n.subject
                    ))
                    .with_fix(Fix::AcceptRepeats),
                )
            }
            Target::File {
                format: Format::Parquet,
                path,
            } => Some(
                Error::refused(format!(
                    "{}: Parquet files cannot be cut back to a checkpoint (their footer comes \
                     last), so they cannot be written with checkpoints yet. Write jsonl or \
                     csv, or run without checkpoints",
                    path.display()
                ))
                .with_fix(Fix::NoCheckpoints),
            ),
            _ => None,
        }
    }

    /// The target's name, for reports.
    pub fn describe(&self) -> String {
        match self {
            Target::Stdout => "stdout".into(),
            Target::File { path, format } => format!("{} ({})", path.display(), format.name()),
            Target::Nats(n) => format!("nats subject {}", n.subject),
        }
    }
}

/// Opens `path` to go on writing at `length`: what follows is cut off.
fn resume(path: &Path, length: u64) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| {
            Error::damaged(format!(
                "cannot reopen {} to resume from the checkpoint ({e}): it was moved or \
                 removed after the checkpoint",
                path.display()
            ))
        })?;
    let found = file.metadata().map(|m| m.len()).unwrap_or(0);
    if found < length {
        return Err(Error::damaged(format!(
            "{} has {found} bytes but the checkpoint wrote {length}: it was changed outside \
             this run",
            path.display()
        )));
    }
    if !crate::fault::on(Fault::SkipTruncate, path) {
        file.set_len(length).map_err(|e| {
            Error::output(format!(
                "cannot cut {} back to the checkpoint",
                path.display()
            ))
            .caused_by(e)
        })?;
    }
    let mut file = file;
    file.seek(SeekFrom::End(0)).map_err(|e| io_error(path, e))?;
    Ok(file)
}

/// Creates (or empties) the file at `path`, and the folders it needs, so
/// that they survive a power cut: each new directory entry is synced. A
/// checkpoint that later commits the file's length relies on it.
pub fn create_durably(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir_durably(dir)?;
    }
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    record(|| Event::Created(path.to_path_buf()));
    sync_parent(path)?;
    Ok(file)
}

/// Creates the folder `dir` and those above it that are missing, syncing
/// the folder that holds each new one.
pub fn create_dir_durably(dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::output(format!("cannot create the directory {}", dir.display())).caused_by(e)
    })?;
    for new in missing.iter().rev() {
        record(|| Event::Created(new.to_path_buf()));
        sync_parent(new)?;
    }
    Ok(())
}

/// Syncs the directory that holds `path`: its entry survives a power cut.
fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if crate::fault::on(Fault::SkipDirSync, path) {
        return Ok(());
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
        Error::output(format!("cannot sync the directory {}", dir.display())).caused_by(e)
    })?;
    record(|| Event::SyncedDir(dir.to_path_buf()));
    Ok(())
}

/// Waits until what was written to `file` is on disk.
fn sync_file(file: &File, path: &Path) -> Result<()> {
    file.sync_data().map_err(|e| io_error(path, e))?;
    record(|| Event::SyncedFile {
        path: path.to_path_buf(),
        length: file.metadata().map_or(0, |m| m.len()),
    });
    Ok(())
}

/// At the end of a run: flushed output is synced before the run may be
/// committed as completed (a power cut must not take its tail).
fn sync_at_end(file: &File, path: &Path) -> Result<()> {
    if crate::fault::on(Fault::SkipFinalSync, path) {
        return Ok(());
    }
    sync_file(file, path)
}

/// A file that counts the bytes written to it.
struct Counting {
    inner: File,
    written: Arc<AtomicU64>,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A file handle to make writes durable, and the count of bytes written.
type Synced = (File, Arc<AtomicU64>);

fn durable(synced: &Synced, path: &Path) -> Result<Durable> {
    let file = synced.0.try_clone().map_err(|e| io_error(path, e))?;
    Ok(Durable {
        length: synced.1.load(Ordering::Relaxed),
        file: Some((file, path.to_path_buf())),
        wait: None,
    })
}

struct JsonLines {
    out: Box<dyn Write + Send>,
    file: Option<Synced>,
    path: PathBuf,
}

impl RowWriter for JsonLines {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut self.out);
        writer
            .write(batch)
            .and_then(|()| writer.finish())
            .map_err(|e| io_error(&self.path, e))
    }
    fn finish(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| io_error(&self.path, e))?;
        match &self.file {
            Some((file, _)) => sync_at_end(file, &self.path),
            None => Ok(()),
        }
    }
    fn checkpoint(&mut self) -> Result<Durable> {
        self.out.flush().map_err(|e| io_error(&self.path, e))?;
        match &self.file {
            Some(synced) => durable(synced, &self.path),
            None => Ok(Durable::nothing()),
        }
    }
}

struct Csv {
    /// Arrow's CSV writer flushes into the file after every batch.
    writer: Option<arrow::csv::Writer<Counting>>,
    file: Synced,
    path: PathBuf,
}

impl RowWriter for Csv {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.writer {
            Some(writer) => writer.write(batch).map_err(|e| io_error(&self.path, e)),
            None => Err(Error::output(format!(
                "{} is already closed",
                self.path.display()
            ))),
        }
    }
    fn finish(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.take() {
            writer
                .into_inner()
                .flush()
                .map_err(|e| io_error(&self.path, e))?;
            sync_at_end(&self.file.0, &self.path)?;
        }
        Ok(())
    }
    fn checkpoint(&mut self) -> Result<Durable> {
        durable(&self.file, &self.path)
    }
}

struct Parquet {
    writer: Option<parquet::arrow::ArrowWriter<File>>,
    /// The same file, to sync once the footer is written.
    file: File,
    path: PathBuf,
}

impl RowWriter for Parquet {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.writer {
            Some(writer) => writer.write(batch).map_err(|e| io_error(&self.path, e)),
            None => Err(Error::output(format!(
                "{} is already closed",
                self.path.display()
            ))),
        }
    }
    fn finish(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(|e| io_error(&self.path, e))?;
            sync_at_end(&self.file, &self.path)?;
        }
        Ok(())
    }
    fn checkpoint(&mut self) -> Result<Durable> {
        Err(Error::refused(format!(
            "{}: Parquet sinks cannot take part in checkpoints",
            self.path.display()
        ))
        .with_fix(Fix::NoCheckpoints))
    }
}

/// Publishes rows as JSON records to a NATS subject through JetStream.
/// Acknowledgements are awaited at each checkpoint (what makes the output
/// durable) and whenever many are outstanding (bounded memory).
struct NatsWriter {
    client: sluice_nats::NatsClient,
    subject: String,
    id_prefix: String,
    /// Messages published so far, from the start of the partition: the
    /// output's "length" in a checkpoint.
    next: u64,
    /// Published and not yet acknowledged.
    acks: Vec<Published>,
    buf: Vec<u8>,
}

/// A message published and not yet acknowledged, with what it takes to
/// publish it again if the answer is lost (its id makes that safe).
struct Published {
    ack: sluice_nats::PublishAck,
    subject: String,
    payload: Vec<u8>,
    id: Option<String>,
}

/// Waits for the acknowledgements of `published`; a publish whose answer
/// failed (a failover) is sent again with its id until it is answered. It
/// gives up after 30 s without any answer: a failover on a loaded machine
/// answers nothing for a while, then everything in turn.
fn wait_published(client: &sluice_nats::NatsClient, published: Vec<Published>) -> Result<()> {
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
    let mut deadline = std::time::Instant::now() + PATIENCE;
    for p in published {
        let mut answer = sluice_nats::NatsClient::wait_ack(p.ack, &p.subject).map(|_| ());
        while let Err(error) = answer {
            let Some(id) =
                p.id.as_deref()
                    .filter(|_| std::time::Instant::now() < deadline)
            else {
                return Err(Error::from(error).context("nats sink"));
            };
            std::thread::sleep(std::time::Duration::from_millis(200));
            answer = client
                .publish_with_id(&p.subject, p.payload.clone(), id)
                .map(|_| ());
        }
        deadline = std::time::Instant::now() + PATIENCE;
    }
    Ok(())
}

/// The subjects a sink's `subject` stands for: `{field}` (a whole token)
/// becomes `*`, what a stream must capture.
pub fn subject_pattern(template: &str) -> String {
    template
        .split('.')
        .map(|t| {
            if t.starts_with('{') && t.ends_with('}') {
                "*"
            } else {
                t
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The field a sink's subject names with a `{field}` token, if it does.
pub fn subject_field(template: &str) -> Option<&str> {
    template
        .split('.')
        .find(|t| t.len() > 2 && t.starts_with('{') && t.ends_with('}'))
        .map(|t| &t[1..t.len() - 1])
}

/// The subject of each row of `batch` when `template` names a field
/// (`readings.{sensor}`); `None` for a plain subject. A null or empty value
/// becomes `_`, and characters a subject token cannot hold become `_`.
fn row_subjects(template: &str, batch: &RecordBatch) -> Result<Option<Vec<String>>> {
    let Some(field) = subject_field(template) else {
        return Ok(None);
    };
    let token = format!("{{{field}}}");
    let column = batch.column_by_name(field).ok_or_else(|| {
        Error::output(format!(
            "nats sink subject \"{template}\": the stream has no field `{field}`"
        ))
    })?;
    let options = arrow::util::display::FormatOptions::default();
    let formatter = arrow::util::display::ArrayFormatter::try_new(column.as_ref(), &options)
        .map_err(|e| Error::output(format!("nats sink subject \"{template}\"")).caused_by(e))?;
    Ok(Some(
        (0..batch.num_rows())
            .map(|row| {
                let mut value: String = if column.is_null(row) {
                    String::new()
                } else {
                    formatter
                        .value(row)
                        .to_string()
                        .chars()
                        .map(|c| {
                            if c.is_whitespace() || matches!(c, '.' | '*' | '>') {
                                '_'
                            } else {
                                c
                            }
                        })
                        .collect()
                };
                if value.is_empty() {
                    value.push('_');
                }
                template.replacen(&token, &value, 1)
            })
            .collect(),
    ))
}

/// Acknowledgements a NATS sink lets be outstanding before it waits
/// (bounded memory; the process's client allows many sinks this many).
const MAX_OUTSTANDING_ACKS: usize = 4096;

/// Messages a NATS sink publishes in one trip into the client's runtime.
const PUBLISH_SLICE: usize = 1024;

impl NatsWriter {
    fn open(target: &NatsTarget, length: Option<u64>) -> Result<Self> {
        let client = sluice_nats::NatsClient::shared(&target.url)?;
        if let Some(stream) = &target.stream {
            client
                .ensure_stream(
                    stream,
                    &[subject_pattern(&target.subject).as_str()],
                    target.replicas,
                )
                .map_err(|e| Error::from(e).context(format!("nats sink `{}`", target.subject)))?;
        }
        Ok(Self {
            client,
            subject: target.subject.clone(),
            id_prefix: target.id_prefix.clone(),
            next: length.unwrap_or(0),
            acks: Vec::new(),
            buf: Vec::new(),
        })
    }

    fn wait_acks(&mut self, keep: usize) -> Result<()> {
        let keep = keep.min(self.acks.len());
        let done: Vec<_> = self.acks.drain(..self.acks.len() - keep).collect();
        wait_published(&self.client, done)
    }
}

impl RowWriter for NatsWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.buf.clear();
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut self.buf);
        writer
            .write(batch)
            .and_then(|()| writer.finish())
            .map_err(|e| Error::output(format!("nats sink `{}`", self.subject)).caused_by(e))?;
        let subjects = row_subjects(&self.subject, batch)?;
        let mut messages = Vec::with_capacity(batch.num_rows());
        for (row, line) in self
            .buf
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let subject = subjects
                .as_ref()
                .map_or(self.subject.as_str(), |s| s[row].as_str());
            let id = (!self.id_prefix.is_empty())
                .then(|| format!("{}.{}", self.id_prefix, self.next + row as u64));
            messages.push((subject.to_string(), line.to_vec(), id));
        }
        // Slices of the batch in one trip each; through a failover, again
        // (the ids make a repeat harmless). The client lets a bounded number
        // of acknowledgements be awaited, so those outstanding are waited
        // for before they would pass it.
        for slice in messages.chunks(PUBLISH_SLICE) {
            if self.acks.len() + slice.len() > MAX_OUTSTANDING_ACKS {
                self.wait_acks(0)?;
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            let acks = loop {
                match self.client.publish_many(slice) {
                    Ok(acks) => break acks,
                    Err(e) if std::time::Instant::now() >= deadline => return Err(e.into()),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
                }
            };
            for (ack, (subject, payload, id)) in acks.into_iter().zip(slice.iter().cloned()) {
                self.acks.push(Published {
                    ack,
                    subject,
                    payload,
                    id,
                });
            }
        }
        self.next += messages.len() as u64;
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        self.wait_acks(0)
    }
    fn checkpoint(&mut self) -> Result<Durable> {
        let acks = std::mem::take(&mut self.acks);
        let client = self.client.clone();
        Ok(Durable::after(self.next, move || {
            wait_published(&client, acks)
        }))
    }
}

/// Writes nothing.
struct Discard;

impl RowWriter for Discard {
    fn write(&mut self, _batch: &RecordBatch) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn checkpoint(&mut self) -> Result<Durable> {
        Ok(Durable::nothing())
    }
}

fn io_error(path: &Path, error: impl Into<crate::error::BoxError>) -> Error {
    Error::output(format!("cannot write {}", path.display())).caused_by(error)
}

/// A sink of a named stream: writes its rows and counts them.
pub struct RowSink {
    writer: Box<dyn RowWriter>,
    emitted: Arc<AtomicU64>,
    checkpoint: Option<(Arc<Checkpointing>, String)>,
    /// Measures the latency of what it writes, for the dashboard.
    watch: Option<Arc<crate::dashboard::Watch>>,
    /// The run's accounting, for a sink of the input: it accepts every
    /// record it writes.
    judge: Option<Arc<crate::accounting::Accounting>>,
}

impl RowSink {
    /// A sink writing with `writer`, counting rows into `emitted`.
    pub fn new(writer: Box<dyn RowWriter>, emitted: Arc<AtomicU64>) -> Self {
        Self {
            writer,
            emitted,
            checkpoint: None,
            watch: None,
            judge: None,
        }
    }

    /// A sink of the input: tells `accounting` each record it writes is
    /// processed.
    pub fn judging(mut self, accounting: Arc<crate::accounting::Accounting>) -> Self {
        self.judge = Some(accounting);
        self
    }

    /// Tells `watch` how long after their read the rows it writes were
    /// written.
    pub fn with_watch(mut self, watch: Arc<crate::dashboard::Watch>) -> Self {
        self.watch = Some(watch);
        self
    }

    /// A sink that writes nothing: the end of a stream nobody reads.
    pub fn discard() -> Self {
        Self::new(Box::new(Discard), Arc::new(AtomicU64::new(0)))
    }

    /// Reports its length to `checkpointing` at every barrier, under `key`.
    pub fn with_checkpoints(mut self, checkpointing: Arc<Checkpointing>, key: String) -> Self {
        checkpointing.register();
        self.checkpoint = Some((checkpointing, key));
        self
    }
}

impl Sink<Rows> for RowSink {
    fn write(&mut self, batch: &mut Batch<Rows>) -> Result<(), BoxError> {
        for rows in batch.items() {
            if rows.is_empty() {
                continue;
            }
            self.writer.write(&rows.batch)?;
            self.emitted.fetch_add(rows.len() as u64, Ordering::Relaxed);
            if let Some(judge) = &self.judge {
                judge.accepted(rows.lines.values().iter().copied());
            }
            if let (Some(watch), Some(read_at)) = (&self.watch, rows.read_at) {
                watch.latency(read_at, rows.len());
            }
        }
        Ok(())
    }
    fn close(&mut self) -> Result<(), BoxError> {
        self.writer.finish().map_err(Into::into)
    }
    fn checkpoint(&mut self, barrier: sluice::Barrier) -> Result<(), BoxError> {
        if let Some((checkpointing, key)) = &self.checkpoint {
            let durable = self.writer.checkpoint()?;
            let (checkpointing, key) = (checkpointing.clone(), key.clone());
            // The sync waits for the disk: the dataflow goes on meanwhile
            // (what it writes next lies beyond the recorded length).
            std::thread::Builder::new()
                .name("sluice-sync".into())
                .spawn(move || {
                    let reported = durable.sync().and_then(|length| {
                        checkpointing.report(barrier.id, vec![(key, length.to_le_bytes().to_vec())])
                    });
                    if let Err(error) = reported {
                        checkpointing.fail(error);
                    }
                })
                .map_err(|e| {
                    Error::output("cannot start a thread to sync the output").caused_by(e)
                })?;
        }
        Ok(())
    }
}
