//! Errors of the ingest path, each with the `ErrorKind` that decides its status code.

use andante_model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("malformed {format} body: {message}")]
    Malformed {
        format: &'static str,
        message: String,
    },
    #[error("unsupported content type `{0}`: expected application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding `{0}`: expected gzip or identity")]
    UnsupportedEncoding(String),
    #[error("request body exceeds the limit of {limit_bytes} bytes (`server.max-request-bytes`)")]
    TooLarge { limit_bytes: usize },
    #[error(
        "request would take {split_bytes} bytes once split by trace (each trace keeps a copy of \
         its resource and scope), over the limit of {limit_bytes} bytes ({factor}× the \
         request's {body_bytes} bytes, at least {floor} bytes): send spans of many traces that \
         share a large resource in smaller batches",
        factor = crate::split::SPLIT_BYTES_FACTOR,
        floor = crate::split::SPLIT_BYTES_FLOOR
    )]
    SplitTooLarge {
        split_bytes: u64,
        body_bytes: usize,
        limit_bytes: u64,
    },
}

impl IngestError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            IngestError::Malformed { .. } => ErrorKind::BadRequest,
            IngestError::UnsupportedContentType(_) | IngestError::UnsupportedEncoding(_) => {
                ErrorKind::UnsupportedMediaType
            }
            IngestError::TooLarge { .. } | IngestError::SplitTooLarge { .. } => {
                ErrorKind::PayloadTooLarge
            }
        }
    }
}
