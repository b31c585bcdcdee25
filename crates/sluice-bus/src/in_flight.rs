//! The count of events the bus accepted and has not finished handling, which shutdown waits on.

use std::cell::Cell;
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
    /// Sequentially consistent with the bus's `closed` flag: a publisher
    /// counts itself, then reads `closed`; shutdown sets `closed`, then
    /// reads the count. One of the two sees the other.
    pub fn started(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    pub fn finished(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.idle.notify_all();
        }
    }

    pub fn wait_idle(&self) {
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        while self.count.load(Ordering::SeqCst) != 0 {
            // The timeout covers a notification sent between the check and the wait.
            guard = self
                .idle
                .wait_timeout(guard, Duration::from_millis(5))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

thread_local! {
    /// How deep in handlers this thread is: 1 on a handler's own thread,
    /// plus one per inline handler running in another's call.
    static HANDLER_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Inline handlers nested deeper than this (a handler's output calls an
/// inline handler, whose output calls another...) are refused: a cycle of
/// topics would otherwise run out of stack.
pub(crate) const MAX_INLINE_DEPTH: u32 = 64;

/// How deep in handlers the current thread is (0: not in a handler).
pub(crate) fn handler_depth() -> u32 {
    HANDLER_DEPTH.with(Cell::get)
}

/// Runs `f` one handler deeper.
pub(crate) fn in_handler<R>(f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            HANDLER_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    HANDLER_DEPTH.with(|d| d.set(d.get() + 1));
    let _leave = Leave;
    f()
}
