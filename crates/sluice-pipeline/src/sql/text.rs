//! The text of a SQL pipeline: places (line and column to byte offsets),
//! literals as setting values, intervals as durations, and the `WATERMARK
//! FOR` clauses the parser does not know.

use crate::config::diag::{Diagnostic, Span};
use datafusion::sql::sqlparser::ast::{self, Expr, Statement, Value};
use datafusion::sql::sqlparser::tokenizer::Location;
use toml::Spanned;

/// `WATERMARK FOR field AS field - lag`: the event-time field and the lag.
pub(super) type Watermark = (Spanned<String>, Spanned<String>);

/// A watermark clause and the offset it was at.
pub(super) struct Clause {
    at: usize,
    watermark: Watermark,
}

/// A literal as a setting's value.
pub(super) fn literal(expr: &Expr) -> Option<toml::Value> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                Some(toml::Value::String(s.clone()))
            }
            Value::Number(n, _) => n
                .parse::<i64>()
                .map(toml::Value::Integer)
                .ok()
                .or_else(|| n.parse::<f64>().ok().map(toml::Value::Float)),
            Value::Boolean(b) => Some(toml::Value::Boolean(*b)),
            _ => None,
        },
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            toml::Value::Integer(n) => Some(toml::Value::Integer(-n)),
            toml::Value::Float(n) => Some(toml::Value::Float(-n)),
            _ => None,
        },
        _ => None,
    }
}

/// Byte offsets of the SQL text's lines, to turn the parser's line and
/// column into places.
pub(super) struct Places {
    text: String,
    starts: Vec<usize>,
    /// Where the SQL text starts in the file (a query inside a TOML file).
    base: usize,
}

impl Places {
    pub(super) fn new(text: &str) -> Self {
        Self::within(text, 0)
    }

    /// Places of SQL text that starts at byte `base` of its file.
    pub(super) fn within(text: &str, base: usize) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            text: text.to_string(),
            starts,
            base,
        }
    }

    /// The byte offset of a 1-based line and column (in characters).
    fn offset(&self, at: Location) -> Option<usize> {
        let line = usize::try_from(at.line).ok()?.checked_sub(1)?;
        let start = *self.starts.get(line)?;
        let column = usize::try_from(at.column).ok()?.checked_sub(1)?;
        let rest = &self.text[start..];
        Some(
            self.base
                + start
                + rest
                    .char_indices()
                    .nth(column)
                    .map_or(rest.len(), |(i, _)| i),
        )
    }

    /// Where `node` is in the text (the start of the text when unknown).
    pub(super) fn span_of(&self, node: &impl ast::Spanned) -> Span {
        self.place(node.span())
    }

    /// Where a name is in the text.
    pub(super) fn ident(&self, ident: &ast::Ident) -> Span {
        self.place(ident.span)
    }

    fn place(&self, span: datafusion::sql::sqlparser::tokenizer::Span) -> Span {
        match (self.offset(span.start), self.offset(span.end)) {
            (Some(start), Some(end)) if end >= start => start..end,
            (Some(start), _) => start..start,
            _ => self.base..self.base,
        }
    }

    /// The parser's error, at the line and column it names.
    pub(super) fn parser_error(&self, message: &str) -> Diagnostic {
        let message = message.trim_start_matches("sql parser error: ");
        let (what, place) = match message.rsplit_once(" at Line: ") {
            Some((what, place)) => (what, Some(place)),
            None => (message, None),
        };
        let span = place.and_then(|p| {
            let (line, column) = p.split_once(", Column: ")?;
            let column: String = column.chars().take_while(char::is_ascii_digit).collect();
            let at = Location {
                line: line.trim().parse().ok()?,
                column: column.parse().ok()?,
            };
            self.offset(at).map(|o| o..o)
        });
        let span = span.unwrap_or(self.base..self.base);
        let hint = if self.base == 0 {
            "; a SQL pipeline is CREATE TABLE, CREATE VIEW, INSERT INTO ... SELECT and SET \
             statements, each ending with `;`"
        } else {
            ""
        };
        Diagnostic::at(span, format!("{what}{hint}"))
    }
}

