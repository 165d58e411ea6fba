//! Finished runs kept on disk while their site still runs. A site's quick
//! probes end seconds before the ones that boot servers, so over a thousand
//! sites nearly every result of the run would wait in memory for its site's
//! last one (about 7 KB each: steps, evidence, perfdata). They wait in an
//! unlinked temporary file instead and are read back when the site is
//! reported. JSON because the model is serde's already and its optional
//! fields are skipped when empty (a format without field names cannot).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where a shelved value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    offset: u64,
    len: u64,
}

/// An append-only file of serialized values, read back by ticket.
pub struct Shelf {
    /// Made at the first put, in the temporary directory.
    file: Option<File>,
    /// No file could be made: nothing is shelved (values stay in memory).
    no_file: bool,
    at: u64,
}

impl Shelf {
    pub fn new() -> Shelf {
        Shelf {
            file: None,
            no_file: false,
            at: 0,
        }
    }

    /// Write `v`; `None` if it could not be (keep it in memory then).
    pub fn put<T: Serialize>(&mut self, v: &T) -> Option<Ticket> {
        if self.file.is_none() && !self.no_file {
            self.file = tempfile::tempfile().ok();
            self.no_file = self.file.is_none();
        }
        let file = self.file.as_mut()?;
        let bytes = serde_json::to_vec(v).ok()?;
        // After a failed write the next put writes over what it left.
        file.seek(SeekFrom::Start(self.at)).ok()?;
        file.write_all(&bytes).ok()?;
        let t = Ticket {
            offset: self.at,
            len: bytes.len() as u64,
        };
        self.at += t.len;
        Some(t)
    }

    /// Read back what `t` names.
    pub fn take<T: DeserializeOwned>(&mut self, t: Ticket) -> Result<T, String> {
        let file = self
            .file
            .as_mut()
            .ok_or("the harness's temporary file is gone")?;
        let mut bytes = Vec::with_capacity(t.len as usize);
        file.seek(SeekFrom::Start(t.offset))
            .and_then(|_| file.take(t.len).read_to_end(&mut bytes))
            .map_err(|e| format!("reading the harness's temporary file: {e}"))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("the harness's temporary file holds no result there: {e}"))
    }
}

impl Default for Shelf {
    fn default() -> Self {
        Shelf::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_as_they_went_in_whatever_the_order() {
        let mut shelf = Shelf::new();
        let values: Vec<(String, f64, Option<u32>)> = (0..50)
            .map(|i| {
                (
                    format!("v{i} \"quoted\" é"),
                    1.0 / (i as f64 + 3.0),
                    (i % 2 == 0).then_some(i),
                )
            })
            .collect();
        let tickets: Vec<Ticket> = values.iter().map(|v| shelf.put(v).unwrap()).collect();
        for (v, t) in values.iter().zip(&tickets).rev() {
            let back: (String, f64, Option<u32>) = shelf.take(*t).unwrap();
            assert_eq!(&back, v);
        }
    }

    #[test]
    fn every_float_comes_back_to_the_bit() {
        let mut shelf = Shelf::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            let t = shelf.put(&f).unwrap();
            assert_eq!(shelf.take::<f64>(t).unwrap().to_bits(), f.to_bits());
        }
    }

    #[test]
    fn a_shelf_without_a_file_keeps_nothing() {
        let mut shelf = Shelf {
            file: None,
            no_file: true,
            at: 0,
        };
        assert_eq!(shelf.put(&1u8), None);
        let e = shelf.take::<u8>(Ticket { offset: 0, len: 1 }).unwrap_err();
        assert!(e.contains("temporary file"), "{e}");
    }
}
