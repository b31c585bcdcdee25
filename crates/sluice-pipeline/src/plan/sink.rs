//! Checking a sink table: its target, format and, for NATS, subject and
//! stream.

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
    let format = match &s.format {
        None => None,
        Some(f) => Some(Format::from_name(f.get_ref()).ok_or_else(|| {
            at(
                f.span(),
                format!(
                    "format \"{}\" is not known; use \"jsonl\", \"csv\" or \"parquet\"",
                    f.get_ref()
                ),
            )
        })?),
    };
    let kind = s.kind.get_ref().as_str();
    if kind != "nats" {
        for (key, span) in [
            ("url", span_of(&s.url)),
            ("subject", span_of(&s.subject)),
            ("stream", span_of(&s.stream)),
            ("replicas", span_of(&s.replicas)),
        ] {
            if let Some(span) = span {
                return Err(at(
                    span,
                    format!("`{key}` applies to nats sinks only; remove it"),
                ));
            }
        }
    }
    let target = match kind {
        "nats" => {
            for (key, span) in [("path", span_of(&s.path)), ("format", span_of(&s.format))] {
                if let Some(span) = span {
                    return Err(at(
                        span,
                        format!("a nats sink publishes JSON records; `{key}` does not apply"),
                    ));
                }
            }
            let need = |value: &Option<Spanned<String>>, key: &str, example: &str| {
                value.as_ref().map(|v| v.get_ref().clone()).ok_or_else(|| {
                    at(
                        s.kind.span(),
                        format!("a nats sink needs `{key}`: {key} = \"{example}\""),
                    )
                })
            };
            let subject = need(&s.subject, "subject", "alerts")?;
            if subject.contains(['*', '>', ' ']) || subject.is_empty() {
                return Err(at(
                    span_of(&s.subject).unwrap_or(s.kind.span()),
                    "a sink's subject is one subject, without wildcards or spaces (a field's \
                     value goes in with `{field}`)",
                ));
            }
            let braces = subject.matches(['{', '}']).count();
            let field = crate::connectors::nats::sink::subject_field(&subject);
            if braces != field.map_or(0, |_| 2) {
                return Err(at(
                    span_of(&s.subject).unwrap_or(s.kind.span()),
                    format!(
                        "subject \"{subject}\": a field's value goes in as one whole token, \
                         once: \"alerts.{{sensor}}\""
                    ),
                ));
            }
            if let Some(field) = field {
                let fields = schemas.get(from).map(|schema| format::field_names(schema));
                let known = match schemas.get(from) {
                    Some(schema) => schema.field_with_name(field).is_ok(),
                    None => true, // late, dead_letter: checked when written
                };
                if !known {
                    return Err(at(
                        span_of(&s.subject).unwrap_or(s.kind.span()),
                        format!(
                            "subject \"{subject}\": stream `{from}` has no field `{field}`; \
                             fields: {}",
                            fields.unwrap_or_default()
                        ),
                    ));
                }
            }
            Target::Nats(crate::connectors::nats::NatsTarget {
                url: need(&s.url, "url", "nats://127.0.0.1:4222")?,
                subject,
                stream: s.stream.as_ref().map(|v| v.get_ref().clone()),
                replicas: replicas(s.replicas.as_ref())?,
                id_prefix: String::new(),
            })
        }
        "stdout" => {
            if let Some(p) = &s.path {
                return Err(at(p.span(), "a stdout sink takes no `path`; remove it"));
            }
            if let (Some(f), Some(format)) = (&s.format, format) {
                if format != Format::Jsonl {
                    return Err(at(f.span(), "stdout writes JSON lines; remove `format`"));
                }
            }
            Target::Stdout
        }
        "file" => {
            let p = s
                .path
                .as_ref()
                .ok_or_else(|| at(s.kind.span(), "a file sink needs `path`, the output file"))?;
            let path = base.join(p.get_ref());
            let format = format.or_else(|| Format::from_path(&path)).ok_or_else(|| {
                at(
                    p.span(),
                    "can't tell the format from the extension; name the file .jsonl, .csv or \
                     .parquet, or add format = \"jsonl\"",
                )
            })?;
            Target::File { path, format }
        }
        other => {
            return Err(at(
                s.kind.span(),
                format!("sink type \"{other}\" is not known; use \"stdout\", \"file\" or \"nats\""),
            ))
        }
    };
    let label = match &target {
        Target::Nats(n) => format!("{from} -> nats:{}", n.subject),
        _ => format!(
            "{from} -> {}",
            s.path.as_ref().map_or("stdout", |p| p.get_ref().as_str())
        ),
    };
    Ok(SinkPlan {
        from: from.clone(),
        target,
        label,
    })
}
