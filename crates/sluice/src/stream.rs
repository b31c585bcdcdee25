//! `Stream`: a typed stream being built, with its operators, edges, exchanges and sinks.

use crate::ops::{Filter, FlatMap, GlobalAggregate, Inspect, Map, MapBatch, Rule};
use crate::pipeline::{Builder, Plan};
use crate::side::SideOutput;
use crate::{BuildError, KeyedStream, RuleCounters};
use sluice_connectors::{CollectSink, Collected};
use sluice_core::{Aggregate, Batch, MIN_TIMESTAMP};
use sluice_runtime::{edge, exchange, multi_edge, FlushPolicy, Operator, Sink, SinkOperator};
use std::cell::RefCell;
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

/// A stream taken apart: what `Stream::new` takes back.
pub(crate) struct StreamParts<T> {
    pub plan: Rc<RefCell<Plan>>,
    pub stage: String,
    pub exact_len: Option<u64>,
    pub parallelism: usize,
    pub source_stage: bool,
    pub connect: Connect<T>,
}

/// One operator per parallel instance of a stage.
pub(crate) type Instances<T> = Vec<Box<dyn Operator<T>>>;

/// Wires a stream, given the operators its events go to (one per instance).
pub(crate) type Connect<T> = Box<dyn FnOnce(Instances<T>, &mut Builder) -> Result<(), BuildError>>;

/// A stream of events of type `T`, being built.
///
/// Methods that transform a stream are fused onto the stage that produces
/// it: no thread, no channel, one call per batch. [`Stream::batch`] is the
/// exception: it starts a new stage behind an edge whose
/// [`FlushPolicy`] decides how events are grouped into batches: one by one
/// (event-driven) or many at a time (micro-batches).
///
/// ```
/// use sluice::prelude::*;
///
/// let pipeline = Pipeline::new();
/// let means = pipeline
///     .source(IterSource::new(1..=10).with_event_time(|x| *x))
///     .map(|x| x as f64)
///     .batch(FlushPolicy::Count(5))
///     .map_batch(|batch: &[f64]| batch.iter().sum::<f64>() / batch.len() as f64)
///     .collect();
/// pipeline.run()?;
/// assert_eq!(means.take(), vec![3.0, 8.0]);
/// # Ok::<(), sluice::Error>(())
/// ```
pub struct Stream<T> {
    plan: Rc<RefCell<Plan>>,
    /// The stage this stream's events are produced on.
    stage: String,
    /// How many events the stream will carry, when known in advance.
    exact_len: Option<u64>,
    /// How many parallel instances produce the stream.
    parallelism: usize,
    /// Whether the stream is produced on a source's own stage.
    source_stage: bool,
    connect: Connect<T>,
}

