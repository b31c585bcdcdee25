//! A distributed run: the same pipeline (with a `nats` source, or a
//! `kafka` source with `coordination`) started as any number of `sluice
//! run` processes, on one machine or many, that share its partitions
//! through NATS JetStream (a nats source's partitions; a kafka source's:
//! every partition of its topics).
//!
//! Each process joins the pipeline's group (a heartbeat in a key-value
//! bucket), computes by rendezvous hashing which partitions it should own
//! among the live members, takes their leases and runs each partition as a
//! dataflow of its own (one worker: a partition's order is what makes its
//! replay exact). A partition's checkpoints go to the state bucket, fenced
//! by compare-and-set (`connectors::nats::PartitionStore`); its input is
//! acknowledged only once a checkpoint covering it has committed (a kafka
//! source's offsets are in the checkpoint); its sinks publish with message
//! ids that a replay repeats, so the streams drop the repeats (a kafka
//! sink's writer of each partition reads its records back instead). When a member joins, the partitions it wins are handed over at
//! a checkpoint; when one dies, its leases expire within the TTL and the
//! others take its partitions over from their last checkpoints.

use crate::checkpoint::{CheckpointConfig, Guarantee, StateLocation};
use crate::connectors::nats::{CutLog, NatsClaim, PartitionStore};
use crate::connectors::{Coordination, Fence, SinkClaim};
use crate::error::{Error, Fix, Result};
use crate::plan::{NatsSourcePlan, Plan};
use crate::run::{self, PartitionContext, RunOptions, RunOutcome, Summary};
use serde::Serialize;
use sluice_nats::coordination::Lease;
use sluice_nats::kv::Bucket;
use sluice_nats::NatsClient;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod member;

use member::Member;

/// Loads the pipeline: each partition's run compiles its own plan.
pub type LoadPlan = Arc<dyn Fn() -> Result<Plan> + Send + Sync>;

/// How a process takes part in a distributed run.
#[derive(Debug, Clone)]
pub struct DistributedOptions {
    /// This process's name in the group; unique among the live ones.
    pub member: String,
    /// Time between a partition's checkpoints.
    pub checkpoint_interval: Duration,
    /// Discards the state of every partition first (only for a fresh start
    /// of the whole group: a process started so while others run throws
    /// their progress away).
    pub fresh: bool,
    /// What the run promises; exactly-once needs nats or kafka sinks.
    pub guarantee: Guarantee,
    /// Set (by a signal handler) to stop every partition at a checkpoint,
    /// give the leases back and leave.
    pub stop: Arc<AtomicBool>,
    /// Says on stderr when each checkpoint of a partition commits.
    pub log: bool,
}

/// What happened to one partition in this process.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    /// The partition.
    pub partition: u32,
    /// How its run here ended.
    pub outcome: PartitionOutcome,
    /// Records read by this process's run of it.
    pub read: u64,
    /// The checkpoint it resumed from.
    pub resumed_from: Option<u64>,
    /// Records of it read before that checkpoint (by another process, or an
    /// earlier run), which this run did not read again.
    pub skipped: u64,
}

/// How the run of a partition in this process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionOutcome {
    /// Its input is all read and its outputs are final.
    Completed,
    /// Another member won it by rendezvous hashing: this process stopped it
    /// at a checkpoint and gave its lease back.
    #[serde(rename = "handed over")]
    HandedOver,
    /// Stopped at a checkpoint on a signal (it resumes elsewhere or later).
    Stopped,
    /// The lease expired under this process; another took the partition
    /// over from its last checkpoint.
    Lost,
    /// It failed (a broker did not answer in time); the run starts again
    /// from its last checkpoint, here or elsewhere.
    Failed,
}

impl std::fmt::Display for PartitionOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PartitionOutcome::Completed => "completed",
            PartitionOutcome::HandedOver => "handed over",
            PartitionOutcome::Stopped => "stopped",
            PartitionOutcome::Lost => "lost",
            PartitionOutcome::Failed => "failed",
        })
    }
}

/// What a process of a distributed run did: the `summary:` line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DistributedSummary {
    /// The pipeline.
    pub pipeline: String,
    /// This process's name in the group.
    pub member: String,
    /// Records read, over this process's partition runs.
    pub read: u64,
    /// Read and neither late nor dead letters.
    pub processed: u64,
    /// Beyond their window's allowed lateness.
    pub late: u64,
    /// Could not be decoded or evaluated.
    pub dead_letter: u64,
    /// Rows published, per sink.
    pub emitted: indexmap::IndexMap<String, u64>,
    /// Every partition run, in order.
    pub partitions: Vec<PartitionReport>,
    /// It stopped on a signal (the partitions resume elsewhere or later).
    pub stopped: bool,
    /// Wall time.
    pub seconds: f64,
}

