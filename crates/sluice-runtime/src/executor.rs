use crate::stage::{run_receiver, run_source};
use crate::{
    Clock, EdgeMetrics, EdgeReceiver, EdgeSnapshot, Operator, RuntimeError, RuntimeResult, Source,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Task = Box<dyn FnOnce() -> RuntimeResult<()> + Send>;

/// Events a source stage asks for per poll.
pub const DEFAULT_POLL_SIZE: usize = 1024;

/// Runs stages, one thread each, and waits for all of them.
pub struct Executor {
    clock: Arc<dyn Clock>,
    tasks: Vec<(String, Task)>,
    edges: Vec<(String, Arc<EdgeMetrics>)>,
    poll_size: usize,
    /// Set when a stage fails, so that sources waiting for input stop.
    aborted: Arc<AtomicBool>,
}

/// What a finished run measured.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Wall time from the start of the first stage to the end of the last.
    pub elapsed: Duration,
    /// The counters of every edge, by name, in the order they were made.
    pub edges: Vec<(String, EdgeSnapshot)>,
}

impl RunReport {
    /// The counters of the edge named `name`.
    pub fn edge(&self, name: &str) -> Option<&EdgeSnapshot> {
        self.edges.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

impl Executor {
    /// An executor whose stages read processing time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            tasks: Vec::new(),
            edges: Vec::new(),
            poll_size: DEFAULT_POLL_SIZE,
            aborted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// How many events a source stage asks for per poll (default 1024).
    pub fn set_poll_size(&mut self, poll_size: usize) {
        self.poll_size = poll_size.max(1);
    }

    /// The clock stages read.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Adds a stage that drives `source` into `chain`.
    pub fn spawn_source<T: 'static>(
        &mut self,
        name: &str,
        mut source: Box<dyn Source<T>>,
        mut chain: Box<dyn Operator<T>>,
    ) {
        let clock = self.clock.clone();
        let poll_size = self.poll_size;
        let stage = name.to_string();
        let aborted = self.aborted.clone();
        self.tasks.push((
            name.to_string(),
            Box::new(move || {
                run_source(
                    &stage,
                    &mut *source,
                    &mut *chain,
                    &*clock,
                    poll_size,
                    &aborted,
                )
            }),
        ));
    }

    /// Adds a stage that drives the batches of an edge into `chain`.
    pub fn spawn_receiver<T: Send + 'static>(
        &mut self,
        name: &str,
        receiver: EdgeReceiver<T>,
        mut chain: Box<dyn Operator<T>>,
    ) {
        self.edges
            .push((receiver.name().to_string(), receiver.metrics()));
        let clock = self.clock.clone();
        let stage = name.to_string();
        self.tasks.push((
            name.to_string(),
            Box::new(move || run_receiver(&stage, &receiver, &mut *chain, &*clock)),
        ));
    }

    /// Starts every stage and waits for all to finish. Returns the first
    /// failure, if any stage failed or panicked.
    pub fn run(self) -> RuntimeResult<RunReport> {
        let start = Instant::now();
        let mut handles = Vec::with_capacity(self.tasks.len());
        let mut first_error = None;
        for (name, task) in self.tasks {
            let aborted = self.aborted.clone();
            let task = move || {
                // Unwinding counts as failing: the flag is set on drop.
                let mut guard = AbortOnFailure {
                    aborted,
                    armed: true,
                };
                let result = task();
                guard.armed = result.is_err();
                result
            };
            match std::thread::Builder::new()
                .name(format!("sluice-{name}"))
                .spawn(task)
            {
                Ok(handle) => handles.push((name, handle)),
                Err(error) => {
                    first_error.get_or_insert(RuntimeError::Spawn { stage: name, error });
                    break;
                }
            }
        }
        for (name, handle) in handles {
            let result = handle.join().unwrap_or_else(|panic| {
                Err(RuntimeError::Panicked {
                    stage: name,
                    message: panic_message(&*panic),
                })
            });
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(RunReport {
            elapsed: start.elapsed(),
            edges: self
                .edges
                .iter()
                .map(|(n, m)| (n.clone(), m.snapshot()))
                .collect(),
        })
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Sets the run's abort flag when dropped: when its stage failed or
/// panicked.
struct AbortOnFailure {
    aborted: Arc<AtomicBool>,
    armed: bool,
}

impl Drop for AbortOnFailure {
    fn drop(&mut self) {
        if self.armed {
            self.aborted.store(true, Ordering::Relaxed);
        }
    }
}
