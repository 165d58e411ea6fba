//! Any bytes as the HTTP answer (status byte, body) to every call of the
//! Gce backend's login and cloud-neutral seam (compute, volumes, usage, images).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../src/answers.rs"]
mod answers;

fuzz_target!(|data: &[u8]| answers::run(answers::Client::Gce, data));
