//! One `SELECT` of a SQL pipeline as transforms: `WHERE` a filter, a
//! projection a select, `GROUP BY tumble(..)|hop(..)|session(..), keys` a
//! window (aggregates inside expressions computed by the window, the
//! expressions by a select after it), `HAVING` a filter after the window.

use super::aggregates::{first_aggregate, is_aggregate, is_hidden, Aggregates, NotGrouped};
use super::text::Places;
use super::window::window_kind;
use crate::config::diag::{Diagnostic, Span};
use crate::config::{Expressions, KeySpec, TransformSpec, WindowSpec};
use datafusion::sql::sqlparser::ast::{self, Expr, GroupByExpr, SelectItem, SetExpr, TableFactor};
use std::collections::HashSet;
use toml::Spanned;

/// A query, checked for what a stream can run.
pub(super) struct Query<'a> {
    pub(super) places: &'a Places,
    pub(super) select: ast::Select,
    /// The table or view it reads (a join's left one).
    pub from: Spanned<String>,
    /// `JOIN ... ON ...`: the second table or view, and how rows pair.
    pub join: Option<super::join::JoinClause>,
}

/// The transforms of a query and the stream they end in.
pub(super) struct Translated {
    pub transforms: Vec<Spanned<TransformSpec>>,
    pub stream: String,
    /// Its rows are a changelog (`op`, `revision`).
    pub changelog: bool,
    /// Its columns that hold each row's event time plus an offset (ms),
    /// when known.
    pub times: Option<Times>,
    /// A changelog's columns that identify its rows, when known.
    pub changelog_key: Option<Vec<String>>,
}

/// Columns that hold each row's event time plus an offset in ms: the
/// source's event-time column (0), a window's `window_end` (+1, as a
/// window's rows are timed at its last millisecond).
pub(super) type Times = Vec<(String, i64)>;

/// What the windows over a stream take from its source table.
pub(super) struct Over {
    /// The stream read.
    pub stream: String,
    /// The source's event-time field, when known.
    pub event_time: Option<String>,
    /// The source table's `allowed_lateness` (none if zero).
    pub lateness: Option<Spanned<String>>,
    /// The stream is a changelog: aggregating it again would count each
    /// update as a new row.
    pub changelog: bool,
    /// Its columns that hold the event time (plus an offset), when known
    /// (none known: a window over it cannot name its time).
    pub times: Option<Times>,
    /// `SET state.ttl`: how long a join keeps a row without a time bound
    /// (ms).
    pub ttl: Option<i64>,
    /// A changelog's columns that identify its rows, when known (an
    /// aggregate of it takes a row's earlier values back out).
    pub changelog_key: Option<Vec<String>>,
}

fn unsupported(span: Span, what: &str) -> Diagnostic {
    Diagnostic::at(
        span,
        format!("{what} (docs/sql.md says what a SQL pipeline takes)"),
    )
}

