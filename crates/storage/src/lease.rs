//! Leases in the object store, so that several processes sharing a bucket (compactors) never work
//! on the same thing at once, with no coordination service: only conditional creates, which
//! S3, GCS, Azure and local disks all offer.
//!
//! A lease named `<tenant>/leases/<name>/` is a series of immutable generations
//! `<generation, 20 digits>.json` holding `{holder, expiresUnixMillis}`. The newest generation
//! rules. To take a free or expired lease, a process creates the next generation (the newest
//! plus one, or the clock in microseconds-from-milliseconds if larger) with a conditional create:
//! of two processes that saw the same newest generation, one create fails.
//! A process that acted on an old listing could create a generation below the newest, so a
//! successful create is confirmed by listing again: the lease is held only if the created
//! generation is the newest and nothing else appeared meanwhile. Releasing writes one more
//! generation, already expired, rather than deleting. Older generations are deleted by whoever
//! takes the lease next; a lease unused for a day is removed whole (`remove_stale`).
//!
//! A holder that stalls past its expiry loses the lease without knowing it; what it then writes
//! must be harmless when repeated (a compaction's output is: reads and the next compaction
//! remove duplicate spans).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Storage, StorageError, LEASES_DIR};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseRecord {
    holder: String,
    expires_unix_millis: u64,
}

/// A lease this process holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    prefix: String,
    holder: String,
    pub generation: u64,
    pub expires_unix_millis: u64,
}

/// `<tenant>/leases/<name>/`.
pub fn lease_prefix(tenant: &str, name: &str) -> String {
    format!("{tenant}/{LEASES_DIR}/{name}/")
}

fn generation_key(prefix: &str, generation: u64) -> String {
    format!("{prefix}{generation:020}.json")
}

/// The generations under `prefix`, ascending; objects not named like one are ignored.
async fn generations(storage: &Storage, prefix: &str) -> Result<Vec<u64>, StorageError> {
    let mut found: Vec<u64> = storage
        .list(prefix)
        .await?
        .into_iter()
        .filter_map(|object| {
            let name = object.key.strip_prefix(prefix)?.strip_suffix(".json")?;
            (name.len() == 20).then(|| name.parse().ok()).flatten()
        })
        .collect();
    found.sort_unstable();
    Ok(found)
}

async fn write_generation(
    storage: &Storage,
    prefix: &str,
    generation: u64,
    record: &LeaseRecord,
) -> Result<bool, StorageError> {
    let body = serde_json::to_vec(record).expect("a lease record always serializes");
    storage
        .create(&generation_key(prefix, generation), Bytes::from(body))
        .await
}

/// Whether the generation this process just created holds the lease: listed again, it must be
/// the newest, and no other generation may have appeared since the first listing `seen`. The
/// first catches a create made from a stale listing below the newest; the second a create made
/// while the lease was being removed (`remove_stale`) and taken afresh from generation 1.
/// Either way the loser backs off; if both back off, the next attempt decides. Returns the
/// second listing when held.
async fn confirm(
    storage: &Storage,
    prefix: &str,
    seen: &[u64],
    generation: u64,
) -> Result<Option<Vec<u64>>, StorageError> {
    let after = generations(storage, prefix).await?;
    let newest = after.last().copied() == Some(generation);
    let unseen = after.iter().any(|g| *g != generation && !seen.contains(g));
    Ok((newest && !unseen).then_some(after))
}

