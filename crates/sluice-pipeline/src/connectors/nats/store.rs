//! A partition's checkpoints in a key-value bucket, fenced by
//! compare-and-set ([`PartitionStore`]), and its log of partial cuts
//! ([`CutLog`]).

use super::*;
use crate::checkpoint::CheckpointStore;
use crate::checkpoint::Snapshot;
use crate::error::Error;
use crate::error::Result;
use sluice_nats::coordination::Lease;
use sluice_nats::kv::Bucket;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;
/// A checkpoint of one partition as stored: a JSON header line, then the
/// entries, each as a little-endian `u32` length and bytes, key then value.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Header {
    fingerprint: String,
    /// 0 while no checkpoint has committed.
    id: u64,
    completed: bool,
    /// Made when the partition's state is first created: part of the
    /// sinks' message ids, so a run started over (`--fresh`) is not taken
    /// for a replay of the earlier one.
    epoch: String,
    owner: String,
    lease: u64,
}

fn encode(header: &Header, entries: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = serde_json::to_vec(header).unwrap_or_default();
    out.push(b'\n');
    for (key, value) in entries {
        for part in [key.as_bytes(), value.as_slice()] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

fn decode(bytes: &[u8], what: &str) -> Result<(Header, BTreeMap<String, Vec<u8>>)> {
    let damaged =
        |why: &str| Error::damaged(format!("the checkpoint of {what} is damaged ({why})"));
    let nl = memchr::memchr(b'\n', bytes).ok_or_else(|| damaged("no header"))?;
    let header: Header =
        serde_json::from_slice(&bytes[..nl]).map_err(|e| damaged(&e.to_string()))?;
    let mut entries = BTreeMap::new();
    let mut at = nl + 1;
    let take = |at: &mut usize| -> Result<Vec<u8>> {
        let len = bytes
            .get(*at..*at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| damaged("cut short"))? as usize;
        let part = bytes
            .get(*at + 4..*at + 4 + len)
            .ok_or_else(|| damaged("cut short"))?;
        *at += 4 + len;
        Ok(part.to_vec())
    };
    while at < bytes.len() {
        let key = String::from_utf8(take(&mut at)?).map_err(|_| damaged("a key is not text"))?;
        let value = take(&mut at)?;
        entries.insert(key, value);
    }
    Ok((header, entries))
}

/// A new epoch: the time and the process, in hex.
fn new_epoch() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{:x}", nanos ^ (u64::from(std::process::id()) << 40))
}

/// Writes `key` with `make(current)` by compare-and-set until it sticks:
/// after this, anyone who read the key before must fail their own
/// compare-and-set. Returns what was there and the new revision.
fn claim(
    bucket: &Bucket,
    key: &str,
    mut make: impl FnMut(Option<&[u8]>) -> Result<Vec<u8>>,
) -> Result<(Option<Vec<u8>>, u64)> {
    let deadline = Instant::now() + RETRY_WITHIN;
    for _ in 0..1000 {
        let current = match bucket.get(key) {
            Ok(current) => current,
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let value = make(current.as_ref().map(|c| c.value.as_slice()))?;
        let written = match &current {
            None => bucket.create(key, value),
            Some(c) => bucket.update_retrying(key, value, c.revision, RETRY_WITHIN),
        };
        match written {
            Ok(Some(revision)) => return Ok((current.map(|c| c.value), revision)),
            Ok(None) => {}
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Err(Error::nats(format!(
        "cannot claim `{key}`: it keeps changing under this process"
    )))
}

/// The checkpoints of one partition, in the state bucket under
/// `ckpt.p<N>`, fenced by compare-and-set.
pub struct PartitionStore {
    bucket: Bucket,
    key: String,
    partition: u32,
    lease: Arc<Lease>,
    header: Mutex<Header>,
    revision: Mutex<u64>,
    restored: Option<Snapshot>,
}

impl PartitionStore {
    /// Takes the partition's state for the holder of `lease`: from now on,
    /// a process that held it before cannot commit. A state written by
    /// another pipeline (another `fingerprint`) is refused.
    pub fn claim(
        bucket: &Bucket,
        partition: u32,
        fingerprint: &str,
        lease: Arc<Lease>,
    ) -> Result<Self> {
        let key = format!("ckpt.p{partition}");
        let what = format!("partition {partition}");
        let mut found: Option<(Header, BTreeMap<String, Vec<u8>>)> = None;
        let mut written = Header::default();
        let (_, revision) = claim(bucket, &key, |current| {
            found = None;
            let mut header = match current {
                None => Header {
                    fingerprint: fingerprint.to_string(),
                    epoch: new_epoch(),
                    ..Header::default()
                },
                Some(bytes) => {
                    let (header, entries) = decode(bytes, &what)?;
                    if header.fingerprint != fingerprint {
                        return Err(Error::damaged(format!(
                            "the state of partition {partition} in bucket `{}` was written by \
                             another pipeline (or this one before a change to its source, \
                             transforms or sinks): it cannot be restored. Starting over \
                             discards the state of every partition",
                            bucket.name()
                        )));
                    }
                    found = Some((header.clone(), entries));
                    header
                }
            };
            header.owner = lease.member().to_string();
            header.lease = lease.revision();
            written = header.clone();
            let entries = found.as_ref().map(|f| f.1.clone()).unwrap_or_default();
            Ok(encode(&header, &entries))
        })?;
        let restored = found
            .filter(|(header, _)| header.id > 0)
            .map(|(header, entries)| Snapshot {
                id: header.id,
                completed: header.completed,
                entries,
            });
        let header = written;
        Ok(Self {
            bucket: bucket.clone(),
            key,
            partition,
            lease,
            header: Mutex::new(header),
            revision: Mutex::new(revision),
            restored,
        })
    }

    /// The epoch of the partition's state (see the sinks' message ids).
    pub fn epoch(&self) -> String {
        lock(&self.header).epoch.clone()
    }
}

impl CheckpointStore for PartitionStore {
    fn load(&self) -> Result<Option<Snapshot>> {
        if crate::fault::on(
            crate::fault::Fault::SkipPartitionResume,
            std::path::Path::new(""),
        ) {
            return Ok(None);
        }
        Ok(self.restored.clone())
    }

    fn commit(&self, snapshot: &Snapshot) -> Result<()> {
        if !self.lease.is_valid() {
            return Err(Error::Fenced {
                partition: self.partition,
                why: format!(
                    "its lease was not renewed in time, so checkpoint {} is not committed",
                    snapshot.id
                ),
            });
        }
        let mut header = lock(&self.header).clone();
        header.id = snapshot.id;
        header.completed = snapshot.completed;
        header.lease = self.lease.revision();
        let value = encode(&header, &snapshot.entries);
        let mut revision = lock(&self.revision);
        match self
            .bucket
            .update_retrying(&self.key, value, *revision, RETRY_WITHIN)?
        {
            Some(next) => {
                *revision = next;
                *lock(&self.header) = header;
                Ok(())
            }
            None => Err(Error::Fenced {
                partition: self.partition,
                why: format!(
                    "another process took it over, and checkpoint {} is not committed here",
                    snapshot.id
                ),
            }),
        }
    }

    fn describe(&self) -> String {
        format!("key `{}` of bucket `{}`", self.key, self.bucket.name())
    }
}

/// Whether partition `partition`'s run completed, from the state bucket.
pub fn partition_completed(bucket: &Bucket, partition: u32) -> Result<bool> {
    let what = format!("partition {partition}");
    match bucket.get(&format!("ckpt.p{partition}"))? {
        None => Ok(false),
        Some(v) => Ok(decode(&v.value, &what)?.0.completed),
    }
}

/// Where the partial chunks of a partition were cut since its last
/// checkpoint, and where a `caught-up` partition ends; under `cuts.p<N>`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Cuts {
    /// The last stream sequence a `caught-up` partition reads.
    pub(crate) end: Option<u64>,
    /// Stream sequences of the last message of each partial chunk.
    cuts: Vec<u64>,
    /// Who claimed the log, under which lease revision: every claim
    /// writes new bytes, so a compare-and-set whose answer was lost can
    /// never mistake another's claim for its own write.
    #[serde(default)]
    owner: String,
    #[serde(default)]
    lease: u64,
    /// The durable consumer the owner reads the partition with (one per
    /// claim, so an earlier owner's pulls cannot take the new one's
    /// messages).
    #[serde(default)]
    consumer: Option<String>,
}

/// The log of a partition's partial cuts (see the module's documentation).
pub struct CutLog {
    bucket: Bucket,
    partition: u32,
    key: String,
    revision: u64,
    pub(crate) cuts: Cuts,
    /// The consumer of the previous owner, to delete.
    previous_consumer: Option<String>,
}

impl CutLog {
    /// Takes the partition's log (fencing the previous owner's writes);
    /// `end` gives the end of a `caught-up` partition when it starts for
    /// the first time.
    pub fn claim(
        bucket: &Bucket,
        partition: u32,
        lease: &Lease,
        consumer: &str,
        end: impl Fn() -> Result<Option<u64>>,
    ) -> Result<Self> {
        let key = format!("cuts.p{partition}");
        let mut cuts = Cuts::default();
        let mut previous_consumer = None;
        let (_, revision) = claim(bucket, &key, |current| {
            cuts = match current {
                Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
                    Error::damaged(format!(
                        "the cut log of partition {partition} is damaged ({e})"
                    ))
                })?,
                None => Cuts {
                    end: end()?,
                    ..Cuts::default()
                },
            };
            previous_consumer = cuts.consumer.take().filter(|c| c != consumer);
            cuts.owner = lease.member().to_string();
            cuts.lease = lease.revision();
            cuts.consumer = Some(consumer.to_string());
            Ok(serde_json::to_vec(&cuts).unwrap_or_default())
        })?;
        Ok(Self {
            bucket: bucket.clone(),
            partition,
            key,
            revision,
            cuts,
            previous_consumer,
        })
    }

    /// The consumer the previous owner read the partition with, if it was
    /// another one: the new owner deletes it.
    pub fn previous_consumer(&self) -> Option<&str> {
        self.previous_consumer.as_deref()
    }

    /// Records a cut after `sequence`, forgetting the cuts at or before
    /// `committed` (the position of the last committed checkpoint). An
    /// error if another process has taken the partition.
    pub(crate) fn record(&mut self, sequence: u64, committed: u64) -> Result<()> {
        self.cuts.cuts.retain(|&c| c > committed);
        self.cuts.cuts.push(sequence);
        let value = serde_json::to_vec(&self.cuts).unwrap_or_default();
        match self
            .bucket
            .update_retrying(&self.key, value, self.revision, RETRY_WITHIN)?
        {
            Some(revision) => {
                self.revision = revision;
                Ok(())
            }
            None => Err(Error::Fenced {
                partition: self.partition,
                why: format!(
                    "another process took it over (its cut log `{}` changed)",
                    self.key
                ),
            }),
        }
    }

    /// The first logged cut after `sequence`.
    pub(crate) fn next_after(&self, sequence: u64) -> Option<u64> {
        self.cuts
            .cuts
            .iter()
            .copied()
            .filter(|&c| c > sequence)
            .min()
    }
}
