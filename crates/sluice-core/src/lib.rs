//! The pure core of Sluice: what flows, and what is computed over it.
//!
//! Nothing in this crate performs I/O, spawns a thread or awaits: it is the
//! data model ([`Batch`], [`Timestamp`]), the mergeable [`Aggregate`]s with
//! their built-ins, and the functions that cut an input into micro-batches
//! ([`cut`]). The runtime and the user-facing library build on it.
//!
//! ```
//! use sluice_core::aggregate::{Aggregate, Mean};
//! use sluice_core::cut::balanced_ranges;
//!
//! let data: Vec<f64> = (1..=10).map(f64::from).collect();
//! // Three micro-batches of balanced sizes (4, 3, 3), as numpy.array_split does.
//! let mut total = Mean.init();
//! for range in balanced_ranges(data.len(), 3)? {
//!     let partial = Mean.fold(&data[range]);
//!     Mean.merge(&mut total, &partial);
//! }
//! assert_eq!(Mean.finish(&total), Some(5.5));
//! # Ok::<(), sluice_core::Error>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod aggregate;
mod batch;
pub mod cut;
mod error;
mod time;
pub mod timer;
pub mod window;

pub use aggregate::Aggregate;
pub use batch::Batch;
pub use error::{Error, Result};
pub use time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
