//! Any bytes as an accounting source's last-update answer.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = probes::formats::freshness::parse_last_update(data);
});
