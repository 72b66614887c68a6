//! The frame format: a `u32` big-endian length, then that many bytes of CBOR.
//!
//! The decoder is sans-io. [`FrameDecoder::decode`] looks at whatever bytes have arrived and says
//! whether they hold a whole frame, need more, or can never become a valid frame. The length is
//! checked against the maximum before the caller allocates anything for the body, and
//! [`FrameDecoder::finish`] tells a clean end of stream from one that cut a frame short.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest frame body either side accepts: 1 MiB.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Bytes in the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Nesting depth allowed inside one CBOR message. Our messages nest a handful of levels; a deep
/// structure is an attack on the decoder's stack, not a message.
const MAX_CBOR_DEPTH: usize = 32;

/// What went wrong with a frame. Every variant except [`FrameError::Encode`] is the peer's fault,
/// and all of them are fatal for the connection: after a bad frame the stream cannot be resynced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more than the maximum. Nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The length the peer announced.
        len: u64,
        /// The maximum this decoder accepts.
        max: usize,
    },
    /// A zero length prefix: CBOR has no empty value, so this cannot be a message.
    #[error("empty frame")]
    Empty,
    /// The stream ended part way through a frame.
    #[error("stream ended inside a frame: have {have} of {expected} bytes")]
    Truncated {
        /// Bytes the frame needed (prefix included).
        expected: usize,
        /// Bytes that had arrived.
        have: usize,
    },
    /// The frame body is not a valid CBOR encoding of the expected message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Our own message could not be encoded (it is too large, or not representable).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// The result of looking at a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole frame is present.
    Frame {
        /// The frame body (CBOR), without the length prefix.
        payload: &'a [u8],
        /// Bytes of the buffer this frame occupies; drop them before decoding the next one.
        consumed: usize,
    },
    /// More bytes are needed. `needed` is the total the frame will occupy once known, else the
    /// prefix length. The caller can reserve this much: it never exceeds the maximum.
    Incomplete {
        /// Total bytes (prefix included) needed before a frame can be decoded.
        needed: usize,
    },
}

/// A stateless frame decoder with a configurable maximum.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self { max: MAX_FRAME_LEN }
    }
}

impl FrameDecoder {
    /// A decoder that rejects frames longer than `max` bytes (capped at [`MAX_FRAME_LEN`]).
    pub fn with_max(max: usize) -> Self {
        Self {
            max: max.min(MAX_FRAME_LEN),
        }
    }

    /// The largest body this decoder accepts.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Looks for one frame at the start of `buf`.
    pub fn decode<'a>(&self, buf: &'a [u8]) -> Result<Decoded<'a>, FrameError> {
        let Some(prefix) = buf.first_chunk::<LEN_PREFIX>() else {
            return Ok(Decoded::Incomplete { needed: LEN_PREFIX });
        };
        let announced = u32::from_be_bytes(*prefix);
        let len = usize::try_from(announced).map_err(|_| FrameError::TooLarge {
            len: u64::from(announced),
            max: self.max,
        })?;
        if len > self.max {
            return Err(FrameError::TooLarge {
                len: u64::from(announced),
                max: self.max,
            });
        }
        if len == 0 {
            return Err(FrameError::Empty);
        }
        let total = LEN_PREFIX + len;
        match buf.get(LEN_PREFIX..total) {
            Some(payload) => Ok(Decoded::Frame {
                payload,
                consumed: total,
            }),
            None => Ok(Decoded::Incomplete { needed: total }),
        }
    }

    /// Called when the stream has ended with `rest` still buffered. An empty buffer is a clean
    /// end; anything else is a frame cut short.
    pub fn finish(&self, rest: &[u8]) -> Result<(), FrameError> {
        if rest.is_empty() {
            return Ok(());
        }
        let expected = match self.decode(rest)? {
            Decoded::Incomplete { needed } => needed,
            // A whole frame still buffered is the caller's bug, but not a truncation: report
            // it as such so it is never mistaken for a clean end.
            Decoded::Frame { consumed, .. } => consumed,
        };
        Err(FrameError::Truncated {
            expected,
            have: rest.len(),
        })
    }
}

/// Encodes `msg` as one frame (prefix and body).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(128);
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Appends `msg` as one frame to `out`. On error `out` is left as it was.
pub fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    if let Err(e) = ciborium::into_writer(msg, &mut *out) {
        out.truncate(start);
        return Err(FrameError::Encode(e.to_string()));
    }
    let body = out.len() - start - LEN_PREFIX;
    let len = match u32::try_from(body) {
        Ok(len) if body <= MAX_FRAME_LEN => len,
        _ => {
            out.truncate(start);
            return Err(FrameError::Encode(format!(
                "message of {body} bytes exceeds the frame maximum of {MAX_FRAME_LEN} bytes"
            )));
        }
    };
    out[start..start + LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Encodes `msg` as a frame body alone (no length prefix): the form a sealed bundle is stored,
/// submitted and carried in, and what [`decode_payload`] reads.
pub fn encode_payload<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = encode(msg)?;
    out.drain(..LEN_PREFIX);
    Ok(out)
}

