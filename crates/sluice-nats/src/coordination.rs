//! Membership and leases in JetStream key-value buckets: how the
//! processes of one pipeline find each other and share its partitions with
//! no coordinator of Sluice's own.
//!
//! - Each process writes its name to the `members` bucket every third of
//!   the TTL; the bucket's max age removes the name of a process that
//!   stopped writing. The live members are the bucket's keys.
//! - [`rendezvous`](crate::rendezvous) hashing over the live members says
//!   who should own each partition; every process computes the same answer.
//! - A process owns a partition once it has created the partition's key in
//!   the `leases` bucket (create fails while another holds it). It renews
//!   the lease by compare-and-set on its revision; a lease not renewed
//!   within the TTL expires, and another process can take it.
//! - A lease is a promise only while it is renewed in time, so checkpoints
//!   are fenced as well: see the checkpoint store of `sluice-pipeline`.

use crate::kv::Bucket;
use crate::{NatsClient, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A process's place in a group: its heartbeat and its leases.
#[derive(Clone)]
pub struct Group {
    members: Bucket,
    leases: Bucket,
    member: String,
    ttl: Duration,
}

impl Group {
    /// Joins group `name` (bucket names are derived from it) as `member`;
    /// a member or lease not renewed for `ttl` expires.
    pub fn join(
        client: &NatsClient,
        name: &str,
        member: &str,
        ttl: Duration,
        replicas: usize,
    ) -> Result<Self> {
        let members = Bucket::open(client, &format!("{name}_members"), ttl, replicas)?;
        let leases = Bucket::open(client, &format!("{name}_leases"), ttl, replicas)?;
        let group = Self {
            members,
            leases,
            member: member.to_string(),
            ttl,
        };
        // The first heartbeat may meet a leader election of the bucket's
        // stream (a node of the cluster lost): tried again for a TTL.
        let deadline = Instant::now() + ttl.max(Duration::from_secs(5));
        loop {
            match group.heartbeat() {
                Ok(()) => return Ok(group),
                Err(error) if Instant::now() >= deadline => return Err(error),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// This process's name in the group.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The TTL of members and leases.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Says this member is alive (every third of the TTL).
    pub fn heartbeat(&self) -> Result<()> {
        self.members
            .put(&self.member, self.member.as_bytes().to_vec())?;
        Ok(())
    }

    /// The live members, sorted.
    pub fn members(&self) -> Result<Vec<String>> {
        let mut members = self.members.keys()?;
        members.sort();
        Ok(members)
    }

    /// Leaves the group: the others take over at once instead of after
    /// the TTL.
    pub fn leave(&self) -> Result<()> {
        self.members.delete(&self.member)
    }

    /// Takes the lease of `partition` if nobody holds it.
    pub fn acquire(&self, partition: u32) -> Result<Option<Arc<Lease>>> {
        let key = lease_key(partition);
        let started = Instant::now();
        let Some(revision) = self.leases.create(&key, self.member.as_bytes().to_vec())? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(Lease {
            bucket: self.leases.clone(),
            key,
            partition,
            member: self.member.clone(),
            revision: AtomicU64::new(revision),
            renewed: Mutex::new(started),
            lost: AtomicBool::new(false),
            ttl: self.ttl,
        })))
    }

    /// Who holds the lease of `partition`, if anyone.
    pub fn holder(&self, partition: u32) -> Result<Option<String>> {
        Ok(self
            .leases
            .get(&lease_key(partition))?
            .map(|v| String::from_utf8_lossy(&v.value).into_owned()))
    }
}

fn lease_key(partition: u32) -> String {
    format!("p{partition}")
}

/// The lease of one partition, held by this process.
pub struct Lease {
    bucket: Bucket,
    key: String,
    partition: u32,
    member: String,
    revision: AtomicU64,
    /// When the last renewal that succeeded was sent.
    renewed: Mutex<Instant>,
    lost: AtomicBool,
    ttl: Duration,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("partition", &self.partition)
            .field("member", &self.member)
            .field("revision", &self.revision())
            .finish()
    }
}

impl Lease {
    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The revision of the lease's last write: it grows with every
    /// renewal, and a new owner's is higher than any earlier owner's.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::SeqCst)
    }

    /// The holder's name.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// Renews the lease (compare-and-set on its revision). False, and the
    /// lease is lost for good, if it expired or someone else holds it.
    pub fn renew(&self) -> Result<bool> {
        if self.is_lost() {
            return Ok(false);
        }
        let started = Instant::now();
        match self
            .bucket
            .update(&self.key, self.member.as_bytes().to_vec(), self.revision())?
        {
            Some(revision) => {
                self.revision.store(revision, Ordering::SeqCst);
                *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = started;
                Ok(true)
            }
            None => {
                self.lost.store(true, Ordering::SeqCst);
                Ok(false)
            }
        }
    }

    /// True while the lease is surely held: renewed less than two thirds
    /// of the TTL ago (the server's clock may run ahead), and never lost.
    pub fn is_valid(&self) -> bool {
        let renewed = *self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        !self.is_lost() && renewed.elapsed() < self.ttl * 2 / 3
    }

    /// True while the lease was renewed less than `within` ago (and was
    /// never lost): a stricter [`Lease::is_valid`] for writers that must
    /// stop early enough for what they handed over to land in time.
    pub fn renewed_within(&self, within: Duration) -> bool {
        let renewed = *self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        !self.is_lost() && renewed.elapsed() < within.min(self.ttl * 2 / 3)
    }

    /// True once a renewal found the lease gone.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Gives the lease up, so another process can take it at once.
    pub fn release(&self) -> Result<()> {
        self.lost.store(true, Ordering::SeqCst);
        self.bucket.delete_if(&self.key, self.revision())?;
        Ok(())
    }
}
