//! NATS JetStream for Sluice: events across processes and machines, and
//! scale-out with no cluster manager of Sluice's own.
//!
//! - [`NatsClient`]: a connection for the engine's threads. The engine's
//!   compute is synchronous; the client runs async-nats on a small tokio
//!   runtime of its own and blocks the calling thread on each request.
//! - [`kv`]: key-value buckets with compare-and-set, the base of leases.
//! - [`coordination`]: membership (who is alive), leases (one owner per
//!   partition, with a TTL) and [`rendezvous`] hashing (who should own what).
//! - [`bus`]: the event bus of [`sluice_bus`] over JetStream, behind the
//!   same [`sluice_bus::EventBus`] trait as the in-process one.
//! - [`server`]: `nats-server` as a child process (one node or a cluster),
//!   for tests and benchmarks.
//!
//! ```no_run
//! use sluice_nats::{server::NatsServer, NatsClient};
//! let server = NatsServer::start()?;
//! let client = NatsClient::connect(&server.url())?;
//! client.ensure_stream("orders", &["orders.*"], 1)?;
//! client.publish_with_id("orders.42", b"{\"id\":42}".to_vec(), "order-42")?;
//! # Ok::<(), sluice_nats::NatsError>(())
//! ```

#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]
pub mod bus;
mod client;
pub mod coordination;
pub mod kv;
pub mod rendezvous;
pub mod server;

pub use client::{Fetched, NatsClient, PartitionedStream, PullReader, SharedReader};

/// What went wrong talking to NATS. Each message names the server, stream,
/// bucket or key involved.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NatsError {
    /// The servers could not be reached.
    #[error("cannot connect to NATS at {url}: {error}. Is nats-server running there (with -js)?")]
    Connect {
        /// The servers asked for.
        url: String,
        /// The client's error.
        error: String,
    },
    /// A request failed.
    #[error("NATS: {what}: {error}")]
    Request {
        /// What was asked.
        what: String,
        /// The server's or client's error.
        error: String,
    },
    /// An existing stream or bucket has another configuration than the
    /// pipeline needs.
    #[error("{0}")]
    Mismatch(String),
    /// A local `nats-server` could not be started (tests, benchmarks).
    #[error("{0}")]
    Server(String),
}

impl NatsError {
    pub(crate) fn request(what: impl Into<String>, error: impl std::fmt::Display) -> Self {
        NatsError::Request {
            what: what.into(),
            error: error.to_string(),
        }
    }
}

/// A `Result` with [`NatsError`].
pub type Result<T> = std::result::Result<T, NatsError>;

/// The stream's acknowledgement of a publish, to wait for later.
pub type PublishAck = async_nats::jetstream::context::PublishAckFuture;
