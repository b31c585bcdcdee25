//! This process as a member of a distributed run's group: the partitions
//! it runs, how each ended, and the leases it keeps, takes and gives back.
//! [`super::run`] calls its steps once per tick.

use super::PartitionRun;
use super::{group_name, DistributedOptions, DistributedSummary, LoadPlan, PartitionOutcome};
use crate::connectors::nats::partition_completed;
use crate::connectors::Coordination;
use crate::error::{Error, Result};
use crate::run::RunOutcome;
use sluice_nats::coordination::{Group, Lease};
use sluice_nats::kv::Bucket;
use sluice_nats::{rendezvous, NatsClient};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One partition running in this process.
struct Running {
    lease: Arc<Lease>,
    stop: Arc<AtomicBool>,
    /// Why it was asked to stop, if it was.
    stopping: Option<PartitionOutcome>,
    /// When its lease was found lost.
    lost_at: Option<Instant>,
    /// When it started.
    started: Instant,
    thread: JoinHandle<Result<RunOutcome>>,
}

/// How many times in a row a partition's run may fail on a transient error
/// (a broker that did not answer in time: `Error::is_transient`) and be
/// started again from its last checkpoint before the process gives up; a
/// run that lasted [`FAILURES_FORGOTTEN`], or completed, starts the count
/// afresh.
const RESTARTS: u32 = 3;
const FAILURES_FORGOTTEN: Duration = Duration::from_secs(60);

/// This process in the group.
pub(super) struct Member<'a> {
    load: LoadPlan,
    options: &'a DistributedOptions,
    /// Where the group meets.
    pub(super) coordination: Coordination,
    /// The partitions shared out.
    partitions: u32,
    group_name: String,
    /// The partitions' checkpoints.
    state: Bucket,
    /// The group's members and leases.
    pub(super) group: Group,
    /// What happened to each partition here.
    pub(super) summary: DistributedSummary,
    running: BTreeMap<u32, Running>,
    completed: BTreeSet<u32>,
    /// The first failure: every run stops at a checkpoint, then the run
    /// returns it.
    pub(super) failure: Option<Error>,
    last_members: Vec<String>,
    /// Runs whose lease was lost and that did not end within the TTL: the
    /// partition is not taken again here while one still runs.
    abandoned: BTreeMap<u32, JoinHandle<Result<RunOutcome>>>,
    /// The runs of a partition that failed in a row.
    failures: BTreeMap<u32, u32>,
}

impl<'a> Member<'a> {
    /// Joins the group of pipeline `name` (emptying its state first for a
    /// fresh start).
    pub(super) fn join(
        load: LoadPlan,
        options: &'a DistributedOptions,
        coordination: Coordination,
        partitions: u32,
        name: &str,
    ) -> Result<Self> {
        let client = NatsClient::shared(&coordination.url)?;
        let group_name = group_name(name);
        let replicas = coordination.replicas;
        let bucket = format!("{group_name}_state");
        let state = Bucket::open(&client, &bucket, Duration::ZERO, replicas)?;
        if options.fresh {
            for key in state.keys()? {
                state.delete(&key)?;
            }
        }
        let group = Group::join(
            &client,
            &group_name,
            &options.member,
            coordination.lease_ttl,
            replicas,
        )?;
        Ok(Member {
            summary: DistributedSummary {
                pipeline: name.to_string(),
                member: options.member.clone(),
                ..DistributedSummary::default()
            },
            load,
            options,
            coordination,
            partitions,
            group_name,
            state,
            group,
            running: BTreeMap::new(),
            completed: BTreeSet::new(),
            failure: None,
            last_members: Vec::new(),
            abandoned: BTreeMap::new(),
            failures: BTreeMap::new(),
        })
    }

    /// The live members, this one among them. NATS may be failing over: a
    /// tick without an answer uses the members seen last (the leases hold
    /// for their TTL meanwhile).
    pub(super) fn members(&mut self) -> Vec<String> {
        let members = self.group.heartbeat().and_then(|()| self.group.members());
        let mut members = match members {
            Ok(members) => {
                self.last_members = members.clone();
                members
            }
            Err(error) => {
                eprintln!("warning: {error}; trying again");
                self.last_members.clone()
            }
        };
        if !members.iter().any(|m| m == self.group.member()) {
            members.push(self.group.member().to_string());
        }
        members
    }

    /// Leaves behind the runs whose lease was lost and that did not end
    /// within the TTL (they cannot commit any more: their checkpoints are
    /// fenced).
    pub(super) fn abandon_overdue(&mut self) {
        let ttl = self.coordination.lease_ttl;
        let overdue: Vec<u32> = self
            .running
            .iter()
            .filter(|(_, r)| r.lost_at.is_some_and(|at| at.elapsed() > ttl))
            .map(|(p, _)| *p)
            .collect();
        for partition in overdue {
            if let Some(run) = self.running.remove(&partition) {
                self.abandoned.insert(partition, run.thread);
            }
            self.summary.add(partition, PartitionOutcome::Lost, None);
        }
        self.abandoned.retain(|_, thread| !thread.is_finished());
    }

    /// Reports the partitions whose run ended, and gives their leases back.
    pub(super) fn collect_ended(&mut self) {
        let ended: Vec<u32> = self
            .running
            .iter()
            .filter(|(_, r)| r.thread.is_finished())
            .map(|(p, _)| *p)
            .collect();
        for partition in ended {
            if let Some(run) = self.running.remove(&partition) {
                self.ended(partition, run);
            }
        }
    }

