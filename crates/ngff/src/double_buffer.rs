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
    mut fill: impl FnMut(&mut Vec<u8>) -> Result<Option<T>> + Send,
    mut drain: impl FnMut(T, &[u8]) -> Result<()>,
) -> Result<()> {
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
        let mut result = Ok(());
        for filled in &full_rx {
            match filled.and_then(|(tag, buf)| drain(tag, &buf).map(|()| buf)) {
                Ok(buf) => {
                    let _ = empty_tx.send(buf);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // a stopped drain lets a waiting fill end: both of its channels are gone
        drop(empty_tx);
        drop(full_rx);
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
