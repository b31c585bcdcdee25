//! The count of events the bus accepted and has not finished handling, which shutdown waits on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Events accepted by the bus and not yet fully handled. Shutdown waits
/// for it to reach zero. A handler's outputs are counted before its input
/// is released, so the count cannot touch zero while work remains.
#[derive(Default)]
pub(crate) struct InFlight {
    count: AtomicU64,
    lock: Mutex<()>,
    idle: Condvar,
}

impl InFlight {
    pub fn started(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    pub fn finished(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.idle.notify_all();
        }
    }

    pub fn wait_idle(&self) {
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        while self.count.load(Ordering::Acquire) != 0 {
            // The timeout covers a notification sent between the check and the wait.
            guard = self
                .idle
                .wait_timeout(guard, Duration::from_millis(5))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
