//! A source's consumer, whose records are taken from librdkafka many at a
//! time.
//!
//! rdkafka's `poll` hands over one record per call, each call a lock, a
//! clock read and an event wrapped and unwrapped: reading 300k records from
//! tansu cost 0.15-0.18 CPU-s that way, and 0.10 with librdkafka's
//! `rd_kafka_consume_batch_queue`, which fills an array in one call (what
//! librdkafka's Python client reads with). rdkafka offers the call only
//! through its raw bindings, hence this module's `unsafe`.
//!
//! The consumer's partitions are forwarded to a queue of the source's own,
//! so the batch call sees only records and partition events (a partition's
//! end, a fetch error). The consumer's own queue keeps what the batch call
//! must not meet (the answers to offset commits would abort it: librdkafka
//! asserts on them there) and what only rdkafka's `poll` serves (client
//! errors): [`TopicConsumer::events`] polls it.
#![allow(unsafe_code)]

use super::client::failed;
use crate::error::{Error, Result};
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedHeaders, Timestamp};
use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

/// A consumer and the queue its partitions' records come to.
pub(super) struct TopicConsumer {
    /// Forwarded to by every partition given to [`TopicConsumer::forward`].
    queue: NonNull<rd::rd_kafka_queue_t>,
    /// Room for the messages of a fetch, kept between fetches: one for
    /// fetches of one message (the wait for the first), one for the rest.
    one: Cell<Vec<*mut rd::rd_kafka_message_t>>,
    room: Cell<Vec<*mut rd::rd_kafka_message_t>>,
    pub(super) consumer: BaseConsumer,
}

// SAFETY: librdkafka's queues may be used from any thread (they lock
// inside); the source that owns this moves between threads, one at a time.
unsafe impl Send for TopicConsumer {}

impl TopicConsumer {
    pub(super) fn new(consumer: BaseConsumer) -> Result<Self> {
        // SAFETY: the client outlives the queue (`Drop` destroys the queue
        // first).
        let queue = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        let queue = NonNull::new(queue)
            .ok_or_else(|| Error::input("librdkafka could not make a queue for a Kafka source"))?;
        Ok(Self {
            queue,
            one: Cell::new(Vec::new()),
            room: Cell::new(Vec::new()),
            consumer,
        })
    }

    /// Sends the records of partition `partition` of `topic` to this
    /// consumer's queue. Called before the partition is assigned (or its
    /// first records go to the consumer's own queue); librdkafka keeps the
    /// forward through the assignment.
    pub(super) fn forward(&self, topic: &str, partition: i32) -> Result<()> {
        let name = CString::new(topic)
            .map_err(|_| Error::refused(format!("Kafka topic `{topic}` has a NUL byte")))?;
        // SAFETY: the client and `name` outlive the call; the partition's
        // queue handle is destroyed here (the forward stays: it is the
        // partition's, not the handle's).
        unsafe {
            let partition_queue = rd::rd_kafka_queue_get_partition(
                self.consumer.client().native_ptr(),
                name.as_ptr(),
                partition,
            );
            if partition_queue.is_null() {
                return Err(Error::input(format!(
                    "librdkafka has no queue for Kafka topic `{topic}`, partition {partition}"
                )));
            }
            rd::rd_kafka_queue_forward(partition_queue, self.queue.as_ptr());
            rd::rd_kafka_queue_destroy(partition_queue);
        }
        Ok(())
    }

    /// Waits up to `timeout` for `most` records or partition events,
    /// and gives what came (possibly nothing).
    pub(super) fn fetch(&self, timeout: Duration, most: usize) -> Fetched<'_> {
        let most = most.max(1);
        let room = if most == 1 { &self.one } else { &self.room };
        let mut messages = room.take();
        messages.clear();
        messages.reserve(most);
        // In whole milliseconds, rounded up (librdkafka waits in them).
        let ms = i32::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
        // SAFETY: `messages` has room for `most` pointers; librdkafka
        // writes `n` of them, each a message this side must destroy
        // (`Fetched`'s `Drop`).
        unsafe {
            let n = rd::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                ms,
                messages.as_mut_ptr(),
                most,
            );
            messages.set_len(usize::try_from(n).unwrap_or(0).min(most));
        }
        Fetched { messages, room }
    }

    /// What the consumer's own queue holds: a client error, or nothing
    /// (it serves the answers to offset commits itself). A record there
    /// (its partition was not forwarded) fails the read: taken here it
    /// could come out of order, and dropped it would be lost.
    pub(super) fn events(&self) -> Result<Option<KafkaError>> {
        match self.consumer.poll(Duration::ZERO) {
            None => Ok(None),
            Some(Err(error)) => Ok(Some(error)),
            Some(Ok(message)) => Err(Error::input(format!(
                "a record of Kafka topic `{}`, partition {}, offset {} came outside its \
                 partition's queue; the run stops rather than lose it or read it out of order",
                message.topic(),
                message.partition(),
                message.offset()
            ))),
        }
    }

    /// Assigns partitions (each forwarded first). Once only: stopping a
    /// partition's fetch undoes its forward, and librdkafka would not
    /// forward it to the consumer's own queue either (the forward was the
    /// application's); a new assignment takes a new consumer (`seek` makes
    /// them anew).
    pub(super) fn assign(&self, topic: &str, list: &rdkafka::TopicPartitionList) -> Result<()> {
        self.consumer
            .assign(list)
            .map_err(|e| failed(format!("cannot assign Kafka topic `{topic}`"), e))
    }
}

