//! `Pipeline`: builds a dataflow from sources and streams, and runs it as stages on an executor.

use crate::{BuildError, Result, Stream};
use sluice_runtime::{
    Clock, Executor, Operator, RunReport, Source, SystemClock, DEFAULT_POLL_SIZE,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

/// Builds and runs a dataflow.
///
/// Add sources with [`Pipeline::source`], shape the streams they return,
/// end each with a sink, then [`Pipeline::run`]. Nothing runs until then,
/// and every misuse found while building is reported by `run` as a
/// [`BuildError`] before any thread starts.
///
/// ```
/// use sluice::prelude::*;
///
/// let pipeline = Pipeline::new();
/// let doubled = pipeline
///     .source(IterSource::new(1..=4))
///     .map(|x| x * 2)
///     .collect();
/// pipeline.run()?;
/// assert_eq!(doubled.take(), vec![2, 4, 6, 8]);
/// # Ok::<(), sluice::Error>(())
/// ```
pub struct Pipeline {
    plan: Rc<RefCell<Plan>>,
}

/// Settings used when the stages are built.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub channel_capacity: usize,
    pub clock: Arc<dyn Clock>,
    pub workers: usize,
}

type Terminal = Box<dyn FnOnce(&mut Builder) -> Result<(), BuildError>>;
type Check = Box<dyn Fn() -> Result<(), BuildError>>;
type Finalizer = Box<dyn FnOnce(&mut Builder) -> Result<(), BuildError>>;

/// What the pipeline's streams registered while being built.
pub(crate) struct Plan {
    pub settings: Settings,
    poll_size: usize,
    terminals: Vec<Terminal>,
    checks: Vec<Check>,
    finalizers: Vec<Finalizer>,
    errors: Vec<BuildError>,
    next_id: usize,
}

impl Plan {
    fn new(settings: Settings) -> Self {
        Self {
            settings,
            poll_size: DEFAULT_POLL_SIZE,
            terminals: Vec::new(),
            checks: Vec::new(),
            finalizers: Vec::new(),
            errors: Vec::new(),
            next_id: 0,
        }
    }

    /// Runs after every terminal is built (side outputs nobody consumed).
    pub fn add_finalizer(&mut self, finalizer: Finalizer) {
        self.finalizers.push(finalizer);
    }

    pub fn next_name(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{kind}-{}", self.next_id)
    }
    pub fn add_terminal(&mut self, terminal: Terminal) {
        self.terminals.push(terminal);
    }
    pub fn add_check(&mut self, check: Check) {
        self.checks.push(check);
    }
    pub fn add_error(&mut self, error: BuildError) {
        self.errors.push(error);
    }
}

/// Turns the plan into stages on an executor.
pub(crate) struct Builder {
    pub executor: Executor,
    pub settings: Settings,
}

/// What a finished pipeline measured.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// The executor's report: elapsed time and per-edge counters.
    pub run: RunReport,
}

