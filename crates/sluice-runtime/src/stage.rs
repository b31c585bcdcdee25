//! The stage loops: where the work happens.
//!
//! Each stage runs on its own thread, as a plain loop (no async): a source
//! stage polls its source and pushes into its fused operators; a receiver
//! stage takes batches from an edge and does the same. Both give the
//! operators processing-time ticks so that interval flushes happen even when
//! no input arrives.

use crate::{
    Clock, EdgeReceiver, Envelope, InputProgress, Message, Operator, OperatorError, RuntimeError,
    RuntimeResult, Source, SourceStatus,
};
use crossbeam_channel::RecvTimeoutError;
use sluice_core::Batch;
use std::time::Duration;

/// How long an idle source waits before polling again, at most.
const IDLE_WAIT: Duration = Duration::from_millis(1);

fn operator_error(stage: &str, error: OperatorError) -> RuntimeResult<()> {
    match error {
        // The downstream stage reports why it stopped.
        OperatorError::DownstreamGone => Ok(()),
        OperatorError::Failed(error) => Err(RuntimeError::Operator {
            stage: stage.to_string(),
            error,
        }),
    }
}

/// Drives `source` and the fused operators after it until the source is
/// exhausted or an operator fails.
pub fn run_source<T>(
    name: &str,
    source: &mut dyn Source<T>,
    chain: &mut dyn Operator<T>,
    clock: &dyn Clock,
    poll_size: usize,
) -> RuntimeResult<()> {
    let mut buffer = Batch::with_capacity(poll_size);
    let mut deadline: Option<Duration> = None;
    loop {
        let status = source
            .poll(&mut buffer, poll_size)
            .map_err(|error| RuntimeError::Source {
                source_name: name.to_string(),
                error,
            })?;
        buffer.check();
        if !buffer.is_empty() {
            if let Err(e) = chain.on_batch(&mut buffer) {
                return operator_error(name, e);
            }
            buffer.clear();
        }
        match status {
            SourceStatus::Ready => {}
            SourceStatus::Exhausted => {
                return chain.on_end().or_else(|e| operator_error(name, e));
            }
            SourceStatus::Idle => {
                let wait = deadline
                    .map(|d| d.saturating_sub(clock.now()))
                    .unwrap_or(IDLE_WAIT)
                    .min(IDLE_WAIT);
                std::thread::sleep(wait);
            }
        }
        deadline = match chain.on_tick(clock.now()) {
            Ok(d) => d,
            Err(e) => return operator_error(name, e),
        };
    }
}

/// Drives the fused operators behind an edge until every sender has ended,
/// or until an operator fails. The operators' watermark is the minimum over
/// the senders' (see [`InputProgress`]).
pub fn run_receiver<T>(
    name: &str,
    receiver: &EdgeReceiver<T>,
    chain: &mut dyn Operator<T>,
    clock: &dyn Clock,
) -> RuntimeResult<()> {
    let mut deadline: Option<Duration> = None;
    let mut progress = InputProgress::new(receiver.senders);
    let mut signalled_idle = false;
    loop {
        let envelope = match deadline {
            Some(due) => receiver.rx.recv_timeout(due.saturating_sub(clock.now())),
            None => receiver
                .rx
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
        };
        let step = match envelope {
            Ok(Envelope { from, message }) => match message {
                Message::Batch(mut batch) => {
                    receiver.metrics.received(batch.len());
                    signalled_idle = false;
                    let advanced = progress.active(from);
                    let result = chain.on_batch(&mut batch);
                    receiver.recycle(batch);
                    result.and_then(|()| advanced.map_or(Ok(()), |w| chain.on_watermark(w)))
                }
                Message::Watermark(w) => {
                    signalled_idle = false;
                    progress
                        .watermark(from, w)
                        .map_or(Ok(()), |w| chain.on_watermark(w))
                }
                Message::Idle => {
                    let advanced = progress.idle(from);
                    let result = advanced.map_or(Ok(()), |w| chain.on_watermark(w));
                    if result.is_ok() && progress.all_idle() && !signalled_idle {
                        signalled_idle = true;
                        chain.on_idle()
                    } else {
                        result
                    }
                }
                Message::End => {
                    let advanced = progress.end(from);
                    let result = advanced.map_or(Ok(()), |w| chain.on_watermark(w));
                    if progress.all_ended() {
                        return result
                            .and_then(|()| chain.on_end())
                            .or_else(|e| operator_error(name, e));
                    }
                    // The last active sender ended and the others are idle.
                    if result.is_ok() && progress.all_idle() && !signalled_idle {
                        signalled_idle = true;
                        chain.on_idle()
                    } else {
                        result
                    }
                }
            },
            Err(RecvTimeoutError::Timeout) => Ok(()),
            // A sender stopped without an end: its stage reports why.
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        if let Err(e) = step {
            return operator_error(name, e);
        }
        deadline = match chain.on_tick(clock.now()) {
            Ok(d) => d,
            Err(e) => return operator_error(name, e),
        };
    }
}
