//! One classification of failures, shared by every layer. Library crates keep their own
//! `thiserror` enums and say which `ErrorKind` each variant is; the API layer maps the kind once to
//! an HTTP status and a gRPC code, so two endpoints never disagree about the same failure.

/// What kind of failure happened, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong; retrying it unchanged will fail again.
    BadRequest,
    /// The request lacks valid credentials, or the tenant header while multitenancy is on.
    Unauthenticated,
    /// The credentials are valid but may not use the tenant the request names.
    PermissionDenied,
    /// The requested object does not exist.
    NotFound,
    /// The body is in a content type this endpoint does not read.
    UnsupportedMediaType,
    /// The body exceeds the configured maximum size.
    PayloadTooLarge,
    /// A per-tenant limit refused the request; a later retry may pass.
    TooManyRequests,
    /// The server cannot serve now (shutting down, storage unreachable).
    Unavailable,
    /// The request ran out of its time budget before an answer could be given.
    DeadlineExceeded,
    /// A bug or an unexpected I/O failure; details go to the log, not to the client.
    Internal,
}

impl ErrorKind {
    /// The HTTP status code this kind answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::DeadlineExceeded => 504,
            ErrorKind::Internal => 500,
        }
    }
}
