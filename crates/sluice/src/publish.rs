//! Publishing a stream's events on a bus topic.

use crate::bus::Topic;
use crate::{BuildError, Stream};
use sluice_core::Batch;
use sluice_runtime::{BoxError, Sink};

/// Publishes every event of a stream on a bus topic.
struct PublishSink<T> {
    topic: Topic<T>,
}

impl<T: Clone + std::fmt::Debug + Send + 'static> Sink<T> for PublishSink<T> {
    fn write(&mut self, batch: &mut Batch<T>) -> Result<(), BoxError> {
        for (event, _) in batch.drain() {
            self.topic.publish(event)?;
        }
        Ok(())
    }
}

impl<T: Clone + std::fmt::Debug + Send + 'static> Stream<T> {
    /// Ends the stream on a bus topic: every event is published there, for
    /// the handlers subscribed to it. The topic must have a subscriber when
    /// the pipeline runs, or the run is refused with
    /// [`BuildError::NoSubscriber`]; a full handler queue makes the pipeline
    /// wait (backpressure).
    ///
    /// ```
    /// use sluice::prelude::*;
    /// use sluice::bus::{Bus, Handler};
    ///
    /// let bus = Bus::new();
    /// let alerts = bus.topic::<i64>("alerts")?;
    /// bus.subscribe(&alerts, Handler::new("log", |x: &i64| {
    ///     println!("alert {x}");
    ///     Ok::<(), String>(())
    /// }))?;
    /// let p = Pipeline::new();
    /// p.source(IterSource::new([5_i64, 15, 25])).on(|x| *x > 10, |x| x * 2).publish(&alerts);
    /// p.run()?;
    /// assert_eq!(bus.shutdown().handled, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn publish(self, topic: &Topic<T>) {
        let checked = topic.clone();
        self.plan().borrow_mut().add_check(Box::new(move || {
            if checked.subscribers() == 0 {
                return Err(BuildError::NoSubscriber {
                    topic: checked.name().to_string(),
                });
            }
            Ok(())
        }));
        self.sink(PublishSink {
            topic: topic.clone(),
        });
    }
}