/// Takes the lease at `prefix` for `holder` until `now + ttl`, if it is free, expired, or already
/// `holder`'s (a renewal). `Ok(None)`: someone else holds it, or won the race for it.
pub async fn try_acquire(
    storage: &Storage,
    prefix: &str,
    holder: &str,
    ttl_millis: u64,
    now_unix_millis: u64,
) -> Result<Option<Lease>, StorageError> {
    let seen = generations(storage, prefix).await?;
    let newest = seen.last().copied().unwrap_or(0);
    if newest > 0 {
        match storage.get(&generation_key(prefix, newest)).await {
            Ok(bytes) => {
                // An unreadable record is treated as expired: it cannot name a live holder.
                if let Ok(record) = serde_json::from_slice::<LeaseRecord>(&bytes) {
                    if record.holder != holder && record.expires_unix_millis > now_unix_millis {
                        return Ok(None);
                    }
                }
            }
            // Deleted as an old generation after a newer one was taken: that one is held.
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error),
        }
    }
    // Numbered from the clock as well as from the newest generation, so that a lease removed
    // whole and taken afresh never reuses a number a stale contender may have seen.
    let generation = (newest + 1).max(now_unix_millis.saturating_mul(1_000));
    let expires_unix_millis = now_unix_millis.saturating_add(ttl_millis);
    let record = LeaseRecord {
        holder: holder.to_owned(),
        expires_unix_millis,
    };
    if !write_generation(storage, prefix, generation, &record).await? {
        return Ok(None);
    }
    let Some(after) = confirm(storage, prefix, &seen, generation).await? else {
        // Not the holder. The object is left in place (deleting it could race a holder's
        // own cleanup); the next taker deletes it with the other old generations.
        return Ok(None);
    };
    for old in after.iter().copied().filter(|g| *g < generation) {
        // Best effort: a leftover old generation only costs a listing entry.
        let _ = storage.delete(&generation_key(prefix, old)).await;
    }
    Ok(Some(Lease {
        prefix: prefix.to_owned(),
        holder: holder.to_owned(),
        generation,
        expires_unix_millis,
    }))
}

/// Gives the lease up at once, so another process need not wait for its expiry. Failing to
/// release is harmless: the lease then expires.
pub async fn release(storage: &Storage, lease: &Lease) -> Result<(), StorageError> {
    let record = LeaseRecord {
        holder: lease.holder.clone(),
        expires_unix_millis: 0,
    };
    write_generation(storage, &lease.prefix, lease.generation + 1, &record)
        .await
        .map(|_| ())
}

