//! Decoding damaged data must end in an error, never a panic. The Parquet and Arrow readers
//! assert on some impossible states that damaged pages produce (fuzz finding 10: a definition
//! level run of length 0 trips an `assert_ne!` in `arrow-buffer`), and a page whose chunk is not
//! checksum-covered (trace-by-ID reads single pages; a rebuilt index has no chunk checksums)
//! reaches the decoder as it is. Every decode of block data therefore runs inside [`decode`] or
//! [`Guarded`], which turn a panic into `BlockError::Corrupt`: the block is quarantined like any
//! other corrupt block and the query answers partially, naming it.
//!
//! While a guarded decode runs on a thread, [`decoding`] says so, so a process-wide panic hook
//! (the fuzz targets install one that aborts) can tell a contained decoder failure from a bug.

use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::BlockError;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether the current thread is inside a guarded decode (for panic hooks).
pub fn decoding() -> bool {
    DEPTH.with(|depth| depth.get() > 0)
}

fn contained<T>(run: impl FnOnce() -> T) -> Result<T, String> {
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(run));
    DEPTH.with(|depth| depth.set(depth.get() - 1));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned())
    })
}

fn corrupt(message: String) -> BlockError {
    BlockError::Corrupt(format!(
        "the Parquet decoder failed on damaged data: {message}"
    ))
}

/// Runs a synchronous decode; a panic inside it becomes `Corrupt`.
pub(crate) fn decode<T>(run: impl FnOnce() -> Result<T, BlockError>) -> Result<T, BlockError> {
    contained(run).unwrap_or_else(|message| Err(corrupt(message)))
}

/// A decoding future whose every poll is guarded like [`decode`]; after a panic it is not
/// polled again and resolves to `Corrupt`.
pub(crate) struct Guarded<F> {
    inner: Option<Pin<Box<F>>>,
}

impl<F> Guarded<F> {
    pub(crate) fn new(inner: F) -> Guarded<F> {
        Guarded {
            inner: Some(Box::pin(inner)),
        }
    }
}

impl<T, F: Future<Output = Result<T, BlockError>>> Future for Guarded<F> {
    type Output = Result<T, BlockError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err(corrupt("polled after a failure".to_owned())));
        };
        match contained(|| inner.as_mut().poll(cx)) {
            Ok(poll) => poll,
            Err(message) => {
                self.inner = None;
                Poll::Ready(Err(corrupt(message)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_decode_is_a_corrupt_error() {
        let result: Result<(), BlockError> = decode(|| panic!("slice must not be empty"));
        let Err(BlockError::Corrupt(message)) = result else {
            panic!("expected Corrupt, got {result:?}");
        };
        assert!(message.contains("slice must not be empty"), "{message}");
        assert!(!decoding(), "the guard is left");
        assert_eq!(decode(|| Ok(5)).ok(), Some(5));
    }

    #[tokio::test]
    async fn a_panicking_decode_future_is_a_corrupt_error() {
        let result: Result<(), BlockError> = Guarded::new(async {
            tokio::task::yield_now().await;
            assert!(decoding(), "inside the guard while polled");
            panic!("{}", String::from("damaged page"));
        })
        .await;
        assert!(
            matches!(&result, Err(BlockError::Corrupt(message)) if message.contains("damaged page")),
            "{result:?}"
        );
        assert!(!decoding());
    }
}
