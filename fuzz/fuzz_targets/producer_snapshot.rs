#![no_main]
//! See `gregor::fuzzing::producer_snapshot` for the input layout and the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gregor::fuzzing::producer_snapshot(data));
