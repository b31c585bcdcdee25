//! The executor: places stages on worker threads, runs them, and reports what the run measured.

use crate::stage::{poll_blocking, IoSourceStage, Polled, ReceiverStage, Receiving, SourceStage};
use crate::worker::{self, Shared, Stage};
use crate::{
    Clock, EdgeMetrics, EdgeReceiver, EdgeSnapshot, Operator, RuntimeError, RuntimeResult, Source,
};
use sluice_core::Batch;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Events a source stage asks for per poll.
pub const DEFAULT_POLL_SIZE: usize = 1024;

/// The thread of a blocking source, to start with the workers.
type IoTask = Box<dyn FnOnce(Shared) + Send>;

/// Runs stages on worker threads, and waits for all of them.
///
/// Each stage is placed on a worker: instance `i` of a stage on worker
/// `i % workers`, so that the instances a `batch()` edge joins share a
/// worker. (`sluice::Pipeline` places a stage that merges all instances on
/// the last worker.) A worker runs its
/// stages in turns (see [`crate::worker`]); only a source that says it
/// blocks ([`Source::blocking`]) gets a thread of its own, which reads
/// for its stage.
pub struct Executor {
    clock: Arc<dyn Clock>,
    workers: usize,
    stages: Vec<(usize, Box<dyn Stage>)>,
    io: Vec<(String, IoTask)>,
    edges: Vec<(String, Arc<EdgeMetrics>)>,
    poll_size: usize,
}

/// What a finished run measured.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Wall time from the start of the first stage to the end of the last.
    pub elapsed: Duration,
    /// The counters of every edge, by name, in the order they were made.
    pub edges: Vec<(String, EdgeSnapshot)>,
    /// Worker threads the run started (those with at least one stage).
    pub worker_threads: usize,
    /// Threads of blocking sources.
    pub io_threads: usize,
}

impl RunReport {
    /// The counters of the edge named `name`.
    pub fn edge(&self, name: &str) -> Option<&EdgeSnapshot> {
        self.edges.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

impl Executor {
    /// An executor with one worker whose stages read processing time from
    /// `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            workers: 1,
            stages: Vec::new(),
            io: Vec::new(),
            edges: Vec::new(),
            poll_size: DEFAULT_POLL_SIZE,
        }
    }

    /// How many worker threads run the stages (default 1). At least 1.
    pub fn set_workers(&mut self, workers: usize) {
        self.workers = workers.max(1);
    }

    /// How many events a source stage asks for per poll (default 1024).
    pub fn set_poll_size(&mut self, poll_size: usize) {
        self.poll_size = poll_size.max(1);
    }

    /// The clock stages read.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Adds a stage that drives `source` into `chain`, as instance
    /// `instance` of its stage.
    pub fn spawn_source<T: Send + 'static>(
        &mut self,
        name: &str,
        instance: usize,
        source: Box<dyn Source<T>>,
        chain: Box<dyn Operator<T>>,
    ) {
        let worker = instance % self.workers;
        if source.blocking() {
            // One poll in hand, one in the channel: the thread waits while
            // the stage is behind.
            let (to_stage, polled) = crossbeam_channel::bounded::<Polled<T>>(1);
            let waker = Arc::new(OnceLock::new());
            let gone = Arc::new(AtomicBool::new(false));
            let stage = IoSourceStage {
                name: name.to_string(),
                polled,
                chain,
                clock: self.clock.clone(),
                deadline: None,
                ticked: None,
                waker: waker.clone(),
                gone: gone.clone(),
            };
            self.stages.push((worker, Box::new(stage)));
            let poll_size = self.poll_size;
            let stage_name = name.to_string();
            self.io.push((
                name.to_string(),
                Box::new(move |shared: Shared| {
                    poll_blocking(
                        &stage_name,
                        source,
                        to_stage,
                        waker,
                        poll_size,
                        gone,
                        shared,
                    );
                }),
            ));
            return;
        }
        let stage = SourceStage {
            name: name.to_string(),
            source,
            chain,
            clock: self.clock.clone(),
            poll_size: self.poll_size,
            buffer: Batch::with_capacity(self.poll_size),
            deadline: None,
            idle: None,
        };
        self.stages.push((worker, Box::new(stage)));
    }

    /// Adds a stage that drives the batches of an edge into `chain`, as
    /// instance `instance` of its stage.
    pub fn spawn_receiver<T: Send + 'static>(
        &mut self,
        name: &str,
        instance: usize,
        receiver: EdgeReceiver<T>,
        chain: Box<dyn Operator<T>>,
    ) {
        self.edges
            .push((receiver.name().to_string(), receiver.metrics()));
        let stage = ReceiverStage {
            name: name.to_string(),
            state: Receiving::new(receiver.senders()),
            receiver,
            chain,
            clock: self.clock.clone(),
        };
        self.stages.push((instance % self.workers, Box::new(stage)));
    }

    /// Starts the workers and the threads of blocking sources, and waits
    /// for all to finish. Returns the first failure, if any stage failed
    /// or panicked.
    pub fn run(self) -> RuntimeResult<RunReport> {
        let start = Instant::now();
        let shared = Shared::default();
        let mut placed: Vec<Vec<Box<dyn Stage>>> = (0..self.workers).map(|_| Vec::new()).collect();
        for (worker, stage) in self.stages {
            placed[worker].push(stage);
        }
        let mut handles = Vec::new();
        let mut worker_threads = 0;
        for (index, stages) in placed.into_iter().enumerate() {
            if stages.is_empty() {
                continue;
            }
            let clock = self.clock.clone();
            let run_shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sluice-worker-{index}"))
                .spawn(move || worker::run(stages, &*clock, run_shared));
            match spawned {
                Ok(handle) => {
                    handles.push((format!("worker {index}"), handle));
                    worker_threads += 1;
                }
                Err(error) => {
                    shared.fail(RuntimeError::Spawn {
                        stage: format!("worker {index}"),
                        error,
                    });
                    break;
                }
            }
        }
        let io_threads = self.io.len();
        for (name, task) in self.io {
            let io_shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sluice-io-{name}"))
                .spawn(move || task(io_shared));
            match spawned {
                Ok(handle) => handles.push((name, handle)),
                Err(error) => {
                    shared.fail(RuntimeError::Spawn { stage: name, error });
                    break;
                }
            }
        }
        for (name, handle) in handles {
            if let Err(panic) = handle.join() {
                shared.fail(RuntimeError::Panicked {
                    stage: name,
                    message: worker::panic_message(&*panic),
                });
            }
        }
        let failure = shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(RunReport {
            elapsed: start.elapsed(),
            edges: self
                .edges
                .iter()
                .map(|(n, m)| (n.clone(), m.snapshot()))
                .collect(),
            worker_threads,
            io_threads,
        })
    }
}
