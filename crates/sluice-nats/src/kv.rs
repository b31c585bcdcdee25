//! JetStream key-value buckets, blocking, with the compare-and-set that
//! leases and fenced checkpoints are built on.

use crate::{NatsClient, NatsError, Result};
use async_nats::jetstream::kv;
use futures_util::StreamExt;
use std::time::Duration;

/// A key-value bucket.
#[derive(Clone)]
pub struct Bucket {
    client: NatsClient,
    store: kv::Store,
    name: String,
}

/// A key's value and the revision that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value.
    pub value: Vec<u8>,
    /// Its revision: what a compare-and-set expects.
    pub revision: u64,
}

impl Bucket {
    /// Opens bucket `name`, creating it if needed. `ttl` (if not zero)
    /// removes a key that has not been written for that long: leases and
    /// membership heartbeats expire this way.
    pub fn open(client: &NatsClient, name: &str, ttl: Duration, replicas: usize) -> Result<Self> {
        let config = kv::Config {
            bucket: name.to_string(),
            history: 1,
            max_age: ttl,
            num_replicas: replicas.max(1),
            ..Default::default()
        };
        let store = client.block_on(async {
            let mut last = String::new();
            // A cluster just started may still be electing its leader.
            for _ in 0..100 {
                match client.jetstream().get_key_value(name).await {
                    // A bucket made with another TTL (an earlier lease_ttl)
                    // takes this one: renewals are timed by it.
                    Ok(store) if store.stream.cached_info().config.max_age != ttl => {
                        match client.jetstream().update_key_value(config.clone()).await {
                            Ok(store) => return Ok(store),
                            Err(e) => last = e.to_string(),
                        }
                    }
                    Ok(store) => return Ok(store),
                    Err(_) => match client.jetstream().create_key_value(config.clone()).await {
                        Ok(store) => return Ok(store),
                        Err(e) => last = e.to_string(),
                    },
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(NatsError::request(
                format!("key-value bucket `{name}`"),
                last,
            ))
        })?;
        Ok(Self {
            client: client.clone(),
            store,
            name: name.to_string(),
        })
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn what(&self, key: &str) -> String {
        format!("key `{key}` of bucket `{}`", self.name)
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &str) -> Result<Option<Versioned>> {
        let entry = self
            .client
            .block_on(self.store.entry(key))
            .map_err(|e| NatsError::request(self.what(key), e))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| Versioned {
                value: e.value.to_vec(),
                revision: e.revision,
            }))
    }

    /// Writes `key` whatever it holds; the new revision.
    pub fn put(&self, key: &str, value: Vec<u8>) -> Result<u64> {
        self.client
            .block_on(self.store.put(key, value.into()))
            .map_err(|e| NatsError::request(self.what(key), e))
    }

    /// Writes `key` only if it has no value; the new revision, or `None`
    /// if it has one.
    pub fn create(&self, key: &str, value: Vec<u8>) -> Result<Option<u64>> {
        match self.client.block_on(self.store.create(key, value.into())) {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(NatsError::request(self.what(key), e)),
        }
    }

    /// Writes `key` only if its revision is still `revision`
    /// (compare-and-set); the new revision, or `None` if someone else
    /// wrote it since (or it expired).
    pub fn update(&self, key: &str, value: Vec<u8>, revision: u64) -> Result<Option<u64>> {
        match self
            .client
            .block_on(self.store.update(key, value.into(), revision))
        {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(NatsError::request(self.what(key), e)),
        }
    }

    /// [`Bucket::update`] through a leader election: transient errors are
    /// retried for up to `within`. A write whose answer was lost is found
    /// by reading the key back (it holds this value): compare-and-set
    /// stays exact.
    pub fn update_retrying(
        &self,
        key: &str,
        value: Vec<u8>,
        revision: u64,
        within: Duration,
    ) -> Result<Option<u64>> {
        let deadline = std::time::Instant::now() + within;
        loop {
            match self.update(key, value.clone(), revision) {
                Ok(written) => return Ok(written),
                Err(error) if std::time::Instant::now() >= deadline => return Err(error),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(100));
                    match self.get(key) {
                        Ok(Some(now)) if now.value == value && now.revision > revision => {
                            return Ok(Some(now.revision))
                        }
                        Ok(Some(now)) if now.revision != revision => return Ok(None),
                        Ok(None) => return Ok(None),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Deletes `key` if its revision is still `revision`; false if not.
    pub fn delete_if(&self, key: &str, revision: u64) -> Result<bool> {
        match self
            .client
            .block_on(self.store.delete_expect_revision(key, Some(revision)))
        {
            Ok(()) => Ok(true),
            Err(e) if e.to_string().contains("wrong last sequence") => Ok(false),
            Err(e) => Err(NatsError::request(self.what(key), e)),
        }
    }

    /// Deletes `key`.
    pub fn delete(&self, key: &str) -> Result<()> {
        self.client
            .block_on(self.store.delete(key))
            .map_err(|e| NatsError::request(self.what(key), e))
    }

    /// The keys that have a value.
    pub fn keys(&self) -> Result<Vec<String>> {
        let name = &self.name;
        self.client.block_on(async {
            let mut keys = match self.store.keys().await {
                Ok(keys) => keys,
                Err(e) => return Err(NatsError::request(format!("keys of bucket `{name}`"), e)),
            };
            let mut out = Vec::new();
            while let Some(key) = keys.next().await {
                out.push(
                    key.map_err(|e| NatsError::request(format!("keys of bucket `{name}`"), e))?,
                );
            }
            Ok(out)
        })
    }
}
