//! OTLP request bodies: the input as protobuf and as JSON (`decode_otlp_protobuf`,
//! `decode_otlp_json`), each decoded request validated and split
//! (`andante_fuzz::ingest_checks`); and the input as a gzip body (`decompress_body`), whose
//! inflated bytes are decoded the same way, plus a round trip: the input gzipped by flate2
//! inflates back to itself. Every protobuf body is also split on its raw bytes
//! (`split_protobuf`) and held to the decoding path (`check_raw_split`).

#![no_main]

use std::io::Write;

use andante_fuzz::ingest_checks::{check_raw_split, check_request};
use andante_ingest::{decode_otlp_json, decode_otlp_protobuf, decompress_body, Encoding};
use libfuzzer_sys::fuzz_target;

/// The inflated-size cap used here (the server's default is larger; small keeps runs fast).
const LIMIT_BYTES: usize = 1 << 20;

fn decode_all(body: &[u8]) {
    check_raw_split(body);
    if let Ok(request) = decode_otlp_protobuf(body) {
        check_request(request);
    }
    match decode_otlp_json(body) {
        Ok(request) => check_request(request),
        Err(error) => {
            std::hint::black_box((error.to_string(), error.kind()));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    decode_all(data);
    match decompress_body(data, Encoding::Gzip, LIMIT_BYTES) {
        Ok(inflated) => {
            assert!(inflated.len() <= LIMIT_BYTES, "inflated past the limit");
            decode_all(&inflated);
        }
        Err(error) => {
            std::hint::black_box(error.to_string());
        }
    }
    let identity = decompress_body(data, Encoding::Identity, LIMIT_BYTES);
    assert_eq!(identity.ok().as_deref(), (data.len() <= LIMIT_BYTES).then_some(data));
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if encoder.write_all(data).is_ok() {
        if let Ok(compressed) = encoder.finish() {
            let inflated = decompress_body(&compressed, Encoding::Gzip, LIMIT_BYTES);
            if compressed.len() <= LIMIT_BYTES && data.len() <= LIMIT_BYTES {
                assert_eq!(inflated.ok().as_deref(), Some(data), "gzip round trip");
            }
        }
    }
});
