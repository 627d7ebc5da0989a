//! Reading and writing overlapped with two buffers: one thread fills the next
//! buffer (decoding chunks, reading a TIFF page) while this one drains the
//! previous (encoding, writing), so a conversion runs at the slower of the two
//! instead of their sum, with memory bounded by two buffers.

use std::sync::mpsc;

use crate::error::{NgffError, Result};

/// Runs `fill` on a thread of its own and `drain` on this one, handing two
/// buffers (made by `buffer`) back and forth. `fill` writes the next item into
/// a buffer and returns its tag, or `None` after the last; `drain` consumes
/// each filled buffer in order. The first error of either side stops both.
pub(crate) fn double_buffered<T: Send>(
    buffer: impl Fn() -> Vec<u8>,
    fill: impl FnMut(&mut Vec<u8>) -> Result<Option<T>> + Send,
    mut drain: impl FnMut(T, &[u8]) -> Result<()>,
) -> Result<()> {
    pipelined(buffer, fill, |pull| {
        while let Some((tag, buf)) = pull.next()? {
            drain(tag, &buf)?;
            pull.recycle(buf);
        }
        Ok(())
    })
}

/// The filled buffers of [`pipelined`], in order, for a consumer that pulls them.
pub(crate) struct Pull<T> {
    full: mpsc::Receiver<Result<(T, Vec<u8>)>>,
    empty: mpsc::Sender<Vec<u8>>,
}

impl<T> Pull<T> {
    /// The next filled buffer with its tag; `None` after the last; the filler's error.
    pub(crate) fn next(&self) -> Result<Option<(T, Vec<u8>)>> {
        match self.full.recv() {
            Ok(Ok(item)) => Ok(Some(item)),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Hands a consumed buffer back to be filled again.
    pub(crate) fn recycle(&self, buf: Vec<u8>) {
        let _ = self.empty.send(buf);
    }
}

/// Runs `fill` on a thread of its own while `consume` pulls the filled buffers (two,
/// made by `buffer`, recycled) in order: for a consumer that takes several items in one
/// call, such as a TIFF page written from bands. The first error of either side stops both.
pub(crate) fn pipelined<T: Send, R>(
    buffer: impl Fn() -> Vec<u8>,
    mut fill: impl FnMut(&mut Vec<u8>) -> Result<Option<T>> + Send,
    consume: impl FnOnce(&Pull<T>) -> Result<R>,
) -> Result<R> {
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = mpsc::sync_channel::<Result<(T, Vec<u8>)>>(1);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
        for _ in 0..2 {
            let _ = empty_tx.send(buffer());
        }
        let producer = scope.spawn(move || {
            while let Ok(mut buf) = empty_rx.recv() {
                match fill(&mut buf) {
                    Ok(Some(tag)) => {
                        if full_tx.send(Ok((tag, buf))).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        let pull = Pull {
            full: full_rx,
            empty: empty_tx,
        };
        let result = consume(&pull);
        // a stopped consumer lets a waiting fill end: both of its channels are gone
        drop(pull);
        producer.join().map_err(|_| NgffError::Invalid {
            message: "the reading thread panicked".into(),
        })?;
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_and_the_first_error_of_either_side_stops_both() {
        let mut next = 0u8;
        let mut seen = Vec::new();
        double_buffered(
            || vec![0; 4],
            |buf| {
                next += 1;
                buf.fill(next);
                Ok((next <= 5).then_some(next))
            },
            |tag, buf| {
                assert!(buf.iter().all(|b| *b == tag));
                seen.push(tag);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, [1, 2, 3, 4, 5]);
        let e = double_buffered(
            Vec::new,
            |_| -> Result<Option<()>> {
                Err(NgffError::Invalid {
                    message: "bad page".into(),
                })
            },
            |(), _| Ok(()),
        );
        assert!(e.unwrap_err().to_string().contains("bad page"));
        let mut filled = 0;
        let e = double_buffered(
            Vec::new,
            |_| {
                filled += 1;
                Ok(Some(()))
            },
            |(), _| {
                Err(NgffError::Invalid {
                    message: "disk full".into(),
                })
            },
        );
        assert!(e.unwrap_err().to_string().contains("disk full"));
        assert!(filled <= 3, "the reader stops once the writer has failed");
    }
}
