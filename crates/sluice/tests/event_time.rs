//! Event time in concrete scenarios: late updates and their revisions, the
//! late output, future event times, idle partitions, early firing, global
//! windows with triggers.

use sluice::prelude::*;
use sluice::watermark::{FutureEvents, WatermarkStrategy};
use sluice::window::{CountTrigger, Emission, EventTimeTrigger, WindowResult};
use sluice::{Batch, BoxError, SimulatedClock, Source, SourceStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// One partition, one event per poll and per batch: a fully determined order.
fn tumbling_counts(
    times: &[i64],
    lateness: u64,
) -> (
    Vec<WindowResult<u8, u64>>,
    Vec<sluice::window::LateEvent<i64>>,
    u64,
) {
    let pipeline = Pipeline::new().with_poll_size(1).with_workers(1);
    let windowed = pipeline
        .source(IterSource::new(times.to_vec()).with_event_time(|t| *t))
        .with_watermarks(WatermarkStrategy::bounded(Duration::ZERO))
        .events
        .batch(FlushPolicy::EachEvent)
        .key_by(|_| 0u8)
        .window(Window::tumbling(ms(1000)))
        .allowed_lateness(ms(lateness))
        .aggregate(Count);
    let counters = windowed.counters.clone();
    let rows = windowed.results.collect();
    let late = windowed.late.collect();
    pipeline.run().unwrap();
    (rows.take(), late.take(), counters.late())
}

#[test]
fn a_late_event_within_lateness_updates_the_window_with_a_new_revision() {
    let (rows, late, late_count) = tumbling_counts(&[100, 2000, 500], 5000);
    let first: Vec<_> = rows
        .iter()
        .filter(|r| r.window_start == 0)
        .map(|r| (r.value, r.emission, r.revision))
        .collect();
    assert_eq!(
        first,
        vec![(1, Emission::OnTime, 0), (2, Emission::Late, 1)]
    );
    assert!(late.is_empty());
    assert_eq!(late_count, 0);
}

#[test]
fn a_session_event_beyond_lateness_is_judged_on_its_own_session() {
    let pipeline = Pipeline::new().with_poll_size(1).with_workers(1);
    let windowed = pipeline
        .source(IterSource::new(vec![100_i64, 5_000, 200]).with_event_time(|t| *t))
        .with_watermarks(WatermarkStrategy::bounded(Duration::ZERO))
        .events
        .batch(FlushPolicy::EachEvent)
        .key_by(|_| 0u8)
        .window(Window::session(ms(1000)))
        .aggregate(Count);
    let rows = windowed.results.collect();
    let late = windowed.late.collect();
    pipeline.run().unwrap();
    let sessions: Vec<_> = rows
        .take()
        .iter()
        .map(|r| (r.window_start, r.window_end, r.value))
        .collect();
    assert_eq!(sessions, vec![(100, 1100, 1), (5000, 6000, 1)]);
    let late = late.take();
    assert_eq!(late.len(), 1);
    assert_eq!(
        late[0].reason,
        "session window [200, 1200) closed: the watermark 5000 passed its end plus the \
         allowed lateness of 0 ms"
    );
}

#[test]
fn an_event_beyond_lateness_goes_to_the_late_output_with_the_reason() {
    let (rows, late, late_count) = tumbling_counts(&[100, 2000, 500], 0);
    let first: Vec<_> = rows
        .iter()
        .filter(|r| r.window_start == 0)
        .map(|r| r.value)
        .collect();
    assert_eq!(first, vec![1]);
    assert_eq!(late.len(), 1);
    assert_eq!(
        (
            late[0].event,
            late[0].window_start,
            late[0].window_end,
            late[0].watermark
        ),
        (500, 0, 1000, 2000)
    );
    // The same reason as a pipeline file's `late` records (one lateness
    // judgement for both, in sluice_core::window::Lateness).
    assert_eq!(
        late[0].reason,
        "window [0, 1000) closed: the watermark 2000 passed its end plus the allowed \
         lateness of 0 ms"
    );
    assert_eq!(late_count, 1);
}

#[test]
fn every_late_event_of_a_batch_goes_to_the_late_output() {
    // Batches of two: [100, 2000], then the watermark 2000, then [500, 600]:
    // both events of the second batch are beyond the lateness of [0, 1000).
    // One worker judges and folds in one operator, two exchange: the same.
    for workers in [1, 2] {
        let pipeline = Pipeline::new().with_poll_size(1).with_workers(workers);
        let windowed = pipeline
            .source(IterSource::new(vec![100_i64, 2000, 500, 600]).with_event_time(|t| *t))
            .with_watermarks(WatermarkStrategy::bounded(Duration::ZERO))
            .events
            .batch(FlushPolicy::Count(2))
            .key_by(|_| 0u8)
            .window(Window::tumbling(ms(1000)))
            .aggregate(Count);
        let counters = windowed.counters.clone();
        let rows = windowed.results.collect();
        let late = windowed.late.collect();
        pipeline.run().unwrap();
        let mut rows: Vec<_> = rows
            .take()
            .iter()
            .map(|r| (r.window_start, r.value, r.revision))
            .collect();
        rows.sort();
        assert_eq!(rows, vec![(0, 1, 0), (2000, 1, 0)], "{workers} workers");
        let late: Vec<_> = late.take().iter().map(|l| l.event).collect();
        assert_eq!(late, vec![500, 600], "{workers} workers");
        assert_eq!(counters.late(), 2, "{workers} workers");
    }
}

#[test]
fn a_batch_of_late_updates_revises_its_window_once() {
    // Batches of three: [100, 2000, 2100], the watermark 2100 fires [0, 1000);
    // then [300, 400, 500], within the allowed lateness of 5 s: one late row
    // with all three counted, folded one after the other into the same pane.
    for workers in [1, 2] {
        let pipeline = Pipeline::new().with_poll_size(1).with_workers(workers);
        let windowed = pipeline
            .source(
                IterSource::new(vec![100_i64, 2000, 2100, 300, 400, 500]).with_event_time(|t| *t),
            )
            .with_watermarks(WatermarkStrategy::bounded(Duration::ZERO))
            .events
            .batch(FlushPolicy::Count(3))
            .key_by(|_| 0u8)
            .window(Window::tumbling(ms(1000)))
            .allowed_lateness(ms(5000))
            .aggregate(Count);
        let rows = windowed.results.collect();
        pipeline.run().unwrap();
        let rows: Vec<_> = rows
            .take()
            .iter()
            .map(|r| (r.window_start, r.value, r.emission, r.revision))
            .collect();
        assert_eq!(
            rows,
            vec![
                (0, 1, Emission::OnTime, 0),
                (0, 4, Emission::Late, 1),
                (2000, 2, Emission::OnTime, 0)
            ],
            "{workers} workers"
        );
    }
}

#[test]
fn a_sliding_window_event_goes_late_for_each_window_it_missed() {
    // Windows of 3 s every 1 s. After [100, 3500] the watermark 3500 has
    // closed [0, 3000) and [-1000, 2000): 1500 and 1600 are late for both,
    // and count in [1000, 4000), which is still open.
    for workers in [1, 2] {
        let pipeline = Pipeline::new().with_poll_size(1).with_workers(workers);
        let windowed = pipeline
            .source(IterSource::new(vec![100_i64, 3500, 1500, 1600]).with_event_time(|t| *t))
            .with_watermarks(WatermarkStrategy::bounded(Duration::ZERO))
            .events
            .batch(FlushPolicy::Count(2))
            .key_by(|_| 0u8)
            .window(Window::sliding(ms(3000), ms(1000)))
            .aggregate(Count);
        let counters = windowed.counters.clone();
        let rows = windowed.results.collect();
        let late = windowed.late.collect();
        pipeline.run().unwrap();
        let mut late: Vec<_> = late
            .take()
            .iter()
            .map(|l| (l.event, l.window_start, l.window_end))
            .collect();
        late.sort();
        assert_eq!(
            late,
            vec![
                (1500, -1000, 2000),
                (1500, 0, 3000),
                (1600, -1000, 2000),
                (1600, 0, 3000)
            ],
            "{workers} workers"
        );
        assert_eq!(counters.late(), 4, "{workers} workers");
        let mut rows: Vec<_> = rows
            .take()
            .iter()
            .map(|r| (r.window_start, r.value))
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                (-2000, 1),
                (-1000, 1),
                (0, 1),
                (1000, 3),
                (2000, 1),
                (3000, 1)
            ],
            "{workers} workers"
        );
    }
}

