//! Zipkin v2 JSON bodies: `decode_zipkin_json`, then the decoded request validated and split
//! (`andante_fuzz::ingest_checks`).

#![no_main]

use andante_fuzz::ingest_checks::check_request;
use andante_ingest::decode_zipkin_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode_zipkin_json(data) {
        Ok(request) => check_request(request),
        Err(error) => {
            std::hint::black_box((error.to_string(), error.kind()));
        }
    }
});
