//! The http source: a server (axum, on a thread of its own) that takes
//! records POSTed as JSON lines or a JSON array, decodes them into the
//! source's schema and queues them for the dataflow.
//!
//! A request is answered `202 Accepted` with how many records were taken
//! and refused (and why): with checkpoints, once a checkpoint that holds
//! its records has committed (they survive a crash); without, once they are
//! queued. A request sent again with the `Idempotency-Key` of one taken
//! (the last 10,000 are remembered, in checkpoints too) is answered as the
//! first was, without taking its records again. `429 Too Many Requests` with `Retry-After` when `max_pending`
//! records wait already, `413` over `max_body` bytes, `401` without the
//! bearer token, `400` for a body that is not JSON.

use super::HttpSourcePlan;
use crate::connectors::replay::{push, Replayable, SourceCounters};
use crate::error::{Error, Result};
use crate::format::{DeadLetter, TextDecoder};
use crate::rows::Rows;
use crate::side_outputs::ReservedHandle;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sluice::{Batch, BoxError, Source, SourceStatus};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Reasons told in a response, at most.
const REASONS: usize = 10;

/// The `Idempotency-Key`s remembered (in checkpoints too): a request sent
/// again with one of them is answered without taking its records again.
const KEPT_KEYS: usize = 10_000;

/// The records of one request, decoded; counted when emitted (a request
/// queued when the run stops was never read).
struct Chunk {
    rows: Option<Rows>,
    dead: Vec<DeadLetter>,
    /// The number of records taken so far, this request's included.
    end: u64,
    /// Records in the request.
    records: u64,
    /// Its body's size.
    bytes: u64,
}

/// What the server and the source share.
struct Shared {
    state: Mutex<Queue>,
    /// Signalled when a chunk is queued.
    arrived: Condvar,
    decoder: Mutex<TextDecoder>,
    counters: Arc<SourceCounters>,
    plan: HttpSourcePlan,
    /// Answers wait for a checkpoint.
    durable: bool,
}

struct Queue {
    chunks: VecDeque<Chunk>,
    /// Rows queued and not yet emitted.
    pending: usize,
    /// Records taken (numbered from 1), from the start of the input.
    taken: u64,
    /// Answers waiting until this many records are durable.
    waiting: Vec<(u64, oneshot::Sender<()>)>,
    /// When a request last came or was answered.
    active_at: Instant,
    /// The idempotency keys of requests taken, with the number of records
    /// taken up to each, oldest first.
    keys: VecDeque<(String, u64)>,
    /// Records a committed checkpoint holds.
    durable: u64,
    /// The input has ended (or the source is gone): requests get 503.
    closed: bool,
}

impl Queue {
    /// The records taken up to the request of `key`, if it was taken.
    fn taken_with(&self, key: &str) -> Option<u64> {
        self.keys
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, end)| *end)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running http source.
pub(crate) struct HttpSource {
    shared: Arc<Shared>,
    reserved: ReservedHandle,
    /// Records emitted, from the start of the input.
    emitted: u64,
    /// The positions of the checkpoints taken and not yet committed.
    positions: Mutex<VecDeque<u64>>,
    interval: Duration,
    /// The socket, until the server starts on the first poll.
    listener: Option<std::net::TcpListener>,
    /// Stops the server when dropped.
    stop: Option<oneshot::Sender<()>>,
}

impl HttpSource {
    pub(crate) fn open(
        plan: &HttpSourcePlan,
        decoder: TextDecoder,
        counters: Arc<SourceCounters>,
        reserved: ReservedHandle,
        durable: bool,
        interval: Duration,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(Queue {
                chunks: VecDeque::new(),
                pending: 0,
                taken: 0,
                waiting: Vec::new(),
                active_at: Instant::now(),
                keys: VecDeque::new(),
                durable: 0,
                closed: false,
            }),
            arrived: Condvar::new(),
            decoder: Mutex::new(decoder),
            counters,
            plan: plan.clone(),
            durable,
        });
        let listener = std::net::TcpListener::bind(plan.listen).map_err(|e| {
            Error::input(format!("http source: cannot listen on {}", plan.listen)).caused_by(e)
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::input("http source").caused_by(e))?;
        Ok(Self {
            shared,
            reserved,
            emitted: 0,
            positions: Mutex::new(VecDeque::new()),
            interval,
            listener: Some(listener),
            stop: None,
        })
    }

    /// Starts serving on the first poll: after a resumed run has sought
    /// to its position (the records and keys a checkpoint holds).
    fn serve(&mut self) -> Result<()> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let plan = &self.shared.plan;
        let app = axum::Router::new()
            .route(&plan.path, axum::routing::post(ingest))
            .layer(DefaultBodyLimit::max(plan.max_body))
            .with_state(self.shared.clone());
        std::thread::Builder::new()
            .name("sluice-http-source".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => return eprintln!("error: http source: {e}"),
                };
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .map_err(|e| Error::input("http source: cannot start its thread").caused_by(e))?;
        self.stop = Some(stop);
        // Idle time counts from when requests can come.
        lock(&self.shared.state).active_at = Instant::now();
        Ok(())
    }

    /// Takes no more requests; those waiting are answered 503.
    fn close(&self) {
        let mut state = lock(&self.shared.state);
        state.closed = true;
        state.waiting.clear();
    }
}

