//! Any text as a pipeline file: reading, `--set` overrides, checking and
//! compiling its SQL must return errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line, when it looks like one, is an override.
    let (assignment, text) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("--set ") => (Some(&first[6..]), rest),
        _ => (None, text),
    };
    let text = match assignment {
        Some(a) => match sluice_pipeline::spec::apply_override(text, a) {
            Ok(t) => t,
            Err(_) => return,
        },
        None => text.to_string(),
    };
    let dir = Path::new("/nonexistent-sluice-fuzz");
    if let Err(error) = sluice_pipeline::plan::load_str(&text, &dir.join("p.toml"), dir, None) {
        // Errors render with a position inside the text.
        let _ = error.to_string();
    }
});
