//! Schemas of inputs: inferred from a sample of JSON lines or CSV (a
//! field's type is the one most of its values have), or given by a
//! `schema` table.

use crate::error::{Error, Result};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// Infers a JSON-lines schema from sample lines, skipping lines that are
/// not JSON objects (they will be dead-lettered when read).
///
/// A field's type is the one most of its values have, so that a few bad
/// values (`"temperature": "hot"`) become dead letters instead of turning
/// the column into strings; integers and floats together are float64. The
/// event-time field is a string if any value is (RFC 3339 times), since
/// digit strings are read as epoch milliseconds too.
pub fn infer_jsonl(sample: &[u8], time_field: Option<&str>) -> Result<Schema> {
    #[derive(Default)]
    struct Seen {
        ints: usize,
        floats: usize,
        strings: usize,
        bools: usize,
        nested: Vec<serde_json::Value>,
    }
    let mut fields: indexmap::IndexMap<String, Seen> = indexmap::IndexMap::new();
    let mut objects = 0;
    for line in sample.split(|b| *b == b'\n') {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(line)
        else {
            continue;
        };
        objects += 1;
        for (name, value) in map {
            let seen = fields.entry(name.clone()).or_default();
            match value {
                serde_json::Value::Null => {}
                serde_json::Value::Bool(_) => seen.bools += 1,
                serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => seen.ints += 1,
                serde_json::Value::Number(_) => seen.floats += 1,
                serde_json::Value::String(_) => seen.strings += 1,
                other => {
                    if seen.nested.len() < 100 {
                        let mut one = serde_json::Map::new();
                        one.insert(name, other);
                        seen.nested.push(serde_json::Value::Object(one));
                    }
                }
            }
        }
    }
    if objects == 0 {
        return Err(Error::input(
            "no JSON object in the first lines to infer a schema from; give `schema = { \
             field = \"type\", ... }`",
        ));
    }
    let mut out = Vec::new();
    for (name, seen) in fields {
        let numbers = seen.ints + seen.floats;
        let is_time = time_field == Some(name.as_str());
        let data_type = if !seen.nested.is_empty() && numbers + seen.strings + seen.bools == 0 {
            arrow::json::reader::infer_json_schema_from_iterator(seen.nested.iter().map(Ok))
                .ok()
                .and_then(|s| s.fields().first().map(|f| f.data_type().clone()))
                .unwrap_or(DataType::Utf8)
        } else if is_time && seen.strings > 0 {
            DataType::Utf8
        } else if numbers > 0 && numbers >= seen.strings && numbers >= seen.bools {
            if seen.floats > 0 {
                DataType::Float64
            } else {
                DataType::Int64
            }
        } else if seen.bools > 0 && seen.bools >= seen.strings {
            DataType::Boolean
        } else {
            DataType::Utf8
        };
        out.push(Field::new(name, data_type, true));
    }
    Ok(Schema::new(out))
}

/// Infers a CSV schema from a sample that starts with the header. A
/// column's type is the one most of its values have (int64, float64,
/// boolean, else string); rows with the wrong number of fields are left
/// out, as they will be dead-lettered when read.
pub fn infer_csv(sample: &[u8], time_field: Option<&str>) -> Result<Schema> {
    let mut lines = sample.split(|b| *b == b'\n');
    let header = csv_fields(lines.next().unwrap_or_default());
    if header.iter().all(String::is_empty) {
        return Err(Error::input("the CSV input has no header line"));
    }
    // Per column: ints, floats, bools, other strings.
    let mut counts = vec![[0usize; 4]; header.len()];
    for line in lines {
        let fields = csv_fields(line);
        if fields.len() != header.len() {
            continue;
        }
        for (count, value) in counts.iter_mut().zip(&fields) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let kind = if value.parse::<i64>().is_ok() {
                0
            } else if value.parse::<f64>().is_ok() {
                1
            } else if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
                2
            } else {
                3
            };
            count[kind] += 1;
        }
    }
    let fields: Vec<Field> = header
        .iter()
        .zip(counts)
        .map(|(name, [ints, floats, bools, strings])| {
            let numbers = ints + floats;
            let is_time = time_field == Some(name.as_str());
            let data_type = if is_time && strings > 0 {
                DataType::Utf8
            } else if numbers > 0 && numbers >= strings && numbers >= bools {
                if floats > 0 {
                    DataType::Float64
                } else {
                    DataType::Int64
                }
            } else if bools > 0 && bools >= strings {
                DataType::Boolean
            } else {
                DataType::Utf8
            };
            Field::new(name, data_type, true)
        })
        .collect();
    Ok(Schema::new(fields))
}

/// The fields of one CSV line (quotes and doubled quotes handled).
fn csv_fields(line: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The header of a CSV sample: its field names.
pub fn csv_header(sample: &[u8]) -> Vec<String> {
    let line = sample.split(|b| *b == b'\n').next().unwrap_or_default();
    csv_fields(line)
        .into_iter()
        .map(|f| f.trim().to_string())
        .collect()
}

/// A schema from a `schema` table (`field = "type"`), in the order given.
pub fn explicit_schema(fields: &[(String, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(name, t)| Field::new(name, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}
