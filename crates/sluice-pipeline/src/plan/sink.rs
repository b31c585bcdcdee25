//! Compiling a sink table: the stream it writes, then its connector's
//! settings (the connector checks them, see [`crate::connectors`]).

use super::*;

pub(super) fn sink(
    s: &SinkSpec,
    schemas: &IndexMap<String, SchemaRef>,
    base: &Path,
) -> Result<SinkPlan, Failure> {
    let from = s.from.get_ref();
    if !schemas.contains_key(from) && !matches!(from.as_str(), "late" | "dead_letter") {
        return Err(at(
            s.from.span(),
            format!(
                "no stream named `{from}`; streams: {}, late, dead_letter",
                schemas.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let target = connectors::compile_sink(s, base, schemas.get(from))?;
    Ok(SinkPlan {
        from: from.clone(),
        label: format!("{from} -> {}", target.label()),
        target,
    })
}
