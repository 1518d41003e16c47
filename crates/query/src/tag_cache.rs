//! What each block answered to a tag request, kept for the next identical request.
//!
//! Autocomplete asks the same few questions over and over (the values of one attribute, under
//! the filter being typed), and a block's answer can only change by the block going away:
//! blocks are immutable and a compaction writes a new block ID. So a block's contribution to a
//! tag request is kept, keyed by block, request and filter, and the next request reads no
//! column of that block. Only answers that do not depend on the time range are kept (the
//! block lies inside the range), and the cache is bounded by the bytes it holds, keys
//! included (a `q` filter can be as long as a URL); past the bound the oldest answers go
//! first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use andante_block::v1::tags::TagCollection;
use andante_traceql::Value;
use uuid::Uuid;

/// (tenant, block ID, request and filter as their debug text).
pub(crate) type Key = (String, Uuid, String);

/// Most bytes all kept answers and their keys may take, about.
const MAX_BYTES: usize = 16 << 20;
/// What a kept name or value costs besides its text (its `String`/`Value` and set entry).
const OVERHEAD: usize = 48;

#[derive(Default)]
pub(crate) struct TagCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    answers: HashMap<Key, Arc<TagCollection>>,
    /// Insertion order, for eviction.
    order: VecDeque<Key>,
    bytes: usize,
}

fn bytes(key: &Key, answer: &TagCollection) -> usize {
    let values: usize = answer
        .values
        .iter()
        .map(|value| match value {
            Value::Str(text) => text.len() + OVERHEAD,
            _ => OVERHEAD,
        })
        .sum();
    let names: usize = answer
        .names
        .values()
        .flatten()
        .map(|name| name.len() + OVERHEAD)
        .sum();
    key.0.len() + key.2.len() + values + names + OVERHEAD
}

impl TagCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps inconsistent (every change is one statement
        // group under the lock), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Arc<TagCollection>> {
        self.lock().answers.get(key).cloned()
    }

    pub(crate) fn insert(&self, key: Key, answer: Arc<TagCollection>) {
        let size = bytes(&key, &answer);
        if size > MAX_BYTES / 4 {
            return; // one answer would push out most others
        }
        let mut inner = self.lock();
        if inner.answers.contains_key(&key) {
            return;
        }
        while inner.bytes + size > MAX_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.answers.remove(&oldest) {
                inner.bytes -= bytes(&oldest, &gone);
            }
        }
        inner.bytes += size;
        inner.order.push_back(key.clone());
        inner.answers.insert(key, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(values: usize) -> Arc<TagCollection> {
        Arc::new(TagCollection {
            values: (0..values)
                .map(|n| Value::Str(format!("v{n}").into()))
                .collect(),
            ..TagCollection::default()
        })
    }

    fn key(block: u128) -> Key {
        ("t".into(), Uuid::from_u128(block), "q".into())
    }

    #[test]
    fn keeps_answers_and_evicts_the_oldest_past_the_bound() {
        let cache = TagCache::default();
        cache.insert(key(0), answer(3));
        assert_eq!(cache.get(&key(0)).unwrap().values.len(), 3);
        assert!(cache.get(&key(1)).is_none());
        // Answers of a fifth of the bound each: the sixth pushes out the first two.
        let values = MAX_BYTES / 5 / (OVERHEAD + 6);
        assert!(bytes(&key(1), &answer(values)) <= MAX_BYTES / 5);
        for block in 1..=6 {
            cache.insert(key(block), answer(values));
        }
        assert!(cache.get(&key(0)).is_none());
        assert!(cache.get(&key(1)).is_none());
        for block in 2..=6 {
            assert!(cache.get(&key(block)).is_some(), "block {block}");
        }
        assert!(cache.lock().bytes <= MAX_BYTES);
    }

    #[test]
    fn an_answer_too_large_is_not_kept() {
        let cache = TagCache::default();
        cache.insert(key(0), answer(MAX_BYTES / OVERHEAD / 2));
        assert!(cache.get(&key(0)).is_none());
    }

    #[test]
    fn a_long_filter_counts_against_the_bound() {
        // A hostile `q` as long as a URL allows, once per block: its keys alone fill the
        // bound, so old entries go rather than memory growing with each new filter.
        let cache = TagCache::default();
        let filter = "x".repeat(256 << 10);
        for block in 0..200u128 {
            cache.insert(
                ("t".into(), Uuid::from_u128(block), filter.clone()),
                answer(1),
            );
        }
        let inner = cache.lock();
        assert!(inner.bytes <= MAX_BYTES);
        assert!(inner.answers.len() < 200);
        assert_eq!(inner.answers.len(), inner.order.len());
    }
}
