//! A private Kafka-compatible broker for a test: `tansu` on a free loopback
//! port, its topics in a SQLite file in a temporary folder (kept across a
//! restart of the broker), stopped when dropped; and a client (librdkafka,
//! as Sluice uses) to make topics, produce records and read them back.
//!
//! The broker comes from `SLUICE_TANSU`, `.kafka/bin/tansu` at the root of
//! the workspace (where `.ci/run` installs it) or `tansu` on the `PATH`.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker; stopped when dropped.
pub struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    pub headers: Vec<(String, String)>,
}

/// A record to produce.
pub struct Produce<'a> {
    pub partition: Option<i32>,
    pub key: Option<&'a str>,
    pub value: &'a [u8],
    pub timestamp: Option<i64>,
}

/// How many records partitions `0..partitions` of `topic` hold, asked
/// with `consumer`; `None` if the broker does not say (the topic does not
/// exist yet).
pub fn count(consumer: &BaseConsumer, topic: &str, partitions: i32) -> Option<i64> {
    (0..partitions)
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .ok()?;
            Some(high - low)
        })
        .sum()
}

impl Broker {
    /// Starts a broker; panics with what failed (a test that needs it
    /// never passes without it).
    ///
    /// Its topics are in SQLite: tansu 0.6.0's memory engine gives a batch
    /// of records one offset (a topic of 8,000 records produced in batches
    /// reads back as 4), and SQLite keeps them across a restart. Its SQLite
    /// schema has no index on records' headers, so that reading a record
    /// scans every header of the broker (reads slow down as topics grow):
    /// the harness adds one (Python's sqlite3, into the broker's file).
    pub fn start() -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("sluice-kafka")
            .tempdir()
            .expect("a temporary folder");
        let mut broker = Broker {
            child: None,
            dir,
            port: free_port(),
        };
        broker.launch();
        broker
    }

    fn launch(&mut self) {
        let listen = format!("tcp://127.0.0.1:{}", self.port);
        // A path in the URL is taken from the working directory.
        let storage = "sqlite://topics.db";
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .expect("the broker's log");
        let child = Command::new(tansu())
            .arg("broker")
            .args(["--kafka-listener-url", &listen])
            .args(["--kafka-advertised-listener-url", &listen])
            .args(["--storage-engine", storage])
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the broker's log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the Kafka broker {}: {e}", tansu().display()));
        self.child = Some(child);
        // Ready once it answers a metadata request.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let consumer: BaseConsumer = self.config().create().expect("a client");
            if consumer
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok()
                && self.index_headers()
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("the Kafka broker exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the Kafka broker did not answer within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Adds the index on headers that tansu's schema lacks; false until the
    /// broker has made its tables.
    fn index_headers(&self) -> bool {
        let script = "import sqlite3\n\
                      c = sqlite3.connect('topics.db', timeout=30)\n\
                      c.execute('create index if not exists sluice_header_record \
                      on header (topition, offset_id)')\n\
                      c.commit()\n";
        Command::new("python3")
            .args(["-c", script])
            .current_dir(self.dir.path())
            .stderr(Stdio::null())
            .status()
            .expect("python3, to index the broker's headers")
            .success()
    }

    /// What the broker wrote.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// Stops the broker (killed: a crash) and starts it again on the same
    /// port and storage.
    pub fn restart(&mut self, down_for: Duration) {
        self.stop();
        std::thread::sleep(down_for);
        self.launch();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.brokers())
            .set("log_level", "3");
        config
    }

    /// Creates `topic` with `partitions`.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self.config().create().expect("admin");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let answers = runtime
            .block_on(admin.create_topics([&new], &AdminOptions::new()))
            .expect("create_topics");
        for answer in answers {
            answer.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
        }
    }

    /// Produces `records` and waits until the broker has them all.
    pub fn produce(&self, topic: &str, records: &[Produce<'_>]) {
        let producer: BaseProducer = self
            .config()
            .set("linger.ms", "5")
            .set("partitioner", "murmur2_random")
            .create()
            .expect("producer");
        for r in records {
            let mut record = BaseRecord::to(topic).payload(r.value);
            if let Some(key) = r.key {
                record = record.key(key);
            }
            if let Some(p) = r.partition {
                record = record.partition(p);
            }
            if let Some(ts) = r.timestamp {
                record = record.timestamp(ts);
            }
            let mut record = record.headers(OwnedHeaders::new().insert(Header {
                key: "test",
                value: Some("yes"),
            }));
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(20));
                    }
                }
            }
        }
        producer
            .flush(Duration::from_secs(60))
            .expect("the records were delivered");
    }

    /// A consumer of this broker for reading back (no group offsets used).
    pub fn reader(&self) -> BaseConsumer {
        self.config()
            .set("enable.partition.eof", "false")
            .set("group.id", "test-reader")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("consumer")
    }

    /// Every record of `topic`, partition by partition in offset order.
    pub fn read_all(&self, topic: &str) -> Vec<Record> {
        let consumer = self.reader();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let partitions = metadata.topics()[0].partitions().len() as i32;
        let mut out = Vec::new();
        for partition in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks");
            if low >= high {
                continue;
            }
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(topic, partition, Offset::Offset(low))
                .unwrap();
            consumer.assign(&list).unwrap();
            let mut next = low;
            let deadline = Instant::now() + Duration::from_secs(60);
            while next < high {
                assert!(
                    Instant::now() < deadline,
                    "reading {topic}/{partition} stalled at {next} of {high}"
                );
                let Some(message) = consumer.poll(Duration::from_millis(500)) else {
                    continue;
                };
                let message = message.expect("a record");
                if message.offset() < next {
                    continue;
                }
                next = message.offset() + 1;
                let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                out.push(Record {
                    partition,
                    offset: message.offset(),
                    key: text(message.key()),
                    value: text(message.payload()).unwrap_or_default(),
                    headers: message
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), text(h.value).unwrap_or_default()))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The broker's program.
pub fn tansu() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_TANSU") {
        return PathBuf::from(path);
    }
    let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.kafka/bin/tansu");
    if installed.exists() {
        return installed;
    }
    PathBuf::from("tansu")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
