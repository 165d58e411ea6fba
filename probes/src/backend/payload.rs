//! The image-upload test payload as a stream: deterministic pseudo-random
//! disk bytes keyed by a seed (the run id), raw or wrapped in an OVA, read
//! chunk by chunk so no image is ever held whole. The same seed regenerates
//! the same bytes, which is how a download is compared on the way in.

use md5::Md5;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::ova;
use crate::http::BodySender;

/// Bytes produced per chunk; a multiple of 8 (the generator's word). Small
/// enough that the chunks queued for the socket stay a few dozen KiB per
/// upload (hyper queues up to 16 of them), large enough for full speed.
pub const CHUNK: usize = 16 * 1024;

/// The fixed seed of [`ova::disk_bytes`].
pub const DEFAULT_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// A seed from a run id (FNV-1a), never zero (xorshift would stay at zero).
pub fn seed_of(run_id: &str) -> u64 {
    let h = run_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    if h == 0 {
        DEFAULT_SEED
    } else {
        h
    }
}

/// xorshift64* over a disk of `len` bytes, readable in pieces of any size.
#[derive(Clone, Debug)]
pub struct Disk {
    state: u64,
    len: u64,
    pos: u64,
    /// The current word and how many of its bytes are used.
    word: [u8; 8],
    used: usize,
}

impl Disk {
    pub fn new(seed: u64, len: u64) -> Disk {
        Disk {
            state: seed,
            len,
            pos: 0,
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        let mut w = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        // No MBR boot signature (bytes 510-511, in word 63): format
        // inspectors must not take the disk for a partitioned one.
        if self.len >= 512 && self.pos == 504 && w[6] == 0x55 && w[7] == 0xAA {
            w[7] = 0;
        }
        w
    }

    pub fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    /// Fill `out` with the next bytes; returns how many (0 at the end).
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = (out.len() as u64).min(self.remaining()) as usize;
        let mut i = 0;
        while i < n {
            if self.used == 8 && n - i >= 8 {
                // Whole words straight into the output.
                let w = self.next_word();
                out[i..i + 8].copy_from_slice(&w);
                self.pos += 8;
                i += 8;
                continue;
            }
            if self.used == 8 {
                self.word = self.next_word();
                self.used = 0;
            }
            let take = (8 - self.used).min(n - i);
            out[i..i + take].copy_from_slice(&self.word[self.used..self.used + take]);
            self.used += take;
            self.pos += take as u64;
            i += take;
        }
        n
    }
}

/// One piece of the payload: literal bytes (tar headers, the OVF, padding)
/// or a stretch of generated disk.
#[derive(Clone, Debug)]
enum Part {
    Bytes(Vec<u8>, usize),
    Disk(Disk),
}

/// A whole payload (raw disk, or OVA: OVF member, disk member, end blocks)
/// read front to back.
#[derive(Clone, Debug)]
pub struct Payload {
    parts: Vec<Part>,
    len: u64,
}

impl Payload {
    /// The raw disk itself.
    pub fn raw(seed: u64, disk_len: u64) -> Payload {
        Payload {
            parts: vec![Part::Disk(Disk::new(seed, disk_len))],
            len: disk_len,
        }
    }