impl<'a> Query<'a> {
    pub fn new(places: &'a Places, query: &'a ast::Query) -> Result<Self, Diagnostic> {
        let span = places.span_of(query);
        if query.with.is_some() {
            return Err(unsupported(
                span,
                "WITH is not supported: name the step with CREATE VIEW",
            ));
        }
        if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
            return Err(unsupported(
                span,
                "ORDER BY and LIMIT are not supported on a stream",
            ));
        }
        let SetExpr::Select(select) = query.body.as_ref() else {
            return Err(unsupported(
                span,
                "only SELECT is supported (no UNION or VALUES)",
            ));
        };
        let span = places.span_of(select.as_ref());
        if select.distinct.is_some() {
            return Err(unsupported(
                span,
                "DISTINCT is not supported: GROUP BY a window and the keys",
            ));
        }
        if select.top.is_some()
            || select.into.is_some()
            || select.prewhere.is_some()
            || select.qualify.is_some()
            || !select.lateral_views.is_empty()
            || !select.named_window.is_empty()
            || !select.sort_by.is_empty()
            || !select.cluster_by.is_empty()
            || !select.distribute_by.is_empty()
        {
            return Err(unsupported(span, "this SELECT clause is not supported"));
        }
        let [from] = select.from.as_slice() else {
            return Err(unsupported(
                span,
                "a SELECT reads one table or view in FROM",
            ));
        };
        let join = match from.joins.as_slice() {
            [] => None,
            [join] => Some(super::join::JoinClause::new(places, join, &from.relation)?),
            [_, second, ..] => {
                return Err(unsupported(
                    places.span_of(second),
                    "one JOIN per SELECT: join the result of a view with the third table",
                ))
            }
        };
        let TableFactor::Table {
            name, alias, args, ..
        } = &from.relation
        else {
            return Err(unsupported(
                places.span_of(&from.relation),
                "FROM takes a table or view name (windows go in GROUP BY: tumble(ts, INTERVAL '10' SECOND))",
            ));
        };
        let name_span = places.span_of(name);
        if args.is_some() {
            return Err(unsupported(
                name_span,
                "table functions are not supported: write windows in GROUP BY, like GROUP BY tumble(ts, INTERVAL '10' SECOND), key",
            ));
        }
        if let (Some(alias), None) = (alias, &join) {
            return Err(unsupported(
                places.span_of(alias),
                "table aliases are for joins: name columns without a prefix",
            ));
        }
        let [part] = name.0.as_slice() else {
            return Err(Diagnostic::at(name_span, "a plain table or view name"));
        };
        let Some(ident) = part.as_ident() else {
            return Err(Diagnostic::at(name_span, "a plain table or view name"));
        };
        Ok(Self {
            places,
            select: select.as_ref().clone(),
            from: Spanned::new(name_span, ident.value.clone()),
            join,
        })
    }

    /// The transforms, named after `base` (the last one is `base`), over
    /// `over`.
    pub fn transforms(
        &self,
        base: &str,
        over: &Over,
        right: Option<&Over>,
    ) -> Result<Translated, Diagnostic> {
        let mut steps: Steps = Vec::new();
        if let (Some(join), Some(right)) = (&self.join, right) {
            let (query, joined) = join.translate(self, over, right, &mut steps)?;
            return query.finish(base, &joined, steps);
        }
        self.finish(base, over, steps)
    }

    /// The steps after a join (or all of them), chained from `over`.
    pub(super) fn finish(
        &self,
        base: &str,
        over: &Over,
        mut steps: Steps,
    ) -> Result<Translated, Diagnostic> {
        let select = &self.select;
        if let Some(condition) = &select.selection {
            let span = self.places.span_of(condition);
            if let Some(aggregate) = first_aggregate(condition) {
                return Err(Diagnostic::at(span, format!("`{aggregate}`: an aggregate belongs in the SELECT list or HAVING, not WHERE")));
            }
            let mut filter = transform("filter", span.clone());
            filter.predicate = Some(Spanned::new(span.clone(), condition.to_string()));
            steps.push(("where", Spanned::new(span, filter)));
        }
        let group = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs,
            _ => {
                return Err(unsupported(
                    self.places.span_of(&self.select),
                    "GROUP BY takes a window and key columns",
                ))
            }
        };
        let aggregates = self.select.having.is_some()
            || self.select.projection.iter().any(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    first_aggregate(e).is_some()
                }
                _ => false,
            });
        let mut times = over.times.clone();
        let changelog_key;
        let changelog = if group.is_empty() && !aggregates {
            let before = steps.len();
            times = self.projection(&mut steps, &times, over.changelog)?;
            // The columns that identify a changelog's rows, where they pass.
            changelog_key = match (&over.changelog_key, steps.len() > before) {
                (Some(key), false) => Some(key.clone()),
                (Some(key), true) => self.carried_names(key),
                (None, _) => None,
            };
            // A changelog stays one while its op column passes on.
            // Whatever it keeps, its rows still come from a changelog.
            over.changelog
        } else {
            if !aggregates {
                return Err(Diagnostic::at(
                    self.places.span_of(&self.select),
                    "a GROUP BY needs at least one aggregate in the SELECT list, like count(*) AS n",
                ));
            }
            let (changelog, grouped_times, key) = self.grouped(group, over, &mut steps)?;
            times = grouped_times;
            changelog_key = key;
            changelog
        };
        let count = steps.len();
        let mut from = over.stream.clone();
        let mut transforms = Vec::new();
        for (i, (step, mut spec)) in steps.into_iter().enumerate() {
            let name = if i + 1 == count {
                base.to_string()
            } else {
                format!("{base}_{step}")
            };
            let span = spec.span();
            let t = spec.get_mut();
            t.name = Spanned::new(span.clone(), name.clone());
            t.from = Some(Spanned::new(span, from));
            from = name;
            transforms.push(spec);
        }
        Ok(Translated {
            transforms,
            stream: from,
            changelog,
            times,
            changelog_key: changelog_key.filter(|_| changelog),
        })
    }

    /// The names the select list gives `columns` (each passed on as a
    /// plain column), if it passes them all.
    fn carried_names(&self, columns: &[String]) -> Option<Vec<String>> {
        columns
            .iter()
            .map(|column| {
                self.select.projection.iter().find_map(|item| match item {
                    SelectItem::UnnamedExpr(Expr::Identifier(i)) if i.value == *column => {
                        Some(column.clone())
                    }
                    SelectItem::ExprWithAlias {
                        expr: Expr::Identifier(i),
                        alias,
                    } if i.value == *column => Some(alias.value.clone()),
                    _ => None,
                })
            })
            .collect()
    }

    /// A SELECT without GROUP BY: `*`, or a select of named columns.
    fn projection(
        &self,
        steps: &mut Steps,
        times: &Option<Times>,
        changelog: bool,
    ) -> Result<Option<Times>, Diagnostic> {
        let items = &self.select.projection;
        if let [SelectItem::Wildcard(options)] = items.as_slice() {
            let plain = options.opt_exclude.is_none()
                && options.opt_except.is_none()
                && options.opt_replace.is_none()
                && options.opt_rename.is_none()
                && options.opt_ilike.is_none();
            if plain {
                return Ok(times.clone());
            }
        }
        let span = self.places.span_of(&self.select);
        let mut columns = Expressions::new();
        let mut carried = Times::new();
        for item in items {
            let (name, expr) = self.named(item)?;
            carried.extend(
                times
                    .as_ref()
                    .and_then(|t| carries(expr, name.get_ref(), t)),
            );
            insert_column(
                &mut columns,
                name,
                Spanned::new(self.places.span_of(expr), expr.to_string()),
            )?;
        }
        // A changelog's rows keep saying what they change.
        if changelog {
            for column in ["op", "revision"] {
                if !columns.contains_key(column) {
                    columns.insert(
                        column.to_string(),
                        Spanned::new(span.clone(), column.to_string()),
                    );
                }
            }
        }
        let mut t = transform("select", span.clone());
        t.columns = Some(Spanned::new(span.clone(), columns));
        steps.push(("select", Spanned::new(span, t)));
        Ok(times.as_ref().map(|_| carried))
    }

    /// An item's output name and expression; expressions need `AS name`.
    fn named(&self, item: &'a SelectItem) -> Result<(Spanned<String>, &'a Expr), Diagnostic> {
        match item {
            SelectItem::UnnamedExpr(expr @ Expr::Identifier(ident)) => Ok((Spanned::new(self.places.ident(ident), ident.value.clone()), expr)),
            SelectItem::UnnamedExpr(expr) => Err(Diagnostic::at(self.places.span_of(expr), format!("name the column: `{expr} AS a_name`"))),
            SelectItem::ExprWithAlias { expr, alias } => Ok((Spanned::new(self.places.ident(alias), alias.value.clone()), expr)),
            other => Err(Diagnostic::at(
                self.places.span_of(other),
                "`*` stands alone (SELECT * FROM ...); with other columns or GROUP BY, name every column",
            )),
        }
    }

    /// `GROUP BY window, keys`: the window, then HAVING, then the select
    /// list's expressions.
    fn grouped(
        &self,
        group: &[Expr],
        over: &Over,
        steps: &mut Steps,
    ) -> Result<Grouped, Diagnostic> {
        let span = self.places.span_of(&self.select);
        let mut window: Option<Spanned<WindowSpec>> = None;
        let mut keys: Vec<String> = Vec::new();
        for expr in group {
            let at = self.places.span_of(expr);
            match expr {
                Expr::Identifier(ident) => keys.push(ident.value.clone()),
                Expr::Function(f) if window_kind(f).is_some() => {
                    if window.is_some() {
                        return Err(Diagnostic::at(at, "one window per GROUP BY"));
                    }
                    window = Some(Spanned::new(at, self.window(f, over)?));
                }
                _ => return Err(Diagnostic::at(at, "GROUP BY takes key columns and one window: tumble(ts, size), hop(ts, slide, size) or session(ts, gap)")),
            }
        }
        // GROUP BY a time column of a windowed view (its window_end, say):
        // the rows of each of its windows share one time, and are
        // aggregated when the watermark passes it, by a window of one
        // millisecond (a window over windows, as Nexmark q5 takes).
        let cascade = window.is_none()
            && keys.iter().any(|k| {
                over.times
                    .iter()
                    .flatten()
                    .any(|(column, offset)| column == k && *offset == 1)
            });
        if cascade {
            let name = |n: &str| Spanned::new(span.clone(), n.to_string());
            window = Some(Spanned::new(
                span.clone(),
                WindowSpec {
                    kind: name("tumbling"),
                    size: Some(Spanned::new(
                        span.clone(),
                        toml::Value::String("1ms".to_string()),
                    )),
                    slide: None,
                    gap: None,
                },
            ));
        }
        // Without a window: a running aggregate, whose rows are a changelog.
        let running = window.is_none();
        // Over a changelog, only a running aggregate whose input's rows are
        // identified: it takes a row's earlier values back out.
        let retract_by = match (over.changelog, running, &over.changelog_key) {
            (false, _, _) => None,
            (true, true, Some(key)) => Some(key.clone()),
            (true, _, _) => {
                return Err(unsupported(
                    self.from.span(),
                    &format!(
                        "`{}` is a changelog (its rows update earlier ones): aggregating it \
                         would count every update again; aggregate the stream it is made from, \
                         or keep the columns that identify its rows (its GROUP BY keys) and \
                         GROUP BY without a window",
                        self.from.get_ref()
                    ),
                ))
            }
        };
        let changelog = running || over.lateness.is_some();
        let mut passing: HashSet<String> = keys.iter().cloned().collect();
        if !running && !cascade {
            passing.extend(["window_start".to_string(), "window_end".to_string()]);
        }
        if changelog {
            passing.extend(["op".to_string(), "revision".to_string()]);
        }
        let mut aggregates = Aggregates::default();
        let mut outputs: Vec<(Spanned<String>, Spanned<String>)> = Vec::new();
        for item in &self.select.projection {
            let (name, expr) = self.named(item)?;
            if is_hidden(name.get_ref()) {
                return Err(Diagnostic::at(
                    name.span(),
                    "names like `_agg0` are the translator's own (hidden aggregates): choose another",
                ));
            }
            let expr_span = self.places.span_of(expr);
            let text = match expr {
                Expr::Function(f) if is_aggregate(f) => aggregates.named(name.get_ref(), expr),
                _ => aggregates.rewrite(expr, &passing).map_err(|NotGrouped(bad)| {
                    Diagnostic::at(expr_span.clone(), format!("`{bad}` is neither a GROUP BY key nor inside an aggregate; add it to GROUP BY or aggregate it"))
                })?,
            };
            outputs.push((name, Spanned::new(expr_span, text)));
        }
        let having = match &self.select.having {
            Some(h) => {
                let at = self.places.span_of(h);
                let text = aggregates.rewrite(h, &passing).map_err(|NotGrouped(bad)| {
                    Diagnostic::at(
                        at.clone(),
                        format!(
                            "`{bad}` in HAVING is neither a GROUP BY key nor inside an aggregate"
                        ),
                    )
                })?;
                Some(Spanned::new(at, text))
            }
            None => None,
        };
        let mut natural: Vec<String> = keys.clone();
        if !running {
            natural.extend(["window_start".to_string(), "window_end".to_string()]);
        }
        natural.extend(aggregates.list.iter().map(|(n, _)| n.clone()));
        let same = outputs.iter().map(|(n, _)| n.get_ref()).eq(natural.iter())
            && outputs.iter().all(|(n, e)| n.get_ref() == e.get_ref());

        let natural_keys = keys.clone();
        let mut w = transform(if running { "aggregate" } else { "window" }, span.clone());
        w.key = Some(Spanned::new(span.clone(), KeySpec::Many(keys)));
        w.window = window;
        let mut list = Expressions::new();
        for (name, text) in &aggregates.list {
            list.insert(name.clone(), Spanned::new(span.clone(), text.clone()));
        }
        w.aggregates = Some(Spanned::new(span.clone(), list));
        if !running {
            w.allowed_lateness = over.lateness.clone();
        }
        w.changelog_key = retract_by.map(|key| Spanned::new(span.clone(), KeySpec::Many(key)));
        steps.push((
            if running { "aggregate" } else { "window" },
            Spanned::new(span.clone(), w),
        ));
        match having {
            // Over a changelog, a row that fails HAVING deletes its key's
            // row (which an earlier row may have set) instead of vanishing.
            Some(having) if changelog => {
                let at = having.span();
                let mut columns = Expressions::new();
                let column = |name: &str| Spanned::new(at.clone(), name.to_string());
                let mut names: Vec<String> = natural_keys.clone();
                if !running {
                    names.extend(["window_start".to_string(), "window_end".to_string()]);
                }
                for name in names {
                    columns.insert(name.clone(), column(&name));
                }
                columns.insert(
                    "op".to_string(),
                    Spanned::new(
                        at.clone(),
                        format!("CASE WHEN {} THEN op ELSE 'delete' END", having.get_ref()),
                    ),
                );
                columns.insert("revision".to_string(), column("revision"));
                for (name, _) in &aggregates.list {
                    columns.insert(name.clone(), column(name));
                }
                let mut t = transform("select", at.clone());
                t.columns = Some(Spanned::new(at.clone(), columns));
                steps.push(("having", Spanned::new(at, t)));
            }
            Some(having) => {
                let mut filter = transform("filter", having.span());
                filter.predicate = Some(having.clone());
                steps.push(("having", Spanned::new(having.span(), filter)));
            }
            None => {}
        }
        // A window's rows are timed at its last millisecond: its end is
        // the time plus one. A running aggregate's are not (no column).
        // Over windows, the time columns of the windows grouped by keep
        // their offsets.
        let timed = |text: &str| -> Option<i64> {
            if running {
                None
            } else if cascade {
                over.times
                    .iter()
                    .flatten()
                    .find(|(column, _)| column == text)
                    .map(|(_, offset)| *offset)
            } else {
                (text == "window_end").then_some(1)
            }
        };
        let times: Times = if same {
            natural
                .iter()
                .filter_map(|n| timed(n).map(|o| (n.clone(), o)))
                .collect()
        } else {
            outputs
                .iter()
                .filter_map(|(name, text)| {
                    timed(text.get_ref()).map(|o| (name.get_ref().clone(), o))
                })
                .collect()
        };
        let output_names: Vec<(String, String)> = outputs
            .iter()
            .map(|(n, t)| (n.get_ref().clone(), t.get_ref().clone()))
            .collect();
        if !same {
            let mut columns = Expressions::new();
            for (name, text) in outputs {
                insert_column(&mut columns, name, text)?;
            }
            if changelog {
                for column in ["op", "revision"] {
                    if !columns.contains_key(column) {
                        columns.insert(
                            column.to_string(),
                            Spanned::new(span.clone(), column.to_string()),
                        );
                    }
                }
            }
            let mut t = transform("select", span.clone());
            t.columns = Some(Spanned::new(span.clone(), columns));
            steps.push(("select", Spanned::new(span, t)));
        }
        // A window's times are known; over windows of unknown times, only
        // its own window_end.
        let times = if cascade && over.times.is_none() {
            None
        } else {
            Some(times)
        };
        // The output's columns that identify its rows: the keys (and a
        // window's bounds), under the names the select list gives them.
        let mut identity = natural_keys.clone();
        if !running && !cascade {
            identity.extend(["window_start".to_string(), "window_end".to_string()]);
        }
        let key = if same {
            Some(identity)
        } else {
            identity
                .iter()
                .map(|k| {
                    output_names
                        .iter()
                        .find(|(_, text)| text == k || text.trim_matches('"') == k)
                        .map(|(name, _)| name.clone())
                })
                .collect()
        };
        Ok((changelog, times, key))
    }
}
/// What a grouped query makes: whether its rows are a changelog, its time
/// columns, and (a changelog's) the columns that identify its rows.
type Grouped = (bool, Option<Times>, Option<Vec<String>>);

