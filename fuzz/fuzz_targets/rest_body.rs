//! Fuzzes the REST API's request boundary: any bytes as the body of any endpoint are parsed and
//! checked (`rest::types::check_body`, what the handlers do before acting) or refused with a
//! reason, never a panic. The first byte picks the endpoint.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wavegate_signalling::rest::types::{ENDPOINTS, check_body};

fuzz_target!(|data: &[u8]| {
    if let Some((&which, body)) = data.split_first() {
        let _ = check_body(ENDPOINTS[usize::from(which) % ENDPOINTS.len()], body);
    }
});
