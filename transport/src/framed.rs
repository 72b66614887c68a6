//! Async frame reading and writing over any byte stream, on top of the sans-io decoder.

use crate::TransportError;
use bytes::{Buf, BytesMut};
use nitrosync_shared::frame::{self, LEN_PREFIX};
use nitrosync_shared::{Decoded, FrameDecoder};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads a sequence of frames from a stream, buffering what arrives past the current frame.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps `inner` with the default 1 MiB maximum.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: BytesMut::with_capacity(8 * 1024),
            decoder: FrameDecoder::default(),
        }
    }

    /// The next message, or `None` at a clean end of stream (between frames).
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, TransportError> {
        loop {
            match self.decoder.decode(&self.buf)? {
                Decoded::Frame { payload, consumed } => {
                    let msg = frame::decode_payload(payload)?;
                    self.buf.advance(consumed);
                    return Ok(Some(msg));
                }
                Decoded::Incomplete { needed } => {
                    // `needed` is bounded by the decoder's maximum, so this never reserves
                    // more than one maximal frame.
                    self.buf.reserve(needed.saturating_sub(self.buf.len()));
                    let n = self
                        .inner
                        .read_buf(&mut self.buf)
                        .await
                        .map_err(|e| TransportError::io("peer", e))?;
                    if n == 0 {
                        self.decoder.finish(&self.buf)?;
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Reads exactly one frame and nothing past it, for a preface after which the stream carries
/// raw bytes. `None` means the peer closed before sending anything.
pub async fn read_one_frame<R, T>(r: &mut R) -> Result<Option<T>, TransportError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let decoder = FrameDecoder::default();
    let mut prefix = [0u8; LEN_PREFIX];
    let mut have = 0;
    while have < LEN_PREFIX {
        let n = r
            .read(&mut prefix[have..])
            .await
            .map_err(|e| TransportError::io("peer", e))?;
        if n == 0 {
            decoder.finish(&prefix[..have])?;
            return Ok(None);
        }
        have += n;
    }
    let needed = match decoder.decode(&prefix)? {
        Decoded::Incomplete { needed } => needed,
        // A prefix alone can never hold a whole frame: the decoder rejects empty frames.
        Decoded::Frame { .. } => return Err(nitrosync_shared::FrameError::Empty.into()),
    };
    let mut body = vec![0u8; needed - LEN_PREFIX];
    if let Err(e) = r.read_exact(&mut body).await {
        return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            nitrosync_shared::FrameError::Truncated {
                expected: needed,
                have: LEN_PREFIX,
            }
            .into()
        } else {
            TransportError::io("peer", e)
        });
    }
    Ok(Some(frame::decode_payload(&body)?))
}

/// Writes one message as a frame and flushes it.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), TransportError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = frame::encode(msg)?;
    w.write_all(&bytes)
        .await
        .map_err(|e| TransportError::io("peer", e))?;
    w.flush().await.map_err(|e| TransportError::io("peer", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitrosync_shared::FrameError;

    #[tokio::test]
    async fn reader_yields_messages_then_clean_eof() {
        let mut bytes = frame::encode(&"a").unwrap();
        frame::encode_into(&"b", &mut bytes).unwrap();
        let mut r = FrameReader::new(&bytes[..]);
        assert_eq!(r.next::<String>().await.unwrap().as_deref(), Some("a"));
        assert_eq!(r.next::<String>().await.unwrap().as_deref(), Some("b"));
        assert!(r.next::<String>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn reader_reports_truncation_and_oversize() {
        let bytes = frame::encode(&"hello").unwrap();
        let mut r = FrameReader::new(&bytes[..bytes.len() - 1]);
        assert!(matches!(
            r.next::<String>().await,
            Err(TransportError::Frame(FrameError::Truncated { .. }))
        ));
        let huge = u32::MAX.to_be_bytes();
        let mut r = FrameReader::new(&huge[..]);
        assert!(matches!(
            r.next::<String>().await,
            Err(TransportError::Frame(FrameError::TooLarge { .. }))
        ));
    }

    #[tokio::test]
    async fn one_frame_reads_nothing_past_it() {
        let mut bytes = frame::encode(&"preface").unwrap();
        bytes.extend_from_slice(b"raw tls bytes");
        let mut src = &bytes[..];
        let got: Option<String> = read_one_frame(&mut src).await.unwrap();
        assert_eq!(got.as_deref(), Some("preface"));
        assert_eq!(src, b"raw tls bytes");
        let mut empty: &[u8] = &[];
        assert!(
            read_one_frame::<_, String>(&mut empty)
                .await
                .unwrap()
                .is_none()
        );
        let mut short: &[u8] = &bytes[..2];
        assert!(matches!(
            read_one_frame::<_, String>(&mut short).await,
            Err(TransportError::Frame(FrameError::Truncated { .. }))
        ));
        let cut = frame::encode(&"preface").unwrap();
        let mut short: &[u8] = &cut[..cut.len() - 2];
        assert!(matches!(
            read_one_frame::<_, String>(&mut short).await,
            Err(TransportError::Frame(FrameError::Truncated { .. }))
        ));
    }
}
