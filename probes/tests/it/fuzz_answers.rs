//! Stable-Rust stand-in for the answer-decoding fuzz targets (probes/fuzz,
//! `answer_*` and `nagios_output`): the same target code, fed seeds, their
//! mutations and random bytes, a bounded number of iterations, fixed seed
//! (override FEDPROBE_RANDOM_SEED / FEDPROBE_RANDOM_ITERS).

#[path = "../../fuzz/src/answers.rs"]
mod answers;

use answers::{Client, CLIENTS};

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

/// Pieces a hostile answer likes: JSON syntax, wrong types, odd text.
const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "null",
    "true",
    "-1",
    "1e999",
    "\"\\u0000\"",
    "\"../../x\"",
    "\"%2F\"",
    "\u{202e}",
    "\u{fffd}",
    "\\",
    "[[[[[[[[",
    "{\"id\": {}}",
    "\"next\": \"http://other.invalid/\"",
    "\"href\": \"/v2.1/servers/detail?marker=x\"",
];

fn mutate(r: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=r.below(4) {
        let at = r.below(v.len() + 1);
        match r.below(5) {
            0 if !v.is_empty() => {
                let end = (at + r.below(16)).min(v.len());
                v.drain(at.min(end)..end);
            }
            1 => {
                let p = PIECES[r.below(PIECES.len())].as_bytes();
                v.splice(at..at, p.iter().copied());
            }
            2 => v.insert(at, r.next() as u8),
            3 if !v.is_empty() => v.truncate(at),
            _ => v.insert(at, [0xff, 0xe9, 0xc3, 0x80][r.below(4)]),
        }
    }
    v
}

fn inputs(r: &mut Rng, c: Client, n: usize) -> Vec<Vec<u8>> {
    let seeds = answers::seeds(c);
    (0..n)
        .map(|i| {
            let status = [0u8, 4, 5, 6, 7][r.below(5)];
            let mut v = vec![status];
            match i % 4 {
                0 => v.extend((0..r.below(64)).map(|_| r.next() as u8)),
                _ => {
                    let seed = seeds[r.below(seeds.len())].as_bytes();
                    v.extend(mutate(r, seed))
                }
            }
            v
        })
        .collect()
}

fn settings() -> (u64, usize) {
    let seed = std::env::var("FEDPROBE_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d);
    let iters = std::env::var("FEDPROBE_RANDOM_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    (seed, iters)
}

/// Blocking (the targets run their own runtime), so a plain test.
#[test]
fn every_client_survives_random_answers() {
    let (seed, iters) = settings();
    let t0 = std::time::Instant::now();
    // The answers reach the client: a good one decodes, a 500 does not.
    let good = format!("\0{}", answers::seeds(Client::Nova)[0]);
    assert!(answers::nova_version_ok(good.as_bytes()));
    assert!(!answers::nova_version_ok(b"\x07{}"));
    for c in [Client::OpenNebula, Client::Ec2, Client::Azure, Client::Gce] {
        let good = format!("\0{}", answers::seeds(c)[0]);
        assert!(answers::backend_reached(c, good.as_bytes()), "{c:?}");
        assert!(!answers::backend_reached(c, b"\x07{}"), "{c:?}");
    }
    for c in CLIENTS {
        let mut r = Rng(seed ^ c as u64);
        for s in answers::seeds(c) {
            let mut ok = vec![0u8];
            ok.extend_from_slice(s.as_bytes());
            answers::run(c, &ok);
        }
        for input in inputs(&mut r, c, iters) {
            let shown = String::from_utf8_lossy(&input).into_owned();
            let caught = std::panic::catch_unwind(|| answers::run(c, &input));
            assert!(caught.is_ok(), "{c:?} panicked on {shown:?}");
        }
    }
    eprintln!(
        "fuzz_answers: {} clients x {iters} answers (seed {seed:#x}) in {:.1}s",
        CLIENTS.len(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn nagios_parser_survives_random_output() {
    let (seed, iters) = settings();
    let mut r = Rng(seed);
    let seeds: &[&str] = &[
        "VM_LIFECYCLE OK - fine | auth=0.1s;1;2;0;10 polls=3;;;0\n[OK] VM-01 x\n| total=2s",
        "CRITICAL - x|'a b'=5%;@1:2;~:3 c=1KB",
        "OK",
    ];
    for i in 0..iters * 20 {
        let input = if i % 3 == 0 {
            (0..r.below(80)).map(|_| r.next() as u8).collect()
        } else {
            let seed = seeds[r.below(seeds.len())].as_bytes();
            mutate(&mut r, seed)
        };
        answers::nagios_output(&input);
    }
}
