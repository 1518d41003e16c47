//! A live-store's answer (live-traces v1) as a querier reads it: `decode_live_traces` either
//! refuses the bytes or yields traces that encode back to exactly the same bytes.

#![no_main]

use andante_live::wire::{decode_live_traces, encode_live_traces};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode_live_traces(bytes::Bytes::copy_from_slice(data)) {
        Ok(traces) => assert_eq!(encode_live_traces(&traces), data),
        Err(error) => {
            std::hint::black_box(error);
        }
    }
});
