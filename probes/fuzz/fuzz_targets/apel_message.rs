//! Any bytes as a spooled APEL message: findings, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let r = probes::formats::apel::check_message("fuzz", data);
    // Counts stay consistent whatever comes in.
    assert!(r.bad_records <= r.records);
    for p in &r.problems {
        let _ = p.to_string();
    }
});