impl DistributedSummary {
    fn add(&mut self, partition: u32, outcome: PartitionOutcome, summary: Option<&Summary>) {
        if let Some(s) = summary {
            self.read += s.read;
            self.processed += s.processed;
            self.late += s.late;
            self.dead_letter += s.dead_letter;
            for (label, n) in &s.emitted {
                *self.emitted.entry(label.clone()).or_default() += n;
            }
        }
        self.partitions.push(PartitionReport {
            partition,
            outcome,
            read: summary.map_or(0, |s| s.read),
            resumed_from: summary
                .and_then(|s| s.checkpoints.as_ref())
                .and_then(|c| c.resumed_from),
            skipped: summary
                .and_then(|s| s.checkpoints.as_ref())
                .map_or(0, |c| c.skipped),
        });
    }
}

/// The name of a pipeline's group: buckets and consumers are named after it.
pub fn group_name(pipeline: &str) -> String {
    let clean: String = pipeline
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("sluice_{clean}")
}

/// The NATS source of `plan`, if it has one.
pub fn nats_source(plan: &Plan) -> Option<&NatsSourcePlan> {
    plan.source.connector.nats()
}

/// Where the processes of a distributed run of `plan` meet, if `plan`
/// runs as one (a nats source, a kafka source with `coordination`).
pub fn coordination(plan: &Plan) -> Option<Coordination> {
    plan.source.connector.coordination()
}

/// Creates what the pipeline reads and writes, if missing: the input
/// stream with its partitioning, and the sinks' streams. Producers must
/// not publish before the input stream exists (nothing would keep their
/// messages), so `sluice setup` runs this on its own.
pub fn setup(plan: &Plan) -> Result<Vec<String>> {
    let nats = nats_source(plan).ok_or_else(|| {
        Error::refused("only pipelines with a nats source have streams to set up")
    })?;
    let client = NatsClient::shared(&nats.url)?;
    client.ensure_partitioned_stream(&nats.stream)?;
    let mut made = vec![format!(
        "stream {} ({} -> {} partitions)",
        nats.stream.name, nats.stream.subject, nats.stream.partitions
    )];
    for sink in &plan.sinks {
        if let Some(t) = sink.target.nats() {
            if let Some(stream) = &t.stream {
                let subject = crate::connectors::nats::sink::subject_pattern(&t.subject);
                NatsClient::shared(&t.url)
                    .and_then(|c| c.ensure_stream(stream, &[subject.as_str()], t.replicas))?;
                made.push(format!("stream {stream} ({})", t.subject));
            }
        }
    }
    Ok(made)
}

/// Checks that every sink can be written by whichever process owns a
/// partition (nats and kafka sinks, or stdout when repeats are accepted),
/// with a lease as long as it needs.
fn check_sinks(plan: &Plan, guarantee: Guarantee, lease_ttl: Duration) -> Result<()> {
    for sink in &plan.sinks {
        if let Some(refusal) = sink.target.refuses_distributed(guarantee) {
            return Err(refusal.context(format_args!("sink of `{}`", sink.from)));
        }
        if let Some(least) = sink.target.least_lease_ttl().filter(|l| lease_ttl < *l) {
            return Err(Error::refused(format!(
                "sink of `{}`: {} needs a lease_ttl of at least {least:?} in the source (it \
                 is {lease_ttl:?}): what its writer hands over must land within a sixth of it",
                sink.from,
                sink.target.label()
            )));
        }
    }
    Ok(())
}

/// Checks that each nats sink's stream remembers message ids longer than
/// a replay can reach back: the checkpoint interval, the lease TTL (a
/// takeover) and the time requests are retried through a failover.
fn check_duplicate_windows(plan: &Plan, lease_ttl: Duration, interval: Duration) -> Result<()> {
    let reach = interval + lease_ttl * 2 + Duration::from_secs(30);
    for sink in &plan.sinks {
        let Some(target) = sink.target.nats() else {
            continue;
        };
        let client = NatsClient::shared(&target.url)?;
        let subject = crate::connectors::nats::sink::subject_pattern(&target.subject);
        let window = client
            .duplicate_window(&subject)
            .map_err(|e| Error::from(e).context(format_args!("sink of `{}`", sink.from)))?;
        if window < reach {
            return Err(Error::refused(format!(
                "sink of `{}`: the stream that captures `{}` remembers message ids for {:?}, \
                 but a replay can republish what was sent up to {:?} earlier (checkpoint \
                 interval, twice the lease TTL and 30 s of failover), so repeats could get \
                 through. Raise the stream's duplicate window, or shorten lease_ttl and the \
                 checkpoint interval",
                sink.from, target.subject, window, reach
            ))
            .with_fix(Fix::CheckpointMoreOften));
        }
    }
    Ok(())
}

