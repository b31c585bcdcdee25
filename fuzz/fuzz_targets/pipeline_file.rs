//! Any text as a pipeline file: reading, `--set` overrides, checking and
//! compiling its SQL must return errors, never panic.
#![no_main]

mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/pipelines");
    checks::pipeline_file(std::path::Path::new(examples), data)
});
