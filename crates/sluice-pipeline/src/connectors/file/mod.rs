//! `type = "file"` (and `"stdin"`, `"stdout"`, which read and write the
//! same formats): text sources, Parquet, and file sinks.

pub mod parquet;
pub mod sink;
pub mod source;

pub use crate::output::{create_dir_durably, create_durably};
pub use parquet::ParquetSource;
pub use source::{Bytes, TextSource};
