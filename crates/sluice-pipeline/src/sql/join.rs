//! `FROM a JOIN b ON ...` as a `join` transform: the equalities of a
//! column of each side are its keys; comparisons of the two sides' event
//! times (with intervals) bound the time between a pair's rows; whatever
//! else `ON` says is a filter after the join. Columns after the join are
//! named `stream.column`, and the query's `alias.column` are rewritten to
//! them.

use super::query::{transform, Over, Query, Steps, Times};
use super::text::{interval_text, Places};
use crate::config::diag::{Diagnostic, Span};
use crate::config::Expressions;
use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, Expr, Ident, JoinConstraint, JoinOperator, SelectItem, TableFactor,
};
use std::ops::ControlFlow;
use toml::Spanned;

/// A query's `JOIN`: the table or view joined, the aliases of both sides
/// and the condition.
pub(super) struct JoinClause {
    /// The right table or view.
    pub right: Spanned<String>,
    pub(super) left_alias: String,
    pub(super) right_alias: String,
    pub(super) on: Expr,
    pub(super) span: Span,
}

/// A table in FROM or JOIN: its name and what the query calls it.
fn table(places: &Places, factor: &TableFactor) -> Result<(Spanned<String>, String), Diagnostic> {
    let at = places.span_of(factor);
    let TableFactor::Table {
        name, alias, args, ..
    } = factor
    else {
        return Err(Diagnostic::at(
            at,
            "a join takes table or view names (name a subquery with CREATE VIEW)",
        ));
    };
    if args.is_some() {
        return Err(Diagnostic::at(at, "table functions are not supported"));
    }
    let [part] = name.0.as_slice() else {
        return Err(Diagnostic::at(at, "a plain table or view name"));
    };
    let Some(ident) = part.as_ident() else {
        return Err(Diagnostic::at(at, "a plain table or view name"));
    };
    if let Some(alias) = alias.as_ref().filter(|a| !a.columns.is_empty()) {
        return Err(Diagnostic::at(
            places.ident(&alias.name),
            "column lists of aliases are not supported",
        ));
    }
    let called = alias
        .as_ref()
        .map_or_else(|| ident.value.clone(), |a| a.name.value.clone());
    Ok((
        Spanned::new(places.span_of(name), ident.value.clone()),
        called,
    ))
}

/// A side of a join: left or right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Left,
    Right,
}

/// The range of the right row's time minus the left row's, as `ON` says.
#[derive(Default)]
struct Bounds {
    lower: Option<i64>,
    upper: Option<i64>,
}

impl Bounds {
    fn at_least(&mut self, v: i64) {
        self.lower = Some(self.lower.map_or(v, |l| l.max(v)));
    }
    fn at_most(&mut self, v: i64) {
        self.upper = Some(self.upper.map_or(v, |u| u.min(v)));
    }
}

