//! What each block answered to a tag request, kept for the next identical request.
//!
//! Autocomplete asks the same few questions over and over (the values of one attribute, under
//! the filter being typed), and a block's answer can only change by the block going away:
//! blocks are immutable and a compaction writes a new block ID. So a block's contribution to a
//! tag request is kept, keyed by block, request and filter, and the next request reads no
//! column of that block. Only answers that do not depend on the time range are kept (the
//! block lies inside the range), and the cache is bounded by the values it holds; past the
//! bound the oldest answers go first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use andante_block::v1::tags::TagCollection;

/// (tenant, block ID, request and filter, as their debug text).
pub(crate) type Key = (String, String, String);

/// Most names and values held in all kept answers together (about 10 MB of short strings).
const MAX_ITEMS: usize = 200_000;

#[derive(Default)]
pub(crate) struct TagCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    answers: HashMap<Key, Arc<TagCollection>>,
    /// Insertion order, for eviction.
    order: VecDeque<Key>,
    items: usize,
}

fn items(answer: &TagCollection) -> usize {
    answer.values.len()
        + answer
            .names
            .values()
            .map(|names| names.len())
            .sum::<usize>()
        + 1
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
        let size = items(&answer);
        if size > MAX_ITEMS / 4 {
            return; // one answer would push out most others
        }
        let mut inner = self.lock();
        if inner.answers.contains_key(&key) {
            return;
        }
        while inner.items + size > MAX_ITEMS {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.answers.remove(&oldest) {
                inner.items -= items(&gone);
            }
        }
        inner.items += size;
        inner.order.push_back(key.clone());
        inner.answers.insert(key, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use andante_traceql::Value;

    fn answer(values: usize) -> Arc<TagCollection> {
        Arc::new(TagCollection {
            values: (0..values)
                .map(|n| Value::Str(format!("v{n}").into()))
                .collect(),
            ..TagCollection::default()
        })
    }

    fn key(block: usize) -> Key {
        ("t".into(), format!("b{block}"), "q".into())
    }

    #[test]
    fn keeps_answers_and_evicts_the_oldest_past_the_bound() {
        let cache = TagCache::default();
        cache.insert(key(0), answer(3));
        assert_eq!(cache.get(&key(0)).unwrap().values.len(), 3);
        assert!(cache.get(&key(1)).is_none());
        // Each answer holds a fifth of the bound: the sixth pushes out the first two.
        let fifth = MAX_ITEMS / 5;
        for block in 1..=6 {
            cache.insert(key(block), answer(fifth - 1));
        }
        assert!(cache.get(&key(0)).is_none());
        assert!(cache.get(&key(1)).is_none());
        for block in 2..=6 {
            assert!(cache.get(&key(block)).is_some(), "block {block}");
        }
        assert!(cache.lock().items <= MAX_ITEMS);
    }

    #[test]
    fn an_answer_too_large_is_not_kept() {
        let cache = TagCache::default();
        cache.insert(key(0), answer(MAX_ITEMS / 2));
        assert!(cache.get(&key(0)).is_none());
    }
}
