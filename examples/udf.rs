//! A function written in Rust, called from a SQL pipeline and from a TOML
//! pipeline's expression: `fahrenheit(celsius)`, registered with
//! `sluice_pipeline::Functions` and handed to `load_str_with`.
//!
//!     cargo run -p sluice-pipeline --example udf

use datafusion::arrow::array::Float64Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_float64_array;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use sluice_pipeline::{load_str_with, progress, run, Functions};
use std::path::Path;
use std::sync::Arc;

/// `fahrenheit(celsius)`: a scalar function over Arrow arrays, a batch at
/// a time.
fn fahrenheit() -> ScalarUDF {
    create_udf(
        "fahrenheit",
        vec![DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let celsius = as_float64_array(&arrays[0])?;
            let converted: Float64Array = celsius
                .iter()
                .map(|c| c.map(|c| c * 9.0 / 5.0 + 32.0))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(converted)))
        }),
    )
}

const SQL: &str = "
CREATE TABLE readings WITH (
    connector = 'file', path = 'data/sensors.jsonl', event_time = 'ts', watermark = '2s'
);
CREATE TABLE hottest WITH (connector = 'stdout');
INSERT INTO hottest
    SELECT sensor, window_start, max(fahrenheit(temperature)) AS max_f
    FROM readings
    GROUP BY tumble(ts, INTERVAL '30' SECOND), sensor;
";

const TOML: &str = r#"name = "udf"

[source]
type = "file"
path = "data/sensors.jsonl"
event_time = "ts"

[[transform]]
name = "converted"
type = "select"
columns = { sensor = "sensor", f = "round(fahrenheit(temperature), 1)" }

[[sink]]
from = "converted"
type = "stdout"
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let functions = Functions::new().scalar(fahrenheit());
    // Paths in the pipelines resolve against the examples folder.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (text, file) in [(SQL, "udf.sql"), (TOML, "udf.toml")] {
        let plan = load_str_with(text, Path::new(file), &examples, None, &functions)?;
        let watch = progress(&plan);
        let summary = run(plan, &watch)?;
        eprintln!("{file}: {} records read", summary.read);
    }
    Ok(())
}