impl Drop for HttpSource {
    fn drop(&mut self) {
        self.close();
    }
}

/// `POST {path}`: decodes and queues the records of a request.
async fn ingest(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(token) = &shared.plan.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is needed: Authorization: Bearer TOKEN\n",
            )
                .into_response();
        }
    }
    if lock(&shared.state).closed {
        return stopped();
    }
    if lock(&shared.state).pending >= shared.plan.max_pending {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "too many records wait to be processed: send again later\n",
        )
            .into_response();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if let Some(key) = &key {
        let repeat = {
            let mut state = lock(&shared.state);
            if state.closed {
                return stopped();
            }
            state.taken_with(key).map(|end| {
                state.active_at = Instant::now();
                let durable = !shared.durable || end <= state.durable;
                (!durable).then(|| {
                    let (send, receive) = oneshot::channel();
                    state.waiting.push((end, send));
                    receive
                })
            })
        };
        if let Some(wait) = repeat {
            if let Some(wait) = wait {
                if wait.await.is_err() {
                    return stopped();
                }
            }
            let answer = serde_json::json!({"accepted": 0, "refused": 0, "repeated": true});
            return (
                StatusCode::ACCEPTED,
                [(header::CONTENT_TYPE, "application/json")],
                format!("{answer}\n"),
            )
                .into_response();
        }
    }
    let (region, lines) = match records(&body) {
        Ok(r) => r,
        Err(why) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    };
    let (answer, wait) = {
        // One request at a time: records are numbered in the order they
        // are queued.
        let mut decoder = lock(&shared.decoder);
        let mut state = lock(&shared.state);
        let first = state.taken + 1;
        let numbered: Vec<(u64, Range<usize>)> = lines
            .into_iter()
            .enumerate()
            .map(|(i, range)| (first + i as u64, range))
            .collect();
        if state.closed {
            return stopped();
        }
        let decoded = decoder.decode(&region, &numbered);
        state.taken += numbered.len() as u64;
        let taken = decoded.rows.as_ref().map_or(0, Rows::len);
        let answer = serde_json::json!({
            "accepted": taken,
            "refused": decoded.dead.len(),
            "reasons": decoded.dead.iter().take(REASONS)
                .map(|d| format!("record {}: {}", d.line - first, d.reason))
                .collect::<Vec<_>>(),
        });
        state.pending += taken;
        let end = state.taken;
        state.chunks.push_back(Chunk {
            rows: decoded.rows,
            dead: decoded.dead,
            end,
            records: numbered.len() as u64,
            bytes: body.len() as u64,
        });
        state.active_at = Instant::now();
        if let Some(key) = key {
            state.keys.push_back((key, end));
            if state.keys.len() > KEPT_KEYS {
                state.keys.pop_front();
            }
        }
        let early = crate::fault::on(
            crate::fault::Fault::HttpAnswerEarly,
            std::path::Path::new("http"),
        );
        let wait = (shared.durable && !early).then(|| {
            let (send, receive) = oneshot::channel();
            state.waiting.push((end, send));
            receive
        });
        shared.arrived.notify_one();
        (answer, wait)
    };
    if let Some(wait) = wait {
        if wait.await.is_err() {
            return stopped();
        }
    }
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{answer}\n"),
    )
        .into_response()
}

/// The answer to a request whose records a stopped pipeline had not made
/// durable.
fn stopped() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the pipeline stopped before these records were made durable: send them again\n",
    )
        .into_response()
}

