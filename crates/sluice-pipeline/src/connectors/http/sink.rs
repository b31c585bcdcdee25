//! The http sink's writer: rows as JSON, POSTed in requests of
//! `batch_rows`, each with an `Idempotency-Key` that names its first row
//! (counted from the start of the run, so a replay after a crash sends the
//! same keys for the same rows); failed requests tried again with backoff,
//! and their rows sent to `dead_letter` once the retries run out.

use super::HttpTarget;
use crate::error::{Error, Result};
use crate::format::DeadLetter;
use crate::output::{Durable, RowWriter};
use crate::side_outputs::Reserved;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use std::sync::Arc;
use std::time::Duration;

/// The longest wait between two tries of a request.
const LONGEST_BACKOFF: Duration = Duration::from_secs(10);
/// The longest `Retry-After` obeyed.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(60);

pub(crate) struct HttpWriter {
    target: HttpTarget,
    agent: ureq::Agent,
    /// Where rows given up on go; `None` for a sink of `dead_letter` or
    /// `late` itself, which fails instead.
    dead_letters: Option<Arc<Reserved>>,
    /// Rows handed to the sink so far: the number of the next row, and
    /// the sink's length in a checkpoint.
    next: u64,
    /// Dead letters held until the next checkpoint.
    gave_up: Vec<DeadLetter>,
    /// Rows (JSON) not yet sent: a request takes `batch_rows` of them,
    /// whatever the batches they came in; fewer at a checkpoint, at the
    /// end, and when the oldest has waited `FLUSH_INTERVAL`.
    held: Vec<Vec<u8>>,
    held_since: std::time::Instant,
    buf: Vec<u8>,
}

/// How long rows wait for a request to fill.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

impl HttpWriter {
    pub(crate) fn open(
        target: &HttpTarget,
        _schema: SchemaRef,
        length: Option<u64>,
        dead_letters: Option<Arc<Reserved>>,
    ) -> Result<Self> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(target.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self {
            target: target.clone(),
            agent,
            dead_letters,
            next: if crate::fault::on(
                crate::fault::Fault::HttpSinkRenumber,
                std::path::Path::new("http"),
            ) {
                0
            } else {
                length.unwrap_or(0)
            },
            gave_up: Vec::new(),
            held: Vec::new(),
            held_since: std::time::Instant::now(),
            buf: Vec::new(),
        })
    }

    /// POSTs `rows` (JSON lines), whose first is row `first`; tries again
    /// through failures that may pass. The reason it gave up, if it did.
    fn send(&self, rows: &[&[u8]], first: u64) -> Option<String> {
        let mut body = Vec::new();
        if self.target.lines {
            for row in rows {
                body.extend_from_slice(row);
                body.push(b'\n');
            }
        } else {
            body.push(b'[');
            for (i, row) in rows.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(row);
            }
            body.push(b']');
        }
        let content_type = if self.target.lines {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        // A request's key names its rows: a replay that groups them
        // otherwise sends other keys (repeats, never losses).
        let key = match rows.len() {
            1 => format!("{}-{first}", self.target.id),
            n => format!("{}-{first}-{}", self.target.id, first + n as u64 - 1),
        };
        let mut backoff = Duration::from_millis(100);
        let mut reason = String::new();
        for attempt in 0..=self.target.retries {
            if attempt > 0 {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(LONGEST_BACKOFF);
            }
            let mut request = self
                .agent
                .post(&self.target.url)
                .header("Content-Type", content_type)
                .header("Idempotency-Key", &key);
            for (name, value) in &self.target.headers {
                request = request.header(name, value);
            }
            match request.send(&body[..]) {
                Ok(response) if response.status().is_success() => return None,
                Ok(mut response) => {
                    let status = response.status();
                    let text = response
                        .body_mut()
                        .with_config()
                        .limit(512)
                        .read_to_string()
                        .unwrap_or_default();
                    reason = format!("HTTP {status}: {}", text.trim());
                    let again = status.is_server_error()
                        || status == ureq::http::StatusCode::TOO_MANY_REQUESTS
                        || status == ureq::http::StatusCode::REQUEST_TIMEOUT;
                    if !again {
                        return Some(reason);
                    }
                    if let Some(wait) = retry_after(&response) {
                        backoff = wait.min(LONGEST_RETRY_AFTER);
                    }
                }
                Err(e) => reason = e.to_string(),
            }
        }
        Some(format!(
            "{reason} (gave up after {} tries)",
            self.target.retries + 1
        ))
    }

    /// Sends the first `n` rows held, `batch_rows` a request; the rows of
    /// a request given up on become dead letters.
    fn send_held(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let rows: Vec<Vec<u8>> = self.held.drain(..n).collect();
        // The rows left came after those sent: their wait starts now.
        self.held_since = std::time::Instant::now();
        for request in rows.chunks(self.target.batch_rows) {
            let slices: Vec<&[u8]> = request.iter().map(Vec::as_slice).collect();
            if let Some(reason) = self.send(&slices, self.next) {
                let origin = format!("sink http:{}", self.target.url);
                for (i, row) in request.iter().enumerate() {
                    self.gave_up.push(DeadLetter {
                        origin: origin.clone(),
                        line: self.next + i as u64,
                        reason: reason.clone(),
                        record: String::from_utf8_lossy(row).into_owned(),
                    });
                }
            }
            self.next += request.len() as u64;
        }
    }

    /// Hands the dead letters held to `dead_letter`.
    fn release(&mut self) -> Result<()> {
        if self.gave_up.is_empty() {
            return Ok(());
        }
        let letters = std::mem::take(&mut self.gave_up);
        match &self.dead_letters {
            Some(reserved) => {
                reserved.dead_from_sink(&letters);
                Ok(())
            }
            None => Err(Error::output(format!(
                "http sink {}: {} rows were refused ({}), and a sink of a reserved stream \
                 has no dead letters of its own",
                self.target.url,
                letters.len(),
                letters[0].reason
            ))),
        }
    }
}

/// A response's `Retry-After` in seconds, if it gives one.
fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl RowWriter for HttpWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.buf.clear();
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut self.buf);
        writer
            .write(batch)
            .and_then(|()| writer.finish())
            .map_err(|e| Error::output(format!("http sink {}", self.target.url)).caused_by(e))?;
        if self.held.is_empty() {
            self.held_since = std::time::Instant::now();
        }
        self.held.extend(
            self.buf
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
        let full = self.held.len() / self.target.batch_rows * self.target.batch_rows;
        self.send_held(full);
        if !self.held.is_empty() && self.held_since.elapsed() >= FLUSH_INTERVAL {
            self.send_held(self.held.len());
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.send_held(self.held.len());
        self.release()
    }

    fn checkpoint(&mut self) -> Result<Durable> {
        self.send_held(self.held.len());
        self.release()?;
        Ok(Durable::written(self.next))
    }
}
