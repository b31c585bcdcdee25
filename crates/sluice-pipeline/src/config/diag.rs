//! Errors in a pipeline file, with the place they point at.

use std::fmt;
use std::ops::Range;
use std::path::Path;

/// A byte range of the pipeline file.
pub type Span = Range<usize>;

/// One error in a pipeline file: what is wrong, how to fix it, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The bytes of the file the error points at, when known.
    pub span: Option<Span>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn new(span: Option<Span>, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
        }
    }

    /// An error at `span`.
    pub fn at(span: Span, message: impl Into<String>) -> Self {
        Self::new(Some(span), message)
    }

    /// The 1-based line and column of the error in `text`.
    pub fn line_col(&self, text: &str) -> (usize, usize) {
        let offset = self.span.as_ref().map_or(0, |s| s.start).min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit_once('\n')
            .map_or(before, |(_, rest)| rest)
            .chars()
            .count()
            + 1;
        (line, column)
    }

    /// `file:line:col: message`, the form compilers use.
    pub fn render(&self, file: &Path, text: &str) -> String {
        let (line, column) = self.line_col(text);
        format!("{}:{line}:{column}: {}", file.display(), self.message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Why a table cannot be compiled: the file is wrong (a [`Diagnostic`]),
/// or something outside it failed (an input that cannot be read).
#[derive(Debug)]
pub enum Failure {
    /// The file is wrong, at a place.
    Invalid(Diagnostic),
    /// Something outside the file failed.
    Runtime(crate::error::Error),
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Self {
        Failure::Invalid(d)
    }
}

/// The file is wrong at `span`.
pub fn at(span: Span, message: impl fmt::Display) -> Failure {
    Failure::Invalid(Diagnostic::at(span, message.to_string()))
}

/// The largest char boundary at or before `offset`.
fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        let at_two = Diagnostic::at(text.find('2').unwrap()..text.len(), "x");
        assert_eq!(at_two.line_col(text), (2, 6));
        assert_eq!(Diagnostic::new(None, "x").line_col(text), (1, 1));
    }
}
