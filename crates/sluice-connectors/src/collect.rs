//! A sink that gathers events in memory, and the handle to read them after the run.

use sluice_core::{Batch, Timestamp};
use sluice_runtime::{BoxError, Sink};
use std::sync::{Arc, Mutex, PoisonError};

/// Gathers every event in memory; read them through [`Collected`] after the run.
pub struct CollectSink<T> {
    shared: Arc<Mutex<Vec<(T, Timestamp)>>>,
}

/// The events a [`CollectSink`] gathered, shared with it.
#[derive(Clone)]
pub struct Collected<T> {
    shared: Arc<Mutex<Vec<(T, Timestamp)>>>,
}

impl<T> CollectSink<T> {
    /// A sink and the handle to read what it gathers.
    pub fn new() -> (Self, Collected<T>) {
        let shared = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                shared: shared.clone(),
            },
            Collected { shared },
        )
    }
}

impl<T: Send> Sink<T> for CollectSink<T> {
    fn write(&mut self, batch: &mut Batch<T>) -> Result<(), BoxError> {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.extend(batch.drain());
        Ok(())
    }
}

impl<T> Collected<T> {
    /// Takes the events gathered so far, in arrival order.
    pub fn take(&self) -> Vec<T> {
        self.take_with_times().into_iter().map(|(x, _)| x).collect()
    }

    /// Takes the events gathered so far with their event times.
    pub fn take_with_times(&self) -> Vec<(T, Timestamp)> {
        std::mem::take(&mut *self.shared.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many events are held.
    pub fn len(&self) -> usize {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no event is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