#[test]
fn future_event_times_are_rejected_or_clamped() {
    for action in [FutureEvents::Reject, FutureEvents::Clamp] {
        let clock = Arc::new(SimulatedClock::with_wall_start(10_000));
        let pipeline = Pipeline::new()
            .with_clock(clock)
            .with_workers(1)
            .with_poll_size(1);
        let marked = pipeline
            .source(IterSource::new([1_000_i64, 500_000, 2_000]).with_event_time(|t| *t))
            .with_watermarks(
                WatermarkStrategy::bounded(Duration::ZERO).with_future_bound(ms(1000), action),
            );
        let rejected = marked.rejected.collect();
        let windows = marked
            .events
            .key_by(|_| ())
            .window(Window::tumbling(ms(1000)))
            .aggregate(Count);
        let rows = windows.results.collect();
        let late = windows.late.collect();
        pipeline.run().unwrap();
        let rows: Vec<(i64, u64)> = rows
            .take()
            .iter()
            .map(|r| (r.window_start, r.value))
            .collect();
        let rejected = rejected.take();
        match action {
            FutureEvents::Reject => {
                assert_eq!(rejected.len(), 1);
                assert_eq!(rejected[0].event, 500_000);
                assert!(
                    rejected[0].reason.contains("ahead of the wall clock"),
                    "{}",
                    rejected[0].reason
                );
                // The far-future event did not move the watermark: 2,000 is not late.
                assert!(late.is_empty());
                let mut rows = rows;
                rows.sort();
                assert_eq!(rows, vec![(1000, 1), (2000, 1)]);
            }
            FutureEvents::Clamp => {
                assert!(rejected.is_empty());
                // Clamped to wall clock + bound = 11,000; 2,000 is then late.
                assert!(rows.contains(&(11_000, 1)), "{rows:?}");
                assert_eq!(late.take().len(), 1);
            }
        }
    }
}

