//! `[[transform]] type = "sql"` in a TOML pipeline file: its `query` (one
//! `SELECT` over an earlier stream) becomes the filters, selects and
//! windows a SQL file's query would, named after the transform, with
//! places inside the TOML string.

use super::query::{Over, Query};
use super::text::Places;
use crate::config::diag::Diagnostic;
use crate::config::{PipelineSpec, TransformSpec};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use toml::Spanned;

/// Replaces each `sql` transform of `spec` by the transforms its query
/// makes; `text` is the file's.
pub(crate) fn expand(spec: &mut PipelineSpec, text: &str) -> Result<(), Diagnostic> {
    if !spec
        .transforms
        .iter()
        .any(|t| t.get_ref().kind.get_ref() == "sql")
    {
        return Ok(());
    }
    let event_time = spec
        .source
        .get_ref()
        .event_time
        .as_ref()
        .map(|e| e.get_ref().clone());
    let mut expanded = Vec::with_capacity(spec.transforms.len());
    for t in std::mem::take(&mut spec.transforms) {
        if t.get_ref().kind.get_ref() != "sql" {
            expanded.push(t);
            continue;
        }
        expanded.extend(one(t.get_ref(), text, event_time.clone())?);
    }
    spec.transforms = expanded;
    Ok(())
}

/// The transforms of one `sql` transform.
fn one(
    t: &TransformSpec,
    text: &str,
    event_time: Option<String>,
) -> Result<Vec<Spanned<TransformSpec>>, Diagnostic> {
    let Some(query) = &t.query else {
        return Err(Diagnostic::at(
            t.kind.span(),
            "a sql transform needs `query`, like query = \"SELECT * FROM source WHERE x > 1\"",
        ));
    };
    let others = [
        ("from", t.from.as_ref().map(Spanned::span)),
        ("where", t.predicate.as_ref().map(Spanned::span)),
        ("columns", t.columns.as_ref().map(Spanned::span)),
        ("key", t.key.as_ref().map(Spanned::span)),
        ("window", t.window.as_ref().map(Spanned::span)),
        ("aggregates", t.aggregates.as_ref().map(Spanned::span)),
        ("when", t.when.as_ref().map(Spanned::span)),
        ("emit", t.emit.as_ref().map(Spanned::span)),
        ("right", t.right.as_ref().map(Spanned::span)),
        ("on", t.on.as_ref().map(Spanned::span)),
        ("between", t.between.as_ref().map(Spanned::span)),
    ];
    if let Some((key, Some(span))) = others.into_iter().find(|(_, s)| s.is_some()) {
        return Err(Diagnostic::at(
            span,
            format!(
                "`{key}` does not apply to a sql transform: its query says it (FROM names the \
                 input); remove `{key}`"
            ),
        ));
    }
    let places = Places::within(query.get_ref(), content_start(text, query.span()));
    let parsed = Parser::new(&GenericDialect {})
        .try_with_sql(query.get_ref())
        .and_then(|mut p| p.parse_query())
        .map_err(|e| places.parser_error(&e.to_string()))?;
    let translated = Query::new(&places, &parsed)?;
    // A stream's column named as the source's event time holds it.
    let over = |stream: &Spanned<String>| Over {
        stream: stream.get_ref().clone(),
        event_time: event_time.clone(),
        lateness: t.allowed_lateness.clone(),
        changelog: false,
        times: event_time.as_ref().map(|e| vec![(e.clone(), 0)]),
        ttl: None,
        changelog_key: None,
    };
    let right = translated.join.as_ref().map(|j| over(&j.right));
    let over = over(&translated.from);
    let mut transforms = translated
        .transforms(t.name.get_ref(), &over, right.as_ref())?
        .transforms;
    if transforms.is_empty() {
        // `SELECT * FROM x`: the transform's name is a stream of x's rows.
        let mut pass = super::query::transform("filter", query.span());
        pass.name = t.name.clone();
        pass.from = Some(Spanned::new(query.span(), over.stream.clone()));
        pass.predicate = Some(Spanned::new(query.span(), "true".to_string()));
        transforms.push(Spanned::new(query.span(), pass));
    }
    Ok(transforms)
}

/// Where a TOML string's content starts: after its quotes (and the line
/// break right after `"""`, which TOML drops).
fn content_start(text: &str, span: std::ops::Range<usize>) -> usize {
    let raw = text.get(span.clone()).unwrap_or_default();
    let quotes = ["\"\"\"", "'''", "\"", "'"]
        .into_iter()
        .find(|q| raw.starts_with(q))
        .map_or(0, str::len);
    let mut start = span.start + quotes;
    let rest = text.get(start..).unwrap_or_default();
    if quotes == 3 {
        if rest.starts_with("\r\n") {
            start += 2;
        } else if rest.starts_with('\n') {
            start += 1;
        }
    }
    start
}