    /// An OVA (ustar) holding the OVF descriptor and the disk.
    pub fn ova(seed: u64, disk_len: u64) -> Payload {
        let ovf = ova::ovf_descriptor(disk_len);
        let mut head = ova::tar_header(ova::OVF_NAME, ovf.len() as u64).to_vec();
        head.extend_from_slice(ovf.as_bytes());
        head.resize(head.len() + ova::padding(ovf.len() as u64), 0);
        head.extend_from_slice(&ova::tar_header(ova::DISK_NAME, disk_len));
        let mut tail = vec![0u8; ova::padding(disk_len)];
        tail.extend_from_slice(&[0u8; 1024]);
        let len = (head.len() + tail.len()) as u64 + disk_len;
        Payload {
            parts: vec![
                Part::Bytes(head, 0),
                Part::Disk(Disk::new(seed, disk_len)),
                Part::Bytes(tail, 0),
            ],
            len,
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fill `out` with the next bytes; returns how many (0 at the end).
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for part in &mut self.parts {
            if n == out.len() {
                break;
            }
            n += match part {
                Part::Bytes(b, at) => {
                    let take = (b.len() - *at).min(out.len() - n);
                    out[n..n + take].copy_from_slice(&b[*at..*at + take]);
                    *at += take;
                    take
                }
                Part::Disk(d) => d.read(&mut out[n..]),
            };
        }
        n
    }
}

impl Payload {
    /// Generate the payload into `tx` chunk by chunk, each chunk shown to
    /// `seen` first (a digest on the way out). False if the request ended
    /// before all of it was taken.
    pub async fn send(mut self, tx: BodySender, mut seen: impl FnMut(&[u8]) + Send) -> bool {
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let n = self.read(&mut chunk);
            if n == 0 {
                return true;
            }
            chunk.truncate(n);
            seen(&chunk);
            if !tx.send(chunk.into()).await {
                return false;
            }
        }
    }
}

/// Digests of a stream as it is sent: what Glance reports by default
/// (`checksum` is MD5, `os_hash_algo` sha512). A site configured with
/// another SHA-2 gets it from [`digest_of`] afterwards, so every upload does
/// not pay for four digests.
#[derive(Clone, Default)]
pub struct Hashes {
    md5: Md5,
    sha512: Sha512,
}

/// Finished digests, lower-case hex.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digests {
    pub md5: String,
    pub sha512: String,
}

impl Hashes {
    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.sha512.update(data);
    }

    pub fn finish(self) -> Digests {
        Digests {
            md5: format!("{:x}", self.md5.finalize()),
            sha512: format!("{:x}", self.sha512.finalize()),
        }
    }
}

impl Digests {
    pub fn of(data: &[u8]) -> Digests {
        let mut h = Hashes::default();
        h.update(data);
        h.finish()
    }

    /// The digest for a Glance `os_hash_algo` name, if computed on the way out.
    pub fn get(&self, algo: &str) -> Option<&str> {
        match algo.to_ascii_lowercase().as_str() {
            "sha512" => Some(&self.sha512),
            "md5" => Some(&self.md5),
            _ => None,
        }
    }
}

/// The digest named by a Glance `os_hash_algo` of `payload` regenerated from
/// its start: one more pass over the bytes, for the algorithms not computed
/// while sending. `None` for a name outside MD5 and SHA-2.
pub fn digest_of(payload: Payload, algo: &str) -> Option<String> {
    fn run<D: Digest>(mut p: Payload) -> String {
        let mut d = D::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = p.read(&mut buf);
            if n == 0 {
                break;
            }
            d.update(&buf[..n]);
        }
        d.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
    Some(match algo.to_ascii_lowercase().as_str() {
        "md5" => run::<Md5>(payload),
        "sha256" => run::<Sha256>(payload),
        "sha384" => run::<Sha384>(payload),
        "sha512" => run::<Sha512>(payload),
        _ => return None,
    })
}

/// Compares a download, piece by piece as it arrives, with the payload
/// regenerated from the same seed. Holds one chunk of scratch space.
pub struct Compare {
    expected: Payload,
    scratch: Vec<u8>,
    got: u64,
    first_difference: Option<u64>,
}

impl Compare {
    pub fn new(expected: Payload) -> Compare {
        Compare {
            expected,
            scratch: Vec::new(),
            got: 0,
            first_difference: None,
        }
    }

    /// Feed the next received bytes. False once reading on is pointless:
    /// more bytes than were sent have come.
    pub fn feed(&mut self, data: &[u8]) -> bool {
        for piece in data.chunks(CHUNK) {
            self.scratch.resize(piece.len(), 0);
            let n = self.expected.read(&mut self.scratch);
            if self.first_difference.is_none() {
                let same = piece[..n] == self.scratch[..n];
                if !same || n < piece.len() {
                    let at = piece
                        .iter()
                        .zip(&self.scratch[..n])
                        .position(|(a, b)| a != b)
                        .unwrap_or(n);
                    self.first_difference = Some(self.got + at as u64);
                }
            }
            self.got += piece.len() as u64;
        }
        self.got <= self.expected.len()
    }