/// A partition that says it is idle until `release` is set (or 10 s pass).
struct Silent {
    release: Arc<AtomicBool>,
    started: Instant,
    released_by_flag: Arc<AtomicBool>,
}

impl Source<i64> for Silent {
    fn poll(&mut self, _out: &mut Batch<i64>, _max: usize) -> Result<SourceStatus, BoxError> {
        if self.release.load(Ordering::SeqCst) {
            self.released_by_flag.store(true, Ordering::SeqCst);
            return Ok(SourceStatus::Exhausted);
        }
        if self.started.elapsed() > Duration::from_secs(10) {
            return Ok(SourceStatus::Exhausted);
        }
        Ok(SourceStatus::Idle)
    }
}

#[test]
fn an_idle_partition_stops_holding_the_watermark_back() {
    let release = Arc::new(AtomicBool::new(false));
    let by_flag = Arc::new(AtomicBool::new(false));
    let pipeline = Pipeline::new().with_workers(1);
    let busy = pipeline.source(IterSource::new(vec![100_i64, 5_000]).with_event_time(|t| *t));
    let silent = pipeline.source(Silent {
        release: release.clone(),
        started: Instant::now(),
        released_by_flag: by_flag.clone(),
    });
    let strategy = WatermarkStrategy::bounded(Duration::ZERO).with_idle_timeout(ms(20));
    // Two partitions joined by the window's exchange.
    let busy = busy.with_watermarks(strategy).events;
    let silent = silent.with_watermarks(strategy).events;
    let open = release.clone();
    let first = busy
        .key_by(|_| ())
        .window(Window::tumbling(ms(1000)))
        .aggregate(Count);
    first
        .results
        .for_each(move |_| open.store(true, Ordering::SeqCst));
    silent.for_each(|_| {});
    pipeline.run().unwrap();
    assert!(
        by_flag.load(Ordering::SeqCst),
        "the window fired only at the end"
    );
}

