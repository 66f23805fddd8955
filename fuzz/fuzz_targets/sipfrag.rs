//! Fuzzes the message/sipfrag status-line parser that reads the NOTIFYs of our transfers
//! (`call::transfer::sipfrag_status`): any body must give a status in 100..700 or nothing,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    if let Some((status, _)) = wavegate_signalling::call::transfer::sipfrag_status(&body) {
        assert!((100..700).contains(&status));
    }
});
