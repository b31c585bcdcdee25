//! The count of events the bus accepted and has not finished handling, which shutdown waits on.

use std::cell::RefCell;
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

    /// Counts one in flight until the returned guard is dropped (also
    /// when a panic unwinds past it: a count left behind would make
    /// shutdown wait forever).
    pub fn start(&self) -> Started<'_> {
        self.started();
        Started(self)
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

/// One event in flight; finished when dropped.
pub(crate) struct Started<'a>(&'a InFlight);

impl Started<'_> {
    /// The count now belongs to someone else (a handler's thread).
    pub fn hand_over(self) {
        std::mem::forget(self);
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        self.0.finished();
    }
}

thread_local! {
    /// The buses whose handlers this thread is in, innermost last: one
    /// entry on a handler's own thread, plus one per inline handler running
    /// in another's call.
    static HANDLERS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Inline handlers nested deeper than this (a handler's output calls an
/// inline handler, whose output calls another...) are refused: a cycle of
/// topics would otherwise run out of stack.
pub(crate) const MAX_INLINE_DEPTH: u32 = 64;

/// How deep in handlers (of any bus) the current thread is.
pub(crate) fn handler_depth() -> u32 {
    HANDLERS.with(|h| u32::try_from(h.borrow().len()).unwrap_or(u32::MAX))
}

/// Whether the current thread is in a handler of the bus `bus`.
pub(crate) fn in_handler_of(bus: usize) -> bool {
    HANDLERS.with(|h| h.borrow().contains(&bus))
}

/// Runs `f` as a handler of the bus `bus` (its shared state's address).
pub(crate) fn in_handler<R>(bus: usize, f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            HANDLERS.with(|h| h.borrow_mut().pop());
        }
    }
    HANDLERS.with(|h| h.borrow_mut().push(bus));
    let _leave = Leave;
    f()
}
