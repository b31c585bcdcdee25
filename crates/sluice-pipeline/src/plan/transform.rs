//! Checking transforms and compiling their SQL against their input's
//! schema: filter, select, rule, and windows with their aggregates.

use super::*;

fn compile_exprs(
    sql: &SqlContext,
    exprs: &Spanned<Expressions>,
) -> Result<(Vec<ScalarExpr>, SchemaRef), Failure> {
    if exprs.get_ref().is_empty() {
        return Err(at(
            exprs.span(),
            "name at least one column: { name = \"expression\" }",
        ));
    }
    let mut compiled = Vec::new();
    let mut fields = Vec::new();
    for (name, e) in exprs.get_ref() {
        let c = sql
            .scalar(e.get_ref())
            .map_err(|m| at(e.span(), format!("in `{name}`: {m}")))?;
        fields.push(c.field(name));
        compiled.push(c);
    }
    Ok((compiled, Arc::new(Schema::new(fields))))
}

/// Checks a transform's table and compiles its SQL against its input.
pub(super) fn transform(
    t: &TransformSpec,
    previous: &str,
    schemas: &IndexMap<String, SchemaRef>,
    functions: &Functions,
    base: &Path,
) -> Result<TransformPlan, Failure> {
    let name = stream_name(t, schemas)?;
    let from = input_stream(t, previous, schemas)?;
    let input = schemas[&from].clone();
    let sql = SqlContext::new(input.clone(), functions).map_err(|m| at(t.name.span(), m))?;
    let given = [
        ("where", span_of(&t.predicate)),
        ("columns", span_of(&t.columns)),
        ("key", span_of(&t.key)),
        ("window", span_of(&t.window)),
        ("aggregates", span_of(&t.aggregates)),
        ("allowed_lateness", span_of(&t.allowed_lateness)),
        ("when", span_of(&t.when)),
        ("emit", span_of(&t.emit)),
        ("query", span_of(&t.query)),
        ("right", span_of(&t.right)),
        ("on", span_of(&t.on)),
        ("between", span_of(&t.between)),
        ("table", span_of(&t.table)),
        ("changelog_key", span_of(&t.changelog_key)),
    ];
    let kind = t.kind.get_ref().clone();
    let (operation, schema, describe) = match kind.as_str() {
        "filter" => {
            only(&t.kind, &given, &["where"])?;
            filter(t, &input, &sql)?
        }
        "select" => {
            only(&t.kind, &given, &["columns"])?;
            select(t, &sql)?
        }
        "rule" => {
            only(&t.kind, &given, &["when", "emit"])?;
            rule(t, &input, &sql)?
        }
        "window" => {
            only(
                &t.kind,
                &given,
                &["key", "window", "aggregates", "allowed_lateness"],
            )?;
            window(t, &name, &input, &sql)?
        }
        "aggregate" => {
            only(&t.kind, &given, &["key", "aggregates", "changelog_key"])?;
            window(t, &name, &input, &sql)?
        }
        "join" => {
            only(&t.kind, &given, &["right", "on", "between"])?;
            super::join::join(t, &name, &from, schemas)?
        }
        "lookup" => {
            only(&t.kind, &given, &["table", "on"])?;
            super::lookup::lookup(t, &name, &from, schemas, base)?
        }
        other => {
            return Err(at(
                t.kind.span(),
                format!(
                    "transform type \"{other}\" is not known; use \"filter\", \"select\", \
                     \"window\", \"aggregate\", \"join\", \"lookup\", \"rule\" or \"sql\""
                ),
            ))
        }
    };
    Ok(TransformPlan {
        name,
        from,
        kind,
        operation,
        schema,
        describe,
    })
}

/// What a transform compiles to: its operation, output schema, and the
/// line `validate` shows.
type Compiled = (Operation, SchemaRef, String);

/// The name of the stream a transform makes: not reserved, not empty, not
/// taken.
fn stream_name(
    t: &TransformSpec,
    schemas: &IndexMap<String, SchemaRef>,
) -> Result<String, Failure> {
    let name = t.name.get_ref().clone();
    if RESERVED.contains(&name.as_str()) {
        return Err(at(
            t.name.span(),
            format!("`{name}` is a reserved stream name; choose another name"),
        ));
    }
    if name.is_empty() {
        return Err(at(t.name.span(), "a transform needs a non-empty name"));
    }
    if schemas.contains_key(&name) {
        return Err(at(
            t.name.span(),
            format!("a stream named `{name}` already exists; names must be unique"),
        ));
    }
    Ok(name)
}

