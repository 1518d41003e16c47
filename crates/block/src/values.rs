//! What string attribute values a row group holds, summarised so a search for a value the row
//! group lacks skips it from memory (index v4). Tempo rejects such a row group by reading the
//! column chunk's dictionary; Andante keeps, per row group, the hashes of the attribute keys
//! present and a Bloom filter of the (key, value) pairs of every key whose values are all plain
//! strings and few enough to fit the budget. High-cardinality keys (IDs, URLs with IDs) are left
//! out, so the filter stays a few kilobytes per row group whatever the traffic; a search on such
//! a key reads the row group as before.
//!
//! A row group is ruled out for `scope.key = "value"` when the key list is complete and lacks
//! the key, or when the key is covered and the filter lacks the pair. Arrays and other types
//! make a key uncovered: TraceQL's `=` also matches an array element, and a number never equals
//! a string literal, so only plain strings can be decided here.

use std::collections::HashSet;

use crate::Trace;
use andante_model::otlp::common::v1::{any_value, KeyValue};

use crate::bloom::Bloom;

/// Pairs a row group's filter holds at most: 4 096 at 1 % is 4.9 KB per row group.
pub const VALUE_BUDGET: usize = 4096;
/// Distinct keys a row group lists at most; beyond it the list is incomplete, so an absent key
/// no longer rules the row group out (a client that puts IDs into keys must not grow the index).
pub const MAX_KEYS: usize = 1024;
/// The false-positive rate of the pair filter.
const FP_RATE: f64 = 0.01;

/// Which attributes a key names: the span's or the resource's (TraceQL `span.` / `resource.`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueScope {
    Span = 1,
    Resource = 2,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The stored hash of a key: FNV-1a over the scope byte and the key's bytes. Stable across
/// versions and machines, since it is written into the index.
pub fn key_hash(scope: ValueScope, key: &str) -> u64 {
    fnv(fnv(FNV_OFFSET, &[scope as u8]), key.as_bytes())
}

/// The hash of a (key, value) pair, continuing the key's hash past a 0xff byte (never part of
/// UTF-8, so key "a" with value "bc" and key "ab" with value "c" differ).
fn pair_hash(key_hash: u64, value: &str) -> u64 {
    fnv(fnv(key_hash, &[0xff]), value.as_bytes())
}

/// One row group's summary of attribute values (index v4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueFilter {
    /// Whether `keys` lists every key present (false once [`MAX_KEYS`] was reached).
    pub keys_complete: bool,
    /// Key hashes, sorted, each with whether its values are all in `pairs`.
    pub keys: Vec<(u64, bool)>,
    pub pairs: Bloom,
}

impl ValueFilter {
    /// False only when no attribute `key` of `scope` in the row group can equal `value`.
    pub fn may_hold(&self, scope: ValueScope, key: &str, value: &str) -> bool {
        let hash = key_hash(scope, key);
        match self.keys.binary_search_by_key(&hash, |(key, _)| *key) {
            Ok(at) => !self.keys[at].1 || self.pairs.may_contain_hash(pair_hash(hash, value)),
            Err(_) => !self.keys_complete,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.keys_complete));
        out.extend_from_slice(&(self.keys.len() as u32).to_le_bytes());
        for (hash, covered) in &self.keys {
            out.extend_from_slice(&hash.to_le_bytes());
            out.push(u8::from(*covered));
        }
    }
}

/// Collects one row group's keys and values as its traces are written.
#[derive(Default)]
pub struct ValueFilterBuilder {
    keys: crate::FastMap<u64, KeyValues>,
    keys_complete: bool,
}

#[derive(Default)]
struct KeyValues {
    /// Every value so far was a plain string and there were at most [`VALUE_BUDGET`].
    coverable: bool,
    values: crate::FastSet<u64>,
}

impl ValueFilterBuilder {
    pub fn new() -> ValueFilterBuilder {
        ValueFilterBuilder {
            keys: crate::FastMap::default(),
            keys_complete: true,
        }
    }

