//! The Sluice executor: how a dataflow runs.
//!
//! A dataflow is cut into **stages**. Within a stage, operators are fused:
//! each is an [`Operator`] that receives a [`Batch`] and pushes its output
//! straight into the next one, with one virtual call per batch and none per
//! event. Between stages runs an **edge**: a [`Batcher`] that holds events
//! until its [`FlushPolicy`] releases them, and a bounded queue to the next
//! stage. Emptied batch buffers travel back to the sender to be reused, so
//! the hot path does not allocate.
//!
//! Stages do not own threads. The [`Executor`] starts `n` **workers**, one
//! thread each, and places every stage on one of them; a worker runs its
//! stages in turns ([`worker`]), so a stage with input runs and a stage
//! without input costs nothing. A stage whose output queue is full is not
//! run until the queue has room: a slow sink slows the source and memory
//! stays bounded (backpressure), and since no operator ever waits for room,
//! workers that exchange events cannot deadlock. [`stage`] holds the
//! stages: a source's, a receiver's, and a blocking source's, whose polls
//! run on a thread of its own.
//!
//! ```
//! use sluice_runtime::{edge, BoxError, Executor, FlushPolicy, Operator, OperatorResult, Signals, Source, SourceStatus, SystemClock};
//! use sluice_core::Batch;
//! use std::sync::{Arc, Mutex};
//!
//! /// Records the size of every batch it sees.
//! struct Sizes(Arc<Mutex<Vec<usize>>>);
//! impl Operator<u32> for Sizes {
//!     fn on_batch(&mut self, batch: &mut Batch<u32>) -> OperatorResult {
//!         self.0.lock().unwrap().push(batch.len());
//!         Ok(())
//!     }
//!     // The last operator: no signal goes further.
//!     fn downstream(&mut self) -> Option<&mut dyn Signals> {
//!         None
//!     }
//! }
//!
//! /// Emits its numbers, with themselves as event times.
//! struct Numbers(std::ops::Range<u32>);
//! impl Source<u32> for Numbers {
//!     fn poll(&mut self, out: &mut Batch<u32>, max: usize) -> Result<SourceStatus, BoxError> {
//!         for n in self.0.by_ref().take(max) {
//!             out.push(n, i64::from(n));
//!         }
//!         Ok(if self.0.is_empty() { SourceStatus::Exhausted } else { SourceStatus::Ready })
//!     }
//! }
//!
//! let sizes = Arc::new(Mutex::new(Vec::new()));
//! let mut executor = Executor::new(Arc::new(SystemClock::new()));
//! let (sender, receiver) = edge::<u32>("numbers", FlushPolicy::Count(4), 8, executor.clock(), None)?;
//! executor.spawn_receiver("sizes", 0, receiver, Box::new(Sizes(sizes.clone())));
//! executor.spawn_source("numbers", 0, Box::new(Numbers(0..10)), Box::new(sender));
//! executor.run()?;
//! assert_eq!(*sizes.lock().unwrap(), vec![4, 4, 2]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod adaptive;
mod batcher;
mod channel;
mod clock;
mod error;
mod executor;
mod flush;
mod metrics;
mod operator;
mod progress;
mod queue;
mod source;
pub mod stage;
pub mod worker;

pub use adaptive::{AdaptiveController, Observed, MAX_ADAPTIVE_BATCH};
pub use batcher::Batcher;
pub use channel::{
    edge, exchange, multi_edge, EdgeReceiver, EdgeSender, Envelope, ExchangeSender, Message,
};
pub use clock::{Clock, SimulatedClock, SystemClock};
pub use error::{BoxError, RuntimeError, RuntimeResult};
pub use executor::{Executor, RunReport, DEFAULT_POLL_SIZE};
pub use flush::FlushPolicy;
pub use metrics::{EdgeMetrics, EdgeSnapshot};
pub use operator::{Barrier, Operator, OperatorError, OperatorResult, Signals, Sink, SinkOperator};
pub use progress::InputProgress;
pub use sluice_core::Batch;
pub use source::{Source, SourceStatus};