impl JoinClause {
    /// Reads `FROM left JOIN right ON condition`.
    pub fn new(places: &Places, join: &ast::Join, left: &TableFactor) -> Result<Self, Diagnostic> {
        let span = places.span_of(join);
        let constraint = match &join.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => c,
            _ => {
                return Err(Diagnostic::at(
                    span,
                    "only inner joins are supported ([INNER] JOIN ... ON ...): an outer join \
                     would have to wait out the time range of every row to emit its unmatched \
                     rows (docs/sql.md)",
                ))
            }
        };
        let JoinConstraint::On(on) = constraint else {
            return Err(Diagnostic::at(
                span,
                "a join needs ON, with an equality of a column of each side: ON a.seller = p.id",
            ));
        };
        let (_, left_alias) = table(places, left)?;
        let (right, right_alias) = table(places, &join.relation)?;
        if left_alias == right_alias {
            return Err(Diagnostic::at(
                places.span_of(&join.relation),
                format!("both sides are called `{left_alias}`: give one an alias"),
            ));
        }
        Ok(Self {
            right,
            left_alias,
            right_alias,
            on: on.clone(),
            span,
        })
    }

    fn side(&self, qualifier: &str) -> Option<Side> {
        if qualifier == self.left_alias {
            Some(Side::Left)
        } else if qualifier == self.right_alias {
            Some(Side::Right)
        } else {
            None
        }
    }

    /// The join step and the filter of the rest of `ON`, then the query
    /// with its columns renamed to the join's output, and what it reads.
    pub fn translate<'a>(
        &self,
        query: &Query<'a>,
        left: &Over,
        right: &Over,
        steps: &mut Steps,
    ) -> Result<(Query<'a>, Over), Diagnostic> {
        let places = query.places;
        for (over, name) in [(left, &query.from), (right, &self.right)] {
            if over.changelog {
                return Err(Diagnostic::at(
                    name.span(),
                    format!(
                        "`{}` is a changelog (its rows update earlier ones): joining it is not \
                         supported; join the streams it is made from",
                        name.get_ref()
                    ),
                ));
            }
        }
        if left.stream == right.stream {
            return Err(Diagnostic::at(
                self.right.span(),
                format!(
                    "`{}` and `{}` are the same stream: a self-join is not supported; make a \
                     view of each side (a filter or select) and join the two",
                    query.from.get_ref(),
                    self.right.get_ref()
                ),
            ));
        }
        let streams = [left.stream.as_str(), right.stream.as_str()];
        let mut conjuncts = Vec::new();
        flatten(&self.on, &mut conjuncts);
        let mut keys = Expressions::new();
        let mut bounds = Bounds::default();
        let mut rest: Vec<Expr> = Vec::new();
        for c in conjuncts {
            if let Some((l, r, right_column)) = self.key(c, left, right) {
                let at = places.span_of(right_column);
                if keys.contains_key(&l) {
                    rest.push(c.clone());
                } else {
                    keys.insert(l, Spanned::new(at, r));
                }
                continue;
            }
            let halves = match c {
                Expr::Between {
                    expr,
                    negated: false,
                    low,
                    high,
                } => vec![
                    compare(expr, BinaryOperator::GtEq, low),
                    compare(expr, BinaryOperator::LtEq, high),
                ],
                _ => vec![c.clone()],
            };
            for half in halves {
                if !self.bound(&half, left, right, &mut bounds) {
                    rest.push(half);
                }
            }
        }
        if keys.is_empty() {
            return Err(Diagnostic::at(
                places.span_of(&self.on),
                format!(
                    "a join needs an equality of a column of each side in ON (besides their event times), like {}.id = {}.id",
                    self.left_alias, self.right_alias
                ),
            ));
        }
        let ttl = left.ttl.or(right.ttl);
        let (lower, upper) = match (bounds.lower, bounds.upper) {
            (Some(l), Some(u)) => (l, u),
            // The time to live stands in for a missing bound, on the
            // side of the one given.
            (Some(l), None) if ttl.is_some() => (l, l.max(0).saturating_add(ttl.unwrap_or(0))),
            (None, Some(u)) if ttl.is_some() => (u.min(0).saturating_sub(ttl.unwrap_or(0)), u),
            (None, None) if ttl.is_some() => {
                let ttl = ttl.unwrap_or_default();
                (ttl.saturating_neg(), ttl)
            }
            _ => {
                return Err(Diagnostic::at(
                    places.span_of(&self.on),
                    format!(
                        "this join would keep every row forever: bound the time between its \
                         sides in ON, like {l}.ts BETWEEN {r}.ts - INTERVAL '1' MINUTE AND \
                         {r}.ts + INTERVAL '1' MINUTE (event-time columns, or window_end of \
                         windowed views), or give rows a time to live with SET state.ttl = '1h' \
                         before the query",
                        l = self.left_alias,
                        r = self.right_alias
                    ),
                ))
            }
        };
        if lower > upper {
            return Err(Diagnostic::at(
                places.span_of(&self.on),
                format!("the time conditions of ON never hold (the right row's time minus the left's would be at least {lower} ms and at most {upper} ms)"),
            ));
        }
        let mut join = transform("join", self.span.clone());
        join.right = Some(Spanned::new(self.right.span(), right.stream.clone()));
        join.on = Some(Spanned::new(places.span_of(&self.on), keys));
        let between = |ms: i64| Spanned::new(self.span.clone(), format!("{ms}ms"));
        join.between = Some(Spanned::new(
            self.span.clone(),
            vec![between(lower), between(upper)],
        ));
        steps.push(("join", Spanned::new(self.span.clone(), join)));
        self.filter_rest(places, &rest, streams, steps)?;
        let mut select = query.select.clone();
        self.rename(places, &mut select, streams)?;
        // A pair's time is the later of its rows'. A side's time columns
        // hold it when that side's row is never the earlier one.
        let mut times = Some(Times::new());
        let prefixed = |over: &Over, stream: &str| -> Option<Times> {
            over.times.as_ref().map(|times| {
                times
                    .iter()
                    .map(|(c, o)| (format!("{stream}.{c}"), *o))
                    .collect()
            })
        };
        for (holds, over, stream) in [
            (upper <= 0, left, streams[0]),
            (lower >= 0, right, streams[1]),
        ] {
            if holds {
                times = times.zip(prefixed(over, stream)).map(|(mut a, b)| {
                    a.extend(b);
                    a
                });
            }
        }
        let joined = Over {
            stream: left.stream.clone(),
            event_time: None,
            lateness: left.lateness.clone(),
            changelog: false,
            times,
            ttl: None,
            changelog_key: None,
        };
        let query = Query {
            places,
            select,
            from: query.from.clone(),
            join: None,
        };
        Ok((query, joined))
    }

    /// What is left of ON, as a filter after the join.
    pub(super) fn filter_rest(
        &self,
        places: &Places,
        rest: &[Expr],
        streams: [&str; 2],
        steps: &mut Steps,
    ) -> Result<(), Diagnostic> {
        let Some(first) = rest.first() else {
            return Ok(());
        };
        let at = places.span_of(first);
        let mut condition = rest
            .iter()
            .cloned()
            .reduce(|a, b| compare(&a, BinaryOperator::And, &b))
            .unwrap_or_else(|| first.clone());
        self.qualify(places, &mut condition, streams)?;
        let mut filter = transform("filter", at.clone());
        filter.predicate = Some(Spanned::new(at.clone(), condition.to_string()));
        steps.push(("on", Spanned::new(at, filter)));
        Ok(())
    }

    /// `l.x = r.y` of columns that are not both event times: the key pair
    /// (left column, right column).
    fn key<'e>(
        &self,
        e: &'e Expr,
        left: &Over,
        right: &Over,
    ) -> Option<(String, String, &'e Expr)> {
        let Expr::BinaryOp {
            left: a,
            op: BinaryOperator::Eq,
            right: b,
        } = e
        else {
            return None;
        };
        let (sa, ca) = self.column(a)?;
        let (sb, cb) = self.column(b)?;
        let (l, r, right_column) = match (sa, sb) {
            (Side::Left, Side::Right) => (ca, cb, b.as_ref()),
            (Side::Right, Side::Left) => (cb, ca, a.as_ref()),
            _ => return None,
        };
        let timed = |over: &Over, c: &str| over.times.iter().flatten().any(|(t, _)| t == c);
        if timed(left, &l) && timed(right, &r) {
            return None;
        }
        Some((l, r, right_column))
    }

    /// `alias.column`: its side and column.
    pub(super) fn column(&self, e: &Expr) -> Option<(Side, String)> {
        match e {
            Expr::Nested(inner) => self.column(inner),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [q, c] => Some((self.side(&q.value)?, c.value.clone())),
                _ => None,
            },
            _ => None,
        }
    }

    /// A comparison of the two sides' event times: narrows `bounds`.
    fn bound(&self, e: &Expr, left: &Over, right: &Over, bounds: &mut Bounds) -> bool {
        let Expr::BinaryOp {
            left: a,
            op,
            right: b,
        } = e
        else {
            return false;
        };
        let (Some((sa, ka)), Some((sb, kb))) =
            (self.time(a, left, right), self.time(b, left, right))
        else {
            return false;
        };
        // a = side_a.t + ka and b = side_b.t + kb; d = right.t - left.t.
        // `a op b` with a on the left side reads l.t + ka op r.t + kb,
        // that is d (op reversed) ka - kb.
        let (c, op) = match (sa, sb) {
            (Side::Left, Side::Right) => (ka.saturating_sub(kb), reverse(op)),
            (Side::Right, Side::Left) => (kb.saturating_sub(ka), Some(op.clone())),
            _ => return false,
        };
        match op {
            Some(BinaryOperator::Eq) => {
                bounds.at_least(c);
                bounds.at_most(c);
            }
            Some(BinaryOperator::GtEq) => bounds.at_least(c),
            Some(BinaryOperator::Gt) => bounds.at_least(c.saturating_add(1)),
            Some(BinaryOperator::LtEq) => bounds.at_most(c),
            Some(BinaryOperator::Lt) => bounds.at_most(c.saturating_sub(1)),
            _ => return false,
        }
        true
    }

    /// `alias.time_column [+|- INTERVAL ...]`: its side and the offset
    /// from the row's event time, in ms.
    fn time(&self, e: &Expr, left: &Over, right: &Over) -> Option<(Side, i64)> {
        match e {
            Expr::Nested(inner) => self.time(inner, left, right),
            Expr::BinaryOp {
                left: a,
                op,
                right: b,
            } => {
                let sign = match op {
                    BinaryOperator::Plus => 1,
                    BinaryOperator::Minus => -1,
                    _ => return None,
                };
                let (side, k) = self.time(a, left, right)?;
                Some((side, k.saturating_add(interval_ms(b)?.saturating_mul(sign))))
            }
            _ => {
                let (side, column) = self.column(e)?;
                let over = if side == Side::Left { left } else { right };
                let (_, offset) = over.times.iter().flatten().find(|(c, _)| *c == column)?;
                Some((side, *offset))
            }
        }
    }

    /// Renames `alias.column` to the join's `stream.column` in `e`; a bare
    /// column is an error (which side it is on is not known here).
    fn qualify(&self, places: &Places, e: &mut Expr, streams: [&str; 2]) -> Result<(), Diagnostic> {
        let result = ast::visit_expressions_mut(e, |e| {
            match e {
                Expr::CompoundIdentifier(parts) => {
                    let [q, c] = parts.as_slice() else {
                        return ControlFlow::Break(Diagnostic::at(
                            places.span_of(&*e),
                            "name a column as alias.column",
                        ));
                    };
                    let Some(side) = self.side(&q.value) else {
                        return ControlFlow::Break(Diagnostic::at(
                            places.ident(q),
                            format!(
                                "no table `{}` in this join: its sides are `{}` and `{}`",
                                q.value, self.left_alias, self.right_alias
                            ),
                        ));
                    };
                    let stream = if side == Side::Left {
                        streams[0]
                    } else {
                        streams[1]
                    };
                    // Unquoted, a name is lower-cased, as DataFusion does.
                    let column = match c.quote_style {
                        Some(_) => c.value.clone(),
                        None => c.value.to_lowercase(),
                    };
                    let mut ident = Ident::with_quote('"', format!("{stream}.{column}"));
                    ident.span = c.span;
                    *e = Expr::Identifier(ident);
                }
                Expr::Identifier(ident) => {
                    return ControlFlow::Break(Diagnostic::at(
                        places.ident(ident),
                        format!(
                            "in a join, name `{0}` with its side: {1}.{0} or {2}.{0}",
                            ident.value, self.left_alias, self.right_alias
                        ),
                    ));
                }
                _ => {}
            }
            ControlFlow::Continue(())
        });
        match result {
            ControlFlow::Break(d) => Err(d),
            ControlFlow::Continue(()) => Ok(()),
        }
    }

    /// Renames the columns of the SELECT list, WHERE and GROUP BY; a
    /// select item `a.x` keeps the name `x`.
    pub(super) fn rename(
        &self,
        places: &Places,
        select: &mut ast::Select,
        streams: [&str; 2],
    ) -> Result<(), Diagnostic> {
        for item in &mut select.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    if let Expr::CompoundIdentifier(parts) = &*e {
                        if let Some(name) = parts.last().cloned() {
                            let mut expr = e.clone();
                            self.qualify(places, &mut expr, streams)?;
                            *item = SelectItem::ExprWithAlias { expr, alias: name };
                            continue;
                        }
                    }
                    self.qualify(places, e, streams)?;
                }
                SelectItem::ExprWithAlias { expr, .. } => self.qualify(places, expr, streams)?,
                _ => {}
            }
        }
        if let Some(e) = &mut select.selection {
            self.qualify(places, e, streams)?;
        }
        if let ast::GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
            for e in exprs {
                self.qualify(places, e, streams)?;
            }
        }
        if let Some(e) = &mut select.having {
            // Aggregate names of the select list stay as they are.
            let _ = ast::visit_expressions_mut(e, |e| {
                if let Expr::CompoundIdentifier(_) = e {
                    let mut one = e.clone();
                    if self.qualify(places, &mut one, streams).is_ok() {
                        *e = one;
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
        Ok(())
    }
}

/// The conjuncts of `e` (`a AND b AND c`).
pub(super) fn flatten<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            flatten(left, out);
            flatten(right, out);
        }
        Expr::Nested(inner) => match inner.as_ref() {
            Expr::BinaryOp {
                op: BinaryOperator::And,
                ..
            } => flatten(inner, out),
            _ => out.push(e),
        },
        _ => out.push(e),
    }
}

fn compare(a: &Expr, op: BinaryOperator, b: &Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(a.clone()),
        op,
        right: Box::new(b.clone()),
    }
}

/// `op` with its sides swapped (`a < b` is `b > a`).
fn reverse(op: &BinaryOperator) -> Option<BinaryOperator> {
    Some(match op {
        BinaryOperator::Eq => BinaryOperator::Eq,
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        _ => return None,
    })
}

/// `INTERVAL '10' SECOND` in ms.
fn interval_ms(e: &Expr) -> Option<i64> {
    let Expr::Interval(_) = e else {
        return None;
    };
    let text = interval_text(&e.to_string())?;
    let d = humantime::parse_duration(&text).ok()?;
    i64::try_from(d.as_millis()).ok()
}
