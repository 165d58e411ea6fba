//! Any bytes as the HTTP answer (status byte, body) to every call of the Keystone client.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../src/answers.rs"]
mod answers;

fuzz_target!(|data: &[u8]| answers::run(answers::Client::Keystone, data));
