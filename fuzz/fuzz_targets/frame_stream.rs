//! Feeds arbitrary bytes to the frame decoder as a stream arriving in arbitrary pieces, the way
//! a socket delivers them. The decoder must never panic, never ask for more than one maximal
//! frame, and decode the same frames however the stream is split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitrosync_shared::{Decoded, FrameDecoder, MAX_FRAME_LEN, frame};

fn frames(decoder: &FrameDecoder, stream: &[u8], piece: usize) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in stream.chunks(piece.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&buf) {
                Ok(Decoded::Frame { payload, consumed }) => {
                    out.push(payload.to_vec());
                    buf.drain(..consumed);
                }
                Ok(Decoded::Incomplete { needed }) => {
                    assert!(needed <= MAX_FRAME_LEN + frame::LEN_PREFIX);
                    break;
                }
                Err(_) => return out,
            }
        }
    }
    let _ = decoder.finish(&buf);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let decoder = FrameDecoder::with_max(4096);
    let whole = frames(&decoder, stream, stream.len());
    let pieces = frames(&decoder, stream, usize::from(split % 17) + 1);
    assert_eq!(whole, pieces, "framing must not depend on how bytes arrive");
});
