//! The connection to the broker: the span topic, created when missing, and one client per
//! partition (rskafka keeps one connection to each partition's leader and follows leader
//! changes).

use std::sync::Arc;
use std::time::Duration;

use rskafka::client::partition::{PartitionClient, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::BackoffConfig;

/// `kafka.*` in the configuration.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `host:port` of one or more brokers.
    pub brokers: Vec<String>,
    pub topic: String,
    /// Partitions of the topic when this process creates it; an existing topic keeps its own.
    pub partitions: u32,
    pub replication_factor: i16,
    /// How long a push waits for the broker before it is answered 503.
    pub produce_timeout: Duration,
    /// Largest record value produced; a trace fragment that cannot fit is refused.
    pub max_record_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("kafka: {0}")]
    Kafka(#[from] rskafka::client::error::Error),
    #[error("kafka topic `{0}` has no partitions")]
    NoPartitions(String),
    #[error("kafka topic `{0}` was created but is not listed yet")]
    NotListed(String),
}

/// The span topic's partitions, connected.
pub struct Log {
    pub config: LogConfig,
    partitions: Vec<Arc<PartitionClient>>,
}

impl Log {
    /// Connects, creates the topic when it is missing, and connects to every partition.
    pub async fn connect(config: LogConfig) -> Result<Arc<Log>, LogError> {
        // Retries stop at the produce timeout, so a broker that is down is reported, not waited
        // on forever; the callers retry on their own schedule.
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
            deadline: Some(config.produce_timeout),
        };
        let client = ClientBuilder::new(config.brokers.clone())
            .client_id("andante")
            .backoff_config(backoff)
            .build()
            .await?;
        let existing = client
            .list_topics()
            .await?
            .into_iter()
            .find(|topic| topic.name == config.topic);
        let count = match existing {
            Some(topic) => topic.partitions.len() as u32,
            None => {
                let created = client
                    .controller_client()?
                    .create_topic(
                        config.topic.clone(),
                        config.partitions as i32,
                        config.replication_factor,
                        10_000,
                    )
                    .await;
                // Another process may have created it first: what counts is that it exists now.
                let listed = client
                    .list_topics()
                    .await?
                    .into_iter()
                    .find(|topic| topic.name == config.topic);
                match (listed, created) {
                    (Some(topic), _) => {
                        tracing::info!(topic = %config.topic, partitions = topic.partitions.len(), "span topic ready");
                        topic.partitions.len() as u32
                    }
                    (None, Err(error)) => return Err(error.into()),
                    (None, Ok(())) => return Err(LogError::NotListed(config.topic)),
                }
            }
        };
        if count == 0 {
            return Err(LogError::NoPartitions(config.topic));
        }
        let mut partitions = Vec::with_capacity(count as usize);
        for partition in 0..count {
            partitions.push(Arc::new(
                client
                    .partition_client(
                        config.topic.clone(),
                        partition as i32,
                        UnknownTopicHandling::Retry,
                    )
                    .await?,
            ));
        }
        Ok(Arc::new(Log { config, partitions }))
    }

    pub fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    pub fn partition(&self, partition: u32) -> &Arc<PartitionClient> {
        &self.partitions[partition as usize]
    }
}