#[test]
fn open_windows_emit_early_results_at_the_early_firing_interval() {
    /// One event, then silence for 300 ms, then the end.
    struct OneThenWait {
        sent: bool,
        started: Instant,
    }
    impl Source<i64> for OneThenWait {
        fn poll(&mut self, out: &mut Batch<i64>, _max: usize) -> Result<SourceStatus, BoxError> {
            if !self.sent {
                self.sent = true;
                out.push(7, 100);
                return Ok(SourceStatus::Ready);
            }
            Ok(if self.started.elapsed() > ms(300) {
                SourceStatus::Exhausted
            } else {
                SourceStatus::Idle
            })
        }
    }
    let pipeline = Pipeline::new().with_workers(1);
    let windows = pipeline
        .source(OneThenWait {
            sent: false,
            started: Instant::now(),
        })
        .with_watermarks(WatermarkStrategy::bounded(Duration::ZERO))
        .events
        .key_by(|_| ())
        .window(Window::tumbling(Duration::from_secs(60)))
        .early_firing(ms(20))
        .aggregate(Count);
    let rows = windows.results.collect();
    pipeline.run().unwrap();
    let rows: Vec<(Emission, u32, u64)> = rows
        .take()
        .iter()
        .map(|r| (r.emission, r.revision, r.value))
        .collect();
    assert_eq!(
        rows,
        vec![(Emission::Early, 0, 1), (Emission::OnTime, 1, 1)]
    );
}

#[test]
fn a_global_window_emits_when_its_trigger_fires() {
    // One event per poll: the watermark follows every event.
    let pipeline = Pipeline::new().with_workers(2).with_poll_size(1);
    let source = || IterSource::new((0..10_i64).collect::<Vec<_>>()).with_event_time(|t| *t * 100);
    let by_count = pipeline
        .source(source())
        .key_by(|_| ())
        .window(Window::global(CountTrigger(4)))
        .aggregate(Count);
    let by_time = pipeline
        .source(source())
        .with_watermarks(WatermarkStrategy::bounded(Duration::ZERO))
        .events
        .key_by(|_| ())
        .window(Window::global(EventTimeTrigger { period_ms: 500 }))
        .aggregate(Count);
    let counts = by_count.results.collect();
    let times = by_time.results.collect();
    pipeline.run().unwrap();
    // Every 4 events, then the rest at the end of input.
    assert_eq!(
        counts.take().iter().map(|r| r.value).collect::<Vec<_>>(),
        vec![4, 4, 2]
    );
    // Events at 0..900 ms: fired when the watermark reaches 500 (events
    // 0..=500), and at the end of input (the rest).
    let panes: Vec<(i64, i64, u64)> = times
        .take()
        .iter()
        .map(|r| (r.window_start, r.window_end, r.value))
        .collect();
    assert_eq!(panes, vec![(0, 501, 6), (600, 901, 4)]);
}

/// A partition that starts late: idle for its first 50 ms, then events every
/// 10 ms of event time. Records how far the other partition had got when it
/// started.
struct LateStarter {
    started: Instant,
    next: i64,
    other_progress: Arc<std::sync::atomic::AtomicI64>,
    seen_at_start: Arc<std::sync::atomic::AtomicI64>,
}

