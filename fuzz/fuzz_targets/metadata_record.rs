#![no_main]
//! See `gregor::fuzzing::metadata_record` for the input layout and the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gregor::fuzzing::metadata_record(data));
