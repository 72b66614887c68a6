//! Decodes arbitrary frame bodies as every message type either side reads from the other. No
//! input may panic; whatever decodes must re-encode and decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitrosync_shared::control::{EnclaveMessage, Request};
use nitrosync_shared::frame::{decode_payload, encode};
use nitrosync_shared::tunnel::{Connect, ConnectReply};

fn round_trip<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(msg) = decode_payload::<T>(data) {
        let bytes = encode(&msg).expect("a decoded message re-encodes");
        let again: T = decode_payload(&bytes[4..]).expect("a re-encoded message decodes");
        assert_eq!(again, msg);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Request>(data);
    round_trip::<EnclaveMessage>(data);
    round_trip::<Connect>(data);
    round_trip::<ConnectReply>(data);
});