/// Decodes one frame body into a message. The whole body must be exactly one CBOR value.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let mut reader = payload;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_CBOR_DEPTH)
        .map_err(|e: ciborium::de::Error<std::io::Error>| FrameError::Malformed(e.to_string()))?;
    if !reader.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes after the message",
            reader.len()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32, body: &[u8]) -> Vec<u8> {
        let mut v = len.to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn over_maximum_is_rejected_from_the_prefix_alone() {
        let d = FrameDecoder::default();
        // Only the prefix has arrived: the decoder must refuse before asking for the body.
        let err = d.decode(&u32::MAX.to_be_bytes()).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: u64::from(u32::MAX),
                max: MAX_FRAME_LEN
            }
        );
        let just_over = u32::try_from(MAX_FRAME_LEN + 1).unwrap();
        assert!(matches!(
            d.decode(&just_over.to_be_bytes()),
            Err(FrameError::TooLarge { .. })
        ));
        let at_max = u32::try_from(MAX_FRAME_LEN).unwrap();
        assert_eq!(
            d.decode(&at_max.to_be_bytes()).unwrap(),
            Decoded::Incomplete {
                needed: MAX_FRAME_LEN + 4
            }
        );
    }

    #[test]
    fn configured_maximum_applies() {
        let d = FrameDecoder::with_max(10);
        assert!(matches!(
            d.decode(&frame(11, &[0; 11])),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        ));
        assert!(matches!(
            d.decode(&frame(10, &[0; 10])),
            Ok(Decoded::Frame { .. })
        ));
    }

    #[test]
    fn incomplete_then_whole() {
        let d = FrameDecoder::default();
        let bytes = encode(&"hello").unwrap();
        for cut in 0..bytes.len() {
            let needed = if cut < 4 { 4 } else { bytes.len() };
            assert_eq!(
                d.decode(&bytes[..cut]).unwrap(),
                Decoded::Incomplete { needed }
            );
        }
        let Decoded::Frame { payload, consumed } = d.decode(&bytes).unwrap() else {
            panic!("expected a frame")
        };
        assert_eq!(consumed, bytes.len());
        assert_eq!(decode_payload::<String>(payload).unwrap(), "hello");
    }

    #[test]
    fn clean_eof_differs_from_truncation() {
        let d = FrameDecoder::default();
        assert_eq!(d.finish(&[]), Ok(()));
        let bytes = encode(&42u32).unwrap();
        assert_eq!(
            d.finish(&bytes[..2]),
            Err(FrameError::Truncated {
                expected: 4,
                have: 2
            })
        );
        assert_eq!(
            d.finish(&bytes[..bytes.len() - 1]),
            Err(FrameError::Truncated {
                expected: bytes.len(),
                have: bytes.len() - 1
            })
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(matches!(
            decode_payload::<String>(&[0xff, 0x00, 0x13]),
            Err(FrameError::Malformed(_))
        ));
        // A valid value followed by junk is not one message.
        let mut body = Vec::new();
        ciborium::into_writer(&1u8, &mut body).unwrap();
        body.push(0x00);
        assert!(matches!(
            decode_payload::<u8>(&body),
            Err(FrameError::Malformed(m)) if m.contains("trailing")
        ));
        assert_eq!(
            FrameDecoder::default().decode(&frame(0, &[])),
            Err(FrameError::Empty)
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        // 1000 nested one-element arrays, then a zero.
        let mut body = vec![0x81; 1000];
        body.push(0x00);
        assert!(matches!(
            decode_payload::<ciborium::Value>(&body),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn encode_refuses_oversize_and_leaves_buffer_intact() {
        let big = vec![7u8; MAX_FRAME_LEN + 1];
        let mut out = vec![1, 2, 3];
        let err = encode_into(&serde_bytes_like(&big), &mut out).unwrap_err();
        assert!(matches!(err, FrameError::Encode(_)));
        assert_eq!(out, vec![1, 2, 3]);
    }

    /// A byte string (not an array of integers) for the oversize test.
    fn serde_bytes_like(b: &[u8]) -> ciborium::Value {
        ciborium::Value::Bytes(b.to_vec())
    }
}