    /// Reports how the run of `partition` ended.
    fn ended(&mut self, partition: u32, run: Running) {
        let result = run
            .thread
            .join()
            .unwrap_or_else(|_| Err(Error::refused(format!("partition {partition} panicked"))));
        let lost = run.lease.is_lost() || !run.lease.is_valid();
        match result {
            Ok(ended) => {
                let outcome = match &ended {
                    RunOutcome::Stopped(_) => run.stopping.unwrap_or(PartitionOutcome::Stopped),
                    RunOutcome::Completed(_) | RunOutcome::AlreadyCompleted(_) => {
                        self.failures.remove(&partition);
                        self.completed.insert(partition);
                        PartitionOutcome::Completed
                    }
                };
                let s = ended.summary();
                let resumed = s.checkpoints.as_ref().and_then(|c| c.resumed_from);
                eprintln!(
                    "partition {partition}: {outcome} ({} read{})",
                    s.read,
                    resumed.map_or(String::new(), |c| format!(", resumed from checkpoint {c}"))
                );
                self.summary.add(partition, outcome, Some(s));
            }
            Err(e) if lost || run.stopping == Some(PartitionOutcome::Lost) || e.is_fenced() => {
                eprintln!("partition {partition}: lost ({e})");
                self.summary.add(partition, PartitionOutcome::Lost, None);
            }
            Err(e) => {
                if run.started.elapsed() > FAILURES_FORGOTTEN {
                    self.failures.remove(&partition);
                }
                let failures = self.failures.entry(partition).or_default();
                *failures += 1;
                let handed_over = run.stopping == Some(PartitionOutcome::HandedOver);
                let again = e.is_transient() && *failures <= RESTARTS && run.stopping.is_none();
                if handed_over || again {
                    // Its lease is left to expire (not given back): what
                    // its writers handed over has the TTL to land before
                    // the partition is taken again, here or elsewhere, and
                    // resumed from its last checkpoint.
                    eprintln!(
                        "partition {partition}: failed ({e}); it starts again from its last \
                         checkpoint once its lease has expired (failure {failures} of \
                         {RESTARTS} in a row)"
                    );
                    self.summary.add(partition, PartitionOutcome::Failed, None);
                    return;
                }
                let e = e.context(format_args!("partition {partition}"));
                self.failure.get_or_insert(e);
            }
        }
        // A completed run deleted its own consumer (`PartitionRun::run`).
        if !lost {
            let _ = run.lease.release();
        }
    }

    /// Keeps the leases; stops what lost its lease, what should run
    /// elsewhere, and everything when `stopping`.
    pub(super) fn renew(&mut self, members: &[String], stopping: bool) {
        for (partition, run) in self.running.iter_mut() {
            let renewed = match run.lease.renew() {
                Ok(renewed) => renewed,
                // Not answered: still ours while it is valid.
                Err(_) => run.lease.is_valid(),
            };
            if !renewed {
                if run.stopping != Some(PartitionOutcome::Lost) {
                    run.stopping = Some(PartitionOutcome::Lost);
                    run.lost_at = Some(Instant::now());
                    run.stop.store(true, Ordering::SeqCst);
                    eprintln!(
                        "partition {partition}: the lease was lost (not renewed within {:?}); \
                         another process takes it over from its last checkpoint",
                        self.coordination.lease_ttl
                    );
                }
                continue;
            }
            let owner = rendezvous::owner(members, *partition);
            if stopping {
                run.stopping.get_or_insert(PartitionOutcome::Stopped);
                run.stop.store(true, Ordering::SeqCst);
            } else if owner != Some(self.group.member()) && run.stopping.is_none() {
                run.stopping = Some(PartitionOutcome::HandedOver);
                run.stop.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Takes the partitions that are this member's and free, and starts
    /// their runs.
    pub(super) fn take_owned(&mut self, members: &[String]) -> Result<()> {
        for partition in rendezvous::owned(members, self.group.member(), self.partitions) {
            if self.running.contains_key(&partition)
                || self.completed.contains(&partition)
                || self.abandoned.contains_key(&partition)
            {
                continue;
            }
            match partition_completed(&self.state, partition) {
                Ok(true) => {
                    self.completed.insert(partition);
                    continue;
                }
                Ok(false) => {}
                Err(_) => continue,
            }
            let Ok(Some(lease)) = self.group.acquire(partition) else {
                continue;
            };
            eprintln!(
                "partition {partition}: taken (lease revision {})",
                lease.revision()
            );
            let run = self.start(partition, lease)?;
            self.running.insert(partition, run);
        }
        Ok(())
    }

    /// Starts the run of `partition`, whose lease this member holds.
    fn start(&self, partition: u32, lease: Arc<Lease>) -> Result<Running> {
        let stop = Arc::new(AtomicBool::new(false));
        let context = PartitionRun {
            load: self.load.clone(),
            partition,
            lease: lease.clone(),
            state: self.state.clone(),
            group: self.group_name.clone(),
            interval: self.options.checkpoint_interval,
            guarantee: self.options.guarantee,
            lease_ttl: self.coordination.lease_ttl,
            stop: stop.clone(),
            log: self.options.log,
        };
        let thread = std::thread::Builder::new()
            .name(format!("sluice-partition-{partition}"))
            .spawn(move || context.run())
            .map_err(|e| Error::refused("cannot start a thread").caused_by(e))?;
        Ok(Running {
            lease,
            stop,
            stopping: None,
            lost_at: None,
            started: Instant::now(),
            thread,
        })
    }

    /// Whether no partition runs here.
    pub(super) fn is_idle(&self) -> bool {
        self.running.is_empty()
    }

    /// Whether every partition has completed, here or elsewhere.
    pub(super) fn all_completed(&self) -> bool {
        (0..self.partitions).all(|partition| {
            self.completed.contains(&partition)
                || partition_completed(&self.state, partition).unwrap_or(false)
        })
    }
}
