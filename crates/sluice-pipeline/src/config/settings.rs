//! The keys of a source or sink table that its connector reads, each with
//! where it was written.

use super::diag::{at, Failure, Span};
use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use std::time::Duration;
use toml::Spanned;

/// The keys of a table that its connector reads, in the order written.
#[derive(Debug, Default)]
pub struct Settings {
    /// Each key's value, and where the key was written.
    values: IndexMap<String, (Span, Spanned<toml::Value>)>,
}

impl Settings {
    /// Keeps `key`'s value for the connector.
    pub fn insert(&mut self, key: Spanned<String>, value: Spanned<toml::Value>) {
        let span = key.span();
        self.values.insert(key.into_inner(), (span, value));
    }

    /// The value of `key` read as a `T`, with its place; an error at the
    /// value when it is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Spanned<T>>, Failure> {
        let Some((_, value)) = self.values.get(key) else {
            return Ok(None);
        };
        let read: T = value
            .get_ref()
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| at(value.span(), e.message().trim()))?;
        Ok(Some(Spanned::new(value.span(), read)))
    }

    /// Every key given, with where it and its value were written.
    pub fn given(&self) -> impl Iterator<Item = (&str, Span, Span)> {
        self.values
            .iter()
            .map(|(key, (span, value))| (key.as_str(), span.clone(), value.span()))
    }
}

/// The longest duration a pipeline file may give: longer ones are typing
/// mistakes, and their arithmetic would overflow.
pub const LONGEST: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `value` read as a duration ("500ms", "2s"), named `what` in errors.
pub fn duration(value: &Spanned<String>, what: &str) -> Result<Duration, Failure> {
    let d = humantime::parse_duration(value.get_ref().trim()).map_err(|e| {
        at(
            value.span(),
            format!(
                "{what} `{}` is not a duration ({e}); write it like \"500ms\", \"2s\" or \"1m\"",
                value.get_ref()
            ),
        )
    })?;
    if d > LONGEST {
        return Err(at(
            value.span(),
            format!(
                "{what} `{}` is longer than ten years, the longest a pipeline file takes; \
                 write a shorter duration",
                value.get_ref()
            ),
        ));
    }
    Ok(d)
}
