//! A file's bytes into the upload's pipe without passing them through this process: splice(2)
//! moves the file's page-cache pages into the pipe, and the same bytes are read once,
//! separately, for the stream's CRC. One copy of every byte on this side instead of a read's
//! and a write's two (what `tar c | ssh` costs). Where the kernel cannot splice (the output is
//! not a pipe, a filesystem without splice) the bytes already read for the sum are written.
//!
//! The sum is of the bytes read, the stream holds the bytes spliced a moment later: a file
//! rewritten in between makes the far side's `cksum` differ from this side's, and the upload
//! is refused as changed on the way — never accepted with bytes nobody summed.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use rustix::pipe::{SpliceFlags, splice};

use crate::cksum::Hasher;

/// One read for the sum, then one splice of the same range: small enough that the sum reads
/// the bytes from the cache the read left them in.
const PIECE: usize = 256 << 10;

/// Files smaller than this are read whole and gathered with the headers into one write (a
/// splice per small file would cost more system calls than the copy it saves).
pub(super) const SPLICE_FROM: u64 = 64 << 10;

/// Sends files into one pipe; remembers when the kernel refused to splice into it.
pub(super) struct FileSender {
    buf: Vec<u8>,
    splicing: bool,
}

impl FileSender {
    /// A sender that splices until the kernel refuses.
    pub(super) fn new() -> Self {
        FileSender {
            // one byte more than a piece: the last read of a file also sees its end
            buf: vec![0; PIECE + 1],
            splicing: true,
        }
    }

    /// The whole of `file`, which must hold exactly `len` bytes (less than [`SPLICE_FROM`]).
    pub(super) fn read_small(&mut self, file: &File, len: u64) -> io::Result<&[u8]> {
        let n = usize::try_from(len)
            .ok()
            .filter(|&n| n < self.buf.len())
            .ok_or_else(|| io::Error::other("too large to be read whole"))?;
        read_piece(file, &mut self.buf, n, 0, true)?;
        Ok(&self.buf[..n])
    }

    /// Sends the first `len` bytes of `file` into `pipe`, adding them to `sum` and telling
    /// `sent` each piece's bytes once they are in the pipe. Fails when the file does not hold
    /// exactly `len` bytes (it changed size since it was listed).
    pub(super) fn send(
        &mut self,
        file: &File,
        len: u64,
        pipe: &mut File,
        sum: &mut Hasher,
        sent: &mut dyn FnMut(u64),
    ) -> io::Result<()> {
        let mut off = 0u64;
        while off < len {
            let n = usize::try_from(len - off).map_or(PIECE, |left| left.min(PIECE));
            read_piece(file, &mut self.buf, n, off, off + n as u64 == len)?;
            sum.update(&self.buf[..n]);
            let mut done = 0;
            while done < n && self.splicing {
                let mut at = off + done as u64;
                match splice(
                    file,
                    Some(&mut at),
                    &*pipe,
                    None,
                    n - done,
                    SpliceFlags::MORE,
                ) {
                    Ok(0) => return Err(shrank()),
                    Ok(m) => done += m,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                        self.splicing = false;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            pipe.write_all(&self.buf[done..n])?;
            sent(n as u64);
            off += n as u64;
        }
        if len == 0 {
            read_piece(file, &mut self.buf, 0, 0, true)?;
        }
        Ok(())
    }
}

/// Reads `want` bytes of `file` at `off` into `buf`. With `last` the read asks for one byte
/// more, so the file's end is seen in the same read (a regular file returns fewer bytes than
/// asked only at its end): fails when the file ends before, or goes on after, `off + want`.
fn read_piece(file: &File, buf: &mut [u8], want: usize, off: u64, last: bool) -> io::Result<()> {
    let ask = if last { want + 1 } else { want };
    let mut got = 0;
    while got < ask {
        match file.read_at(&mut buf[got..ask], off + got as u64) {
            Ok(0) => break,
            Ok(m) => got += m,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if last && got == want {
            break;
        }
    }
    match got.cmp(&want) {
        std::cmp::Ordering::Less => Err(shrank()),
        std::cmp::Ordering::Greater => Err(io::Error::other("it grew while it was sent")),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

fn shrank() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "it shrank while it was sent")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sum_of(data: &[u8]) -> (u32, u64) {
        let mut h = Hasher::default();
        h.update(data);
        h.finish()
    }

    fn file_with(dir: &std::path::Path, data: &[u8]) -> File {
        let p = dir.join("f");
        std::fs::write(&p, data).unwrap();
        File::open(p).unwrap()
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len)
            .flat_map(|i| (i * 7 + i / 4099).to_le_bytes().into_iter().take(1))
            .collect()
    }

    #[test]
    fn a_file_spliced_into_a_pipe_arrives_whole_and_summed() {
        let dir = tempfile::tempdir().unwrap();
        // more than one piece, not a multiple of a page
        let bytes = data(3 * PIECE + 12_345);
        let f = file_with(dir.path(), &bytes);
        let (mut rx, tx) = std::io::pipe().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            rx.read_to_end(&mut got).unwrap();
            got
        });
        let mut pipe = File::from(std::os::fd::OwnedFd::from(tx));
        let mut sender = FileSender::new();
        let mut sum = Hasher::default();
        let mut told = Vec::new();
        sender
            .send(&f, bytes.len() as u64, &mut pipe, &mut sum, &mut |n| {
                told.push(n);
            })
            .unwrap();
        assert!(sender.splicing, "the kernel spliced into the pipe");
        // progress by pieces, adding up to the file
        assert_eq!(told.len(), 4, "{told:?}");
        assert_eq!(told.iter().sum::<u64>(), bytes.len() as u64);
        drop(pipe);
        assert_eq!(reader.join().unwrap(), bytes);
        assert_eq!(sum.finish(), sum_of(&bytes));
    }

    #[test]
    fn where_the_output_is_no_pipe_the_bytes_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(PIECE + 1);
        let f = file_with(dir.path(), &bytes);
        let out_path = dir.path().join("out");
        let mut out = File::create(&out_path).unwrap();
        let mut sender = FileSender::new();
        let mut sum = Hasher::default();
        sender
            .send(&f, bytes.len() as u64, &mut out, &mut sum, &mut |_| {})
            .unwrap();
        drop(out);
        assert!(!sender.splicing, "splice(2) into a file is refused");
        assert_eq!(std::fs::read(out_path).unwrap(), bytes);
        assert_eq!(sum.finish(), sum_of(&bytes));
    }

    #[test]
    fn a_file_of_another_size_than_listed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(1000);
        let f = file_with(dir.path(), &bytes);
        let mut out = tempfile::tempfile().unwrap();
        let mut sender = FileSender::new();
        let longer = sender.send(&f, 1001, &mut out, &mut Hasher::default(), &mut |_| {});
        assert!(longer.unwrap_err().to_string().contains("shrank"));
        let shorter = sender.send(&f, 999, &mut out, &mut Hasher::default(), &mut |_| {});
        assert!(shorter.unwrap_err().to_string().contains("grew"));
        assert_eq!(sender.read_small(&f, 1000).unwrap(), &bytes[..]);
        let longer = sender.read_small(&f, 1001).map(|_| ());
        assert!(longer.unwrap_err().to_string().contains("shrank"));
        let shorter = sender.read_small(&f, 999).map(|_| ());
        assert!(shorter.unwrap_err().to_string().contains("grew"));
    }
}
