//! Which partitions of the span topic this process consumes, and the per-partition work that
//! follows them. Two rules: the broker's consumer group of the role (`group`, the default: a
//! dead member's partitions move to the others after the session timeout), or a fixed ordinal
//! (`kafka.instance` of `kafka.instances`, Tempo's rule: a dead instance's partitions wait for
//! its restart). Either way a role sees one `watch` of owned partitions, and `Partitions`
//! starts a partition's work when it is gained and stops it when it is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use crate::client::Log;
use crate::group::{run_member, GroupConfig};

/// How a role's partitions are chosen (`kafka.assignment`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Partition p belongs to instance p mod `instances`.
    Ordinal { instance: u32, instances: u32 },
    /// The role's consumer group decides; `identity` is announced in the member's metadata.
    Group {
        identity: String,
        session_timeout: Duration,
    },
}

impl Ownership {
    /// The partitions owned now and as they change, for `role` (`block-builder`, `live-store`,
    /// `generator`: each role is a group of its own). A group member runs until
    /// `memberships` leaves.
    pub fn follow(
        &self,
        log: &Log,
        role: &str,
        memberships: &Memberships,
    ) -> watch::Receiver<Vec<u32>> {
        match self {
            Ownership::Ordinal {
                instance,
                instances,
            } => {
                let owned = (0..log.partition_count())
                    .filter(|p| p % (*instances).max(1) == *instance)
                    .collect();
                // The sender is dropped: the set never changes, and a receiver still reads it.
                watch::channel(owned).1
            }
            Ownership::Group {
                identity,
                session_timeout,
            } => {
                let (sender, receiver) = watch::channel(Vec::new());
                let config = GroupConfig {
                    brokers: log.config.brokers.clone(),
                    group: format!("{}.{role}", log.config.topic),
                    topic: log.config.topic.clone(),
                    partitions: log.partition_count(),
                    identity: identity.clone(),
                    session_timeout: *session_timeout,
                };
                let member = tokio::spawn(run_member(config, sender, memberships.receiver()));
                memberships.members.lock().push(member);
                receiver
            }
        }
    }
}

/// The consumer-group members of a process. They leave together, at shutdown after the last
/// flush: a member that left at the stop signal would hand its partitions to others while it
/// still writes their blocks.
pub struct Memberships {
    leave: watch::Sender<bool>,
    members: parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Memberships {
    pub fn new() -> Arc<Memberships> {
        Arc::new(Memberships {
            leave: watch::channel(false).0,
            members: parking_lot::Mutex::new(Vec::new()),
        })
    }

    fn receiver(&self) -> watch::Receiver<bool> {
        self.leave.subscribe()
    }

    /// Every member leaves its group; waits at most `within` for their LeaveGroup answers.
    pub async fn leave(&self, within: Duration) {
        self.leave.send_replace(true);
        let members: Vec<_> = std::mem::take(&mut *self.members.lock());
        let _ = tokio::time::timeout(within, futures::future::join_all(members)).await;
    }
}

struct Running<T> {
    value: Arc<T>,
    stop: watch::Sender<bool>,
}

/// The work of each owned partition (a store, a feed), keyed by partition.
pub struct Partitions<T> {
    running: RwLock<BTreeMap<u32, Running<T>>>,
}

impl<T> Default for Partitions<T> {
    fn default() -> Self {
        Partitions {
            running: RwLock::new(BTreeMap::new()),
        }
    }
}

impl<T: Send + Sync + 'static> Partitions<T> {
    /// The owned partitions and their work, in partition order.
    pub fn values(&self) -> Vec<(u32, Arc<T>)> {
        self.running
            .read()
            .iter()
            .map(|(partition, running)| (*partition, running.value.clone()))
            .collect()
    }

    pub fn partitions(&self) -> Vec<u32> {
        self.running.read().keys().copied().collect()
    }

    pub fn get(&self, partition: u32) -> Option<Arc<T>> {
        self.running
            .read()
            .get(&partition)
            .map(|running| running.value.clone())
    }