/// The records of a body as JSON lines: the body itself, or a JSON
/// array's elements one per line; the byte range of each non-blank line.
fn records(body: &[u8]) -> std::result::Result<(Vec<u8>, Vec<Range<usize>>), String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let region: Vec<u8> = if first == Some(&b'[') {
        let items: Vec<serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| format!("the body starts a JSON array but is not one: {e}"))?;
        let mut region = Vec::new();
        for item in items {
            region.extend_from_slice(item.to_string().as_bytes());
            region.push(b'\n');
        }
        region
    } else {
        body.to_vec()
    };
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, byte) in region.iter().enumerate() {
        if *byte == b'\n' {
            let line = start..i;
            if region[line.clone()]
                .iter()
                .any(|b| !b.is_ascii_whitespace())
            {
                lines.push(line);
            }
            start = i + 1;
        }
    }
    if region[start..].iter().any(|b| !b.is_ascii_whitespace()) {
        lines.push(start..region.len());
    }
    Ok((region, lines))
}

impl Source<Rows> for HttpSource {
    fn poll(&mut self, out: &mut Batch<Rows>, max: usize) -> Result<SourceStatus, BoxError> {
        self.serve()?;
        let mut state = lock(&self.shared.state);
        if state.chunks.is_empty() {
            let idle_end = self.shared.plan.end_after_idle;
            if let Some(idle) = idle_end {
                if state.waiting.is_empty() && state.active_at.elapsed() >= idle {
                    state.closed = true;
                    return Ok(SourceStatus::Exhausted);
                }
            }
            state = self
                .shared
                .arrived
                .wait_timeout(state, self.interval)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let mut rows = 0;
        let mut dead = Vec::new();
        let counters = &self.shared.counters;
        while rows < max.max(1) {
            let Some(chunk) = state.chunks.pop_front() else {
                break;
            };
            let n = chunk.rows.as_ref().map_or(0, Rows::len);
            state.pending -= n;
            rows += n;
            self.emitted = chunk.end;
            counters.add_read(chunk.records);
            counters.add_bytes(chunk.bytes);
            counters.decoded_into(chunk.rows.as_ref(), &chunk.dead);
            dead.extend(chunk.dead);
            if let Some(r) = chunk.rows {
                push(out, r);
            }
        }
        drop(state);
        self.reserved.dead(&dead);
        Ok(if out.is_empty() {
            SourceStatus::Idle
        } else {
            SourceStatus::Ready
        })
    }

    /// A poll waits for requests (up to the batch interval).
    fn blocking(&self) -> bool {
        true
    }
}

impl Replayable for HttpSource {
    /// Records emitted so far. A request is not kept once emitted: a
    /// recovery resumes with the records its checkpoint holds, and those
    /// taken after it were never answered 202, so their senders send them
    /// again.
    fn position(&self) -> serde_json::Value {
        lock(&self.positions).push_back(self.emitted);
        let state = lock(&self.shared.state);
        let keys: Vec<&(String, u64)> = state
            .keys
            .iter()
            .filter(|(_, end)| *end <= self.emitted)
            .collect();
        serde_json::json!({ "records": self.emitted, "keys": keys })
    }

    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        let records = position["records"].as_u64().ok_or_else(|| {
            Error::damaged(format!(
                "an http source position without records: {position}"
            ))
        })?;
        let keys: VecDeque<(String, u64)> = serde_json::from_value(position["keys"].clone())
            .map_err(|e| {
                Error::damaged(format!("an http source position's keys are damaged ({e})"))
            })?;
        self.emitted = records;
        let mut state = lock(&self.shared.state);
        state.taken = records;
        state.durable = records;
        state.keys = keys;
        Ok(())
    }

    fn release_reserved(&self) {
        self.reserved.release();
    }

    fn committed(&mut self) -> Result<()> {
        let durable = lock(&self.positions).pop_front();
        if let Some(durable) = durable {
            self.answer_durable(durable);
        }
        Ok(())
    }
}

impl HttpSource {
    /// Answers the requests whose records the checkpoint just committed
    /// holds.
    fn answer_durable(&mut self, durable: u64) {
        let mut state = lock(&self.shared.state);
        state.durable = durable;
        let waiting = std::mem::take(&mut state.waiting);
        let before = waiting.len();
        for (end, send) in waiting {
            if end <= durable {
                let _ = send.send(());
            } else {
                state.waiting.push((end, send));
            }
        }
        if state.waiting.len() < before {
            state.active_at = Instant::now();
        }
    }
}
