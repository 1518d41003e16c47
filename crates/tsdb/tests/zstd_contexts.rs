//! The vendored zstd-safe keeps dropped contexts for reuse (`vendor/zstd-safe/ANDANTE.md`);
//! a reused context must behave as a new one: no dictionary, no level, no half-done frame
//! carried over from its previous user.

use std::io::Write;

use zstd::zstd_safe::{CCtx, CParameter, DCtx};

fn sample(len: u32) -> Vec<u8> {
    (0..len)
        .map(|n| (n % 251) as u8 ^ 3 ^ (n / 512) as u8)
        .collect()
}

#[test]
fn a_reused_context_carries_nothing_over() {
    // Small enough that the contexts stay under the size bound (256 KB) and are kept.
    let data = sample(2048);
    // A raw-content dictionary the data starts with, so the frame depends on it.
    let dictionary = data[..512].to_vec();
    for _ in 0..8 {
        // Users that leave state behind: a dictionary and level 9 on both sides, and a
        // streaming frame abandoned half-way.
        let mut compressor = CCtx::create();
        compressor.load_dictionary(&dictionary).unwrap();
        compressor
            .set_parameter(CParameter::CompressionLevel(9))
            .unwrap();
        let mut framed = Vec::with_capacity(4096);
        compressor.compress2(&mut framed, &data).unwrap();
        assert!(zstd::bulk::decompress(&framed, data.len()).is_err());
        assert!(
            compressor.sizeof() <= 256 << 10,
            "the context would not be kept: {} bytes",
            compressor.sizeof()
        );
        let mut reader = DCtx::create();
        reader.load_dictionary(&dictionary).unwrap();
        let mut back = Vec::with_capacity(data.len());
        reader.decompress(&mut back, &framed).unwrap();
        assert_eq!(back, data);
        assert!(
            reader.sizeof() <= 256 << 10,
            "the context would not be kept"
        );
        let mut abandoned = zstd::stream::write::Encoder::new(Vec::new(), 5).unwrap();
        abandoned.write_all(&data[..1000]).unwrap();
        drop((compressor, reader, abandoned));

        // The next users get the kept contexts (the list is last in, first out). They are
        // taken straight from zstd-safe, as the `zstd` wrappers would reload a dictionary and a
        // level themselves and so hide stale state: a new context compresses at zstd's default
        // level without a dictionary, and cannot read a frame that needs the dictionary.
        let mut next = CCtx::create();
        let mut plain = Vec::with_capacity(4096);
        next.compress2(&mut plain, &data).unwrap();
        drop(next);
        assert_eq!(
            plain,
            zstd::bulk::compress(&data, zstd::DEFAULT_COMPRESSION_LEVEL).unwrap()
        );
        let mut next_reader = DCtx::create();
        let mut out = Vec::with_capacity(data.len());
        assert!(next_reader.decompress(&mut out, &framed).is_err());
        out.clear();
        next_reader.decompress(&mut out, &plain).unwrap();
        assert_eq!(out, data);
    }
}