/// Deletes the leases of `tenant` whose newest generation expired before `expired_before`
/// (Unix ms): a lease unused that long (a compaction window past retention) is only clutter.
/// Only the generations listed are deleted, so a lease taken meanwhile keeps its new generation.
/// Returns how many leases were removed.
pub async fn remove_stale(
    storage: &Storage,
    tenant: &str,
    expired_before: u64,
) -> Result<usize, StorageError> {
    let root = format!("{tenant}/{LEASES_DIR}/");
    let mut by_lease: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for object in storage.list(&root).await? {
        let Some((name, file)) = object
            .key
            .strip_prefix(&root)
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        if let Some(generation) = file
            .strip_suffix(".json")
            .filter(|digits| digits.len() == 20)
            .and_then(|digits| digits.parse::<u64>().ok())
        {
            by_lease
                .entry(name.to_owned())
                .or_default()
                .push(generation);
        }
    }
    let mut removed = 0;
    for (name, generations) in by_lease {
        let prefix = lease_prefix(tenant, &name);
        let newest = generations.iter().copied().max().unwrap_or(0);
        let expired = match storage.get(&generation_key(&prefix, newest)).await {
            Ok(bytes) => serde_json::from_slice::<LeaseRecord>(&bytes)
                .map_or(true, |record| record.expires_unix_millis < expired_before),
            Err(StorageError::NotFound { .. }) => continue,
            Err(error) => return Err(error),
        };
        if !expired {
            continue;
        }
        for generation in generations {
            storage.delete(&generation_key(&prefix, generation)).await?;
        }
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 60_000;

    async fn check_one_winner(storage: Storage) {
        let prefix = lease_prefix("team-a", "compaction-1");
        // Many contenders at once: exactly one holds the lease.
        let attempts = (0..8).map(|i| {
            let storage = storage.clone();
            let prefix = prefix.clone();
            tokio::spawn(async move {
                try_acquire(&storage, &prefix, &format!("c{i}"), TTL, 1_000)
                    .await
                    .unwrap()
            })
        });
        let mut winners = Vec::new();
        for attempt in attempts {
            if let Some(lease) = attempt.await.unwrap() {
                winners.push(lease);
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let lease = winners.pop().unwrap();

        // Held and not expired: another holder is refused, the holder itself renews.
        assert_eq!(
            try_acquire(&storage, &prefix, "other", TTL, 2_000)
                .await
                .unwrap(),
            None
        );
        let renewed = try_acquire(&storage, &prefix, &lease.holder, TTL, 2_000)
            .await
            .unwrap()
            .expect("the holder renews");
        assert!(renewed.generation > lease.generation);

        // Released: free at once.
        release(&storage, &renewed).await.unwrap();
        let next = try_acquire(&storage, &prefix, "other", TTL, 3_000)
            .await
            .unwrap()
            .expect("a released lease is free");

        // Expired: free without a release; old generations are cleaned up.
        let after_expiry = try_acquire(&storage, &prefix, "third", TTL, 3_000 + TTL + 1)
            .await
            .unwrap()
            .expect("an expired lease is free");
        assert!(after_expiry.generation > next.generation);
        assert_eq!(
            generations(&storage, &prefix).await.unwrap(),
            vec![after_expiry.generation]
        );
    }

    #[tokio::test]
    async fn one_contender_wins_in_memory() {
        check_one_winner(Storage::in_memory()).await;
    }

    #[tokio::test]
    async fn one_contender_wins_on_a_local_disk() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::from_config(&crate::BackendConfig {
            local_path: dir.path().display().to_string(),
            ..Default::default()
        })
        .unwrap();
        check_one_winner(storage).await;
    }

    #[tokio::test]
    async fn a_create_from_a_stale_listing_does_not_hold_the_lease() {
        let storage = Storage::in_memory();
        let prefix = lease_prefix("t", "w");
        let first = try_acquire(&storage, &prefix, "a", TTL, 0)
            .await
            .unwrap()
            .unwrap();
        release(&storage, &first).await.unwrap();
        let second = try_acquire(&storage, &prefix, "b", TTL, 0)
            .await
            .unwrap()
            .unwrap();
        // `a` acted on a listing from before `b` took it: it creates generation 2, which `b`'s
        // cleanup deleted, under `b`'s generation 3.
        let record = LeaseRecord {
            holder: "a".into(),
            expires_unix_millis: TTL,
        };
        assert!(
            write_generation(&storage, &prefix, first.generation + 1, &record)
                .await
                .unwrap()
        );
        let newest = *generations(&storage, &prefix)
            .await
            .unwrap()
            .last()
            .unwrap();
        assert_eq!(newest, second.generation);
        assert_eq!(
            try_acquire(&storage, &prefix, "a", TTL, 1).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn only_leases_unused_for_long_are_removed() {
        let storage = Storage::in_memory();
        let old = lease_prefix("t", "compaction-1");
        let recent = lease_prefix("t", "compaction-2");
        let lease = try_acquire(&storage, &old, "a", TTL, 0)
            .await
            .unwrap()
            .unwrap();
        release(&storage, &lease).await.unwrap();
        try_acquire(&storage, &recent, "a", TTL, 0)
            .await
            .unwrap()
            .unwrap();
        // Both expired at TTL at the latest; only the released one (expired at 0) is older
        // than TTL / 2.
        assert_eq!(remove_stale(&storage, "t", TTL / 2).await.unwrap(), 1);
        assert!(generations(&storage, &old).await.unwrap().is_empty());
        assert_eq!(generations(&storage, &recent).await.unwrap().len(), 1);
        // A removed lease is free again, under a number no earlier generation had.
        let again = try_acquire(&storage, &old, "b", TTL, 1)
            .await
            .unwrap()
            .unwrap();
        assert!(again.generation > lease.generation + 1);
    }

    #[tokio::test]
    async fn a_create_racing_the_removal_of_a_stale_lease_does_not_hold_it() {
        let storage = Storage::in_memory();
        let prefix = lease_prefix("t", "w");
        let old = try_acquire(&storage, &prefix, "a", TTL, 0)
            .await
            .unwrap()
            .unwrap();
        // `c` listed and read the expired generation; then the lease was removed and `b` took
        // it afresh from generation 1; then `c` created the generation after the one it saw.
        let seen = generations(&storage, &prefix).await.unwrap();
        assert_eq!(remove_stale(&storage, "t", TTL + 1).await.unwrap(), 1);
        let fresh = try_acquire(&storage, &prefix, "b", TTL, TTL + 2)
            .await
            .unwrap()
            .unwrap();
        assert!(fresh.generation > old.generation + 1);
        let record = LeaseRecord {
            holder: "c".into(),
            expires_unix_millis: 3 * TTL,
        };
        let stale = old.generation + 1;
        assert!(write_generation(&storage, &prefix, stale, &record)
            .await
            .unwrap());
        assert_eq!(
            confirm(&storage, &prefix, &seen, stale).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_damaged_record_does_not_block_the_lease_forever() {
        let storage = Storage::in_memory();
        let prefix = lease_prefix("t", "w");
        storage
            .put(
                &generation_key(&prefix, 4),
                Bytes::from_static(b"{not json"),
            )
            .await
            .unwrap();
        let lease = try_acquire(&storage, &prefix, "a", TTL, 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lease.generation, 5);
    }
}
