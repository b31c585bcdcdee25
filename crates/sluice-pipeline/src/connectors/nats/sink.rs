//! The nats sink: rows published as JSON records with message ids that a
//! replay repeats, acknowledgements awaited at each checkpoint.

use crate::error::Error;
use crate::error::Result;
use crate::output::{Durable, RowWriter};
use arrow::array::RecordBatch;

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

/// Publishes rows as JSON records to a NATS subject through JetStream.
/// Acknowledgements are awaited at each checkpoint (what makes the output
/// durable) and whenever many are outstanding (bounded memory).
pub(crate) struct NatsWriter {
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
    pub(crate) fn open(target: &NatsTarget, length: Option<u64>) -> Result<Self> {
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
