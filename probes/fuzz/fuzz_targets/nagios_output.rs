//! Any bytes as plugin output for the Nagios output parser (probes::render::parse).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../src/answers.rs"]
mod answers;

fuzz_target!(|data: &[u8]| answers::nagios_output(data));