/// `WATERMARK FOR field AS field - INTERVAL '2' SECOND` inside a `CREATE
/// TABLE`'s column list (the parser does not know it): each clause is
/// blanked out of the text (spaces, so places stay), and returned with the
/// offset it was at.
pub(super) fn watermark_clauses(text: &str) -> Result<(String, Vec<Clause>), Diagnostic> {
    let upper = text.to_ascii_uppercase();
    let mut out = text.to_string();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = upper[from..].find("WATERMARK FOR ").map(|i| from + i) {
        // The clause runs to the `)` or `,` that closes it, outside quotes
        // and parentheses.
        let mut depth = 0i32;
        let mut quoted = false;
        let mut end = text.len();
        for (i, c) in text[at..].char_indices() {
            match c {
                '\'' => quoted = !quoted,
                '(' if !quoted => depth += 1,
                ')' if !quoted && depth == 0 => {
                    end = at + i;
                    break;
                }
                ')' if !quoted => depth -= 1,
                ',' if !quoted && depth == 0 => {
                    end = at + i;
                    break;
                }
                _ => {}
            }
        }
        let clause = &text[at..end];
        let wrong = || {
            Diagnostic::at(
                at..end,
                "write the watermark as WATERMARK FOR ts AS ts - INTERVAL '2' SECOND",
            )
        };
        let rest = clause["WATERMARK FOR ".len()..].trim_start();
        let field_at = end - clause.len() + (clause.len() - rest.len());
        let field: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = rest[field.len()..].trim_start();
        let Some(expr) = after
            .strip_prefix("AS ")
            .or_else(|| after.strip_prefix("as "))
        else {
            return Err(wrong());
        };
        let expr = expr.trim();
        let lag = match expr.strip_prefix(field.as_str()).map(str::trim_start) {
            Some("") => "0s".to_string(),
            Some(rest) => {
                let interval = rest.strip_prefix('-').ok_or_else(wrong)?.trim();
                interval_text(interval).ok_or_else(wrong)?
            }
            None => return Err(wrong()),
        };
        if field.is_empty() {
            return Err(wrong());
        }
        // A comma before the clause goes too (the clause ends the list).
        let start = previous_comma(&text[..at]).unwrap_or(at);
        out.replace_range(start..end, &" ".repeat(end - start));
        found.push(Clause {
            at,
            watermark: (
                Spanned::new(field_at..field_at + field.len(), field),
                Spanned::new(at..end, lag),
            ),
        });
        from = end;
    }
    Ok((out, found))
}

/// Where the comma at the end of `before` is, past blanks and `--`
/// comments.
fn previous_comma(before: &str) -> Option<usize> {
    let mut text = before;
    loop {
        let trimmed = text.trim_end();
        if trimmed.ends_with(',') {
            return Some(trimmed.len() - 1);
        }
        let line_start = trimmed.rfind('\n').map_or(0, |i| i + 1);
        let comment = trimmed[line_start..].find("--")?;
        text = &trimmed[..line_start + comment];
    }
}

/// `INTERVAL '2' SECOND` (or `'2 seconds'`) as a duration: "2s".
pub(super) fn interval_text(sql: &str) -> Option<String> {
    let upper = sql.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix("INTERVAL")?.trim_start();
    let rest = rest.strip_prefix('\'')?;
    let (value, unit) = rest.split_once('\'')?;
    let unit = unit.trim().trim_end_matches('S');
    let suffix = match unit {
        "" => return Some(value.trim().to_lowercase()),
        "MILLISECOND" => "ms",
        "SECOND" => "s",
        "MINUTE" => "m",
        "HOUR" => "h",
        "DAY" => "d",
        _ => return None,
    };
    Some(format!("{}{suffix}", value.trim()))
}

/// The watermark clause of each statement (a `CREATE TABLE` whose text
/// holds it).
pub(super) fn watermarks_by_statement(
    statements: &[Statement],
    mut clauses: Vec<Clause>,
    places: &Places,
) -> Vec<Option<Watermark>> {
    statements
        .iter()
        .map(|s| {
            let span = places.span_of(s);
            let inside = clauses.iter().position(|c| span.contains(&c.at));
            inside.map(|i| clauses.remove(i).watermark)
        })
        .collect()
}
