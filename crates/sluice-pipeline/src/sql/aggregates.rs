//! The aggregates of a grouped query: which calls are aggregates, and the
//! hidden columns (`_agg0`, ...) that hold those inside expressions.

use datafusion::sql::sqlparser::ast::{self, Expr, Ident};
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::OnceLock;

/// A name the translator gives a hidden aggregate: `_agg` and digits.
pub(super) fn is_hidden(name: &str) -> bool {
    name.strip_prefix("_agg")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A column used outside an aggregate that is not a key (its name).
pub(super) struct NotGrouped(pub(super) String);

/// The aggregates a window computes: named by the select list's alias, or
/// hidden (`_agg0`, ...) where they sit inside an expression.
#[derive(Default)]
pub(super) struct Aggregates {
    pub(super) list: Vec<(String, String)>,
}

impl Aggregates {
    /// An aggregate that is a whole select item, named `name`.
    pub(super) fn named(&mut self, name: &str, expr: &Expr) -> String {
        self.list.push((name.to_string(), expr.to_string()));
        name.to_string()
    }

    /// The name of the column that holds `call`, added if new.
    fn column(&mut self, call: String) -> String {
        if let Some((name, _)) = self.list.iter().find(|(_, c)| *c == call) {
            return name.clone();
        }
        let name = format!("_agg{}", self.list.len());
        self.list.push((name.clone(), call));
        name
    }

    /// `expr` over the window's output: each aggregate call replaced by
    /// its column. A column outside an aggregate that is not in `passing`
    /// is the error.
    pub(super) fn rewrite(
        &mut self,
        expr: &Expr,
        passing: &HashSet<String>,
    ) -> Result<String, NotGrouped> {
        let mut expr = expr.clone();
        // Children are visited before their parent: the aggregate calls
        // first, then, over what is left, the columns.
        let _ = ast::visit_expressions_mut(&mut expr, |e| {
            if let Expr::Function(f) = e {
                if is_aggregate(f) {
                    let column = self.column(f.to_string());
                    *e = Expr::Identifier(Ident::new(column));
                }
            }
            ControlFlow::<()>::Continue(())
        });
        let mut bad = None;
        let _ = ast::visit_expressions(&expr, |e| {
            let name = match e {
                Expr::Identifier(ident) => ident.value.clone(),
                Expr::CompoundIdentifier(parts) => parts
                    .iter()
                    .map(|p| p.value.clone())
                    .collect::<Vec<_>>()
                    .join("."),
                _ => return ControlFlow::Continue(()),
            };
            let known = passing.contains(&name) || self.list.iter().any(|(n, _)| *n == name);
            if known {
                ControlFlow::Continue(())
            } else {
                bad = Some(name);
                ControlFlow::Break(())
            }
        });
        match bad {
            Some(bad) => Err(NotGrouped(bad)),
            None => Ok(expr.to_string()),
        }
    }
}

/// The first aggregate call in `expr`, as written.
pub(super) fn first_aggregate(expr: &Expr) -> Option<String> {
    let mut found = None;
    let _ = ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e {
            if is_aggregate(f) {
                found = Some(f.to_string());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    found
}

/// Whether `f` calls an aggregate function (DataFusion's, and Sluice's own).
pub(super) fn is_aggregate(f: &ast::Function) -> bool {
    static NAMES: OnceLock<HashSet<String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let ctx = datafusion::prelude::SessionContext::new();
        for function in super::moments::functions() {
            ctx.register_udaf(function);
        }
        let state = ctx.state();
        let mut names = HashSet::new();
        for udaf in state.aggregate_functions().values() {
            names.insert(udaf.name().to_lowercase());
            names.extend(udaf.aliases().iter().map(|a| a.to_lowercase()));
        }
        names
    });
    names.contains(&f.name.to_string().to_lowercase())
}
