//! Span-topic records (record v2) as a block-builder reads them from the log: `decode` either
//! refuses the bytes or yields fragments that encode back to exactly the same bytes, so nothing
//! a distributor wrote is changed on the way through.

#![no_main]

use andante_log::record::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(bytes::Bytes::copy_from_slice(data)) {
        Ok((tenant, fragments)) => assert_eq!(encode(&tenant, &fragments), data),
        Err(error) => {
            std::hint::black_box(error.to_string());
        }
    }
});
