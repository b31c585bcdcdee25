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

pub(super) fn transform(
    t: &TransformSpec,
    previous: &str,
    schemas: &IndexMap<String, SchemaRef>,
) -> Result<TransformPlan, Failure> {
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
    let from = match &t.from {
        None => previous.to_string(),
        Some(f) => {
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
            f.get_ref().clone()
        }
    };
    let input = schemas[&from].clone();
    let sql = SqlContext::new(input.clone()).map_err(|m| at(t.name.span(), m))?;
    let given = [
        ("where", span_of(&t.predicate)),
        ("columns", span_of(&t.columns)),
        ("key", span_of(&t.key)),
        ("window", span_of(&t.window)),
        ("aggregates", span_of(&t.aggregates)),
        ("allowed_lateness", span_of(&t.allowed_lateness)),
        ("when", span_of(&t.when)),
        ("emit", span_of(&t.emit)),
    ];
    let kind = t.kind.get_ref().clone();
    let missing = |key: &str, example: &str| {
        at(
            t.name.span(),
            format!("a {kind} transform needs `{key}`, like {example}"),
        )
    };
    let (operation, schema, describe) = match kind.as_str() {
        "filter" => {
            only(&t.kind, &given, &["where"])?;
            let p = t
                .predicate
                .as_ref()
                .ok_or_else(|| missing("where", "where = \"temperature > 0\""))?;
            let c = sql.scalar(p.get_ref()).map_err(|m| at(p.span(), m))?;
            if c.data_type != DataType::Boolean {
                return Err(at(
                    p.span(),
                    format!(
                        "`where` must be true or false, but `{}` is {}",
                        p.get_ref(),
                        c.data_type
                    ),
                ));
            }
            let describe = format!("where {}", p.get_ref());
            (Operation::Filter(c), input.clone(), describe)
        }
        "select" => {
            only(&t.kind, &given, &["columns"])?;
            let cols = t
                .columns
                .as_ref()
                .ok_or_else(|| missing("columns", "columns = { f = \"(temp - 32) / 1.8\" }"))?;
            let (exprs, schema) = compile_exprs(&sql, cols)?;
            let describe = cols
                .get_ref()
                .iter()
                .map(|(n, e)| format!("{n} = {}", e.get_ref()))
                .collect::<Vec<_>>()
                .join(", ");
            (Operation::Select(exprs), schema, describe)
        }
        "rule" => {
            only(&t.kind, &given, &["when", "emit"])?;
            let w = t
                .when
                .as_ref()
                .ok_or_else(|| missing("when", "when = \"max_temp > 80\""))?;
            let when = sql.scalar(w.get_ref()).map_err(|m| at(w.span(), m))?;
            if when.data_type != DataType::Boolean {
                return Err(at(
                    w.span(),
                    format!(
                        "`when` must be true or false, but `{}` is {}",
                        w.get_ref(),
                        when.data_type
                    ),
                ));
            }
            let (emit, schema) = match &t.emit {
                Some(e) => {
                    let (exprs, schema) = compile_exprs(&sql, e)?;
                    (Some(exprs), schema)
                }
                None => (None, input.clone()),
            };
            let describe = format!("when {}", w.get_ref());
            (Operation::Rule { when, emit }, schema, describe)
        }
        "window" => {
            only(
                &t.kind,
                &given,
                &["key", "window", "aggregates", "allowed_lateness"],
            )?;
            window(t, &name, &input, &sql)?
        }
        other => {
            return Err(at(
                t.kind.span(),
                format!(
                    "transform type \"{other}\" is not known; use \"filter\", \"select\", \
                     \"window\" or \"rule\""
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

pub(super) fn window(
    t: &TransformSpec,
    name: &str,
    input: &SchemaRef,
    sql: &SqlContext,
) -> Result<(Operation, SchemaRef, String), Failure> {
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
    let lateness = match &t.allowed_lateness {
        None => 0,
        Some(d) => {
            if matches!(kind, WindowKind::Count { .. }) {
                return Err(at(
                    d.span(),
                    "count windows close on a count, not on event time: remove allowed_lateness",
                ));
            }
            event_millis(d, "allowed_lateness", 0)?
        }
    };
    let key_fields: Vec<String> = t
        .key
        .as_ref()
        .map(|k| k.get_ref().fields())
        .unwrap_or_default();
    let mut keys = Vec::new();
    let mut sort_fields = Vec::new();
    let mut out_fields = Vec::new();
    for field in &key_fields {
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
    out_fields.push(Field::new("window_start", DataType::Int64, false));
    out_fields.push(Field::new("window_end", DataType::Int64, false));
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
    let output = Arc::new(Schema::new(out_fields));
    let describe = format!(
        "{:?} by [{}], {} aggregate(s), allowed lateness {lateness} ms",
        kind,
        key_fields.join(", "),
        aggregates.len()
    );
    let plan = WindowPlan {
        name: name.to_string(),
        kind,
        keys,
        key_fields: sort_fields,
        aggregates,
        lateness,
        output: output.clone(),
    };
    Ok((Operation::Window(Arc::new(plan)), output, describe))
}
