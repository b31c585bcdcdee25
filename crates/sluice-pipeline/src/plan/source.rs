//! Compiling a source table: its connector's settings and schema (the
//! connector checks them, see [`crate::connectors`]), then what every source
//! takes: event time, watermark, idle timeout and pace.

use super::*;

/// Compiles the source's table: its connector (from the registry, which
/// checks the connector's keys) and the keys every source takes.
pub(super) fn source(s: &SourceSpec, base: &Path, pipeline: &str) -> Result<SourcePlan, Failure> {
    let compiled = connectors::compile_source(s, base, pipeline)?;
    let (field, span) = match (&s.event_time, compiled.connector.default_time_field()) {
        (Some(f), _) => (f.get_ref().clone(), Some(f.span())),
        (None, Some(f)) => (f.to_string(), None),
        (None, None) => {
            return Err(at(
                s.kind.span(),
                format!(
                    "the source needs `event_time`, the field that holds each record's time; \
                     fields: {}",
                    format::field_names(&compiled.schema)
                ),
            ))
        }
    };
    finish_source(compiled, &field, span, s)
}

/// The event time, watermark and pace every source takes.
fn finish_source(
    compiled: CompiledSource,
    field: &str,
    span: Option<Span>,
    s: &SourceSpec,
) -> Result<SourcePlan, Failure> {
    let CompiledSource { connector, schema } = compiled;
    let time = EventTime::new(&schema, field).map_err(|m| {
        Failure::Invalid(Diagnostic::new(span.or(Some(s.kind.span())), m.to_string()))
    })?;
    let max_out_of_orderness = match &s.max_out_of_orderness {
        Some(d) => Duration::from_millis(event_millis(d, "max_out_of_orderness", 0)? as u64),
        None => Duration::ZERO,
    };
    let idle_timeout = match &s.idle_timeout {
        Some(d) => {
            let timeout = duration(d, "idle_timeout")?;
            if timeout.is_zero() {
                return Err(at(d.span(), "idle_timeout must be longer than zero"));
            }
            Some(timeout)
        }
        None => None,
    };
    let rate = match &s.rate {
        Some(r) if !(r.get_ref().is_finite() && *r.get_ref() >= 0.001) => {
            return Err(at(
                r.span(),
                format!(
                    "rate = {} is not a number of records per second of at least 0.001; write e.g. \
                     rate = 1000, or remove it to read as fast as the dataflow goes",
                    r.get_ref()
                ),
            ))
        }
        Some(r) => Some(*r.get_ref()),
        None => None,
    };
    Ok(SourcePlan {
        connector,
        schema,
        time,
        max_out_of_orderness,
        idle_timeout,
        rate,
    })
}