impl Pipeline {
    /// An empty pipeline with the defaults: a queue capacity of 16
    /// batches per edge, the system clock, and one worker thread per core.
    pub fn new() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            plan: Rc::new(RefCell::new(Plan::new(Settings {
                channel_capacity: 16,
                clock: Arc::new(SystemClock::new()),
                workers,
            }))),
        }
    }

    /// How many worker threads run the pipeline. Each runs its instance of
    /// every stage (instance `i` of a parallel stage on worker `i % n`, a
    /// stage of one instance on worker 0, a stage that merges the instances
    /// of a stream, such as a sink's, on the last worker); keyed work (windows, per-key
    /// aggregates) has one instance per worker, and events are exchanged
    /// between them by key. Default: the machine's cores. Set it before
    /// building streams. At least 1.
    ///
    /// ```
    /// let pipeline = sluice::Pipeline::new().with_workers(4);
    /// # drop(pipeline);
    /// ```
    pub fn with_workers(self, workers: usize) -> Self {
        {
            let mut plan = self.plan.borrow_mut();
            if workers == 0 {
                plan.add_error(BuildError::ZeroSetting { setting: "workers" });
            }
            plan.settings.workers = workers.max(1);
        }
        self
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.plan.borrow().settings.workers
    }

    /// How many batches each edge's channel holds before its sender waits
    /// (backpressure). At least 1.
    ///
    /// ```
    /// let pipeline = sluice::Pipeline::new().with_channel_capacity(4);
    /// # drop(pipeline);
    /// ```
    pub fn with_channel_capacity(self, batches: usize) -> Self {
        {
            let mut plan = self.plan.borrow_mut();
            if batches == 0 {
                plan.add_error(BuildError::ZeroSetting {
                    setting: "channel capacity",
                });
            }
            plan.settings.channel_capacity = batches.max(1);
        }
        self
    }

    /// How many events a source is asked for at a time (default 1024). At least 1.
    ///
    /// ```
    /// let pipeline = sluice::Pipeline::new().with_poll_size(1);
    /// # drop(pipeline);
    /// ```
    pub fn with_poll_size(self, events: usize) -> Self {
        {
            let mut plan = self.plan.borrow_mut();
            if events == 0 {
                plan.add_error(BuildError::ZeroSetting {
                    setting: "poll size",
                });
            }
            plan.poll_size = events.max(1);
        }
        self
    }

    /// The clock stages read processing time from (default: the system
    /// clock). Tests pass a `SimulatedClock`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let clock = Arc::new(sluice::SimulatedClock::new());
    /// let pipeline = sluice::Pipeline::new().with_clock(clock);
    /// # drop(pipeline);
    /// ```
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.plan.borrow_mut().settings.clock = clock;
        self
    }

    /// A stream of the events of `source`, read on a stage of its own.
    ///
    /// ```
    /// use sluice::prelude::*;
    ///
    /// let pipeline = Pipeline::new();
    /// let values = pipeline.source(UniformSource::new(7, 1000));
    /// # drop(values);
    /// ```
    pub fn source<T, S>(&self, source: S) -> Stream<T>
    where
        T: Send + 'static,
        S: Source<T> + 'static,
    {
        let exact_len = source.exact_len();
        self.sources(vec![source], exact_len)
    }

    /// A stream read from `partitions` sources in parallel, one stage each:
    /// `source(i)` makes partition `i`. Watermarks are kept per partition.
    ///
    /// ```
    /// use sluice::prelude::*;
    ///
    /// let pipeline = Pipeline::new();
    /// // Two partitions: even and odd numbers.
    /// let numbers = pipeline
    ///     .partitioned_source(2, |i| IterSource::new((0..10u64).filter(move |n| n % 2 == i as u64)))
    ///     .collect();
    /// pipeline.run()?;
    /// let mut numbers = numbers.take();
    /// numbers.sort();
    /// assert_eq!(numbers, (0..10).collect::<Vec<_>>());
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn partitioned_source<T, S>(
        &self,
        partitions: usize,
        source: impl FnMut(usize) -> S,
    ) -> Stream<T>
    where
        T: Send + 'static,
        S: Source<T> + 'static,
    {
        if partitions == 0 {
            self.plan.borrow_mut().add_error(BuildError::ZeroSetting {
                setting: "source partitions",
            });
        }
        let sources: Vec<S> = (0..partitions.max(1)).map(source).collect();
        let exact_len = match sources.as_slice() {
            [one] => one.exact_len(),
            _ => None,
        };
        self.sources(sources, exact_len)
    }

    fn sources<T, S>(&self, sources: Vec<S>, exact_len: Option<u64>) -> Stream<T>
    where
        T: Send + 'static,
        S: Source<T> + 'static,
    {
        let name = self.plan.borrow_mut().next_name("source");
        let parallelism = sources.len();
        let stage = name.clone();
        Stream::new(
            self.plan.clone(),
            stage,
            exact_len,
            parallelism,
            true,
            Box::new(
                move |downs: Vec<Box<dyn Operator<T>>>, builder: &mut Builder| {
                    let parallel = sources.len() > 1;
                    for (i, (source, down)) in sources.into_iter().zip(downs).enumerate() {
                        let stage = if parallel {
                            format!("{name}[{i}]")
                        } else {
                            name.clone()
                        };
                        builder
                            .executor
                            .spawn_source(&stage, i, Box::new(source), down);
                    }
                    Ok(())
                },
            ),
        )
    }

    /// Checks the pipeline, starts every stage, and waits until all inputs
    /// are processed and every sink is closed.
    pub fn run(self) -> Result<PipelineReport> {
        let plan = {
            let mut plan = self.plan.borrow_mut();
            let settings = plan.settings.clone();
            std::mem::replace(&mut *plan, Plan::new(settings))
        };
        if let Some(error) = plan.errors.into_iter().next() {
            return Err(error.into());
        }
        if plan.terminals.is_empty() {
            return Err(BuildError::NoSink.into());
        }
        for check in &plan.checks {
            check()?;
        }
        let mut executor = Executor::new(plan.settings.clock.clone());
        executor.set_workers(plan.settings.workers);
        executor.set_poll_size(plan.poll_size);
        let mut builder = Builder {
            executor,
            settings: plan.settings,
        };
        for terminal in plan.terminals {
            terminal(&mut builder)?;
        }
        for finalizer in plan.finalizers {
            finalizer(&mut builder)?;
        }
        let run = builder.executor.run()?;
        Ok(PipelineReport { run })
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}
