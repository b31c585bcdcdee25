//! Checking a lookup join: the table file (read whole here, when the
//! pipeline is loaded) and the key columns it shares with the stream.

use super::*;
use crate::config::LookupTableSpec;
use crate::format::Format;
use crate::lookup::LookupPlan;
use arrow::array::RecordBatch;
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;

/// Reads the table of `spec` whole, against `base`.
fn read_table(spec: &Spanned<LookupTableSpec>, base: &Path) -> Result<RecordBatch, Failure> {
    let table = spec.get_ref();
    let path = base.join(table.path.get_ref());
    let format = match &table.format {
        Some(f) => Format::from_name(f.get_ref()).ok_or_else(|| {
            at(
                f.span(),
                format!("format \"{}\" is not known; use \"jsonl\" or \"csv\"", f.get_ref()),
            )
        })?,
        None => Format::from_path(&path).ok_or_else(|| {
            at(
                table.path.span(),
                "can't tell the format from the extension; name the file .jsonl or .csv, or add format = \"jsonl\"",
            )
        })?,
    };
    let bytes = std::fs::read(&path).map_err(|e| {
        at(
            table.path.span(),
            format!("cannot read the lookup table {}: {e}", path.display()),
        )
    })?;
    let failed = |m: String| at(table.path.span(), format!("{}: {m}", path.display()));
    let (schema, batches) = match format {
        Format::Jsonl => {
            let schema =
                Arc::new(format::infer_jsonl(&bytes, None).map_err(|e| failed(e.to_string()))?);
            let reader = arrow::json::ReaderBuilder::new(schema.clone())
                .with_coerce_primitive(true)
                .build(bytes.as_slice())
                .map_err(|e| failed(e.to_string()))?;
            (schema, reader.collect::<Result<Vec<_>, _>>())
        }
        Format::Csv => {
            let schema =
                Arc::new(format::infer_csv(&bytes, None).map_err(|e| failed(e.to_string()))?);
            let reader = arrow::csv::ReaderBuilder::new(schema.clone())
                .with_header(true)
                .build(bytes.as_slice())
                .map_err(|e| failed(e.to_string()))?;
            (schema, reader.collect::<Result<Vec<_>, _>>())
        }
        Format::Parquet => return Err(at(spec.span(), "a lookup table is JSON lines or CSV")),
    };
    let batches = batches.map_err(|e| failed(format!("{e}; fix the file")))?;
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| failed(e.to_string()))
}

/// Checks a `lookup` transform reading `from`.
pub(super) fn lookup(
    t: &TransformSpec,
    name: &str,
    from: &str,
    schemas: &IndexMap<String, SchemaRef>,
    base: &Path,
) -> Result<(Operation, SchemaRef, String), Failure> {
    let spec = t.table.as_ref().ok_or_else(|| {
        at(
            t.name.span(),
            "a lookup transform needs `table`, the file it looks rows up in, like table = { path = \"products.csv\" }",
        )
    })?;
    let table_name = match &spec.get_ref().name {
        Some(n) => n.get_ref().clone(),
        None => Path::new(spec.get_ref().path.get_ref())
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("table")
            .to_string(),
    };
    let input = schemas[from].clone();
    if super::is_changelog(&input) {
        return Err(at(
            t.kind.span(),
            format!("`{from}` is a changelog (rows with op and revision): looking it up is not supported; look up the stream it is made from"),
        ));
    }
    let table = read_table(spec, base)?;
    let on = t.on.as_ref().ok_or_else(|| {
        at(
            t.name.span(),
            "a lookup transform needs `on`, stream key columns to the table's columns they equal, like on = { product = \"id\" }",
        )
    })?;
    if on.get_ref().is_empty() {
        return Err(at(
            on.span(),
            "name at least one pair of key columns: on = { product = \"id\" }",
        ));
    }
    let table_schema = table.schema();
    let (mut keys, mut table_keys, mut key_types, mut pairs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (l, r) in on.get_ref() {
        let li = input.index_of(l).map_err(|_| {
            at(
                on.span(),
                format!(
                    "`{from}` has no column `{l}`; it has: {}",
                    format::field_names(&input)
                ),
            )
        })?;
        let ri = table_schema.index_of(r.get_ref()).map_err(|_| {
            at(
                r.span(),
                format!(
                    "the table `{table_name}` has no column `{}`; it has: {}",
                    r.get_ref(),
                    format::field_names(&table_schema)
                ),
            )
        })?;
        let (lt, rt) = (
            input.field(li).data_type(),
            table_schema.field(ri).data_type(),
        );
        let common = comparison_coercion(lt, rt)
            .filter(|t| arrow::row::RowConverter::supports_fields(&[SortField::new(t.clone())]))
            .ok_or_else(|| {
                at(
                    r.span(),
                    format!(
                        "`{l}` ({lt}) and `{}` ({rt}) cannot be compared",
                        r.get_ref()
                    ),
                )
            })?;
        keys.push(li);
        table_keys.push(ri);
        key_types.push(common);
        pairs.push(format!("{l} = {table_name}.{}", r.get_ref()));
    }
    let index = LookupPlan::index(&table, &table_keys, &key_types)
        .map_err(|e| at(spec.span(), e.to_string()))?;
    let mut fields = Vec::new();
    for (prefix, schema) in [(from, &input), (table_name.as_str(), &table_schema)] {
        for f in schema.fields() {
            fields.push(
                f.as_ref()
                    .clone()
                    .with_name(format!("{prefix}.{}", f.name()))
                    .with_nullable(true),
            );
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let table = RecordBatch::try_new(
        Arc::new(Schema::new(
            schema.fields()[input.fields().len()..].to_vec(),
        )),
        table.columns().to_vec(),
    )
    .map_err(|e| at(spec.span(), e.to_string()))?;
    let describe = format!(
        "{from} in {} ({} rows, read at start) on {}",
        spec.get_ref().path.get_ref(),
        table.num_rows(),
        pairs.join(" and ")
    );
    let plan = LookupPlan {
        name: name.to_string(),
        from: from.to_string(),
        keys,
        key_types,
        table,
        index,
        schema: schema.clone(),
    };
    Ok((Operation::Lookup(Arc::new(plan)), schema, describe))
}
