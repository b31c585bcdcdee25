//! A NATS connection for synchronous threads: async-nats on a runtime of
//! its own, each call blocking the caller until the server has answered.

use crate::{NatsError, Result};
use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer},
    stream::{Config as StreamConfig, StorageType, SubjectTransform},
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The runtime every client of the process shares: two threads are
/// plenty for network I/O, and the engine's threads stay free for compute.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-nats")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the NATS client's runtime: {e}"))
    })
}

/// A connection to a NATS server or cluster, with JetStream. Cloning gives
/// another handle to the same connection.
#[derive(Clone)]
pub struct NatsClient {
    client: async_nats::Client,
    js: jetstream::Context,
    url: String,
}

impl std::fmt::Debug for NatsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsClient")
            .field("url", &self.url)
            .finish()
    }
}

/// Acknowledgements of publishes the process may await at once.
const MAX_ACKS_IN_FLIGHT: usize = 1 << 20;

/// Messages one pull request asks for.
const PULL_BATCH: usize = 2048;

/// A JetStream stream whose subjects are split into partitions by key:
/// producers publish to `subject` (say `readings.*`, the `*` being the
/// key); the stream stores each message under `prefix.P.key`, where `P`
/// is `partition(partitions)` of the key (a subject transform, so the
/// server does the hashing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionedStream {
    /// The stream's name.
    pub name: String,
    /// What producers publish to: tokens and one `*`, the key.
    pub subject: String,
    /// How many partitions.
    pub partitions: u32,
    /// Copies of each message in a cluster (1, 3 or 5).
    pub replicas: usize,
}

impl PartitionedStream {
    /// Checks the subject: one `*` token, the key, and no `>`.
    pub fn validate(&self) -> Result<()> {
        let tokens: Vec<&str> = self.subject.split('.').collect();
        let stars = tokens.iter().filter(|t| **t == "*").count();
        if stars != 1 || tokens.contains(&">") || tokens.iter().any(|t| t.is_empty()) {
            return Err(NatsError::Mismatch(format!(
                "subject \"{}\" must have exactly one `*` token, the key (say \"readings.*\"), \
                 and no `>`",
                self.subject
            )));
        }
        if self.partitions == 0 || self.partitions > 1024 {
            return Err(NatsError::Mismatch(format!(
                "partitions = {} must be between 1 and 1024",
                self.partitions
            )));
        }
        Ok(())
    }

    /// Where the stream stores the messages of `partition`: the subject
    /// with its `*` replaced by `P.*`.
    pub fn partition_filter(&self, partition: u32) -> String {
        self.subject.replacen('*', &format!("{partition}.*"), 1)
    }

    fn transform(&self) -> SubjectTransform {
        SubjectTransform {
            source: self.subject.clone(),
            destination: self.subject.replacen(
                '*',
                &format!(
                    "{{{{partition({},1)}}}}.{{{{wildcard(1)}}}}",
                    self.partitions
                ),
                1,
            ),
        }
    }
}

/// A message read from a stream.
pub struct Fetched {
    /// Its sequence number in the stream.
    pub sequence: u64,
    /// Its subject as stored.
    pub subject: String,
    /// Its payload.
    pub payload: bytes::Bytes,
    /// When the stream stored it, in epoch milliseconds.
    pub published_ms: i64,
    /// Its delivery's number in the consumer: deliveries are numbered
    /// 1, 2, 3... so a gap means a delivery was lost in transit.
    pub consumer_sequence: u64,
    /// Messages of the consumer's filter after this one, when it was
    /// delivered.
    pub pending: u64,
    message: jetstream::Message,
}

impl Fetched {
    /// Acknowledges this message and, with the reader's ack-all policy,
    /// every message delivered before it.
    pub fn ack(&self) -> Result<()> {
        runtime()
            .block_on(self.message.ack())
            .map_err(|e| NatsError::request(format!("ack of message {}", self.sequence), e))
    }

    /// Tells the server the message is still being worked on, so it is not
    /// sent to another consumer meanwhile.
    pub fn in_progress(&self) -> Result<()> {
        runtime()
            .block_on(
                self.message
                    .ack_with(async_nats::jetstream::AckKind::Progress),
            )
            .map_err(|e| NatsError::request(format!("progress of message {}", self.sequence), e))
    }
}

