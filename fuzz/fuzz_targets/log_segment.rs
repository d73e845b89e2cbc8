#![no_main]
//! See `gregor::fuzzing::log_segment` for the input layout and the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gregor::fuzzing::log_segment(data));
