//! The hand-off from the push path to the generator: a bounded queue drained by one dedicated
//! thread. `offer` never blocks a push; when the generator falls behind, the batch is dropped
//! and its spans counted (`andante_generator_spans_discarded{reason="queue_full"}`) — the spans
//! themselves are stored either way, only their metrics are missing.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use andante_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::projected::{decode_projected, Projection};
use andante_model::TenantId;
use prost::Message;

use crate::Generator;

/// A push's trace fragments, each an encoded `ExportTraceServiceRequest`: they are decoded on
/// the generator thread, so the push path never builds the spans for it.
type Work = (TenantId, Vec<bytes::Bytes>);

/// Another consumer of acknowledged spans (continuous insights) that rides the same queue
/// instead of a second copy of each batch: `observe` is called on the generator thread with
/// every batch after the generator saw it. When the generator is off, the batch is decoded
/// only as far as `projection` says.
pub struct Observer {
    pub projection: Projection,
    pub observe: Observe,
}

/// What an [`Observer`] does with a tenant's batch.
pub type Observe = Box<dyn Fn(&TenantId, &[ResourceSpans]) + Send>;

pub struct Feed {
    sender: SyncSender<Work>,
    generator: Arc<Generator>,
}

fn now_ms() -> i64 {
    (andante_model::now_unix_nanos() / 1_000_000) as i64
}

impl Feed {
    /// Starts the generator thread; it ends when the `Feed` is dropped.
    pub fn start(
        generator: Arc<Generator>,
        capacity: usize,
        observer: Option<Observer>,
    ) -> std::io::Result<Feed> {
        let (sender, receiver) = sync_channel::<Work>(capacity.max(1));
        let worker = generator.clone();
        std::thread::Builder::new()
            .name("generator".into())
            .spawn(move || {
                while let Ok((tenant, fragments)) = receiver.recv() {
                    let generating = worker.enabled();
                    let spans: Vec<ResourceSpans> = match &observer {
                        _ if generating => fragments
                            .iter()
                            .filter_map(|bytes| {
                                ExportTraceServiceRequest::decode(bytes.as_ref()).ok()
                            })
                            .flat_map(|request| request.resource_spans)
                            .collect(),
                        Some(observer) => fragments
                            .iter()
                            .filter_map(|bytes| decode_projected(bytes, &observer.projection).ok())
                            .flatten()
                            .collect(),
                        None => continue,
                    };
                    if generating {
                        worker.push(&tenant, &spans, now_ms());
                    }
                    if let Some(observer) = &observer {
                        (observer.observe)(&tenant, &spans);
                    }
                }
            })?;
        Ok(Feed { sender, generator })
    }

    /// Queues `fragments` (encoded trace fragments holding `spans` spans in all).
    pub fn offer(&self, tenant: &TenantId, fragments: Vec<bytes::Bytes>, spans: usize) {
        match self.sender.try_send((tenant.clone(), fragments)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.generator
                    .spans_dropped_queue_full
                    .fetch_add(spans as u64, Ordering::Relaxed);
            }
        }
    }
}