/// Runs this process's share of the pipeline until every partition has
/// completed (with `end = "caught-up"`), or until `options.stop` is set.
pub fn run(load: LoadPlan, options: &DistributedOptions) -> Result<DistributedSummary> {
    let started = Instant::now();
    let plan = load()?;
    let coordination = coordination(&plan).ok_or_else(|| {
        Error::refused(
            "a distributed run needs a nats source, or a kafka source with `coordination`",
        )
    })?;
    check_sinks(&plan, options.guarantee, coordination.lease_ttl)?;
    if let Some(join) = plan.transforms.iter().find(|t| {
        matches!(
            t.operation,
            crate::plan::Operation::Join(_) | crate::plan::Operation::Retract(_)
        )
    }) {
        return Err(Error::refused(format!(
            "transform `{}` is a join or an aggregate of a changelog: a distributed run splits \
             the input by partition, so the rows it brings together may reach different \
             processes; run the pipeline in one process",
            join.name
        )));
    }
    if nats_source(&plan).is_some() {
        setup(&plan)?;
    }
    check_duplicate_windows(&plan, coordination.lease_ttl, options.checkpoint_interval)?;
    // Every process must share out the same partitions: a source whose
    // partitions change while its group runs is read as it was at the start.
    let partitions = plan.source.connector.partition_count()?;
    let mut member = Member::join(load, options, coordination, partitions, &plan.name)?;
    let tick = (member.coordination.lease_ttl / 4).max(Duration::from_millis(100));
    // A moment first, so that processes started together see each other
    // before they take partitions.
    std::thread::sleep(tick.min(Duration::from_millis(500)));
    loop {
        let stopping = options.stop.load(Ordering::SeqCst) || member.failure.is_some();
        let members = member.members();
        member.abandon_overdue();
        member.collect_ended();
        member.renew(&members, stopping);
        if stopping {
            if member.is_idle() {
                break;
            }
        } else {
            member.take_owned(&members)?;
            if member.is_idle() && member.all_completed() {
                break;
            }
        }
        std::thread::sleep(tick);
    }
    let _ = member.group.leave();
    if let Some(error) = member.failure {
        return Err(error);
    }
    let mut summary = member.summary;
    summary.stopped = options.stop.load(Ordering::SeqCst);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// What the thread of one partition needs.
struct PartitionRun {
    load: LoadPlan,
    partition: u32,
    lease: Arc<Lease>,
    state: Bucket,
    group: String,
    interval: Duration,
    guarantee: Guarantee,
    lease_ttl: Duration,
    stop: Arc<AtomicBool>,
    log: bool,
}

impl PartitionRun {
    fn run(self) -> Result<RunOutcome> {
        let mut plan = (self.load)()?;
        // A partition is one worker: its order is what its replay repeats.
        plan.execution.workers = 1;
        let partition = self.partition;
        let store = PartitionStore::claim(
            &self.state,
            partition,
            &crate::build::restore::fingerprint(&plan),
            self.lease.clone(),
        )?;
        let epoch = store.epoch();
        // Half the TTL: what a writer hands over before the fence falls
        // has the rest to land, with a third of the TTL to spare for the
        // server's clock (see `SinkClaim`).
        let lease = self.lease.clone();
        let ttl = self.lease_ttl;
        let fence = Fence::new(move || lease.renewed_within(ttl / 2));
        for (i, sink) in plan.sinks.iter_mut().enumerate() {
            sink.target.in_partition(&SinkClaim {
                partition,
                prefix: format!("{}.{epoch}.p{partition}.s{i}", self.group),
                fence: fence.clone(),
                lease_ttl: self.lease_ttl,
            });
        }
        let mut context = PartitionContext {
            partition,
            nats: None,
        };
        // A nats source's consumer, and its log of cuts, per claim.
        let mut nats_reader = None;
        if let Some(nats) = nats_source(&plan).cloned() {
            let client = NatsClient::shared(&nats.url)?;
            // A consumer of its own per claim: an earlier owner's pulls go
            // to its own consumer (deleted here), never to this one.
            let durable = format!("{}_p{partition}_r{}", self.group, self.lease.revision());
            let log = CutLog::claim(&self.state, partition, &self.lease, &durable, || {
                if nats.end_when_caught_up {
                    client
                        .last_sequence(&nats.stream.name)
                        .map(Some)
                        .map_err(Error::from)
                } else {
                    Ok(None)
                }
            })?;
            if let Some(previous) = log.previous_consumer() {
                let _ = client.delete_consumer(&nats.stream.name, previous);
            }
            context.nats = Some(NatsClaim {
                durable: durable.clone(),
                log: Arc::new(Mutex::new(Some(log))),
            });
            nats_reader = Some((client, nats.stream.name.clone(), durable));
        }
        let progress = run::progress(&plan);
        let options = RunOptions {
            checkpoints: Some(CheckpointConfig {
                location: StateLocation::External(Arc::new(store)),
                interval: self.interval,
                fresh: false,
                guarantee: self.guarantee,
                log: self.log.then(|| format!("partition {partition}: ")),
            }),
            stop: self.stop,
            watch: None,
            partition: Some(context),
        };
        let outcome = run::run_with(plan, &progress, &options)?;
        if let (run::RunOutcome::Completed(_), Some((client, stream, durable))) =
            (&outcome, nats_reader)
        {
            // Completed: nobody reads the partition again.
            let _ = client.delete_consumer(&stream, &durable);
        }
        Ok(outcome)
    }
}
