//! Any text as a pipeline file: reading, `--set` overrides, checking and
//! compiling its SQL must return errors, never panic.
#![no_main]

mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::pipeline_file(data));