/// The steps of a query: each a name suffix and its transform.
pub(super) type Steps = Vec<(&'static str, Spanned<TransformSpec>)>;

/// The time columns a select item `name = expr` carries from `times`.
fn carries(expr: &Expr, name: &str, times: &Times) -> Option<(String, i64)> {
    let Expr::Identifier(ident) = expr else {
        return None;
    };
    times
        .iter()
        .find(|(column, _)| *column == ident.value)
        .map(|(_, offset)| (name.to_string(), *offset))
}

/// A transform of `kind` with nothing else set.
pub(super) fn transform(kind: &str, span: Span) -> TransformSpec {
    TransformSpec {
        name: Spanned::new(span.clone(), String::new()),
        kind: Spanned::new(span, kind.to_string()),
        from: None,
        predicate: None,
        columns: None,
        key: None,
        window: None,
        aggregates: None,
        allowed_lateness: None,
        when: None,
        emit: None,
        query: None,
        right: None,
        on: None,
        between: None,
        table: None,
        changelog_key: None,
    }
}

fn insert_column(
    columns: &mut Expressions,
    name: Spanned<String>,
    expr: Spanned<String>,
) -> Result<(), Diagnostic> {
    if columns.contains_key(name.get_ref()) {
        return Err(Diagnostic::at(
            name.span(),
            format!("`{}` is named twice; rename one", name.get_ref()),
        ));
    }
    columns.insert(name.into_inner(), expr);
    Ok(())
}
