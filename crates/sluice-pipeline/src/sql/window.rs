//! The window of a `GROUP BY`: `tumble(ts, size)`, `hop(ts, slide, size)`
//! or `session(ts, gap)`, on a column that holds each row's event time.

use super::query::{Over, Query};
use super::text::{interval_text, literal};
use crate::config::diag::Diagnostic;
use crate::config::WindowSpec;
use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
};
use toml::Spanned;

impl Query<'_> {
    /// `tumble(ts, size)`, `hop(ts, slide, size)`, `session(ts, gap)`.
    pub(super) fn window(&self, f: &ast::Function, over: &Over) -> Result<WindowSpec, Diagnostic> {
        let at = self.places.span_of(f);
        let kind = window_kind(f).unwrap_or_default();
        let FunctionArguments::List(list) = &f.args else {
            return Err(Diagnostic::at(
                at,
                format!("{kind}(ts, ...) takes the event-time column and durations"),
            ));
        };
        let args: Vec<&Expr> = list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                _ => Err(Diagnostic::at(
                    at.clone(),
                    format!("{kind}(..) takes plain arguments"),
                )),
            })
            .collect::<Result<_, _>>()?;
        let wanted = if kind == "hop" { 3 } else { 2 };
        let usage = match kind {
            "tumble" => "tumble(ts, INTERVAL '10' SECOND)",
            "hop" => "hop(ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND) (slide, then size)",
            _ => "session(ts, INTERVAL '30' SECOND) (the gap)",
        };
        if args.len() != wanted {
            return Err(Diagnostic::at(at, format!("write it as {usage}")));
        }
        let Expr::Identifier(time) = args[0] else {
            return Err(Diagnostic::at(
                self.places.span_of(args[0]),
                format!("the first argument names the event-time column: {usage}"),
            ));
        };
        match (&over.times, &over.event_time) {
            (Some(times), _) if !times.iter().any(|(c, o)| *c == time.value && *o == 0) => {
                let holding: Vec<String> = times
                    .iter()
                    .filter(|(_, o)| *o == 0)
                    .map(|(c, _)| format!("`{c}`"))
                    .collect();
                let message = if holding.is_empty() {
                    "a window runs on each row's event time, and no column of this stream holds it (a join's pair is timed by the later of its rows, a window's rows by their window's last millisecond): select the time into the view, like l.ts when the right row is never earlier, or window the stream it is made from".to_string()
                } else {
                    format!(
                        "a window runs on each row's event time, which {} holds here; name it",
                        holding.join(", ")
                    )
                };
                return Err(Diagnostic::at(self.places.ident(time), message));
            }
            (None, Some(event_time)) if &time.value != event_time => {
                return Err(Diagnostic::at(
                    self.places.ident(time),
                    format!("windows are on the source's event time, `{event_time}`; name it here (set another with the source table's event_time)"),
                ));
            }
            _ => {}
        }
        let duration = |e: &Expr| -> Result<Spanned<String>, Diagnostic> {
            let span = self.places.span_of(e);
            let text = match e {
                Expr::Interval(_) => interval_text(&e.to_string()),
                _ => match literal(e) {
                    Some(toml::Value::String(s)) => Some(s),
                    _ => None,
                },
            };
            text.map(|t| Spanned::new(span.clone(), t)).ok_or_else(|| {
                Diagnostic::at(
                    span,
                    format!("a duration: INTERVAL '10' SECOND, or '10s'; {usage}"),
                )
            })
        };
        let size =
            |d: Spanned<String>| Some(Spanned::new(d.span(), toml::Value::String(d.into_inner())));
        let name = |n: &str| Spanned::new(at.clone(), n.to_string());
        Ok(match kind {
            "tumble" => WindowSpec {
                kind: name("tumbling"),
                size: size(duration(args[1])?),
                slide: None,
                gap: None,
            },
            "hop" => WindowSpec {
                kind: name("sliding"),
                slide: Some(duration(args[1])?),
                size: size(duration(args[2])?),
                gap: None,
            },
            _ => WindowSpec {
                kind: name("session"),
                gap: Some(duration(args[1])?),
                size: None,
                slide: None,
            },
        })
    }
}

/// `tumble`, `hop` or `session`, if `f` is a window.
pub(super) fn window_kind(f: &ast::Function) -> Option<&'static str> {
    let name = f.name.to_string().to_lowercase();
    ["tumble", "hop", "session"]
        .into_iter()
        .find(|k| *k == name)
}