impl<T: Send + 'static> Stream<T> {
    pub(crate) fn new(
        plan: Rc<RefCell<Plan>>,
        stage: String,
        exact_len: Option<u64>,
        parallelism: usize,
        source_stage: bool,
        connect: Connect<T>,
    ) -> Self {
        Self {
            plan,
            stage,
            exact_len,
            parallelism,
            source_stage,
            connect,
        }
    }

    /// True when the stream is produced on a source's own stage (no edge
    /// since the source).
    pub(crate) fn on_source_stage(&self) -> bool {
        self.source_stage
    }

    /// Takes the stream apart (for operators with several outputs).
    pub(crate) fn into_parts(self) -> StreamParts<T> {
        StreamParts {
            plan: self.plan,
            stage: self.stage,
            exact_len: self.exact_len,
            parallelism: self.parallelism,
            source_stage: self.source_stage,
            connect: self.connect,
        }
    }

    /// How many parallel instances produce this stream.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// A stream whose events pass through the operators `make` builds, one
    /// per instance, fused onto the same stage.
    pub(crate) fn fuse<U: Send + 'static>(
        self,
        exact_len: Option<u64>,
        mut make: impl FnMut(Box<dyn Operator<U>>) -> Box<dyn Operator<T>> + 'static,
    ) -> Stream<U> {
        let connect = self.connect;
        Stream {
            plan: self.plan,
            stage: self.stage,
            exact_len,
            parallelism: self.parallelism,
            source_stage: self.source_stage,
            connect: Box::new(move |downs, builder| {
                connect(downs.into_iter().map(&mut make).collect(), builder)
            }),
        }
    }

    /// Like [`Stream::fuse`], and `make` also gets the instance's index and
    /// the builder (for operators with side outputs or clocks).
    pub(crate) fn fuse_with_builder<U: Send + 'static>(
        self,
        mut make: impl FnMut(
                Box<dyn Operator<U>>,
                usize,
                &mut Builder,
            ) -> Result<Box<dyn Operator<T>>, BuildError>
            + 'static,
    ) -> Stream<U> {
        let connect = self.connect;
        Stream {
            plan: self.plan,
            stage: self.stage,
            exact_len: None,
            parallelism: self.parallelism,
            source_stage: self.source_stage,
            connect: Box::new(move |downs, builder| {
                let mut ups = Vec::with_capacity(downs.len());
                for (instance, down) in downs.into_iter().enumerate() {
                    ups.push(make(down, instance, builder)?);
                }
                connect(ups, builder)
            }),
        }
    }

    /// Ends the stream in an operator (used by sinks), on one instance:
    /// parallel instances are merged first.
    fn terminate(self, last: Box<dyn Operator<T>>) {
        let stream = self.merge();
        let connect = stream.connect;
        stream
            .plan
            .borrow_mut()
            .add_terminal(Box::new(move |builder| connect(vec![last], builder)));
    }

    /// Merges the parallel instances of this stream into one stage, keeping
    /// their batches as they are. Its watermark is the minimum of theirs.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// let one = p.partitioned_source(3, |i| IterSource::new([i])).merge();
    /// assert_eq!(one.parallelism(), 1);
    /// # drop(one);
    /// ```
    pub fn merge(self) -> Stream<T> {
        if self.parallelism == 1 {
            return self;
        }
        let (edge_name, stage) = {
            let mut plan = self.plan.borrow_mut();
            (
                plan.next_name(&format!("{}-merge", self.stage)),
                plan.next_name("stage"),
            )
        };
        let upstream = self.connect;
        let senders = self.parallelism;
        let stage_name = stage.clone();
        Stream {
            plan: self.plan,
            stage,
            exact_len: self.exact_len,
            parallelism: 1,
            source_stage: false,
            connect: Box::new(move |downs, builder| {
                let (ends, receiver) = multi_edge::<T>(
                    &edge_name,
                    FlushPolicy::Forward,
                    builder.settings.channel_capacity,
                    builder.settings.clock.clone(),
                    None,
                    senders,
                )
                .map_err(|error| BuildError::InvalidBatching {
                    edge: edge_name.clone(),
                    error,
                })?;
                let Some(down) = downs.into_iter().next() else {
                    return Ok(());
                };
                // Fed by every instance: on the last worker, away from
                // worker 0, which runs the sources of one instance.
                let last = builder.settings.workers.saturating_sub(1);
                builder
                    .executor
                    .spawn_receiver(&stage_name, last, receiver, down);
                upstream(
                    ends.into_iter()
                        .map(|e| Box::new(e) as Box<dyn Operator<T>>)
                        .collect(),
                    builder,
                )
            }),
        }
    }

    /// Sends every event to the worker its `route` hash picks: a new stage
    /// with one instance per worker of the pipeline.
    pub(crate) fn exchange(
        self,
        route: Arc<dyn Fn(&T) -> u64 + Send + Sync>,
        policy: FlushPolicy,
    ) -> Stream<T> {
        self.exchange_from(None, route, policy)
    }

    /// The exchange of this stream, and of `other` when given (one stage
    /// fed by both; its senders are this stream's instances, then the
    /// other's).
    fn exchange_from(
        self,
        other: Option<Stream<T>>,
        route: Arc<dyn Fn(&T) -> u64 + Send + Sync>,
        policy: FlushPolicy,
    ) -> Stream<T> {
        let what = if other.is_some() { "join" } else { "exchange" };
        let (edge_name, stage, workers) = {
            let mut plan = self.plan.borrow_mut();
            let workers = plan.settings.workers;
            (
                plan.next_name(&format!("{}-{what}", self.stage)),
                plan.next_name("stage"),
                workers,
            )
        };
        let left_senders = self.parallelism;
        let (right, right_senders) = match other {
            Some(other) => (Some(other.connect), other.parallelism),
            None => (None, 0),
        };
        let upstream = self.connect;
        let senders = left_senders + right_senders;
        let stage_name = stage.clone();
        Stream {
            plan: self.plan,
            stage,
            exact_len: None,
            parallelism: workers,
            source_stage: false,
            connect: Box::new(move |downs, builder| {
                let (ends, receivers) = exchange::<T>(
                    &edge_name,
                    policy,
                    builder.settings.channel_capacity,
                    builder.settings.clock.clone(),
                    senders,
                    downs.len(),
                    route,
                )
                .map_err(|error| BuildError::InvalidBatching {
                    edge: edge_name.clone(),
                    error,
                })?;
                for (worker, (receiver, down)) in receivers.into_iter().zip(downs).enumerate() {
                    builder.executor.spawn_receiver(
                        &format!("{stage_name}[{worker}]"),
                        worker,
                        receiver,
                        down,
                    );
                }
                let mut ends: Vec<Box<dyn Operator<T>>> = ends
                    .into_iter()
                    .map(|e| Box::new(e) as Box<dyn Operator<T>>)
                    .collect();
                let rest = ends.split_off(left_senders);
                upstream(ends, builder)?;
                match right {
                    Some(right) => right(rest, builder),
                    None => Ok(()),
                }
            }),
        }
    }

    /// Runs an operator of your own on every instance of this stream, fused
    /// onto the stage that produces it: `make(down, instance)` builds the
    /// operator of one instance, given the operator after it. The operator
    /// keeps the contract of [`Operator`]: it passes watermarks, idleness and
    /// the end on to `down`.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// use sluice::{Batch, Operator, OperatorResult, Signals};
    ///
    /// /// Doubles every number.
    /// struct Double(Box<dyn Operator<u64>>);
    /// impl Operator<u64> for Double {
    ///     fn on_batch(&mut self, batch: &mut Batch<u64>) -> OperatorResult {
    ///         let (items, _) = batch.parts_mut();
    ///         items.iter_mut().for_each(|x| *x *= 2);
    ///         self.0.on_batch(batch)
    ///     }
    ///     // Ticks, watermarks, idleness, barriers and the end pass on to it.
    ///     fn downstream(&mut self) -> Option<&mut dyn Signals> {
    ///         Some(&mut self.0)
    ///     }
    /// }
    ///
    /// let p = Pipeline::new();
    /// let out = p
    ///     .source(IterSource::new(1..=3u64))
    ///     .operator(|down, _instance| Box::new(Double(down)))
    ///     .collect();
    /// p.run()?;
    /// assert_eq!(out.take(), vec![2, 4, 6]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn operator<U: Send + 'static>(
        self,
        mut make: impl FnMut(Box<dyn Operator<U>>, usize) -> Box<dyn Operator<T>> + 'static,
    ) -> Stream<U> {
        self.fuse_with_builder(move |down, instance, _| Ok(make(down, instance)))
    }

    /// Sends every event to worker `route(event) % workers`, on a new stage
    /// with one instance per worker of the pipeline; `policy` batches the
    /// edge. For operators that partition batches of their own (a batch of
    /// rows split by key, say).
    pub fn exchange_by(
        self,
        route: impl Fn(&T) -> u64 + Send + Sync + 'static,
        policy: FlushPolicy,
    ) -> Stream<T> {
        self.exchange(Arc::new(route), policy)
    }

    /// Sends the events of this stream and of `other` to the worker
    /// `route(event) % workers` picks, on one new stage with one instance
    /// per worker: each instance reads both streams, and its watermark is
    /// the minimum of theirs (for operators of two inputs, like joins).
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// let odd = p.source(IterSource::new([1u64, 3]));
    /// let even = p.source(IterSource::new([2u64, 4]));
    /// let both = odd.exchange_with(even, |x: &u64| *x, FlushPolicy::Forward);
    /// let out = both.collect();
    /// p.run()?;
    /// let mut all = out.take();
    /// all.sort();
    /// assert_eq!(all, vec![1, 2, 3, 4]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn exchange_with(
        self,
        other: Stream<T>,
        route: impl Fn(&T) -> u64 + Send + Sync + 'static,
        policy: FlushPolicy,
    ) -> Stream<T> {
        assert!(
            Rc::ptr_eq(&self.plan, &other.plan),
            "exchange_with: both streams belong to one pipeline"
        );
        self.exchange_from(Some(other), Arc::new(route), policy)
    }

    /// Sends every event to the worker its key hashes to.
    pub(crate) fn exchange_by_key<K: Hash + 'static>(
        self,
        key: Arc<dyn Fn(&T) -> K + Send + Sync>,
        policy: FlushPolicy,
    ) -> Stream<T> {
        self.exchange(
            Arc::new(move |e: &T| crate::keyed::key_hash(&key(e))),
            policy,
        )
    }

    /// A side output of an operator on this stream's stage.
    pub(crate) fn side_output<U: Send + 'static>(&self, what: &str) -> SideOutput<U> {
        SideOutput::new(
            &self.plan,
            &format!("{}-{what}", self.stage),
            self.parallelism,
        )
    }

    /// Transforms every event.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// let out = p.source(IterSource::new(["a", "bb"])).map(str::len).collect();
    /// p.run()?;
    /// assert_eq!(out.take(), vec![1, 2]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn map<U, F>(self, f: F) -> Stream<U>
    where
        U: Send + 'static,
        F: FnMut(T) -> U + Clone + Send + 'static,
    {
        let exact_len = self.exact_len;
        self.fuse(exact_len, move |down| {
            Box::new(Map {
                f: f.clone(),
                out: Batch::new(),
                down,
                _in: PhantomData,
            })
        })
    }

    /// Keeps the events for which `predicate` holds.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// let out = p.source(IterSource::new(1..=6)).filter(|x| x % 2 == 0).collect();
    /// p.run()?;
    /// assert_eq!(out.take(), vec![2, 4, 6]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn filter<F>(self, predicate: F) -> Stream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + 'static,
    {
        self.fuse(None, move |down| {
            Box::new(Filter {
                predicate: predicate.clone(),
                down,
            })
        })
    }

    /// Turns every event into zero or more events, which keep its event time.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// let words = p
    ///     .source(IterSource::new(["to be", "or not"]))
    ///     .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
    ///     .collect();
    /// p.run()?;
    /// assert_eq!(words.take(), vec!["to", "be", "or", "not"]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn flat_map<U, I, F>(self, f: F) -> Stream<U>
    where
        U: Send + 'static,
        I: IntoIterator<Item = U>,
        F: FnMut(T) -> I + Clone + Send + 'static,
    {
        self.fuse(None, move |down| {
            Box::new(FlatMap {
                f: f.clone(),
                out: Batch::new(),
                down,
                _in: PhantomData,
            })
        })
    }

    /// Shows every event to `f` (for logging, counting, debugging) and
    /// passes it on unchanged.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
    ///
    /// let seen = Arc::new(AtomicU64::new(0));
    /// let counter = seen.clone();
    /// let p = Pipeline::new();
    /// let out = p
    ///     .source(IterSource::new(0..5))
    ///     .inspect(move |_| { counter.fetch_add(1, Ordering::Relaxed); })
    ///     .collect();
    /// p.run()?;
    /// assert_eq!(seen.load(Ordering::Relaxed), 5);
    /// assert_eq!(out.len(), 5);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn inspect<F>(self, f: F) -> Stream<T>
    where
        F: FnMut(&T) + Clone + Send + 'static,
    {
        let exact_len = self.exact_len;
        self.fuse(exact_len, move |down| {
            Box::new(Inspect { f: f.clone(), down })
        })
    }

    /// Runs a batch algorithm on every batch: one output per batch, whose
    /// event time is the batch's latest. The batches are those released by
    /// the nearest [`Stream::batch`] edge upstream (or the source's polls,
    /// when there is none).
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// let sizes = p
    ///     .source(IterSource::new(0..10))
    ///     .batch(FlushPolicy::Batches(3))
    ///     .map_batch(|batch: &[i32]| batch.len())
    ///     .collect();
    /// p.run()?;
    /// assert_eq!(sizes.take(), vec![4, 3, 3]); // numpy.array_split(range(10), 3)
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn map_batch<R, F>(self, f: F) -> Stream<R>
    where
        R: Send + 'static,
        F: FnMut(&[T]) -> R + Clone + Send + 'static,
    {
        self.fuse(None, move |down| {
            Box::new(MapBatch {
                f: f.clone(),
                out: Batch::with_capacity(1),
                down,
                _in: PhantomData,
            })
        })
    }

    /// Starts a new stage behind an edge that groups events into batches
    /// by `policy`: `EachEvent` for event-driven processing, `Count`,
    /// `Interval`, `CountOrInterval`, `Batches` or `EventTime` for
    /// micro-batches. The edge's channel is bounded, so a slow stage makes
    /// this one wait (backpressure). A partial batch is released at the end
    /// of the input.
    ///
    /// An invalid policy (a count or interval of zero, `Batches` on a stream
    /// of unknown length) makes [`Pipeline::run`](crate::Pipeline::run)
    /// fail with a [`BuildError`] that says how to fix it.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// use std::time::Duration;
    ///
    /// let p = Pipeline::new();
    /// let per_second = p
    ///     .source(IterSource::new(0..2500).with_event_time(|i| *i))
    ///     .batch(FlushPolicy::EventTime(Duration::from_secs(1)))
    ///     .map_batch(|b: &[i64]| b.len())
    ///     .collect();
    /// p.run()?;
    /// assert_eq!(per_second.take(), vec![1000, 1000, 500]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn batch(self, policy: FlushPolicy) -> Stream<T> {
        let (edge_name, stage) = {
            let mut plan = self.plan.borrow_mut();
            (
                plan.next_name(&format!("{}-edge", self.stage)),
                plan.next_name("stage"),
            )
        };
        let exact_len = if self.parallelism == 1 {
            self.exact_len
        } else {
            None
        };
        if let Err(error) = sluice_runtime::Batcher::<T>::new(policy, exact_len) {
            self.plan
                .borrow_mut()
                .add_error(BuildError::InvalidBatching {
                    edge: edge_name.clone(),
                    error,
                });
        }
        let upstream = self.connect;
        let stage_name = stage.clone();
        Stream {
            plan: self.plan,
            stage,
            exact_len,
            parallelism: self.parallelism,
            source_stage: false,
            connect: Box::new(move |downs, builder| {
                let capacity = builder.settings.channel_capacity;
                let parallel = downs.len() > 1;
                let mut senders: Instances<T> = Vec::with_capacity(downs.len());
                for (instance, down) in downs.into_iter().enumerate() {
                    let (name, stage) = if parallel {
                        (
                            format!("{edge_name}[{instance}]"),
                            format!("{stage_name}[{instance}]"),
                        )
                    } else {
                        (edge_name.clone(), stage_name.clone())
                    };
                    let clock = builder.settings.clock.clone();
                    let (sender, receiver) = edge::<T>(&name, policy, capacity, clock, exact_len)
                        .map_err(|error| BuildError::InvalidBatching {
                        edge: name.clone(),
                        error,
                    })?;
                    builder
                        .executor
                        .spawn_receiver(&stage, instance, receiver, down);
                    senders.push(Box::new(sender));
                }
                upstream(senders, builder)
            }),
        }
    }

    /// A rule: when `trigger` holds for an event, `action` runs on it and
    /// its output flows on; other events stop here.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// let alerts = p
    ///     .source(IterSource::new([5, 15, 25]))
    ///     .on(|x| *x > 10, |x| x * 2)
    ///     .collect();
    /// p.run()?;
    /// assert_eq!(alerts.take(), vec![30, 50]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn on<U, P, A>(self, trigger: P, action: A) -> Stream<U>
    where
        U: Send + 'static,
        P: FnMut(&T) -> bool + Clone + Send + 'static,
        A: FnMut(T) -> U + Clone + Send + 'static,
    {
        self.on_counted(trigger, action, Arc::new(RuleCounters::default()))
    }

    /// [`Stream::on`], with counters of how often the trigger was evaluated
    /// and fired.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// use std::sync::Arc;
    ///
    /// let counters = Arc::new(RuleCounters::default());
    /// let p = Pipeline::new();
    /// let out = p
    ///     .source(IterSource::new([5, 15, 25]))
    ///     .on_counted(|x| *x > 10, |x| x * 2, counters.clone())
    ///     .collect();
    /// p.run()?;
    /// assert_eq!((counters.evaluated(), counters.fired()), (3, 2));
    /// # drop(out);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn on_counted<U, P, A>(
        self,
        trigger: P,
        action: A,
        counters: Arc<RuleCounters>,
    ) -> Stream<U>
    where
        U: Send + 'static,
        P: FnMut(&T) -> bool + Clone + Send + 'static,
        A: FnMut(T) -> U + Clone + Send + 'static,
    {
        self.fuse(None, move |down| {
            Box::new(Rule {
                trigger: trigger.clone(),
                action: action.clone(),
                counters: counters.clone(),
                out: Batch::new(),
                down,
                _in: PhantomData,
            })
        })
    }

    /// Groups the stream by a key, for per-key aggregates.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// let counts = p
    ///     .source(IterSource::new(["a", "b", "a"]))
    ///     .key_by(|s| s.to_string())
    ///     .aggregate(Count)
    ///     .collect();
    /// p.run()?;
    /// let mut counts = counts.take();
    /// counts.sort();
    /// assert_eq!(counts, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn key_by<K, F>(self, key: F) -> KeyedStream<K, T>
    where
        K: Hash + Eq + Clone + Send + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        KeyedStream::new(self, key)
    }

    /// One mergeable aggregate over the whole stream, emitted once at the
    /// end of the input. Each batch is folded on its own and merged into
    /// the total, so the result does not depend on how the input was cut.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// let mean = p
    ///     .source(IterSource::new([1.0, 2.0, 3.0, 4.0]))
    ///     .batch(FlushPolicy::Count(3))
    ///     .aggregate(Mean)
    ///     .collect();
    /// p.run()?;
    /// assert_eq!(mean.take(), vec![Some(2.5)]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn aggregate<A>(self, aggregate: A) -> Stream<A::Output>
    where
        A: Aggregate<T> + Clone + 'static,
        A::Output: Send + 'static,
    {
        let stream = if self.parallelism > 1 {
            self.merge()
        } else {
            self
        };
        stream.fuse(Some(1), move |down| {
            let total = aggregate.init();
            Box::new(GlobalAggregate {
                aggregate: aggregate.clone(),
                total,
                latest: MIN_TIMESTAMP,
                down,
            })
        })
    }

    /// Ends the stream in a sink.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// p.source(IterSource::new(1..=3)).sink(StdoutSink::display());
    /// p.run()?;
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn sink<S: Sink<T> + 'static>(self, sink: S) {
        self.terminate(Box::new(SinkOperator(sink)));
    }

    /// Ends the stream in memory: the handle returns the events after the run.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// let out = p.source(IterSource::new(["x"])).collect();
    /// p.run()?;
    /// assert_eq!(out.take(), vec!["x"]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn collect(self) -> Collected<T> {
        let (sink, collected) = CollectSink::new();
        self.sink(sink);
        collected
    }

    /// Ends the stream in a function called for every event.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// let p = Pipeline::new();
    /// p.source(IterSource::new(1..=2)).for_each(|x| println!("got {x}"));
    /// p.run()?;
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn for_each<F>(self, f: F)
    where
        F: FnMut(T) + Send + 'static,
    {
        self.sink(ForEach(f));
    }

    pub(crate) fn plan(&self) -> &Rc<RefCell<Plan>> {
        &self.plan
    }
}

struct ForEach<F>(F);

impl<T, F: FnMut(T) + Send> Sink<T> for ForEach<F> {
    fn write(&mut self, batch: &mut Batch<T>) -> Result<(), sluice_runtime::BoxError> {
        for (item, _) in batch.drain() {
            (self.0)(item);
        }
        Ok(())
    }
}
