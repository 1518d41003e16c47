//! Request-body decompression with a hard output cap, so a small gzip bomb cannot make the
//! server allocate gigabytes before the size limit is checked.

use std::io::Read;

use crate::IngestError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// Reads a `Content-Encoding` header value; absent means identity.
    pub fn from_header(value: Option<&str>) -> Result<Self, IngestError> {
        match value.map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(Encoding::Identity),
            Some(v) if v.is_empty() || v == "identity" => Ok(Encoding::Identity),
            Some(v) if v == "gzip" => Ok(Encoding::Gzip),
            Some(other) => Err(IngestError::UnsupportedEncoding(other)),
        }
    }
}

/// Returns the plain body, refusing anything that is (or inflates to) more than `limit_bytes`.
pub fn decompress_body(
    body: &[u8],
    encoding: Encoding,
    limit_bytes: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, IngestError> {
    if body.len() > limit_bytes {
        return Err(IngestError::TooLarge { limit_bytes });
    }
    match encoding {
        Encoding::Identity => Ok(std::borrow::Cow::Borrowed(body)),
        Encoding::Gzip => {
            let mut inflated = Vec::with_capacity(body.len() * 4);
            let mut reader = flate2::read::GzDecoder::new(body).take(limit_bytes as u64 + 1);
            reader
                .read_to_end(&mut inflated)
                .map_err(|error| IngestError::Malformed {
                    format: "gzip",
                    message: error.to_string(),
                })?;
            if inflated.len() > limit_bytes {
                return Err(IngestError::TooLarge { limit_bytes });
            }
            Ok(std::borrow::Cow::Owned(inflated))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("write to memory");
        encoder.finish().expect("finish gzip")
    }

    #[test]
    fn gzip_bodies_inflate_within_the_limit() {
        let data = vec![7u8; 1000];
        let compressed = gzip(&data);
        let inflated = decompress_body(&compressed, Encoding::Gzip, 2000).expect("inflates");
        assert_eq!(&*inflated, &data[..]);
    }

    #[test]
    fn gzip_bombs_are_refused_by_inflated_size() {
        let data = vec![0u8; 1 << 20];
        let compressed = gzip(&data);
        assert!(compressed.len() < 10_000);
        let refused = decompress_body(&compressed, Encoding::Gzip, 100_000);
        assert!(matches!(
            refused,
            Err(IngestError::TooLarge {
                limit_bytes: 100_000
            })
        ));
    }

    #[test]
    fn garbage_gzip_is_malformed_and_unknown_encodings_are_refused() {
        assert!(matches!(
            decompress_body(b"not gzip", Encoding::Gzip, 100),
            Err(IngestError::Malformed { .. })
        ));
        assert!(matches!(
            Encoding::from_header(Some("br")),
            Err(IngestError::UnsupportedEncoding(_))
        ));
        assert_eq!(
            Encoding::from_header(Some("GZIP")).ok(),
            Some(Encoding::Gzip)
        );
    }
}