impl Source<i64> for LateStarter {
    fn poll(&mut self, out: &mut Batch<i64>, max: usize) -> Result<SourceStatus, BoxError> {
        if self.started.elapsed() < ms(50) {
            return Ok(SourceStatus::Idle);
        }
        if self.next == 0 {
            self.seen_at_start
                .store(self.other_progress.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        for _ in 0..max {
            if self.next >= 20_000 {
                return Ok(SourceStatus::Exhausted);
            }
            out.push(self.next, self.next);
            self.next += 10;
        }
        Ok(SourceStatus::Ready)
    }
}

#[test]
fn watermark_alignment_holds_a_partition_that_runs_ahead() {
    for aligned in [true, false] {
        let progress = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let seen = Arc::new(std::sync::atomic::AtomicI64::new(-1));
        let (fast_progress, late_progress, late_seen) =
            (progress.clone(), progress.clone(), seen.clone());
        let started = Instant::now();
        let pipeline = Pipeline::new().with_workers(1).with_poll_size(10);
        let strategy = WatermarkStrategy::bounded(Duration::ZERO);
        let strategy = if aligned {
            strategy.with_alignment(ms(1000))
        } else {
            strategy
        };
        let events = pipeline
            .partitioned_source(2, move |p| -> Box<dyn Source<i64>> {
                if p == 0 {
                    Box::new(IterSource::new((0..2_000).map(|i| i * 10)).with_event_time(|t| *t))
                } else {
                    Box::new(LateStarter {
                        started,
                        next: 0,
                        other_progress: late_progress.clone(),
                        seen_at_start: late_seen.clone(),
                    })
                }
            })
            .with_watermarks(strategy)
            .events
            .inspect(move |t| {
                fast_progress.fetch_max(*t, Ordering::SeqCst);
            });
        let counts = events
            .key_by(|_| ())
            .window(Window::tumbling(ms(1000)))
            .aggregate(Count)
            .results
            .collect();
        pipeline.run().unwrap();
        let total: u64 = counts.take().iter().map(|r| r.value).sum();
        assert_eq!(total, 4_000, "every event of both partitions is counted");
        let ahead = seen.load(Ordering::SeqCst);
        if aligned {
            // Held within the drift (plus one poll of 10 events = 100 ms).
            assert!(
                ahead <= 1_100,
                "the fast partition ran to {ahead} ms before the other started"
            );
        } else {
            assert!(
                ahead > 1_100,
                "without alignment the fast partition runs ahead ({ahead} ms)"
            );
        }
    }
}

#[test]
fn count_windows_free_full_slots_and_order_partial_ones_by_arrival() {
    let pipeline = Pipeline::new().with_workers(1);
    let rows = pipeline
        .source(
            IterSource::new([("b", 1_i64), ("a", 2), ("b", 3), ("a", 4), ("a", 5)])
                .with_event_time(|e| e.1),
        )
        .key_by(|e| e.0)
        .window(Window::count(2))
        .aggregate(Count)
        .results
        .collect();
    pipeline.run().unwrap();
    let rows: Vec<(&str, i64, i64, u64)> = rows
        .take()
        .iter()
        .map(|r| (r.key, r.window_start, r.window_end, r.value))
        .collect();
    assert_eq!(rows, vec![("b", 1, 4, 2), ("a", 2, 5, 2), ("a", 5, 6, 1)]);
}

#[test]
fn extreme_event_times_get_their_windows_without_overflow() {
    let pipeline = Pipeline::new().with_workers(1);
    let windows = pipeline
        .source(IterSource::new([i64::MIN, i64::MIN + 1, i64::MAX]).with_event_time(|t| *t))
        .key_by(|_| ())
        .window(Window::sliding(ms(1000), ms(500)))
        .aggregate(Count);
    let rows = windows.results.collect();
    let late = windows.late.collect();
    pipeline.run().unwrap();
    let counted: u64 = rows.take().iter().map(|r| r.value).sum::<u64>() + late.take().len() as u64;
    assert!(
        counted >= 3,
        "every event is in a window or in the late stream"
    );
}

#[test]
fn a_trigger_fires_on_a_processing_time_timer_and_not_again_at_the_end() {
    use sluice::window::{Trigger, TriggerAction, TriggerContext};
    /// Fires 20 ms of processing time after a pane's first event.
    struct AfterDelay;
    impl Trigger for AfterDelay {
        fn on_event(&self, ctx: &mut TriggerContext<'_>) -> TriggerAction {
            if ctx.count == 1 {
                let at = ctx.processing_time + ms(20);
                ctx.register_processing_timer(at);
            }
            TriggerAction::Continue
        }
        fn on_processing_time(
            &self,
            _now: Duration,
            _ctx: &mut TriggerContext<'_>,
        ) -> TriggerAction {
            TriggerAction::Fire
        }
    }
    /// Two events, then 200 ms of silence, then the end.
    struct TwoThenWait {
        sent: bool,
        started: Instant,
    }
    impl Source<i64> for TwoThenWait {
        fn poll(&mut self, out: &mut Batch<i64>, _max: usize) -> Result<SourceStatus, BoxError> {
            if !self.sent {
                self.sent = true;
                out.push(1, 1);
                out.push(2, 2);
                return Ok(SourceStatus::Ready);
            }
            Ok(if self.started.elapsed() > ms(200) {
                SourceStatus::Exhausted
            } else {
                SourceStatus::Idle
            })
        }
    }
    let pipeline = Pipeline::new().with_workers(1);
    let rows = pipeline
        .source(TwoThenWait {
            sent: false,
            started: Instant::now(),
        })
        .key_by(|_| ())
        .window(Window::global(AfterDelay))
        .aggregate(Count)
        .results
        .collect();
    let started = Instant::now();
    pipeline.run().unwrap();
    let rows: Vec<(u64, u32)> = rows.take().iter().map(|r| (r.value, r.revision)).collect();
    // Fired by the timer, well before the end (200 ms); nothing new at the end.
    assert_eq!(rows, vec![(2, 0)]);
    assert!(started.elapsed() >= ms(200));
}

/// Two aligned partitions on one worker whose event times advance at
/// different rates: each is held in turn while the other catches up, and
/// neither waits inside the worker (which would hold up the other one).
#[test]
fn aligned_partitions_sharing_a_worker_take_turns_without_waiting_on_each_other() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let pipeline = Pipeline::new().with_workers(1).with_poll_size(5);
        let counts = pipeline
            .partitioned_source(2, |p| {
                // Partition 0 moves 10 ms per event, partition 1 a second:
                // one poll of partition 1 lands far beyond the drift.
                let step = if p == 0 { 10 } else { 1_000 };
                IterSource::new((0..1_000i64).map(move |i| i * step)).with_event_time(|t| *t)
            })
            .with_watermarks(WatermarkStrategy::bounded(Duration::ZERO).with_alignment(ms(2_000)))
            .events
            .key_by(|_| ())
            .window(Window::tumbling(ms(1000)))
            .aggregate(Count)
            .results
            .collect();
        pipeline.run().unwrap();
        let total: u64 = counts.take().iter().map(|r| r.value).sum();
        let _ = done.send(total);
    });
    // A generous bound: the run takes milliseconds; a hang fails here.
    let total = finished
        .recv_timeout(Duration::from_secs(120))
        .expect("the aligned run did not finish");
    assert_eq!(total, 2_000, "every event of both partitions is counted");
}

