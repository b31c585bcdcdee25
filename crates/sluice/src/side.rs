//! Side outputs: a second stream out of an operator (late events, rejected
//! events). The operator's instances send into an edge; the side stream is
//! the stage behind it. A side output nobody consumes is still drained: its
//! events are counted and reported on stderr, never dropped silently.

use crate::pipeline::{Builder, Plan};
use crate::stream::Stream;
use crate::BuildError;
use sluice_core::Batch;
use sluice_runtime::{multi_edge, EdgeReceiver, EdgeSender, FlushPolicy, Operator, OperatorResult};
use std::cell::RefCell;
use std::rc::Rc;

struct SideState<U> {
    name: String,
    instances: usize,
    senders: Vec<Option<EdgeSender<U>>>,
    receiver: Option<EdgeReceiver<U>>,
}

/// The handle an operator's instances send their side events through.
pub(crate) struct SideOutput<U> {
    state: Rc<RefCell<SideState<U>>>,
}

impl<U> Clone for SideOutput<U> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<U: Send + 'static> SideOutput<U> {
    pub fn new(plan: &Rc<RefCell<Plan>>, name: &str, instances: usize) -> Self {
        let state = Rc::new(RefCell::new(SideState {
            name: name.to_string(),
            instances,
            senders: Vec::new(),
            receiver: None,
        }));
        let drain = state.clone();
        plan.borrow_mut().add_finalizer(Box::new(move |builder| {
            let mut state = drain.borrow_mut();
            // Instances that never took their sender (the operator was not
            // built, or did not need it) end their part of the edge now; the
            // channel has room for one message per sender.
            let name = state.name.clone();
            let unused: Vec<EdgeSender<U>> = state.senders.drain(..).flatten().collect();
            for mut unused in unused {
                unused.on_end().map_err(|_| BuildError::InvalidBatching {
                    edge: name.clone(),
                    error: sluice_core::Error::ZeroBatchCount,
                })?;
            }
            if let Some(receiver) = state.receiver.take() {
                let name = state.name.clone();
                builder.executor.spawn_receiver(
                    &format!("{name}-unconsumed"),
                    0,
                    receiver,
                    Box::new(Unconsumed { name, count: 0 }),
                );
            }
            Ok(())
        }));
        Self { state }
    }

    fn ensure_edge(&self, builder: &Builder) -> Result<(), BuildError> {
        let mut state = self.state.borrow_mut();
        if !state.senders.is_empty() || state.receiver.is_some() {
            return Ok(());
        }
        let (senders, receiver) = multi_edge::<U>(
            &state.name,
            FlushPolicy::Forward,
            builder.settings.channel_capacity,
            builder.settings.clock.clone(),
            None,
            state.instances,
        )
        .map_err(|error| BuildError::InvalidBatching {
            edge: state.name.clone(),
            error,
        })?;
        state.senders = senders.into_iter().map(Some).collect();
        state.receiver = Some(receiver);
        Ok(())
    }

    /// The sender for instance `instance` of the producing operator.
    pub fn sender(
        &self,
        instance: usize,
        builder: &Builder,
    ) -> Result<Box<dyn Operator<U>>, BuildError> {
        self.ensure_edge(builder)?;
        let mut state = self.state.borrow_mut();
        let name = state.name.clone();
        state
            .senders
            .get_mut(instance)
            .and_then(Option::take)
            .map(|s| Box::new(s) as Box<dyn Operator<U>>)
            .ok_or(BuildError::InvalidBatching {
                edge: name,
                error: sluice_core::Error::ZeroBatchCount,
            })
    }

    /// The side stream, on one stage.
    pub fn stream(&self, plan: &Rc<RefCell<Plan>>) -> Stream<U> {
        let side = self.clone();
        let name = self.state.borrow().name.clone();
        Stream::new(
            plan.clone(),
            name.clone(),
            None,
            1,
            false,
            Box::new(
                move |downs: Vec<Box<dyn Operator<U>>>, builder: &mut Builder| {
                    side.ensure_edge(builder)?;
                    let receiver = side.state.borrow_mut().receiver.take();
                    if let (Some(receiver), Some(down)) = (receiver, downs.into_iter().next()) {
                        // Fed by every instance: on the last worker.
                        let last = builder.settings.workers.saturating_sub(1);
                        builder.executor.spawn_receiver(&name, last, receiver, down);
                    }
                    Ok(())
                },
            ),
        )
    }
}

/// Drains a side output nobody consumes, and says so.
struct Unconsumed {
    name: String,
    count: u64,
}

impl<U> Operator<U> for Unconsumed {
    fn on_batch(&mut self, batch: &mut Batch<U>) -> OperatorResult {
        self.count += batch.len() as u64;
        Ok(())
    }
    fn on_end(&mut self) -> OperatorResult {
        if self.count > 0 {
            eprintln!(
                "sluice: {} events of side output `{}` had no sink and were discarded; \
                 consume that stream (for example with `.collect()`) to keep them",
                self.count, self.name
            );
        }
        Ok(())
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        None
    }
}
