//! Any bytes through the decoder and the whole intake guard: nothing may panic, and whatever
//! is accepted must re-encode to exactly the bytes that came in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qis_edge::packet::guard::decode;
use qis_edge::packet::{verify, ReplayGuard, TrustPolicy};

fuzz_target!(|data: &[u8]| {
    let decoded = decode(data);
    // Verify at the issue time of what decodes, so time checks do not hide deeper paths.
    let now = decoded.as_ref().map(|p| p.body.issued_at).unwrap_or(1_795_000_000);
    let mut guard = ReplayGuard::new(4);
    if let Ok(accepted) = verify(data, now, &mut guard, &TrustPolicy::default()) {
        assert_eq!(accepted.packet().to_bytes().unwrap(), data);
        assert!(verify(data, now, &mut guard, &TrustPolicy::default()).is_err(), "a replay is rejected");
    }
});
