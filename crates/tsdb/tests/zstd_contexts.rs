//! The vendored zstd-safe keeps dropped contexts for reuse (`vendor/zstd-safe/ANDANTE.md`);
//! a reused context must behave as a new one: no dictionary, no level, no half-done frame
//! carried over from its previous user.

use std::io::Write;

fn sample(seed: u8) -> Vec<u8> {
    (0..64 * 1024u32)
        .map(|n| (n % 251) as u8 ^ seed ^ (n / 4096) as u8)
        .collect()
}

#[test]
fn a_reused_context_carries_nothing_over() {
    let data = sample(3);
    // A raw-content dictionary the data starts with, so the frame depends on it.
    let dictionary = data[..4096].to_vec();
    for _ in 0..8 {
        // Users that leave state behind: a dictionary and a high level on both sides, and a
        // streaming frame abandoned half-way.
        let mut with_dictionary = zstd::bulk::Compressor::with_dictionary(19, &dictionary).unwrap();
        let framed = with_dictionary.compress(&data).unwrap();
        assert!(zstd::bulk::decompress(&framed, data.len()).is_err());
        let mut reader = zstd::bulk::Decompressor::with_dictionary(&dictionary).unwrap();
        assert_eq!(reader.decompress(&framed, data.len()).unwrap(), data);
        let mut abandoned = zstd::stream::write::Encoder::new(Vec::new(), 5).unwrap();
        abandoned.write_all(&data[..1000]).unwrap();
        drop((with_dictionary, reader, abandoned));

        // The next users get kept contexts: plain frames, readable without the dictionary,
        // and a frame with a dictionary is refused without it.
        let plain = zstd::bulk::Compressor::new(1)
            .unwrap()
            .compress(&data)
            .unwrap();
        let mut fresh = zstd::bulk::Decompressor::new().unwrap();
        assert_eq!(fresh.decompress(&plain, data.len()).unwrap(), data);
        assert!(fresh.decompress(&framed, data.len()).is_err());
        assert_eq!(zstd::decode_all(&plain[..]).unwrap(), data);
        // The level is the new user's: level 1 gives the one-shot level-1 frame.
        assert_eq!(plain, zstd::bulk::compress(&data, 1).unwrap());
    }
}
