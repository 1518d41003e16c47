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
