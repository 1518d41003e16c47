//! Prometheus remote-write (protocol 1.0): samples encoded as a `WriteRequest` protobuf,
//! snappy block-compressed, POSTed to every configured URL.
//!
//! One bounded queue and one sender task per URL, so a slow or dead receiver never holds up
//! another and batches stay in order (a series' samples must arrive in time order). When a
//! queue is full the oldest batch is dropped and counted. Network errors, 5xx and 429 are
//! retried with exponential backoff (100 ms doubling to 30 s); other 4xx answers mean the
//! receiver will never take the batch, so it is dropped and counted.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use andante_tsdb::remote_write::{
    Exemplar as WireExemplar, Label, Sample, TimeSeries, WriteRequest,
};
use andante_tsdb::Labels;

use crate::Collected;
use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;

fn wire_labels(labels: &Labels) -> Vec<Label> {
    labels
        .iter()
        .map(|(name, value)| Label {
            name: name.to_owned(),
            value: value.to_owned(),
        })
        .collect()
}

/// Groups samples and exemplars by series (each series' samples in time order) and encodes the
/// request.
pub fn encode_write_request(collected: &Collected) -> Vec<u8> {
    let mut by_series: BTreeMap<&Labels, (Vec<Sample>, Vec<WireExemplar>)> = BTreeMap::new();
    for (labels, timestamp, value) in &collected.samples {
        by_series.entry(labels).or_default().0.push(Sample {
            value: *value,
            timestamp: *timestamp,
        });
    }
    for (labels, exemplar) in &collected.exemplars {
        by_series.entry(labels).or_default().1.push(WireExemplar {
            labels: wire_labels(&exemplar.labels),
            value: exemplar.value,
            timestamp: exemplar.t_ms,
        });
    }
    let timeseries = by_series
        .into_iter()
        .map(|(labels, (mut samples, exemplars))| {
            samples.sort_by_key(|s| s.timestamp);
            TimeSeries {
                labels: wire_labels(labels),
                samples,
                exemplars,
            }
        })
        .collect();
    WriteRequest {
        timeseries,
        ..Default::default()
    }
    .encode_to_vec()
}

#[derive(Debug, Clone)]
pub struct RemoteWriteConfig {
    pub urls: Vec<String>,
    /// Batches (one per tenant per collection) held per URL before the oldest is dropped.
    pub queue_batches: usize,
    pub timeout: Duration,
    pub max_backoff: Duration,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            urls: Vec::new(),
            queue_batches: 240,
            timeout: Duration::from_secs(30),
            max_backoff: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
pub struct RemoteWriteCounters {
    pub samples_sent: AtomicU64,
    pub samples_failed: AtomicU64,
    pub samples_dropped_queue_full: AtomicU64,
    pub retries: AtomicU64,
}

struct Batch {
    tenant: String,
    body: Bytes,
    samples: u64,
}

struct Queue {
    url: String,
    batches: Mutex<VecDeque<Batch>>,
    ready: tokio::sync::Notify,
}

pub struct RemoteWriter {
    config: RemoteWriteConfig,
    queues: Vec<Arc<Queue>>,
    pub counters: Arc<RemoteWriteCounters>,
}

enum Outcome {
    Sent,
    Retry(String),
    Refused(String),
}

impl RemoteWriter {
    /// Starts one sender task per URL on the current runtime.
    pub fn start(config: RemoteWriteConfig) -> Result<RemoteWriter, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(config.timeout).build()?;
        let counters = Arc::new(RemoteWriteCounters::default());
        let mut queues = Vec::new();
        for url in &config.urls {
            let queue = Arc::new(Queue {
                url: url.clone(),
                batches: Mutex::default(),
                ready: tokio::sync::Notify::new(),
            });
            tokio::spawn(send_loop(
                queue.clone(),
                client.clone(),
                counters.clone(),
                config.max_backoff,
            ));
            queues.push(queue);
        }
        Ok(RemoteWriter {
            config,
            queues,
            counters,
        })
    }

    pub fn enabled(&self) -> bool {
        !self.queues.is_empty()
    }

