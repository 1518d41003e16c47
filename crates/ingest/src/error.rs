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
}

impl IngestError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            IngestError::Malformed { .. } => ErrorKind::BadRequest,
            IngestError::UnsupportedContentType(_) | IngestError::UnsupportedEncoding(_) => {
                ErrorKind::UnsupportedMediaType
            }
            IngestError::TooLarge { .. } => ErrorKind::PayloadTooLarge,
        }
    }
}
