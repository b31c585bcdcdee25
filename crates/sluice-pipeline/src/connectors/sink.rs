//! What every sink is: see [`crate::output`].

pub use crate::output::{Durable, RowWriter};
