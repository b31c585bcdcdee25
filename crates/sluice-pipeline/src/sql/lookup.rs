//! A JOIN of a file table other than the source: a lookup join, the table
//! read whole at start; the equalities of ON are its keys, the rest a
//! filter after it.

use super::join::{flatten, JoinClause, Side};
use super::query::{transform, Over, Query, Steps, Translated};
use crate::config::diag::Diagnostic;
use crate::config::{Expressions, LookupTableSpec};
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr};
use toml::Spanned;

impl JoinClause {
    /// A lookup join of the stream `left` against `table`, read whole at
    /// start: the equalities of ON are its keys, the rest a filter after
    /// it. Each row keeps its time.
    pub fn lookup(
        &self,
        query: &Query<'_>,
        base: &str,
        left: &Over,
        table: Spanned<LookupTableSpec>,
    ) -> Result<Translated, Diagnostic> {
        let places = query.places;
        if left.changelog {
            return Err(Diagnostic::at(
                query.from.span(),
                format!(
                    "`{}` is a changelog: looking it up is not supported; look up the stream it is made from",
                    query.from.get_ref()
                ),
            ));
        }
        let table_name = self.right.get_ref().clone();
        let streams = [left.stream.as_str(), table_name.as_str()];
        let mut conjuncts = Vec::new();
        flatten(&self.on, &mut conjuncts);
        let mut keys = Expressions::new();
        let mut rest = Vec::new();
        for c in conjuncts {
            let pair = match c {
                Expr::BinaryOp {
                    left: a,
                    op: BinaryOperator::Eq,
                    right: b,
                } => match (self.column(a), self.column(b)) {
                    (Some((Side::Left, l)), Some((Side::Right, r))) => Some((l, r, b)),
                    (Some((Side::Right, r)), Some((Side::Left, l))) => Some((l, r, a)),
                    _ => None,
                },
                _ => None,
            };
            match pair {
                Some((l, r, at)) if !keys.contains_key(&l) => {
                    keys.insert(l, Spanned::new(places.span_of(at.as_ref()), r));
                }
                _ => rest.push(c.clone()),
            }
        }
        if keys.is_empty() {
            return Err(Diagnostic::at(
                places.span_of(&self.on),
                format!(
                    "a lookup join needs an equality of a column of each side in ON, like {}.product = {}.id",
                    self.left_alias, self.right_alias
                ),
            ));
        }
        let mut steps = Steps::new();
        let mut lookup = transform("lookup", self.span.clone());
        lookup.on = Some(Spanned::new(places.span_of(&self.on), keys));
        lookup.table = Some(table);
        steps.push(("lookup", Spanned::new(self.span.clone(), lookup)));
        self.filter_rest(places, &rest, streams, &mut steps)?;
        let mut select = query.select.clone();
        self.rename(places, &mut select, streams)?;
        let joined = Over {
            stream: left.stream.clone(),
            event_time: None,
            lateness: left.lateness.clone(),
            changelog: false,
            times: left.times.as_ref().map(|times| {
                times
                    .iter()
                    .map(|(c, o)| (format!("{}.{c}", streams[0]), *o))
                    .collect()
            }),
            ttl: None,
            changelog_key: None,
        };
        let query = Query {
            places,
            select,
            from: query.from.clone(),
            join: None,
        };
        query.finish(base, &joined, steps)
    }
}
