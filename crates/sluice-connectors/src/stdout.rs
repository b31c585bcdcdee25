//! A sink that writes one line per event to standard output.

use sluice_core::Batch;
use sluice_runtime::{BoxError, Sink};
use std::io::{ErrorKind, Write};

type Format<T> = Box<dyn FnMut(&T, &mut Vec<u8>) + Send>;

/// Writes one line per event to standard output, through a buffer that is
/// flushed once per batch. A closed pipe (`sluice ... | head`) ends the
/// output quietly, as it does for other command-line tools.
pub struct StdoutSink<T> {
    format: Format<T>,
    line: Vec<u8>,
    closed: bool,
}

impl<T: std::fmt::Display> StdoutSink<T> {
    /// Prints each event with its `Display` form.
    ///
    /// ```
    /// let sink = sluice_connectors::StdoutSink::<u32>::display();
    /// # drop(sink);
    /// ```
    pub fn display() -> Self {
        Self::with_format(|x: &T, out: &mut Vec<u8>| {
            let _ = write!(out, "{x}");
        })
    }
}

impl<T> StdoutSink<T> {
    /// Prints each event as `format` writes it (without the newline).
    ///
    /// ```
    /// use std::io::Write;
    /// let sink = sluice_connectors::StdoutSink::with_format(|x: &(u32, f64), out: &mut Vec<u8>| {
    ///     let _ = write!(out, "key={} mean={:.3}", x.0, x.1);
    /// });
    /// # drop(sink);
    /// ```
    pub fn with_format(format: impl FnMut(&T, &mut Vec<u8>) + Send + 'static) -> Self {
        Self {
            format: Box::new(format),
            line: Vec::new(),
            closed: false,
        }
    }
}

impl<T: Send> Sink<T> for StdoutSink<T> {
    fn write(&mut self, batch: &mut Batch<T>) -> Result<(), BoxError> {
        if self.closed {
            return Ok(());
        }
        self.line.clear();
        for item in batch.items() {
            (self.format)(item, &mut self.line);
            self.line.push(b'\n');
        }
        let mut out = std::io::stdout().lock();
        match out.write_all(&self.line).and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(Box::new(e)),
        }
    }
}