/// The stream a transform reads: `from`, or the previous one.
fn input_stream(
    t: &TransformSpec,
    previous: &str,
    schemas: &IndexMap<String, SchemaRef>,
) -> Result<String, Failure> {
    let Some(f) = &t.from else {
        return Ok(previous.to_string());
    };
    if matches!(f.get_ref().as_str(), "late" | "dead_letter") {
        return Err(at(
            f.span(),
            format!(
                "`{}` is a reserved stream that only sinks can read",
                f.get_ref()
            ),
        ));
    }
    if !schemas.contains_key(f.get_ref()) {
        return Err(at(
            f.span(),
            format!(
                "no stream named `{}` before this transform; streams: {}",
                f.get_ref(),
                schemas.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(f.get_ref().clone())
}

/// The error for a key that a transform of its type needs.
fn missing(t: &TransformSpec, key: &str, example: &str) -> Failure {
    at(
        t.name.span(),
        format!(
            "a {} transform needs `{key}`, like {example}",
            t.kind.get_ref()
        ),
    )
}

/// A true-or-false expression named `key` (`where`, `when`).
fn condition(sql: &SqlContext, p: &Spanned<String>, key: &str) -> Result<ScalarExpr, Failure> {
    let c = sql.scalar(p.get_ref()).map_err(|m| at(p.span(), m))?;
    if c.data_type != DataType::Boolean {
        return Err(at(
            p.span(),
            format!(
                "`{key}` must be true or false, but `{}` is {}",
                p.get_ref(),
                c.data_type
            ),
        ));
    }
    Ok(c)
}

/// `filter`: the rows where `where` holds.
fn filter(t: &TransformSpec, input: &SchemaRef, sql: &SqlContext) -> Result<Compiled, Failure> {
    let p = t
        .predicate
        .as_ref()
        .ok_or_else(|| missing(t, "where", "where = \"temperature > 0\""))?;
    let c = condition(sql, p, "where")?;
    if super::is_changelog(input) {
        let op = input.index_of("op").unwrap_or_default();
        let describe = format!(
            "where {} (a changelog: an update or delete that fails it deletes its key's row)",
            p.get_ref()
        );
        return Ok((
            Operation::ChangelogFilter { predicate: c, op },
            input.clone(),
            describe,
        ));
    }
    let describe = format!("where {}", p.get_ref());
    Ok((Operation::Filter(c), input.clone(), describe))
}

/// `select`: new columns.
fn select(t: &TransformSpec, sql: &SqlContext) -> Result<Compiled, Failure> {
    let cols = t
        .columns
        .as_ref()
        .ok_or_else(|| missing(t, "columns", "columns = { f = \"(temp - 32) / 1.8\" }"))?;
    let (exprs, schema) = compile_exprs(sql, cols)?;
    let describe = cols
        .get_ref()
        .iter()
        .map(|(n, e)| format!("{n} = {}", e.get_ref()))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((Operation::Select(exprs), schema, describe))
}

/// `rule`: when `when` holds, emit a row (all columns, or `emit`'s).
fn rule(t: &TransformSpec, input: &SchemaRef, sql: &SqlContext) -> Result<Compiled, Failure> {
    let w = t
        .when
        .as_ref()
        .ok_or_else(|| missing(t, "when", "when = \"max_temp > 80\""))?;
    let when = condition(sql, w, "when")?;
    let (emit, schema) = match &t.emit {
        Some(e) => {
            let (exprs, schema) = compile_exprs(sql, e)?;
            (Some(exprs), schema)
        }
        None => (None, input.clone()),
    };
    let describe = format!("when {}", w.get_ref());
    Ok((Operation::Rule { when, emit }, schema, describe))
}

/// `window`: keyed windows of event time (or counts) and their aggregates.
fn window(
    t: &TransformSpec,
    name: &str,
    input: &SchemaRef,
    sql: &SqlContext,
) -> Result<Compiled, Failure> {
    if super::is_changelog(input) {
        if let (true, Some(by)) = (t.kind.get_ref() == "aggregate", &t.changelog_key) {
            return super::changelog::aggregate(t, name, input, sql, by);
        }
        return Err(at(
            t.kind.span(),
            format!(
                "`{}` reads a changelog (rows with op and revision, which update earlier \
                 rows): aggregating it would count every update again; aggregate the stream \
                 it is made from, or, with type = \"aggregate\", name the columns that \
                 identify its rows in changelog_key",
                t.name.get_ref()
            ),
        ));
    }
    if let Some(by) = &t.changelog_key {
        return Err(at(
            by.span(),
            "`changelog_key` is for an aggregate of a changelog, and this input is not one (it \
             has no op and revision columns): remove it",
        ));
    }
    // A running aggregate is one window over all of time that emits what
    // each batch changed.
    let running = t.kind.get_ref() == "aggregate";
    let kind = if running {
        WindowKind::Running
    } else {
        window_kind(t)?
    };
    let lateness = match &t.allowed_lateness {
        None => 0,
        Some(d) if matches!(kind, WindowKind::Count { .. }) => {
            return Err(at(
                d.span(),
                "count windows close on a count, not on event time: remove allowed_lateness",
            ));
        }
        Some(d) => event_millis(d, "allowed_lateness", 0)?,
    };
    let key_fields: Vec<String> = t
        .key
        .as_ref()
        .map(|k| k.get_ref().fields())
        .unwrap_or_default();
    let WindowKeys {
        keys,
        sort_fields,
        mut out_fields,
    } = window_keys(t, input, &key_fields)?;
    if !running {
        out_fields.push(Field::new("window_start", DataType::Int64, false));
        out_fields.push(Field::new("window_end", DataType::Int64, false));
    }
    // A window that may update a result after firing says what each row
    // changes (docs/concepts.md): `op` and `revision`.
    let changelog = running || lateness > 0 && !matches!(kind, WindowKind::Count { .. });
    if changelog {
        for column in ["op", "revision"] {
            if out_fields.iter().any(|f| f.name() == column) {
                let span = t.key.as_ref().map_or(t.name.span(), |k| k.span());
                return Err(at(
                    span,
                    format!(
                        "the key `{column}` clashes with the window's `{column}` column (a window \
                         with allowed_lateness says what each row changes): rename the key in a \
                         select before the window"
                    ),
                ));
            }
        }
        out_fields.push(Field::new("op", DataType::Utf8, false));
        out_fields.push(Field::new("revision", DataType::UInt32, false));
    }
    let aggregates = window_aggregates(t, sql, &mut out_fields)?;
    let output = Arc::new(Schema::new(out_fields));
    let describe = format!(
        "{:?} by [{}], {} aggregate(s), allowed lateness {lateness} ms{}",
        kind,
        key_fields.join(", "),
        aggregates.len(),
        if changelog {
            ", rows say what they change (op, revision)"
        } else {
            ""
        }
    );
    let plan = WindowPlan {
        name: name.to_string(),
        kind,
        keys,
        key_fields: sort_fields,
        aggregates,
        lateness,
        changelog,
        output: output.clone(),
    };
    Ok((Operation::Window(Arc::new(plan)), output, describe))
}

/// The window's kind and sizes (`window = { type = ..., ... }`).
fn window_kind(t: &TransformSpec) -> Result<WindowKind, Failure> {
    let w = t.window.as_ref().ok_or_else(|| {
        at(
            t.name.span(),
            "a window transform needs `window`, like window = { type = \"tumbling\", size = \"10s\" }",
        )
    })?;
    let ws = w.get_ref();
    let size_duration = |what: &str| -> Result<i64, Failure> {
        let size = ws.size.as_ref().ok_or_else(|| {
            at(
                w.span(),
                format!("a {what} window needs `size`, like size = \"10s\""),
            )
        })?;
        match size.get_ref() {
            toml::Value::String(text) => {
                event_millis(&Spanned::new(size.span(), text.clone()), "size", 1)
            }
            _ => Err(at(
                size.span(),
                "size of a time window is a duration, like \"10s\"",
            )),
        }
    };
    let wgiven = [
        ("size", span_of(&ws.size)),
        ("slide", span_of(&ws.slide)),
        ("gap", span_of(&ws.gap)),
    ];
    let kind =
        match ws.kind.get_ref().as_str() {
            "tumbling" => {
                only(&ws.kind, &wgiven, &["size"])?;
                WindowKind::Tumbling {
                    size: size_duration("tumbling")?,
                }
            }
            "sliding" => {
                only(&ws.kind, &wgiven, &["size", "slide"])?;
                let size = size_duration("sliding")?;
                let slide = ws.slide.as_ref().ok_or_else(|| {
                    at(
                        w.span(),
                        "a sliding window needs `slide`, like slide = \"5s\"",
                    )
                })?;
                let step = event_millis(slide, "slide", 0)?;
                if step <= 0 || step > size {
                    return Err(at(
                        slide.span(),
                        "slide must be longer than zero and no longer than size",
                    ));
                }
                if size / step > MOST_PANES {
                    return Err(at(
                        slide.span(),
                        format!(
                            "with size {size}ms and slide {step}ms each event falls in {} \
                             windows; at most {MOST_PANES} are supported: make slide longer",
                            size / step
                        ),
                    ));
                }
                WindowKind::Sliding { size, slide: step }
            }
            "session" => {
                only(&ws.kind, &wgiven, &["gap"])?;
                let gap = ws.gap.as_ref().ok_or_else(|| {
                    at(w.span(), "a session window needs `gap`, like gap = \"30s\"")
                })?;
                let g = event_millis(gap, "gap", 1)?;
                WindowKind::Session { gap: g }
            }
            "count" => {
                only(&ws.kind, &wgiven, &["size"])?;
                let size = ws.size.as_ref().ok_or_else(|| {
                    at(w.span(), "a count window needs `size`, a number of events")
                })?;
                match size.get_ref() {
                    toml::Value::Integer(n) if *n > 0 => WindowKind::Count { size: *n as u64 },
                    _ => {
                        return Err(at(
                            size.span(),
                            "size of a count window is a number of events, like size = 100",
                        ))
                    }
                }
            }
            other => {
                return Err(at(
                    ws.kind.span(),
                    format!(
                        "window type \"{other}\" is not known; use \"tumbling\", \"sliding\", \
                     \"session\" or \"count\""
                    ),
                ))
            }
        };
    Ok(kind)
}

/// A window's key columns.
pub(super) struct WindowKeys {
    /// Their indexes in the input.
    pub(super) keys: Vec<usize>,
    /// How rows encode them.
    pub(super) sort_fields: Vec<SortField>,
    /// The output's first fields.
    pub(super) out_fields: Vec<Field>,
}

/// The window's key columns, checked against its input.
pub(super) fn window_keys(
    t: &TransformSpec,
    input: &SchemaRef,
    key_fields: &[String],
) -> Result<WindowKeys, Failure> {
    let mut keys = Vec::new();
    let mut sort_fields = Vec::new();
    let mut out_fields = Vec::new();
    for field in key_fields {
        let (index, f) = input.column_with_name(field).ok_or_else(|| {
            at(
                span_of(&t.key).unwrap_or(t.name.span()),
                format!(
                    "key field `{field}` is not in stream; fields: {}",
                    format::field_names(input)
                ),
            )
        })?;
        keys.push(index);
        sort_fields.push(SortField::new(f.data_type().clone()));
        out_fields.push(Field::new(f.name(), f.data_type().clone(), true));
    }
    if sort_fields.is_empty() {
        sort_fields.push(SortField::new(DataType::Boolean));
    }
    Ok(WindowKeys {
        keys,
        sort_fields,
        out_fields,
    })
}

/// The window's aggregates, each a new output field after `out_fields`.
pub(super) fn window_aggregates(
    t: &TransformSpec,
    sql: &SqlContext,
    out_fields: &mut Vec<Field>,
) -> Result<Vec<(String, AggregateExpr)>, Failure> {
    let aggs = t.aggregates.as_ref().ok_or_else(|| {
        at(
            t.name.span(),
            "a window transform needs `aggregates`, like aggregates = { n = \"count(*)\" }",
        )
    })?;
    if aggs.get_ref().is_empty() {
        return Err(at(
            aggs.span(),
            "name at least one aggregate: { n = \"count(*)\" }",
        ));
    }
    let mut aggregates: Vec<(String, AggregateExpr)> = Vec::new();
    for (out, e) in aggs.get_ref() {
        if out_fields.iter().any(|f| f.name() == out) {
            return Err(at(
                e.span(),
                format!("`{out}` is already a column of the window's output; rename it"),
            ));
        }
        let a = sql
            .aggregate(e.get_ref())
            .map_err(|m| at(e.span(), format!("in `{out}`: {m}")))?;
        out_fields.push(a.field(out));
        aggregates.push((out.clone(), a));
    }
    Ok(aggregates)
}
