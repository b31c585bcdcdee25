//! Any bytes as csv lines: every non-blank line becomes a row or a dead
//! letter, never a panic, and no line is lost.
#![no_main]

mod checks;

use libfuzzer_sys::fuzz_target;
use sluice_pipeline::Format;

fuzz_target!(|data: &[u8]| checks::decode(Format::Csv, data));
