//! Stable-Rust stand-in for the fuzz targets (probes/fuzz): random and
//! mutated APEL messages and last-update answers, a bounded number of
//! iterations, fixed seed (override FEDPROBE_RANDOM_SEED / _ITERS). The
//! parsers must never panic and their counts must stay consistent.

use std::path::Path;
use std::time::Instant;

use probes::formats::apel::check_message;
use probes::formats::freshness::parse_last_update;

/// xorshift64*: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&str] = &[
    "",
    "%%",
    "%%\n",
    ":",
    "::",
    "\n",
    "\r\n",
    "-1",
    "0",
    "NaN",
    "inf",
    "1e309",
    "99999999999999999999",
    "None",
    "NULL",
    "VMUUID: ",
    "SiteName: ",
    "EndTime: ",
    "StartTime: ",
    "Status: started",
    "APEL-cloud-message: v0.4\n",
    "{",
    "}",
    "[",
    "\"",
    "\u{0}",
    "\u{feff}",
    "é",
    "\u{1b}[31m",
    "|",
    "{\"Type\":\"APEL Public IP message\",\"Version\":\"0.2\",\"UsageRecords\":[",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(7) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                b.splice(at..at, t.iter().copied());
            }
            2 if !b.is_empty() => {
                let end = (at + rng.below(40)).min(b.len());
                b.drain(at.min(end)..end);
            }
            3 => b.truncate(at),
            4 => {
                // Duplicate a slice (repeated lines and records).
                let end = (at + rng.below(80)).min(b.len());
                let piece: Vec<u8> = b[at.min(end)..end].to_vec();
                b.splice(at..at, piece);
            }
            5 => {
                let n = rng.below(16);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, junk);
            }
            _ => {
                // Replace a value after a ": " with a token.
                if let Some(pos) = b[at.min(b.len())..].windows(2).position(|w| w == b": ") {
                    let s = at + pos + 2;
                    let e = b[s..]
                        .iter()
                        .position(|c| *c == b'\n')
                        .map_or(b.len(), |p| s + p);
                    let t = TOKENS[rng.below(TOKENS.len())].as_bytes().to_vec();
                    b.splice(s..e, t);
                }
            }
        }
    }
    b
}

fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/apel");
    let mut out = Vec::new();
    for d in ["good", "bad"] {
        for e in std::fs::read_dir(root.join(d)).unwrap() {
            out.push(std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    out
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn apel_parser_survives_random_and_mutated_input() {
    let seed = setting("FEDPROBE_RANDOM_SEED", 0x5EED_A9E1);
    let iters = setting("FEDPROBE_RANDOM_ITERS", 20_000);
    let mut rng = Rng(seed | 1);
    let seeds = seeds();
    let t0 = Instant::now();
    let (mut records, mut problems) = (0usize, 0usize);
    for i in 0..iters {
        let input = if i % 10 == 0 {
            // Pure noise, sometimes behind a valid header.
            let n = rng.below(300);
            let mut v: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if i % 20 == 0 {
                v.splice(0..0, b"APEL-cloud-message: v0.4\n".iter().copied());
            }
            v
        } else {
            let pick = rng.below(seeds.len());
            mutate(&mut rng, &seeds[pick])
        };
        let r = check_message("random", &input);
        assert!(r.bad_records <= r.records, "seed {seed} iteration {i}");
        for p in &r.problems {
            let s = p.to_string();
            assert!(
                !s.contains('\n'),
                "finding spans lines: {s:?} (seed {seed} iteration {i})"
            );
        }
        let _ = parse_last_update(&input);
        records += r.records;
        problems += r.problems.len();
    }
    eprintln!(
        "usage_random: {iters} APEL inputs (seed {seed:#x}) in {:.2}s; {records} records, {problems} findings",
        t0.elapsed().as_secs_f64()
    );
    assert!(problems > 0 && records > 0);
}
