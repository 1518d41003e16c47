//! Delivering alerts to Alertmanager (API v2, `POST /api/v2/alerts`). Evaluation only enqueues;
//! one task drains the queue in batches to every configured Alertmanager, retrying a failed
//! batch with exponential backoff. The queue is bounded: when it is full the oldest alerts are
//! dropped and counted, because a firing alert is re-sent every resend delay anyway and the
//! newest state is the one that matters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{watch, Notify};

#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Alertmanager base URLs (`http://am:9093`); `/api/v2/alerts` is appended.
    pub urls: Vec<String>,
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub timeout: Duration,
    /// Attempts per batch and Alertmanager before the batch is given up (and counted).
    pub max_attempts: u32,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            urls: Vec::new(),
            queue_capacity: 10_000,
            batch_size: 64,
            timeout: Duration::from_secs(10),
            max_attempts: 6,
        }
    }
}

/// One alert as Alertmanager's API v2 takes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertmanagerAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct NotifyStats {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub errors: AtomicU64,
    pub queue_length: AtomicU64,
}

pub struct Notifier {
    config: NotifierConfig,
    queue: Mutex<VecDeque<AlertmanagerAlert>>,
    wake: Notify,
    pub stats: NotifyStats,
    client: reqwest::Client,
}

impl Notifier {
    pub fn new(config: NotifierConfig) -> Result<Arc<Notifier>, String> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|error| format!("failed to build the Alertmanager client: {error}"))?;
        Ok(Arc::new(Notifier {
            config,
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            stats: NotifyStats::default(),
            client,
        }))
    }

    pub fn enabled(&self) -> bool {
        !self.config.urls.is_empty()
    }

    /// Queues alerts for delivery; past the capacity the oldest queued ones are dropped.
    pub fn enqueue(&self, alerts: Vec<AlertmanagerAlert>) {
        if alerts.is_empty() || !self.enabled() {
            return;
        }
        let mut queue = self.queue.lock();
        queue.extend(alerts);
        let excess = queue.len().saturating_sub(self.config.queue_capacity);
        if excess > 0 {
            queue.drain(..excess);
            self.stats
                .dropped
                .fetch_add(excess as u64, Ordering::Relaxed);
            tracing::warn!(
                dropped = excess,
                "the Alertmanager notification queue is full; dropped the oldest alerts"
            );
        }
        self.stats
            .queue_length
            .store(queue.len() as u64, Ordering::Relaxed);
        drop(queue);
        self.wake.notify_one();
    }

    fn next_batch(&self) -> Vec<AlertmanagerAlert> {
        let mut queue = self.queue.lock();
        let take = queue.len().min(self.config.batch_size);
        let batch: Vec<_> = queue.drain(..take).collect();
        self.stats
            .queue_length
            .store(queue.len() as u64, Ordering::Relaxed);
        batch
    }

    /// Delivers queued alerts until `shutdown` turns true (what is queued then is sent first).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let batch = self.next_batch();
            if batch.is_empty() {
                if *shutdown.borrow() {
                    return;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let body = match serde_json::to_vec(&batch) {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(%error, "failed to encode alerts");
                    continue;
                }
            };
            let deliveries = self
                .config
                .urls
                .iter()
                .map(|url| self.deliver(url, body.clone(), batch.len()));
            futures::future::join_all(deliveries).await;
        }
    }

    async fn deliver(&self, base_url: &str, body: Vec<u8>, count: usize) {
        let url = format!("{}/api/v2/alerts", base_url.trim_end_matches('/'));
        let mut backoff = Duration::from_secs(1);
        for attempt in 1..=self.config.max_attempts {
            let response = self
                .client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            match response {
                Ok(response) if response.status().is_success() => {
                    self.stats.sent.fetch_add(count as u64, Ordering::Relaxed);
                    return;
                }
                Ok(response) => {
                    let status = response.status();
                    tracing::warn!(%url, %status, attempt, "Alertmanager refused alerts");
                    // A 4xx will not get better by sending the same body again.
                    if status.is_client_error() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%url, %error, attempt, "failed to send alerts to Alertmanager")
                }
            }
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            if attempt < self.config.max_attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
        self.stats
            .dropped
            .fetch_add(count as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn alert(name: &str) -> AlertmanagerAlert {
        AlertmanagerAlert {
            labels: BTreeMap::from([("alertname".to_owned(), name.to_owned())]),
            annotations: BTreeMap::new(),
            starts_at: "2026-12-01T00:00:00Z".into(),
            ends_at: "2026-12-01T00:04:00Z".into(),
            generator_url: String::new(),
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_them() {
        let notifier = Notifier::new(NotifierConfig {
            urls: vec!["http://127.0.0.1:9".into()],
            queue_capacity: 3,
            ..NotifierConfig::default()
        })
        .unwrap();
        notifier.enqueue((0..5).map(|i| alert(&format!("a{i}"))).collect());
        assert_eq!(notifier.stats.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(notifier.stats.queue_length.load(Ordering::Relaxed), 3);
        let kept: Vec<String> = notifier
            .next_batch()
            .iter()
            .map(|a| a.labels["alertname"].clone())
            .collect();
        assert_eq!(kept, ["a2", "a3", "a4"]);
    }

    #[test]
    fn no_alertmanager_means_nothing_is_queued() {
        let notifier = Notifier::new(NotifierConfig::default()).unwrap();
        notifier.enqueue(vec![alert("a")]);
        assert_eq!(notifier.stats.queue_length.load(Ordering::Relaxed), 0);
        assert_eq!(notifier.stats.dropped.load(Ordering::Relaxed), 0);
    }

    /// An Alertmanager stand-in that answers 503 to the first request and 200 after, keeping
    /// every body it received.
    fn flaky_alertmanager() -> (String, std::sync::Arc<parking_lot::Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for (index, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let read = stream.read(&mut buffer).unwrap_or(0);
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|line| {
                                line.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            seen.lock().push(body.to_owned());
                            break;
                        }
                    }
                    if read == 0 {
                        break;
                    }
                }
                let status = if index == 0 {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = stream.write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        (url, bodies)
    }

    #[tokio::test]
    async fn a_failed_delivery_is_retried_and_then_counted_as_sent() {
        let (url, bodies) = flaky_alertmanager();
        let notifier = Notifier::new(NotifierConfig {
            urls: vec![url],
            ..NotifierConfig::default()
        })
        .unwrap();
        let (stop, stopped) = watch::channel(false);
        let runner = tokio::spawn(notifier.clone().run(stopped));
        notifier.enqueue(vec![alert("Down")]);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while notifier.stats.sent.load(Ordering::Relaxed) == 0 {
            assert!(std::time::Instant::now() < deadline, "never delivered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(notifier.stats.errors.load(Ordering::Relaxed), 1);
        assert_eq!(notifier.stats.dropped.load(Ordering::Relaxed), 0);
        let bodies = bodies.lock().clone();
        assert_eq!(bodies.len(), 2, "the same batch twice: refused, then taken");
        let sent: Vec<serde_json::Value> = serde_json::from_str(&bodies[1]).unwrap();
        assert_eq!(sent[0]["labels"]["alertname"], "Down");
        assert_eq!(sent[0]["endsAt"], "2026-12-01T00:04:00Z");
        let _ = stop.send(true);
        let _ = runner.await;
    }
}