    /// Follows `owned` until `stop`: a partition gained is started with `start` (given a stop
    /// signal of its own, sent when the partition is lost or the process stops); one lost is
    /// stopped and forgotten. `gauge` counts the partitions running. A start that fails is retried every second. On stop, the work of
    /// every partition is signalled but kept, so a graceful stop can still flush it.
    pub async fn follow<F, Fut>(
        self: Arc<Self>,
        mut owned: watch::Receiver<Vec<u32>>,
        mut stop: watch::Receiver<bool>,
        gauge: Gauge,
        start: F,
    ) where
        F: Fn(u32, watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = Result<Arc<T>, String>>,
    {
        // Loops may be aborted at shutdown right after the stop: the partitions' work hears it
        // from a task of its own.
        {
            let partitions = self.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
                for running in partitions.running.read().values() {
                    running.stop.send_replace(true);
                }
            });
        }
        let mut changes_open = true;
        loop {
            if *stop.borrow() {
                break;
            }
            let wanted: BTreeSet<u32> = owned.borrow_and_update().iter().copied().collect();
            self.running.write().retain(|partition, running| {
                let keep = wanted.contains(partition);
                if !keep {
                    tracing::info!(partition, "partition no longer owned: stopping it");
                    running.stop.send_replace(true);
                }
                keep
            });
            let mut failed = false;
            for partition in wanted {
                if self.running.read().contains_key(&partition) {
                    continue;
                }
                let (sender, receiver) = watch::channel(false);
                match start(partition, receiver).await {
                    Ok(value) => {
                        self.running.write().insert(
                            partition,
                            Running {
                                value,
                                stop: sender,
                            },
                        );
                    }
                    Err(error) => {
                        failed = true;
                        tracing::warn!(partition, %error, "starting an owned partition failed; retrying");
                    }
                }
            }
            gauge.set(self.running.read().len() as i64);
            tokio::select! {
                changed = owned.changed(), if changes_open => {
                    // A fixed ordinal set has no sender: nothing will change again.
                    changes_open = changed.is_ok();
                }
                _ = tokio::time::sleep(Duration::from_secs(1)), if failed => {}
                _ = stop.changed() => break,
            }
        }
        for running in self.running.read().values() {
            running.stop.send_replace(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn work_starts_and_stops_with_ownership_and_failed_starts_are_retried() {
        let partitions: Arc<Partitions<u32>> = Arc::default();
        let (owned_sender, owned) = watch::channel(vec![0, 1]);
        let (stop_sender, stop) = watch::channel(false);
        let attempts = Arc::new(AtomicUsize::new(0));
        let stops: Arc<parking_lot::Mutex<Vec<watch::Receiver<bool>>>> = Arc::default();
        let task = {
            let (attempts, stops) = (attempts.clone(), stops.clone());
            tokio::spawn(partitions.clone().follow(
                owned,
                stop,
                Gauge::default(),
                move |partition, stop| {
                    let (attempts, stops) = (attempts.clone(), stops.clone());
                    async move {
                        // Partition 2's first start fails.
                        if partition == 2 && attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                            return Err("bucket down".to_owned());
                        }
                        stops.lock().push(stop);
                        Ok(Arc::new(partition * 10))
                    }
                },
            ))
        };
        let wait_for = |want: Vec<u32>| {
            let partitions = partitions.clone();
            async move {
                for _ in 0..500 {
                    if partitions.partitions() == want {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("never owned {want:?}: {:?}", partitions.partitions());
            }
        };
        wait_for(vec![0, 1]).await;
        assert_eq!(partitions.get(1).as_deref(), Some(&10));
        owned_sender.send_replace(vec![1, 2]);
        wait_for(vec![1, 2]).await;
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        // Partition 0's work was told to stop; 1's was not restarted.
        let signalled: Vec<bool> = stops.lock().iter().map(|stop| *stop.borrow()).collect();
        assert_eq!(signalled, vec![true, false, false]);
        stop_sender.send_replace(true);
        task.await.unwrap();
        assert!(stops.lock().iter().all(|stop| *stop.borrow()));
        // Kept for a graceful flush.
        assert_eq!(partitions.partitions(), vec![1, 2]);
    }
}
