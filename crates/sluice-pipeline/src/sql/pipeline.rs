//! Pipelines written as SQL (`.sql` files): `CREATE TABLE` with a
//! connector's settings, `CREATE VIEW`, `INSERT INTO ... SELECT`, `SET`,
//! translated into the pipeline spec a TOML file gives (a source, filters,
//! selects and windows, sinks), every value carrying its place in the SQL
//! text, so that errors say `file:line:col` and the rest of the layer
//! (compiling, running, checkpoints) is the same for both.

use super::query::{Over, Query, Times, Translated};
use super::table::{settings_of, source_spec, take_connector, Column, Table};
use super::text::{literal, watermark_clauses, watermarks_by_statement, Places, Watermark};
use crate::config::diag::{Diagnostic, Span};
use crate::config::{ExecutionSpec, LookupTableSpec, PipelineSpec, SinkSpec, TransformSpec};
use datafusion::sql::sqlparser::ast::{
    self, ColumnDef, CreateTableOptions, Expr, ObjectName, SqlOption, Statement,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use indexmap::IndexMap;
use toml::Spanned;

/// Reads a SQL pipeline file; `stem` names the pipeline unless a
/// `SET pipeline.name` does.
pub fn parse(text: &str, stem: &str) -> Result<PipelineSpec, Diagnostic> {
    let places = Places::new(text);
    let (text, watermarks) = watermark_clauses(text, &places)?;
    let statements = Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| places.parser_error(&e.to_string()))?;
    let mut file = File {
        places: &places,
        name: Spanned::new(0..0, stem.to_string()),
        execution: ExecutionSpec::default(),
        tables: IndexMap::new(),
        streams: IndexMap::new(),
        ttl: None,
        source: None,
        transforms: Vec::new(),
        sinks: Vec::new(),
    };
    for (statement, watermark) in
        statements
            .iter()
            .zip(watermarks_by_statement(&statements, watermarks, &places))
    {
        file.statement(statement, watermark)?;
    }
    file.finish()
}

/// A view: the stream it names, whether it is a changelog (and the columns
/// that identify its rows), and its time columns.
struct View {
    stream: String,
    changelog: bool,
    changelog_key: Option<Vec<String>>,
    times: Option<Times>,
}

struct File<'a> {
    places: &'a Places,
    name: Spanned<String>,
    execution: ExecutionSpec,
    tables: IndexMap<String, Table>,
    /// Views: the stream each names, whether it is a changelog, and its
    /// time columns.
    streams: IndexMap<String, View>,
    /// `SET state.ttl`: how long a join keeps rows without a time bound.
    ttl: Option<i64>,
    /// The table read, and the event-time field and allowed lateness it
    /// gives the windows over it.
    source: Option<String>,
    transforms: Vec<Spanned<TransformSpec>>,
    sinks: Vec<Spanned<SinkSpec>>,
}