/// Emits events far in the future (rejected) until `stop` is set.
struct OnlyFuture {
    stop: Arc<AtomicBool>,
}

impl Source<i64> for OnlyFuture {
    fn poll(&mut self, out: &mut Batch<i64>, _max: usize) -> Result<SourceStatus, BoxError> {
        if self.stop.load(Ordering::SeqCst) {
            return Ok(SourceStatus::Exhausted);
        }
        let far = i64::MAX / 4;
        out.push(far, far);
        Ok(SourceStatus::Ready)
    }
}

/// A partition whose events are all rejected as too far in the future
/// reads as idle after the idle timeout, and does not hold an aligned
/// partition back (it used to count as active, with no watermark).
#[test]
fn a_partition_whose_events_are_all_rejected_goes_idle_and_releases_the_others() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let (source_stop, sink_stop) = (stop.clone(), stop.clone());
        let pipeline = Pipeline::new().with_workers(2).with_poll_size(10);
        let seen = pipeline
            .partitioned_source(2, move |p| -> Box<dyn Source<i64>> {
                if p == 0 {
                    Box::new(IterSource::new((0..2_000i64).map(|i| i * 10)).with_event_time(|t| *t))
                } else {
                    Box::new(OnlyFuture {
                        stop: source_stop.clone(),
                    })
                }
            })
            .with_watermarks(
                WatermarkStrategy::bounded(Duration::ZERO)
                    .with_future_bound(Duration::from_secs(3600), FutureEvents::Reject)
                    .with_idle_timeout(ms(50))
                    .with_alignment(ms(1_000)),
            )
            .events
            .inspect(move |t| {
                if *t == 19_990 {
                    sink_stop.store(true, Ordering::SeqCst);
                }
            })
            .collect();
        pipeline.run().unwrap();
        let _ = done.send(seen.take().len());
    });
    // A generous bound: the run takes well under a second; a partition
    // held for good fails here.
    let seen = finished
        .recv_timeout(Duration::from_secs(120))
        .expect("the aligned partition was held for good");
    assert_eq!(seen, 2_000);
}