impl Drop for TopicConsumer {
    fn drop(&mut self) {
        // SAFETY: made by `rd_kafka_queue_new` and destroyed once, before
        // the client (the field drops after this).
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// The records (and partition events) one fetch took, in the order each
/// partition gave them; destroyed when this is dropped.
pub(super) struct Fetched<'c> {
    messages: Vec<*mut rd::rd_kafka_message_t>,
    /// The consumer's room the messages go back to: they belong to its
    /// client and must not outlive it.
    room: &'c Cell<Vec<*mut rd::rd_kafka_message_t>>,
}

impl Fetched<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Each record, or the event a partition gave in its place: its end
    /// (`PartitionEOF`) or a fetch error.
    pub(super) fn iter(&self) -> impl Iterator<Item = Result<Raw<'_>, KafkaError>> {
        self.messages.iter().map(|&message| {
            // SAFETY: librdkafka gave a valid message, alive until `drop`.
            let message = unsafe { &*message };
            match message.err {
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => Ok(Raw { message }),
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF => {
                    Err(KafkaError::PartitionEOF(message.partition))
                }
                error => Err(KafkaError::MessageConsumption(error.into())),
            }
        })
    }
}

impl Drop for Fetched<'_> {
    fn drop(&mut self) {
        for &message in &self.messages {
            // SAFETY: each was given by `rd_kafka_consume_batch_queue`
            // and is destroyed once, here.
            unsafe { rd::rd_kafka_message_destroy(message) }
        }
        self.messages.clear();
        self.room.set(std::mem::take(&mut self.messages));
    }
}

/// One record of a fetch, read in place.
pub(super) struct Raw<'f> {
    message: &'f rd::rd_kafka_message_t,
}

/// `len` bytes at `data`, if any.
///
/// # Safety
/// `data` points to `len` bytes alive for `'a`, or is null.
unsafe fn bytes<'a>(data: *const std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
    if data.is_null() {
        None
    } else {
        // SAFETY: as the caller promises.
        Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
    }
}

impl Message for Raw<'_> {
    /// The source reads no headers.
    type Headers = OwnedHeaders;

    fn key(&self) -> Option<&[u8]> {
        // SAFETY: the message's key, alive as long as the message.
        unsafe { bytes(self.message.key, self.message.key_len) }
    }

    fn payload(&self) -> Option<&[u8]> {
        // SAFETY: the message's value, alive as long as the message.
        unsafe { bytes(self.message.payload, self.message.len) }
    }

    unsafe fn payload_mut(&mut self) -> Option<&mut [u8]> {
        // Read only: a fetched record is never changed in place.
        None
    }

    fn topic(&self) -> &str {
        // SAFETY: a fetched record's topic handle lives as long as it, and
        // names the topic with a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(self.message.rkt)) };
        name.to_str().unwrap_or("?")
    }

    fn partition(&self) -> i32 {
        self.message.partition
    }

    fn offset(&self) -> i64 {
        self.message.offset
    }

    fn timestamp(&self) -> Timestamp {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a valid message, and a place for the timestamp's kind.
        let stamp = unsafe { rd::rd_kafka_message_timestamp(self.message, &mut kind) };
        match kind {
            _ if stamp == -1 => Timestamp::NotAvailable,
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => {
                Timestamp::NotAvailable
            }
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_CREATE_TIME => {
                Timestamp::CreateTime(stamp)
            }
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => {
                Timestamp::LogAppendTime(stamp)
            }
        }
    }

    fn headers(&self) -> Option<&OwnedHeaders> {
        None
    }
}