impl File<'_> {
    fn statement(
        &mut self,
        statement: &Statement,
        watermark: Option<Watermark>,
    ) -> Result<(), Diagnostic> {
        let span = self.places.span_of(statement);
        match statement {
            Statement::CreateTable(create) => {
                if create.query.is_some() {
                    return Err(Diagnostic::at(
                        span,
                        "CREATE TABLE ... AS SELECT is not supported: declare the table with \
                         its connector, then INSERT INTO it",
                    ));
                }
                let name = self.name_of(&create.name)?;
                let table = Table {
                    span: span.clone(),
                    columns: self.columns(&create.columns)?,
                    options: self.options(&create.table_options, &span)?,
                    watermark,
                    read: false,
                    written: false,
                };
                if is_reserved(name.get_ref()) {
                    return Err(Diagnostic::at(
                        name.span(),
                        format!(
                            "`{}` is a reserved stream (read it with SELECT * FROM {}); name the \
                             table otherwise",
                            name.get_ref(),
                            name.get_ref()
                        ),
                    ));
                }
                if self.tables.contains_key(name.get_ref())
                    || self.streams.contains_key(name.get_ref())
                {
                    return Err(Diagnostic::at(
                        name.span(),
                        format!("`{}` is declared twice; rename one", name.get_ref()),
                    ));
                }
                self.tables.insert(name.into_inner(), table);
            }
            Statement::CreateView(view) => {
                let name = self.name_of(&view.name)?;
                if !view.columns.is_empty() {
                    return Err(Diagnostic::at(
                        name.span(),
                        "a view's column list is not supported: name the columns in its SELECT",
                    ));
                }
                if self.tables.contains_key(name.get_ref())
                    || self.streams.contains_key(name.get_ref())
                    || is_reserved(name.get_ref())
                {
                    return Err(Diagnostic::at(
                        name.span(),
                        format!("`{}` is declared twice; rename one", name.get_ref()),
                    ));
                }
                let translated = self.query(&view.query, name.get_ref())?;
                self.streams.insert(name.into_inner(), translated);
            }
            Statement::Insert(insert) => {
                let ast::TableObject::TableName(target) = &insert.table else {
                    return Err(Diagnostic::at(
                        span,
                        "INSERT INTO a table declared with CREATE TABLE",
                    ));
                };
                let target = self.name_of(target)?;
                let Some(query) = &insert.source else {
                    return Err(Diagnostic::at(span, "INSERT INTO takes a SELECT"));
                };
                if !insert.columns.is_empty() {
                    return Err(Diagnostic::at(span, "INSERT INTO with a column list is not supported: name the columns in the SELECT"));
                }
                if self.tables.get(target.get_ref()).is_some_and(|t| t.written) {
                    return Err(Diagnostic::at(
                        target.span(),
                        format!(
                            "`{}` is written by an earlier INSERT: a table has one writer; \
                             declare another table",
                            target.get_ref()
                        ),
                    ));
                }
                let stream = self.query(query, target.get_ref())?.stream;
                self.sink(&target, stream, span)?;
            }
            Statement::Set(ast::Set::SingleAssignment {
                variable, values, ..
            }) => {
                self.set(variable, values, span)?;
            }
            Statement::Query(_) => {
                return Err(Diagnostic::at(
                    span,
                    "a query on its own goes nowhere: write INSERT INTO a_table SELECT ..., or \
                     CREATE VIEW name AS SELECT ...",
                ))
            }
            _ => {
                return Err(Diagnostic::at(
                    span,
                    "a SQL pipeline takes CREATE TABLE, CREATE VIEW, INSERT INTO ... SELECT and \
                     SET statements (docs/sql.md)",
                ))
            }
        }
        Ok(())
    }

    /// The stream `INSERT INTO target SELECT ...` writes: a sink of the table.
    fn sink(
        &mut self,
        target: &Spanned<String>,
        stream: String,
        span: Span,
    ) -> Result<(), Diagnostic> {
        let Some(table) = self.tables.get_mut(target.get_ref()) else {
            return Err(Diagnostic::at(
                target.span(),
                format!("INSERT INTO `{}`: no table of that name; declare it with CREATE TABLE {} WITH (connector = '...')", target.get_ref(), target.get_ref()),
            ));
        };
        if table.read {
            return Err(Diagnostic::at(
                target.span(),
                format!(
                    "`{}` is read as the source: a table is read or written, not both",
                    target.get_ref()
                ),
            ));
        }
        table.written = true;
        let mut options = table.options.clone();
        let kind = take_connector(&mut options, &table.span)?;
        if let Some((name, _)) = table.columns.first() {
            return Err(Diagnostic::at(
                name.span(),
                "a table written to takes no column list: its columns are the query's",
            ));
        }
        let settings = settings_of(options);
        self.sinks.push(Spanned::new(
            span.clone(),
            SinkSpec {
                from: Spanned::new(span, stream),
                kind,
                settings,
            },
        ));
        Ok(())
    }

    /// Translates a query into transforms named after `base`; returns the
    /// stream it makes.
    fn query(&mut self, query: &ast::Query, base: &str) -> Result<View, Diagnostic> {
        let translated = Query::new(self.places, query)?;
        let over = self.read(&translated.from)?;
        let lookup = match &translated.join {
            Some(join) => self.lookup_table(&join.right)?,
            None => None,
        };
        let right = match (&translated.join, &lookup) {
            (Some(join), None) => Some(self.read(&join.right)?),
            _ => None,
        };
        let Translated {
            transforms,
            stream,
            changelog,
            times,
            changelog_key,
        } = match (&translated.join, lookup) {
            (Some(join), Some(table)) => join.lookup(&translated, base, &over, table)?,
            _ => translated.transforms(base, &over, right.as_ref())?,
        };
        self.transforms.extend(transforms);
        Ok(View {
            stream,
            changelog,
            changelog_key,
            times,
        })
    }

    /// The table a join reads whole at start, when `name` is one: a file
    /// table other than the source (a lookup join).
    fn lookup_table(
        &mut self,
        name: &Spanned<String>,
    ) -> Result<Option<Spanned<LookupTableSpec>>, Diagnostic> {
        let key = name.get_ref();
        if self.streams.contains_key(key) || self.source.as_ref() == Some(key) {
            return Ok(None);
        }
        let Some(table) = self.tables.get_mut(key) else {
            return Ok(None);
        };
        if table.written {
            return Err(Diagnostic::at(
                name.span(),
                format!("`{key}` is written by an INSERT: a table is read or written, not both"),
            ));
        }
        let text = |value: &Spanned<toml::Value>, what: &str| match value.get_ref() {
            toml::Value::String(s) => Ok(Spanned::new(value.span(), s.clone())),
            _ => Err(Diagnostic::at(
                value.span(),
                format!("`{what}`: a string in quotes"),
            )),
        };
        let mut path = None;
        let mut format = None;
        for (option, (option_span, value)) in &table.options {
            match option.as_str() {
                "connector" if value.get_ref().as_str() == Some("file") => {}
                "connector" => {
                    return Err(Diagnostic::at(
                        value.span(),
                        format!("`{key}` is joined as a lookup table, read whole at start: its connector is 'file' (a second streaming source is not supported)"),
                    ))
                }
                "path" => path = Some(text(value, "path")?),
                "format" => format = Some(text(value, "format")?),
                other => {
                    return Err(Diagnostic::at(
                        option_span.clone(),
                        format!("`{other}` does not apply to a lookup table (`{key}`, read whole at start): it takes connector = 'file', path and format"),
                    ))
                }
            }
        }
        if table.watermark.is_some() || !table.columns.is_empty() {
            return Err(Diagnostic::at(
                table.span.clone(),
                format!("`{key}` is a lookup table: its columns come from the file; remove the column list"),
            ));
        }
        let path = path.ok_or_else(|| {
            Diagnostic::at(
                table.span.clone(),
                format!("the lookup table `{key}` needs its file: path = 'products.csv'"),
            )
        })?;
        table.read = true;
        let spec = LookupTableSpec {
            path,
            format,
            name: Some(name.clone()),
        };
        Ok(Some(Spanned::new(table.span.clone(), spec)))
    }

    /// The stream a query's `FROM` names, with what windows over it take
    /// from the source table.
    fn read(&mut self, from: &Spanned<String>) -> Result<Over, Diagnostic> {
        let name = from.get_ref();
        if let Some(view) = self.streams.get(name) {
            let mut over = self.over(view.stream.clone());
            over.changelog = view.changelog;
            over.changelog_key = view.changelog_key.clone();
            over.times = view.times.clone();
            // The source's event time, if the view still holds it.
            if let (Some(times), Some(event_time)) = (&over.times, &over.event_time) {
                if !times.iter().any(|(c, o)| c == event_time && *o == 0) {
                    over.event_time = None;
                }
            }
            return Ok(over);
        }
        if is_reserved(name) {
            return Ok(Over {
                stream: name.clone(),
                event_time: None,
                lateness: None,
                changelog: false,
                times: None,
                ttl: self.ttl,
                changelog_key: None,
            });
        }
        let Some(table) = self.tables.get_mut(name) else {
            return Err(Diagnostic::at(
                from.span(),
                format!("no table or view `{name}`; declare it before the query reads it"),
            ));
        };
        if table.written {
            return Err(Diagnostic::at(
                from.span(),
                format!("`{name}` is written by an INSERT: a table is read or written, not both"),
            ));
        }
        if let Some(source) = self.source.as_ref().filter(|s| *s != name) {
            return Err(Diagnostic::at(
                from.span(),
                format!("`{name}` would be a second source table (the first is `{source}`): a pipeline reads one source table for now; joins are not supported yet"),
            ));
        }
        table.read = true;
        self.source = Some(name.clone());
        let mut over = self.over("source".to_string());
        over.times = over.event_time.as_ref().map(|t| vec![(t.clone(), 0)]);
        Ok(over)
    }

    /// What windows over `stream` take from the source table: its event
    /// time and `allowed_lateness`.
    fn over(&self, stream: String) -> Over {
        let table = self.source.as_ref().and_then(|s| self.tables.get(s));
        let text = |key: &str| {
            let (_, value) = table?.options.get(key)?;
            Some(Spanned::new(
                value.span(),
                value.get_ref().as_str()?.to_string(),
            ))
        };
        let event_time = table
            .and_then(|t| {
                t.watermark
                    .as_ref()
                    .map(|(field, _)| field.get_ref().clone())
            })
            .or_else(|| text("event_time").map(Spanned::into_inner));
        // No lateness is no lateness: a window of "0s" updates nothing.
        let lateness = text("allowed_lateness").filter(|l| {
            humantime::parse_duration(l.get_ref().trim()).map_or(true, |d| !d.is_zero())
        });
        Over {
            stream,
            event_time,
            lateness,
            changelog: false,
            times: None,
            ttl: self.ttl,
            changelog_key: None,
        }
    }

    fn set(
        &mut self,
        variable: &ObjectName,
        values: &[Expr],
        span: Span,
    ) -> Result<(), Diagnostic> {
        let name = variable.to_string().to_lowercase();
        let [value] = values else {
            return Err(Diagnostic::at(span, format!("SET {name} takes one value")));
        };
        let value_span = self.places.span_of(value);
        let value = literal(value).ok_or_else(|| {
            Diagnostic::at(
                value_span.clone(),
                "a value: a string in quotes or a number",
            )
        })?;
        let text = || match &value {
            toml::Value::String(s) => Some(Spanned::new(value_span.clone(), s.clone())),
            _ => None,
        };
        let number = || match &value {
            toml::Value::Integer(n) => Some(Spanned::new(value_span.clone(), *n)),
            _ => None,
        };
        let wrong =
            |what: &str| Diagnostic::at(value_span.clone(), format!("SET {name} takes {what}"));
        match name.as_str() {
            "pipeline.name" => self.name = text().ok_or_else(|| wrong("a string"))?,
            "execution.mode" => self.execution.mode = Some(text().ok_or_else(|| wrong("a string"))?),
            "execution.target_latency" => self.execution.target_latency = Some(text().ok_or_else(|| wrong("a duration in quotes"))?),
            "execution.batch_interval" => self.execution.batch_interval = Some(text().ok_or_else(|| wrong("a duration in quotes"))?),
            "execution.batch_size" => self.execution.batch_size = Some(number().ok_or_else(|| wrong("a number"))?),
            "execution.workers" => self.execution.workers = Some(number().ok_or_else(|| wrong("a number"))?),
            "state.ttl" => {
                let ttl = text().ok_or_else(|| wrong("a duration in quotes, like '1h'"))?;
                let d = match crate::config::duration(&ttl, "state.ttl") {
                    Ok(d) => d,
                    Err(crate::config::diag::Failure::Invalid(d)) => return Err(d),
                    Err(crate::config::diag::Failure::Runtime(e)) => {
                        return Err(Diagnostic::at(ttl.span(), e.to_string()))
                    }
                };
                self.ttl = Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            }
            _ => {
                return Err(Diagnostic::at(
                    self.places.span_of(variable),
                    format!("unknown setting `{name}`: SET takes pipeline.name, execution.mode, execution.target_latency, execution.batch_size, execution.batch_interval, execution.workers or state.ttl"),
                ))
            }
        }
        Ok(())
    }

    fn name_of(&self, name: &ObjectName) -> Result<Spanned<String>, Diagnostic> {
        let span = self.places.span_of(name);
        match name.0.as_slice() {
            [part] => match part.as_ident() {
                Some(ident) => Ok(Spanned::new(span, ident.value.clone())),
                None => Err(Diagnostic::at(span, "a plain name")),
            },
            _ => Err(Diagnostic::at(
                span,
                format!("`{name}`: a plain name, without a schema or catalog"),
            )),
        }
    }

    fn columns(&self, columns: &[ColumnDef]) -> Result<Vec<Column>, Diagnostic> {
        columns
            .iter()
            .map(|c| {
                let span = self.places.ident(&c.name);
                let type_span = self.places.span_of(c);
                let name = c.data_type.to_string().to_lowercase();
                let base = name.split('(').next().unwrap_or_default().trim().to_string();
                let kind = match base.as_str() {
                    "varchar" | "text" | "string" | "char" | "character varying" => "string",
                    "bigint" | "int8" | "long" => "int64",
                    "int" | "integer" | "int4" => "int32",
                    "double" | "double precision" | "float8" => "float64",
                    "real" | "float" | "float4" => "float32",
                    "boolean" | "bool" => "boolean",
                    "timestamp" => "timestamp",
                    _ => {
                        return Err(Diagnostic::at(
                            type_span,
                            format!("column `{}`: type {} is not supported; use VARCHAR, BIGINT, INT, DOUBLE, REAL, BOOLEAN or TIMESTAMP", c.name.value, c.data_type),
                        ))
                    }
                };
                Ok((Spanned::new(span.clone(), c.name.value.clone()), Spanned::new(type_span, kind.to_string())))
            })
            .collect()
    }

    fn options(
        &self,
        options: &CreateTableOptions,
        span: &Span,
    ) -> Result<IndexMap<String, (Span, Spanned<toml::Value>)>, Diagnostic> {
        let list = match options {
            CreateTableOptions::With(list) => list,
            CreateTableOptions::None => {
                return Err(Diagnostic::at(
                    span.clone(),
                    "a table needs its connector: WITH (connector = 'file', path = '...')",
                ))
            }
            _ => {
                return Err(Diagnostic::at(
                    span.clone(),
                    "give a table's settings as WITH (key = 'value', ...)",
                ))
            }
        };
        let mut out = IndexMap::new();
        for option in list {
            let SqlOption::KeyValue { key, value } = option else {
                return Err(Diagnostic::at(
                    self.places.span_of(option),
                    "a setting is key = 'value'",
                ));
            };
            let key_span = self.places.ident(key);
            let value_span = self.places.span_of(value);
            let read = literal(value).ok_or_else(|| {
                Diagnostic::at(
                    value_span.clone(),
                    format!(
                        "`{}`: a string in quotes, a number or true/false",
                        key.value
                    ),
                )
            })?;
            if out
                .insert(
                    key.value.to_lowercase(),
                    (key_span.clone(), Spanned::new(value_span, read)),
                )
                .is_some()
            {
                return Err(Diagnostic::at(
                    key_span,
                    format!("`{}` is given twice", key.value),
                ));
            }
        }
        Ok(out)
    }

    /// The spec: the one source, the transforms, the sinks.
    fn finish(self) -> Result<PipelineSpec, Diagnostic> {
        for (name, table) in &self.tables {
            if !table.read && !table.written {
                return Err(Diagnostic::at(table.span.clone(), format!("table `{name}` is neither read nor written: read it in a query, INSERT INTO it, or remove it")));
            }
        }
        let Some(source) = &self.source else {
            return Err(Diagnostic::new(Some(0..0), "no query reads a table: declare a source with CREATE TABLE ... WITH (connector = ...) and INSERT INTO a sink SELECT ... FROM it"));
        };
        let table = &self.tables[source];
        let source = source_spec(table)?;
        if self.sinks.is_empty() {
            return Err(Diagnostic::new(
                Some(0..0),
                "nothing is written: INSERT INTO a table SELECT ...",
            ));
        }
        Ok(PipelineSpec {
            name: self.name,
            source: Spanned::new(table.span.clone(), source),
            execution: self.execution,
            transforms: self.transforms,
            sinks: self.sinks,
        })
    }
}

fn is_reserved(name: &str) -> bool {
    name == "late" || name == "dead_letter"
}
