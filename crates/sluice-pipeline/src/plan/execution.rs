//! How the dataflow runs: mode, batch size and interval, target latency,
//! workers.

use super::*;

pub(super) fn execution(spec: &PipelineSpec, workers: Option<usize>) -> Result<Execution, Failure> {
    let e = &spec.execution;
    let (event_mode, adaptive) = match &e.mode {
        None => (false, false),
        Some(mode) => match mode.get_ref().as_str() {
            "event" => (true, false),
            "micro-batch" | "microbatch" | "micro_batch" => (false, false),
            "adaptive" => (false, true),
            other => {
                return Err(at(
                    mode.span(),
                    format!(
                        "mode \"{other}\" is not known; use \"event\", \"micro-batch\" or \
                         \"adaptive\""
                    ),
                ))
            }
        },
    };
    let target_latency = match (&e.target_latency, adaptive) {
        (None, false) => None,
        (None, true) => Some(Duration::from_millis(5)),
        (Some(t), false) => {
            return Err(at(
                t.span(),
                "target_latency is for mode = \"adaptive\"; set the mode, or remove it",
            ))
        }
        (Some(t), true) => {
            let target = duration(t, "target_latency")?;
            let policy = sluice::FlushPolicy::Adaptive {
                target_latency: target,
            };
            policy.validate().map_err(|e| at(t.span(), e.to_string()))?;
            Some(target)
        }
    };
    let batch_size = match &e.batch_size {
        None => 4096,
        Some(n) if (1..=MOST_ROWS).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            return Err(at(
                n.span(),
                format!("batch_size must be at least 1 and at most {MOST_ROWS} rows"),
            ))
        }
    };
    let batch_interval = match &e.batch_interval {
        None => Duration::from_millis(100),
        Some(d) => duration(d, "batch_interval")?,
    };
    let workers = match (workers, &e.workers) {
        (Some(w), _) if (1..=MOST_WORKERS as usize).contains(&w) => w,
        (Some(w), _) => {
            return Err(Failure::Invalid(Diagnostic::new(
                None,
                format!("{w} workers: workers must be at least 1 and at most {MOST_WORKERS}"),
            )))
        }
        (None, None) => 1,
        (None, Some(w)) if (1..=MOST_WORKERS).contains(w.get_ref()) => *w.get_ref() as usize,
        (None, Some(w)) => {
            return Err(at(
                w.span(),
                format!("workers must be at least 1 and at most {MOST_WORKERS}"),
            ))
        }
    };
    Ok(Execution {
        event_mode,
        target_latency,
        batch_size,
        batch_interval,
        workers,
    })
}
