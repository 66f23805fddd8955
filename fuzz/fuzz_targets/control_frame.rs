//! Fuzzes the control-frame decoders: whatever bytes a broken or hostile peer puts in a ring,
//! decoding returns an error or a value, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wavegate_shared::protocol::{decode_command, decode_incoming, decode_reply, Incoming, Offer, Query};

fuzz_target!(|data: &[u8]| {
    let _ = decode_command(data);
    if let Ok(Incoming::Reply { kind, body, .. }) = decode_incoming(data) {
        let _ = decode_reply::<Offer>(kind, body);
        let _ = decode_reply::<Query>(kind, body);
    }
});
