//! The text of a SQL pipeline: places (line and column to byte offsets),
//! literals as setting values, intervals as durations, and the `WATERMARK
//! FOR` clauses the parser does not know.

use crate::config::diag::{Diagnostic, Span};
use datafusion::sql::sqlparser::ast::{self, Expr, Statement, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};
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

    /// The byte offset of a tokenizer's location (the start of the text
    /// when it has none).
    pub(super) fn at(&self, at: Location) -> usize {
        self.offset(at).unwrap_or(self.base)
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
/// TABLE`'s column list (the parser does not know it). The clauses are
/// found among the tokens (not in comments or strings), blanked out of the
/// text with the comma before them (one space per character, line breaks
/// kept, so that the parser's lines and columns stay those of the file),
/// and returned with the offset each was at.
pub(super) fn watermark_clauses(
    text: &str,
    places: &Places,
) -> Result<(String, Vec<Clause>), Diagnostic> {
    // A text that does not tokenize is the parser's to report.
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize_with_location() else {
        return Ok((text.to_string(), Vec::new()));
    };
    let tokens: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let word = |i: usize, name: &str| {
        tokens.get(i).is_some_and(
            |t| matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case(name)),
        )
    };
    let mut blanked: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    // A statement that starts with CREATE and names TABLE
    // (`CREATE [OR REPLACE] [TEMPORARY] TABLE`).
    let (mut depth, mut in_create, mut starts_create) = (0i32, false, false);
    let mut i = 0;
    while i < tokens.len() {
        if i == 0 || matches!(tokens[i - 1].token, Token::SemiColon) {
            starts_create = word(i, "CREATE");
        }
        match &tokens[i].token {
            Token::SemiColon => (depth, in_create) = (0, false),
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(_) if starts_create && depth == 0 && word(i, "TABLE") => in_create = true,
            Token::Word(_)
                if in_create && depth == 1 && word(i, "WATERMARK") && word(i + 1, "FOR") =>
            {
                let end = clause_end(&tokens, i);
                let at = places.at(tokens[i].span.start);
                let end_at = tokens
                    .get(end)
                    .map_or(text.len(), |t| places.at(t.span.start));
                let clause = Clause {
                    at,
                    watermark: watermark(&tokens[i + 2..end], places)
                        .ok_or_else(|| {
                            Diagnostic::at(
                                at..end_at,
                                "write the watermark as WATERMARK FOR ts AS ts - INTERVAL '2' SECOND",
                            )
                        })
                        .map(|(field, lag)| (field, Spanned::new(at..end_at, lag)))?,
                };
                // With the comma before it, or (first in the list) after it.
                let (from, until) = match tokens.get(i.wrapping_sub(1)).map(|t| &t.token) {
                    Some(Token::Comma) => (tokens[i - 1].span.start, end),
                    _ if matches!(tokens.get(end).map(|t| &t.token), Some(Token::Comma)) => {
                        (tokens[i].span.start, end + 1)
                    }
                    _ => (tokens[i].span.start, end),
                };
                let until = tokens.get(until).map(|t| t.span.start);
                blank(&mut blanked, text, from, until);
                found.push(clause);
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok((blanked.into_iter().collect(), found))
}

/// The index of the `,` or `)` that ends the clause starting at `start`.
fn clause_end(tokens: &[&TokenWithSpan], start: usize) -> usize {
    let mut depth = 0;
    for (j, t) in tokens.iter().enumerate().skip(start) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => return j,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => return j,
            _ => {}
        }
    }
    tokens.len()
}

/// `field AS field [- interval]`: the field (with its place) and the lag.
fn watermark(tokens: &[&TokenWithSpan], places: &Places) -> Option<(Spanned<String>, String)> {
    let name = |t: Option<&&TokenWithSpan>| match t.map(|t| &t.token) {
        Some(Token::Word(w)) => Some(w.value.clone()),
        _ => None,
    };
    let field = name(tokens.first())?;
    let is_as = name(tokens.get(1)).is_some_and(|w| w.eq_ignore_ascii_case("AS"));
    if !is_as || name(tokens.get(2))? != field {
        return None;
    }
    let lag = match tokens.get(3).map(|t| &t.token) {
        None => "0s".to_string(),
        Some(Token::Minus) => {
            let rest: Vec<String> = tokens[4..].iter().map(|t| t.token.to_string()).collect();
            interval_text(&rest.join(" "))?
        }
        Some(_) => return None,
    };
    let span = places.at(tokens[0].span.start)..places.at(tokens[0].span.end);
    Some((Spanned::new(span, field), lag))
}

/// Blanks the characters from `from` to `until` (a token's start; the end
/// of the text when `None`), keeping line breaks.
fn blank(chars: &mut [char], text: &str, from: Location, until: Option<Location>) {
    let (mut line, mut column) = (1u64, 1u64);
    let mut on = false;
    for (c, original) in chars.iter_mut().zip(text.chars()) {
        let here = Location { line, column };
        if here == from {
            on = true;
        }
        if until == Some(here) {
            break;
        }
        if on && original != '\n' && original != '\r' {
            *c = ' ';
        }
        if original == '\n' {
            (line, column) = (line + 1, 1);
        } else {
            column += 1;
        }
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
