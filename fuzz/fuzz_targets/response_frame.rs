#![no_main]
//! See `gregor::fuzzing::response_frame` for the input layout and the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gregor::fuzzing::response_frame(data));
