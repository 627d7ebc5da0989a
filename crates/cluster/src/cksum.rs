//! POSIX `cksum` (CRC-32/CKSUM over the data and its length): the one file
//! checksum every cluster has without installing anything, so transfers are
//! verified with `find … -exec cksum {} +` on the far side and the same sum
//! computed here.

use std::io::Read;
use std::path::Path;

use crc_fast::{CrcAlgorithm, Digest};

use crate::error::{ClusterError, Result};

/// An incremental `cksum`: CRC-32/CKSUM folded with carry-less multiplication where the CPU
/// has it (about 9 GB/s here against 2 GB/s table-driven: the upload sums every byte it
/// sends on the thread that writes the stream).
pub struct Hasher {
    digest: Digest,
    len: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            digest: Digest::new(CrcAlgorithm::Crc32Cksum),
            len: 0,
        }
    }
}

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.digest.update(data);
        self.len += data.len() as u64;
    }

    /// The sum and the length.
    pub fn finish(self) -> (u32, u64) {
        (finish(self.digest, self.len), self.len)
    }
}

/// A reader that sums what passes through it.
pub struct SummingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> SummingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        SummingReader {
            inner,
            hasher: Hasher::default(),
        }
    }

    /// The sum and length of what was read.
    pub fn finish(self) -> (u32, u64) {
        self.hasher.finish()
    }
}

impl<R: Read> Read for SummingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// `cksum` of a byte string.
pub fn of_bytes(data: &[u8]) -> u32 {
    let mut h = Hasher::default();
    h.update(data);
    h.finish().0
}

/// POSIX appends the length, least significant byte first, without its leading zero bytes.
fn finish(mut d: Digest, mut len: u64) -> u32 {
    while len > 0 {
        d.update(&[(len & 0xff) as u8]);
        len >>= 8;
    }
    // a 32-bit CRC in the low half of the u64
    let [a, b, c, e, ..] = d.finalize().to_le_bytes();
    u32::from_le_bytes([a, b, c, e])
}

/// `cksum` and size of a file.
pub fn of_file(path: &Path) -> Result<(u32, u64)> {
    let f = std::fs::File::open(path).map_err(|e| ClusterError::io(path, e))?;
    let mut r = SummingReader::new(f);
    std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| ClusterError::io(path, e))?;
    Ok(r.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_system_cksum() {
        // values printed by GNU coreutils `cksum` (POSIX algorithm)
        assert_eq!(of_bytes(b""), 4_294_967_295);
        assert_eq!(of_bytes(b"hello\n"), 3_015_617_425);
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&f, &data).unwrap();
        let out = std::process::Command::new("cksum")
            .arg(&f)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut it = text.split_whitespace();
        let sum: u32 = it.next().unwrap().parse().unwrap();
        let size: u64 = it.next().unwrap().parse().unwrap();
        assert_eq!(of_file(&f).unwrap(), (sum, size));
    }

    #[test]
    fn the_sum_does_not_depend_on_how_the_bytes_are_split() {
        // the folding works on blocks of 16 to 256 bytes: odd splits must give the same sum
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let whole = of_bytes(&data);
        for step in [1, 3, 63, 64, 65, 255, 4097] {
            let mut h = Hasher::default();
            for part in data.chunks(step) {
                h.update(part);
            }
            assert_eq!(
                h.finish(),
                (whole, data.len() as u64),
                "split every {step} bytes"
            );
        }
    }
}