    /// Queues one tenant's samples (and exemplars) for every URL.
    pub fn enqueue(&self, tenant: &str, collected: &Collected) {
        let samples = &collected.samples;
        if self.queues.is_empty() || samples.is_empty() {
            return;
        }
        let body = Bytes::from(
            snap::raw::Encoder::new()
                .compress_vec(&encode_write_request(collected))
                .unwrap_or_default(),
        );
        for queue in &self.queues {
            let mut batches = queue.batches.lock();
            if batches.len() >= self.config.queue_batches.max(1) {
                if let Some(dropped) = batches.pop_front() {
                    self.counters
                        .samples_dropped_queue_full
                        .fetch_add(dropped.samples, Ordering::Relaxed);
                }
            }
            batches.push_back(Batch {
                tenant: tenant.to_owned(),
                body: body.clone(),
                samples: samples.len() as u64,
            });
            drop(batches);
            queue.ready.notify_one();
        }
    }
}

async fn send_once(client: &reqwest::Client, url: &str, batch: &Batch) -> Outcome {
    let response = client
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header("User-Agent", concat!("andante/", env!("CARGO_PKG_VERSION")))
        .header("X-Scope-OrgID", &batch.tenant)
        .body(batch.body.clone())
        .send()
        .await;
    match response {
        Err(error) => Outcome::Retry(error.to_string()),
        Ok(response) if response.status().is_success() => Outcome::Sent,
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let message = format!("{status}: {}", body.trim());
            if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                Outcome::Retry(message)
            } else {
                Outcome::Refused(message)
            }
        }
    }
}

async fn send_loop(
    queue: Arc<Queue>,
    client: reqwest::Client,
    counters: Arc<RemoteWriteCounters>,
    max_backoff: Duration,
) {
    loop {
        let next = queue.batches.lock().pop_front();
        let Some(batch) = next else {
            queue.ready.notified().await;
            continue;
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            match send_once(&client, &queue.url, &batch).await {
                Outcome::Sent => {
                    counters
                        .samples_sent
                        .fetch_add(batch.samples, Ordering::Relaxed);
                    break;
                }
                Outcome::Refused(message) => {
                    tracing::warn!(url = %queue.url, %message, samples = batch.samples, "remote-write receiver refused a batch; dropping it");
                    counters
                        .samples_failed
                        .fetch_add(batch.samples, Ordering::Relaxed);
                    break;
                }
                Outcome::Retry(message) => {
                    tracing::debug!(url = %queue.url, %message, ?backoff, "remote-write failed; retrying");
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_request_groups_series_in_time_order() {
        let a = Labels::new([("__name__", "m"), ("x", "1")]);
        let b = Labels::new([("__name__", "m"), ("x", "2")]);
        let exemplar = andante_tsdb::Exemplar {
            labels: Labels::new([("trace_id", "ab")]),
            value: 0.5,
            t_ms: 15,
        };
        let bytes = encode_write_request(&Collected {
            samples: vec![(a.clone(), 20, 2.0), (b, 10, 5.0), (a.clone(), 10, 1.0)],
            exemplars: vec![(a, exemplar)],
            metadata: Vec::new(),
        });
        let decoded = WriteRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.timeseries.len(), 2);
        let first = &decoded.timeseries[0];
        assert_eq!(
            first.labels,
            vec![
                Label {
                    name: "__name__".into(),
                    value: "m".into()
                },
                Label {
                    name: "x".into(),
                    value: "1".into()
                }
            ]
        );
        assert_eq!(
            first.samples,
            vec![
                Sample {
                    value: 1.0,
                    timestamp: 10
                },
                Sample {
                    value: 2.0,
                    timestamp: 20
                }
            ]
        );
        assert_eq!(
            first.exemplars,
            vec![WireExemplar {
                labels: vec![Label {
                    name: "trace_id".into(),
                    value: "ab".into()
                }],
                value: 0.5,
                timestamp: 15
            }]
        );
        assert!(decoded.timeseries[1].exemplars.is_empty());
    }
}