    /// Bytes received.
    pub fn received(&self) -> u64 {
        self.got
    }

    /// Where the download first differs from what was sent, counting a
    /// short download as differing at its end.
    pub fn first_difference(&self) -> Option<u64> {
        match self.first_difference {
            Some(at) => Some(at),
            None if self.got != self.expected.len() => Some(self.got.min(self.expected.len())),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut p: Payload, piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; piece];
        loop {
            let n = p.read(&mut buf);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn any_piece_size_gives_the_same_bytes() {
        let whole = read_all(Payload::raw(7, 10_001), 1 << 20);
        assert_eq!(whole.len(), 10_001);
        for piece in [1, 3, 8, 13, 512, 4099] {
            assert_eq!(read_all(Payload::raw(7, 10_001), piece), whole, "{piece}");
        }
        assert_ne!(read_all(Payload::raw(8, 10_001), 4096), whole);
    }

    #[test]
    fn the_default_seed_is_disk_bytes() {
        assert_eq!(
            read_all(Payload::raw(DEFAULT_SEED, 5000), 777),
            ova::disk_bytes(5000)
        );
    }

    #[test]
    fn the_streamed_ova_is_the_built_one() {
        let disk = ova::disk_bytes(3000);
        let p = Payload::ova(DEFAULT_SEED, 3000);
        assert_eq!(p.len(), ova::ova(&disk).len() as u64);
        assert_eq!(read_all(p, 999), ova::ova(&disk));
    }

    #[test]
    fn no_boot_signature_whatever_the_seed() {
        for seed in 1..3000u64 {
            let d = read_all(Payload::raw(seed, 512), 5);
            assert!(!(d[510] == 0x55 && d[511] == 0xAA), "seed {seed}");
        }
    }

    #[test]
    fn compare_finds_the_first_difference() {
        let data = read_all(Payload::raw(3, 200_000), 4096);
        let mut c = Compare::new(Payload::raw(3, 200_000));
        for piece in data.chunks(1000) {
            assert!(c.feed(piece));
        }
        assert_eq!(c.first_difference(), None);
        assert_eq!(c.received(), 200_000);

        let mut bad = data.clone();
        bad[150_001] ^= 1;
        let mut c = Compare::new(Payload::raw(3, 200_000));
        for piece in bad.chunks(70_000) {
            c.feed(piece);
        }
        assert_eq!(c.first_difference(), Some(150_001));

        let mut c = Compare::new(Payload::raw(3, 200_000));
        c.feed(&data[..1234]);
        assert_eq!(c.first_difference(), Some(1234));
        let mut c = Compare::new(Payload::raw(3, 10));
        assert!(!c.feed(&[0u8; 11]));
    }

    #[test]
    fn digests_match_the_one_shot_ones() {
        let data = read_all(Payload::raw(9, 100_000), 4096);
        let mut h = Hashes::default();
        for piece in data.chunks(333) {
            h.update(piece);
        }
        let d = h.finish();
        assert_eq!(d, Digests::of(&data));
        assert_eq!(d.md5, format!("{:x}", Md5::digest(&data)));
        assert_eq!(d.get("SHA512"), Some(d.sha512.as_str()));
        assert_eq!(d.get("blake2"), None);
        // the algorithms not computed on the way out, from the regenerated payload
        assert_eq!(d.get("sha256"), None);
        let p = Payload::raw(9, 100_000);
        assert_eq!(
            digest_of(p.clone(), "SHA256"),
            Some(format!("{:x}", Sha256::digest(&data)))
        );
        assert_eq!(
            digest_of(p.clone(), "sha384"),
            Some(format!("{:x}", Sha384::digest(&data)))
        );
        assert_eq!(
            digest_of(p.clone(), "sha512").as_deref(),
            Some(d.sha512.as_str())
        );
        assert_eq!(digest_of(p, "blake2"), None);
    }
}
