//! Compiling a sink table: the stream it writes, then its connector's
//! settings (the connector checks them, see [`crate::connectors`]).

use super::*;

pub(super) fn sink(
    s: &SinkSpec,
    schemas: &IndexMap<String, SchemaRef>,
    base: &Path,
) -> Result<SinkPlan, Failure> {
    let from = s.from.get_ref();
    if !schemas.contains_key(from) && !matches!(from.as_str(), "late" | "dead_letter") {
        return Err(at(
            s.from.span(),
            format!(
                "no stream named `{from}`; streams: {}, late, dead_letter",
                schemas.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let target = connectors::compile_sink(s, base, schemas.get(from))?;
    refuse_changelog(s, target.as_ref(), schemas.get(from))?;
    Ok(SinkPlan {
        from: from.clone(),
        label: format!("{from} -> {}", target.label()),
        target,
    })
}

/// A changelog written to a target that cannot take one is refused at the
/// sink's `from`.
fn refuse_changelog(
    s: &SinkSpec,
    target: &dyn SinkConnector,
    schema: Option<&SchemaRef>,
) -> Result<(), Failure> {
    if !schema.is_some_and(|schema| is_changelog(schema)) {
        return Ok(());
    }
    match target.refuses_changelog() {
        Some(why) => Err(at(
            s.from.span(),
            format!(
                "`{}` is a changelog (its rows update earlier ones, with op and revision), and \
                 this sink cannot take one: {why}",
                s.from.get_ref()
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Guarantee;
    use crate::output::RowWriter;

    /// A target that takes appends only.
    #[derive(Debug)]
    struct AppendOnly;

    impl SinkConnector for AppendOnly {
        fn open_at(
            &self,
            _: SchemaRef,
            _: Option<u64>,
        ) -> crate::error::Result<Box<dyn RowWriter>> {
            Err(Error::refused("a test target"))
        }
        fn describe(&self) -> String {
            "append-only".into()
        }
        fn label(&self) -> String {
            "append-only".into()
        }
        fn refuses_distributed(&self, _: Guarantee) -> Option<Error> {
            None
        }
        fn refuses_changelog(&self) -> Option<String> {
            Some("it appends rows and cannot apply updates or deletes".into())
        }
    }

    fn spec() -> SinkSpec {
        let text = "from = \"totals\"\ntype = \"file\"\npath = \"x.jsonl\"\n";
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_changelog_to_a_sink_that_cannot_take_one_is_refused_at_its_from() {
        let changelog = Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("op", DataType::Utf8, false),
            Field::new("revision", DataType::UInt32, false),
        ]);
        let appends = Schema::new(vec![Field::new("k", DataType::Utf8, false)]);
        let message = match refuse_changelog(&spec(), &AppendOnly, Some(&Arc::new(changelog))) {
            Err(Failure::Invalid(d)) => d.to_string(),
            other => panic!("not refused: {other:?}"),
        };
        assert!(message.contains("`totals` is a changelog"), "{message}");
        assert!(
            message.contains("cannot apply updates or deletes"),
            "{message}"
        );
        assert!(refuse_changelog(&spec(), &AppendOnly, Some(&Arc::new(appends))).is_ok());
    }
}