    pub fn add_trace(&mut self, trace: &Trace) {
        for resource_spans in &trace.resource_spans {
            if let Some(resource) = &resource_spans.resource {
                self.add(ValueScope::Resource, &resource.attributes);
            }
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                self.add(ValueScope::Span, &span.attributes);
            }
        }
    }

    fn add(&mut self, scope: ValueScope, attributes: &[KeyValue]) {
        for attribute in attributes {
            let value = match attribute.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(value)) => Some(value.as_str()),
                _ => None,
            };
            self.add_value(key_hash(scope, &attribute.key), value);
        }
    }

    /// Adds one attribute value of the key whose [`key_hash`] is `hash`: `Some` for a plain
    /// string, None for any other value (which leaves the key uncovered).
    pub(crate) fn add_value(&mut self, hash: u64, value: Option<&str>) {
        let full = self.keys.len() >= MAX_KEYS;
        let entry = match self.keys.get_mut(&hash) {
            Some(entry) => entry,
            None if full => {
                self.keys_complete = false;
                return;
            }
            None => self.keys.entry(hash).or_insert(KeyValues {
                coverable: true,
                values: crate::FastSet::default(),
            }),
        };
        if !entry.coverable {
            return;
        }
        match value {
            Some(value) => {
                entry.values.insert(pair_hash(hash, value));
                if entry.values.len() > VALUE_BUDGET {
                    entry.coverable = false;
                    entry.values = crate::FastSet::default();
                }
            }
            None => {
                entry.coverable = false;
                entry.values = crate::FastSet::default();
            }
        }
    }

    /// Adds a resource's attributes (a row group's distinct resources, each once, give the
    /// filter `add_trace` gives).
    pub(crate) fn add_resource(&mut self, attributes: &[KeyValue]) {
        self.add(ValueScope::Resource, attributes);
    }

    /// The filter: keys with the fewest distinct values are covered first, until the budget.
    pub fn finish(self) -> ValueFilter {
        let mut coverable: Vec<(usize, u64)> = self
            .keys
            .iter()
            .filter(|(_, entry)| entry.coverable)
            .map(|(hash, entry)| (entry.values.len(), *hash))
            .collect();
        coverable.sort_unstable();
        let mut covered = HashSet::new();
        let mut total = 0;
        for (count, hash) in coverable {
            if total + count > VALUE_BUDGET {
                break;
            }
            total += count;
            covered.insert(hash);
        }
        let mut pairs = Bloom::new(total, FP_RATE);
        for hash in &covered {
            self.keys[hash]
                .values
                .iter()
                .for_each(|pair| pairs.insert_hash(*pair));
        }
        let mut keys: Vec<(u64, bool)> = self
            .keys
            .keys()
            .map(|hash| (*hash, covered.contains(hash)))
            .collect();
        keys.sort_unstable();
        ValueFilter {
            keys_complete: self.keys_complete,
            keys,
            pairs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use andante_model::otlp::common::v1::{AnyValue, ArrayValue};
    use andante_model::otlp::resource::v1::Resource;
    use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use andante_model::TraceId;
    use proptest::prelude::*;

    fn string(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
        }
    }

    fn trace(resource: Vec<KeyValue>, spans: Vec<Vec<KeyValue>>) -> Trace {
        Trace {
            trace_id: TraceId([1; 16]),
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: spans
                        .into_iter()
                        .map(|attributes| Span {
                            attributes,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn filter_of(traces: &[Trace]) -> ValueFilter {
        let mut builder = ValueFilterBuilder::new();
        traces.iter().for_each(|t| builder.add_trace(t));
        builder.finish()
    }

    #[test]
    fn absent_keys_and_values_are_ruled_out_in_their_scope_only() {
        let filter = filter_of(&[trace(
            vec![string("service.name", "shop")],
            vec![
                vec![string("enduser.id", "u1")],
                vec![string("enduser.id", "u2")],
            ],
        )]);
        assert!(filter.may_hold(ValueScope::Span, "enduser.id", "u1"));
        assert!(filter.may_hold(ValueScope::Span, "enduser.id", "u2"));
        assert!(!filter.may_hold(ValueScope::Span, "enduser.id", "no-such-user"));
        assert!(!filter.may_hold(ValueScope::Span, "no.such.key", "u1"));
        assert!(!filter.may_hold(ValueScope::Resource, "enduser.id", "u1"));
        assert!(filter.may_hold(ValueScope::Resource, "service.name", "shop"));
        assert!(!filter.may_hold(ValueScope::Span, "service.name", "shop"));
    }

    #[test]
    fn keys_that_are_not_plain_strings_are_never_ruled_out() {
        let array = KeyValue {
            key: "tags".into(),
            key_strindex: 0,
            value: Some(AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::StringValue("a".into())),
                    }],
                })),
            }),
        };
        let number = KeyValue {
            key: "mixed".into(),
            key_strindex: 0,
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(5)),
            }),
        };
        let filter = filter_of(&[trace(
            vec![],
            vec![
                vec![array],
                vec![number, string("tags", "b")],
                vec![string("mixed", "x")],
            ],
        )]);
        // An array element may equal the literal; the filter cannot say, so it must allow.
        assert!(filter.may_hold(ValueScope::Span, "tags", "a"));
        assert!(filter.may_hold(ValueScope::Span, "tags", "zzz"));
        assert!(filter.may_hold(ValueScope::Span, "mixed", "zzz"));
    }

    #[test]
    fn high_cardinality_keys_are_left_uncovered_and_the_filter_stays_small() {
        let spans: Vec<Vec<KeyValue>> = (0..3 * VALUE_BUDGET)
            .map(|i| {
                vec![
                    string("request.id", &format!("r{i}")),
                    string("http.method", ["GET", "POST"][i % 2]),
                ]
            })
            .collect();
        let filter = filter_of(&[trace(vec![], spans)]);
        assert!(filter.may_hold(ValueScope::Span, "request.id", "never-written"));
        assert!(!filter.may_hold(ValueScope::Span, "http.method", "DELETE"));
        assert!(filter.may_hold(ValueScope::Span, "http.method", "POST"));
        assert!(
            filter.pairs.size_bytes() < 1024,
            "{}",
            filter.pairs.size_bytes()
        );
    }

    #[test]
    fn too_many_keys_make_the_key_list_incomplete() {
        let spans: Vec<Vec<KeyValue>> = (0..MAX_KEYS + 10)
            .map(|i| vec![string(&format!("k{i}"), "v")])
            .collect();
        let filter = filter_of(&[trace(vec![], spans)]);
        assert!(!filter.keys_complete);
        assert_eq!(filter.keys.len(), MAX_KEYS);
        // A key past the cap was never listed, so its absence proves nothing.
        assert!(filter.may_hold(ValueScope::Span, "never.seen", "v"));
    }

    /// Similar short values (IDs with one prefix) must see the filter's nominal 1 % rate: plain
    /// double hashing gave this data 10 % (a third of 30 row groups kept for one ID).
    #[test]
    fn similar_values_see_the_nominal_false_positive_rate() {
        let mut false_positives = 0;
        for group in 0..50u64 {
            let spans = (0..150u64)
                .map(|i| vec![string("user.id", &format!("u{}", group * 1000 + i))])
                .collect();
            let filter = filter_of(&[trace(vec![], spans)]);
            false_positives += (100_000..101_000u64)
                .filter(|i| filter.may_hold(ValueScope::Span, "user.id", &format!("u{i}")))
                .count();
        }
        // 1 % of 50 000 is 500.
        assert!(false_positives < 1000, "{false_positives} of 50000");
    }

    proptest! {
        #[test]
        fn every_written_pair_is_held(
            pairs in proptest::collection::vec(("[a-c]{1,3}", "[a-z0-9]{0,6}"), 1..300)
        ) {
            let spans = pairs.iter().map(|(k, v)| vec![string(k, v)]).collect();
            let filter = filter_of(&[trace(vec![], spans)]);
            for (key, value) in &pairs {
                prop_assert!(filter.may_hold(ValueScope::Span, key, value));
            }
        }
    }
}