/// A durable pull consumer on one partition of a stream, and the messages
/// it delivers.
pub struct PullReader {
    consumer: PullConsumer,
    /// Always `Some` until dropped (its drop needs the runtime).
    messages: Option<jetstream::consumer::pull::Stream>,
    what: String,
}

impl Drop for PullReader {
    fn drop(&mut self) {
        // The message stream stops its pull task when dropped, which must
        // happen inside the runtime.
        let _inside = runtime().enter();
        drop(self.messages.take());
    }
}

impl NatsClient {
    /// Connects to `url`: one server, or several separated by commas (a
    /// cluster; the client fails over between them).
    pub fn connect(url: &str) -> Result<Self> {
        let servers: Vec<String> = url.split(',').map(|s| s.trim().to_string()).collect();
        let client = runtime()
            .block_on(
                async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(5))
                    .name("sluice")
                    .connect(servers),
            )
            .map_err(|e| NatsError::Connect {
                url: url.to_string(),
                error: e.to_string(),
            })?;
        // Every sink and bus topic of the process shares the context, each
        // with up to a few thousand acknowledgements outstanding: the
        // context's own bound (5,000 by default) would stall them all.
        let js = runtime().block_on(async {
            jetstream::ContextBuilder::new()
                .max_ack_inflight(MAX_ACKS_IN_FLIGHT)
                .build(client.clone())
        });
        Ok(Self {
            client,
            js,
            url: url.to_string(),
        })
    }

    /// The process's connection to `url`, made on first use: the sources,
    /// sinks and leases of a run share one connection per server list.
    pub fn shared(url: &str) -> Result<Self> {
        static CLIENTS: OnceLock<Mutex<HashMap<String, NatsClient>>> = OnceLock::new();
        let clients = CLIENTS.get_or_init(Default::default);
        let mut clients = clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(url) {
            return Ok(client.clone());
        }
        let client = Self::connect(url)?;
        clients.insert(url.to_string(), client.clone());
        Ok(client)
    }

    /// The servers this client was asked to connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `future` on the client's runtime and waits for it.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        runtime().block_on(future)
    }

    /// The JetStream context (for what this wrapper does not cover).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The core client.
    pub fn core(&self) -> &async_nats::Client {
        &self.client
    }

    /// Makes sure stream `name` exists and captures `subjects`; creates it
    /// (with `replicas` copies and a two-minute duplicate window) if not.
    pub fn ensure_stream(&self, name: &str, subjects: &[&str], replicas: usize) -> Result<()> {
        let config = StreamConfig {
            name: name.to_string(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            num_replicas: replicas.max(1),
            storage: StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let mut found = self.create_or_get(config)?;
        let missing: Vec<&&str> = subjects
            .iter()
            .filter(|s| !found.subjects.iter().any(|f| f == **s))
            .collect();
        if !missing.is_empty() {
            // Another sink of the same stream: add its subject.
            found.subjects.extend(missing.iter().map(|s| s.to_string()));
            self.block_on(self.js.update_stream(found.clone()))
                .map_err(|e| {
                    NatsError::request(format!("add subjects {missing:?} to stream `{name}`"), e)
                })?;
        }
        Ok(())
    }

    /// Makes sure `stream` exists with its partitioning transform; creates
    /// it if not. An existing stream with another transform is an error:
    /// its partitions would not be the ones the pipeline reads.
    pub fn ensure_partitioned_stream(&self, stream: &PartitionedStream) -> Result<()> {
        stream.validate()?;
        let transform = stream.transform();
        let config = StreamConfig {
            name: stream.name.clone(),
            subjects: vec![stream.subject.clone()],
            subject_transform: Some(transform.clone()),
            num_replicas: stream.replicas.max(1),
            storage: StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let found = self.create_or_get(config)?;
        if found.subject_transform.as_ref() != Some(&transform) {
            return Err(NatsError::Mismatch(format!(
                "stream `{}` exists with subject transform {:?}, the pipeline needs \"{}\" -> \
                 \"{}\" ({} partitions): delete the stream or name another one",
                stream.name,
                found
                    .subject_transform
                    .as_ref()
                    .map(|t| format!("{} -> {}", t.source, t.destination)),
                transform.source,
                transform.destination,
                stream.partitions
            )));
        }
        Ok(())
    }

    fn create_or_get(&self, config: StreamConfig) -> Result<StreamConfig> {
        let name = config.name.clone();
        self.block_on(async {
            // In a cluster just started, the JetStream leader may still be
            // elected: try for a while.
            let mut last = String::new();
            // A stream just created in a cluster takes publishes only once
            // its replicas have elected a leader: wait for that too, so that
            // whoever set the stream up can publish to it at once.
            for _ in 0..200 {
                match self.js.get_or_create_stream(config.clone()).await {
                    Ok(mut stream) => match stream.info().await {
                        Ok(info) if has_leader(info) => return Ok(info.config.clone()),
                        Ok(_) => last = "the stream has no leader yet".to_string(),
                        Err(e) => last = e.to_string(),
                    },
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(NatsError::request(format!("create stream `{name}`"), last))
        })
    }

    /// Stream `name`.
    async fn stream(&self, name: &str) -> Result<async_nats::jetstream::stream::Stream> {
        self.js
            .get_stream(name)
            .await
            .map_err(|e| NatsError::request(format!("stream `{name}`"), e))
    }

    /// The current information of stream `name` (its configuration and state).
    async fn stream_info(&self, name: &str) -> Result<async_nats::jetstream::stream::Info> {
        let mut stream = self.stream(name).await?;
        let info = stream
            .info()
            .await
            .map_err(|e| NatsError::request(format!("info of stream `{name}`"), e))?;
        Ok(info.clone())
    }

    /// The duplicate window of the stream that captures `subject`: how long
    /// it remembers message ids.
    pub fn duplicate_window(&self, subject: &str) -> Result<Duration> {
        self.block_on(async {
            let name = self
                .js
                .stream_by_subject(subject.to_string())
                .await
                .map_err(|e| {
                    NatsError::request(
                        format!("the stream that captures `{subject}` (is there one?)"),
                        e,
                    )
                })?;
            Ok(self.stream_info(&name).await?.config.duplicate_window)
        })
    }

    /// The last sequence number of `stream` (0 when it is empty).
    pub fn last_sequence(&self, stream: &str) -> Result<u64> {
        self.block_on(async { Ok(self.stream_info(stream).await?.state.last_sequence) })
    }

    /// How many messages `stream` holds.
    pub fn stream_messages(&self, stream: &str) -> Result<u64> {
        self.block_on(async { Ok(self.stream_info(stream).await?.state.messages) })
    }

    /// Publishes to JetStream with message id `id` and waits for the
    /// stream's acknowledgement; true if the stream had it already (a
    /// duplicate within its window).
    pub fn publish_with_id(&self, subject: &str, payload: Vec<u8>, id: &str) -> Result<bool> {
        let ack = self.publish_async(subject, payload, Some(id))?;
        Self::wait_ack(ack, subject)
    }

    /// Publishes to JetStream without waiting; the returned future gives
    /// the stream's acknowledgement (see [`NatsClient::wait_ack`]).
    pub fn publish_async(
        &self,
        subject: &str,
        payload: Vec<u8>,
        id: Option<&str>,
    ) -> Result<jetstream::context::PublishAckFuture> {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = id {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        }
        self.block_on(
            self.js
                .publish_with_headers(subject.to_string(), headers, payload.into()),
        )
        .map_err(|e| NatsError::request(format!("publish to `{subject}`"), e))
    }

    /// Publishes many messages to JetStream (subject, payload, id) in one
    /// trip into the runtime; their acknowledgements, in order, to wait for.
    pub fn publish_many(
        &self,
        messages: &[(String, Vec<u8>, Option<String>)],
    ) -> Result<Vec<jetstream::context::PublishAckFuture>> {
        self.block_on(async {
            let mut acks = Vec::with_capacity(messages.len());
            for (subject, payload, id) in messages {
                let mut headers = async_nats::HeaderMap::new();
                if let Some(id) = id {
                    headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                }
                let ack = self
                    .js
                    .publish_with_headers(subject.clone(), headers, payload.clone().into())
                    .await
                    .map_err(|e| NatsError::request(format!("publish to `{subject}`"), e))?;
                acks.push(ack);
            }
            Ok(acks)
        })
    }

    /// Waits for one acknowledgement; true if it was a duplicate.
    pub fn wait_ack(ack: jetstream::context::PublishAckFuture, subject: &str) -> Result<bool> {
        runtime()
            .block_on(async { ack.await })
            .map(|ack| ack.duplicate)
            .map_err(|e| NatsError::request(format!("publish to `{subject}`"), e))
    }

    /// Waits for many acknowledgements; how many were duplicates.
    pub fn wait_acks(
        acks: Vec<jetstream::context::PublishAckFuture>,
        subject: &str,
    ) -> Result<u64> {
        runtime().block_on(async {
            let mut duplicates = 0;
            for ack in acks {
                let ack = ack
                    .await
                    .map_err(|e| NatsError::request(format!("publish to `{subject}`"), e))?;
                duplicates += u64::from(ack.duplicate);
            }
            Ok(duplicates)
        })
    }

    /// Publishes on core NATS (no stream, no acknowledgement).
    pub fn publish_core(&self, subject: &str, payload: Vec<u8>) -> Result<()> {
        self.block_on(self.client.publish(subject.to_string(), payload.into()))
            .map_err(|e| NatsError::request(format!("publish to `{subject}`"), e))
    }

    /// Durable pull consumer `durable` on `stream` (made if absent, shared
    /// by every process that opens it: each message goes to one of them),
    /// reading `filter` from the stream's start, each message acknowledged
    /// on its own; unacknowledged ones are sent again after `ack_wait`.
    pub fn shared_reader(
        &self,
        stream: &str,
        durable: &str,
        filter: &str,
        ack_wait: Duration,
        max_ack_pending: i64,
    ) -> Result<PullReader> {
        let what = format!("consumer `{durable}` on stream `{stream}`");
        self.block_on(async {
            let s = self.stream(stream).await?;
            let consumer: PullConsumer = s
                .get_or_create_consumer(
                    durable,
                    pull::Config {
                        durable_name: Some(durable.to_string()),
                        filter_subject: filter.to_string(),
                        deliver_policy: DeliverPolicy::All,
                        ack_policy: AckPolicy::Explicit,
                        ack_wait,
                        max_ack_pending,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| NatsError::request(format!("create {what}"), e))?;
            PullReader::start(consumer, what, max_ack_pending).await
        })
    }

    /// Messages consumer `durable` of `stream` has not delivered yet, and
    /// those delivered and not yet acknowledged.
    pub fn consumer_pending(&self, stream: &str, durable: &str) -> Result<(u64, u64)> {
        self.block_on(async {
            let s = self.stream(stream).await?;
            let mut consumer: PullConsumer = s
                .get_consumer(durable)
                .await
                .map_err(|e| NatsError::request(format!("consumer `{durable}`"), e))?;
            let info = consumer
                .info()
                .await
                .map_err(|e| NatsError::request(format!("consumer `{durable}`"), e))?;
            Ok((info.num_pending, info.num_ack_pending as u64))
        })
    }

    /// Deletes consumer `durable` of `stream`, if it exists.
    pub fn delete_consumer(&self, stream: &str, durable: &str) -> Result<()> {
        self.block_on(async {
            let s = self.stream(stream).await?;
            let _ = s.delete_consumer(durable).await;
            Ok(())
        })
    }

    /// (Re)creates durable pull consumer `durable` on `stream`, reading
    /// `filter` from `start` (a stream sequence; 1 for the beginning),
    /// with an ack-all policy and at most `max_ack_pending` messages
    /// delivered and not yet acknowledged. Deleting it first takes the
    /// consumer away from any earlier owner.
    pub fn pull_reader(
        &self,
        stream: &str,
        durable: &str,
        filter: &str,
        start: u64,
        max_ack_pending: i64,
        ack_wait: Duration,
    ) -> Result<PullReader> {
        let what = format!("consumer `{durable}` on stream `{stream}`");
        self.block_on(async {
            let s = self.stream(stream).await?;
            let _ = s.delete_consumer(durable).await;
            let consumer: PullConsumer = s
                .create_consumer(pull::Config {
                    durable_name: Some(durable.to_string()),
                    filter_subject: filter.to_string(),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: start.max(1),
                    },
                    ack_policy: AckPolicy::All,
                    ack_wait,
                    max_ack_pending,
                    ..Default::default()
                })
                .await
                .map_err(|e| NatsError::request(format!("create {what}"), e))?;
            PullReader::start(consumer, what, max_ack_pending).await
        })
    }
}

impl PullReader {
    /// Starts reading `consumer`: pulls of a few thousand, one round trip
    /// each, the next asked for before this one is used up.
    async fn start(consumer: PullConsumer, what: String, max_ack_pending: i64) -> Result<Self> {
        let messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH.min(max_ack_pending.max(1) as usize))
            .messages()
            .await
            .map_err(|e| NatsError::request(format!("read {what}"), e))?;
        Ok(PullReader {
            consumer,
            messages: Some(messages),
            what,
        })
    }

    /// Up to `max` messages: waits at most `wait` for the first, then takes
    /// those already received. One trip into the client's runtime for them
    /// all (a trip costs microseconds: per message it would be the cost).
    pub fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Fetched>> {
        let what = &self.what;
        let Some(messages) = self.messages.as_mut() else {
            return Ok(Vec::new());
        };
        runtime().block_on(async {
            let mut out = Vec::new();
            let first = if wait.is_zero() {
                futures_util::FutureExt::now_or_never(messages.next()).flatten()
            } else {
                tokio::time::timeout(wait, messages.next())
                    .await
                    .ok()
                    .flatten()
            };
            let mut next = first;
            while let Some(message) = next {
                out.push(fetched(message, what)?);
                if out.len() >= max {
                    break;
                }
                next = futures_util::FutureExt::now_or_never(messages.next()).flatten();
            }
            Ok(out)
        })
    }

    /// The next message, waiting at most `wait`; `None` if none came.
    pub fn next(&mut self, wait: Duration) -> Result<Option<Fetched>> {
        let what = &self.what;
        let Some(messages) = self.messages.as_mut() else {
            return Ok(None);
        };
        runtime().block_on(async {
            let next = if wait.is_zero() {
                futures_util::FutureExt::now_or_never(messages.next()).flatten()
            } else {
                match tokio::time::timeout(wait, messages.next()).await {
                    Ok(next) => next,
                    Err(_) => return Ok(None),
                }
            };
            match next {
                None => Ok(None),
                Some(message) => fetched(message, what).map(Some),
            }
        })
    }

    /// Messages of the filter not yet delivered, and messages delivered
    /// and not yet acknowledged.
    pub fn pending(&mut self) -> Result<(u64, u64)> {
        let what = &self.what;
        let consumer = &mut self.consumer;
        runtime().block_on(async {
            let info = consumer
                .info()
                .await
                .map_err(|e| NatsError::request(format!("info of {what}"), e))?;
            Ok((info.num_pending, info.num_ack_pending as u64))
        })
    }
}

type Delivery = std::result::Result<
    jetstream::Message,
    async_nats::error::Error<jetstream::consumer::pull::MessagesErrorKind>,
>;

fn fetched(message: Delivery, what: &str) -> Result<Fetched> {
    let message = message.map_err(|e| NatsError::request(format!("read {what}"), e))?;
    let (sequence, published_ms, consumer_sequence, pending) = {
        let info = message
            .info()
            .map_err(|e| NatsError::request(format!("read {what}"), e))?;
        (
            info.stream_sequence,
            (info.published.unix_timestamp_nanos() / 1_000_000) as i64,
            info.consumer_sequence,
            info.pending,
        )
    };
    Ok(Fetched {
        sequence,
        subject: message.subject.to_string(),
        payload: message.payload.clone(),
        published_ms,
        consumer_sequence,
        pending,
        message,
    })
}

/// Shared handle on a reader (the source reads, the commit acknowledges).
pub type SharedReader = Arc<Mutex<PullReader>>;

/// Whether a stream can take publishes: a single server's stream always can,
/// a replicated one once its replicas have a leader.
fn has_leader(info: &async_nats::jetstream::stream::Info) -> bool {
    match &info.cluster {
        None => true,
        Some(cluster) => cluster.leader.is_some(),
    }
}
