//! `meta.json`: the description of a block. Its presence makes a block visible: it is written
//! last, after `data.parquet` and `index`, and deleted first, so a reader that lists metas never
//! sees a half-written or half-deleted block.

use std::collections::BTreeMap;

use andante_model::UnixNanos;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Rows sorted by trace ID over the whole file. Still read, and still written by compaction when
/// its inputs are `andante-v1` (their streaming merge by ID needs no second pass).
pub const FORMAT_V1: &str = "andante-v1";
/// The same Parquet schema with row groups clustered by trace start (`crate::order`) and an
/// index v3 that summarises each row group; what this build writes for new blocks.
pub const FORMAT_V2: &str = "andante-v2";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub format: String,
    pub block_id: Uuid,
    pub tenant_id: String,
    /// Earliest span start in the block.
    pub start_unix_nanos: UnixNanos,
    /// Latest span end in the block.
    pub end_unix_nanos: UnixNanos,
    pub trace_count: u64,
    pub span_count: u64,
    pub data_bytes: u64,
    pub index_bytes: u64,
    pub row_groups: u32,
    /// 0 for blocks cut from live traces; compaction writes the max of its inputs plus one.
    pub compaction_level: u32,
    /// When the block was written (for retention: never older data than this is deleted early).
    pub created_unix_nanos: UnixNanos,
    /// Blocks this one was compacted from; they may still be listed until deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<Uuid>,
    /// The distinct `service.name`s of the block's resources, sorted, so tag values for the
    /// most asked-for tag need no I/O. Absent in blocks written before it existed, or when
    /// there were more than [`MAX_META_SERVICE_NAMES`]: readers then scan the column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_names: Option<Vec<String>>,
    /// Attribute names per scope (`span`, `resource`, `event`, `link`, `instrumentation`), sorted,
    /// so tag-name discovery without a filter needs no I/O. Absent in blocks written before it
    /// existed, or when a scope had more than [`MAX_META_TAG_NAMES`]: readers then scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_names: Option<BTreeMap<String, Vec<String>>>,
    /// Span attribute keys with their own column in this block (fixed or slot) that some span
    /// also stored in the generic attribute list (a value of another type, or a repeated key),
    /// sorted; usually empty. A key with its own column that is not listed is only in that
    /// column, so readers skip the generic list for it. Absent in blocks written before it
    /// existed: readers then read both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated_keys_in_generic: Option<Vec<String>>,
    /// Size of the block's trace table (`traces`, see `trace_table`), present when the block has
    /// one. Absent in blocks written before it existed: stage 1 then reads the trace columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_table_bytes: Option<u64>,
    /// Size of the block's span counts per row group (`rollup`, see `crate::rollup`), present
    /// when the block has them. Absent in blocks written before they existed: counting metrics
    /// queries then scan the columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup_bytes: Option<u64>,
    /// Size of the durations of the rollup's cells (`durations`), present when the block has
    /// them; queries of `duration` read them, counting queries do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup_durations_bytes: Option<u64>,
    /// Where the block's records came from (`BlockSource`), so a reader can tell the blocks a
    /// replay may have written twice. Absent in blocks written before it existed and in blocks
    /// not cut from a log or WAL (tests, tools): such a block is never taken for a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<BlockSource>>,
}

/// One stream of records a block holds spans from: every record of it in the block lies at a
/// position in `from..=to` of `stream`, read by the consumer `incarnation`. A consumer that
/// replays a stream after a crash or a takeover is a new incarnation, and only then can two
/// blocks hold the same spans: two blocks are suspects exactly when they share a stream,
/// differ in incarnation and their ranges overlap (`BlockSource::overlaps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockSource {
    /// `log/<topic>/<partition>` (positions are offsets) or `wal` (positions are segments).
    pub stream: String,
    /// Random per consumer start.
    pub incarnation: String,
    pub from: u64,
    pub to: u64,
}

impl BlockSource {
    /// Whether the two may hold the same records read twice: one stream, two readings.
    pub fn overlaps(&self, other: &BlockSource) -> bool {
        self.stream == other.stream
            && self.incarnation != other.incarnation
            && self.from <= other.to
            && other.from <= self.to
    }

    /// The sources of a merge of blocks: one per (stream, incarnation), spanning them all.
    pub fn union<'a>(sources: impl IntoIterator<Item = &'a BlockSource>) -> Vec<BlockSource> {
        let mut merged: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for source in sources {
            let range = merged
                .entry((source.stream.clone(), source.incarnation.clone()))
                .or_insert((source.from, source.to));
            range.0 = range.0.min(source.from);
            range.1 = range.1.max(source.to);
        }
        merged
            .into_iter()
            .map(|((stream, incarnation), (from, to))| BlockSource {
                stream,
                incarnation,
                from,
                to,
            })
            .collect()
    }
}

/// Whether two blocks may hold copies of the same spans (a replay wrote some twice): some
/// source of one overlaps some source of the other.
pub fn may_share_records(a: &BlockMeta, b: &BlockMeta) -> bool {
    let (Some(a), Some(b)) = (&a.sources, &b.sources) else {
        return false;
    };
    a.iter().any(|x| b.iter().any(|y| x.overlaps(y)))
}

/// Most service names kept in `meta.json`.
pub const MAX_META_SERVICE_NAMES: usize = 1000;
/// Most attribute names per scope kept in `meta.json`.
pub const MAX_META_TAG_NAMES: usize = 2000;

impl BlockMeta {
    /// Whether rows are clustered by trace start (`andante-v2`), so row groups are the scan unit.
    pub fn time_clustered(&self) -> bool {
        self.format == FORMAT_V2
    }

    pub fn prefix(&self) -> String {
        block_prefix(&self.tenant_id, self.block_id)
    }
    pub fn meta_key(&self) -> String {
        format!("{}/meta.json", self.prefix())
    }
    pub fn data_key(&self) -> String {
        format!("{}/data.parquet", self.prefix())
    }
    pub fn trace_table_key(&self) -> String {
        format!("{}/traces", self.prefix())
    }
    pub fn rollup_key(&self) -> String {
        format!("{}/rollup", self.prefix())
    }
    pub fn rollup_durations_key(&self) -> String {
        format!("{}/durations", self.prefix())
    }
    pub fn index_key(&self) -> String {
        format!("{}/index", self.prefix())
    }
    /// Written into a compaction's input kept for `compaction.compacted_block_retention`: a
    /// compactor whose block list predates the merge must not merge it again.
    pub fn compacted_key(&self) -> String {
        format!("{}/compacted.json", self.prefix())
    }
    /// Whether the generic span attribute list may hold `key`, given that `key` has its own
    /// column in this block.
    pub fn generic_may_hold_dedicated(&self, key: &str) -> bool {
        self.dedicated_keys_in_generic
            .as_ref()
            .is_none_or(|keys| keys.binary_search_by(|k| k.as_str().cmp(key)).is_ok())
    }
    /// Whether the block may hold spans in `[start, end]` (inclusive, nanoseconds).
    pub fn overlaps(&self, start: UnixNanos, end: UnixNanos) -> bool {
        self.start_unix_nanos <= end && start <= self.end_unix_nanos
    }
}

pub fn block_prefix(tenant: &str, block_id: Uuid) -> String {
    format!("{tenant}/{block_id}")
}

/// Collects [`BlockMeta::tag_names`] while a block is encoded.
#[derive(Debug, Default)]
pub struct TagNames {
    scopes: BTreeMap<&'static str, crate::FastSet<String>>,
    overflow: bool,
}

impl TagNames {
    pub fn add_trace(&mut self, trace: &crate::Trace) {
        if self.overflow {
            return;
        }
        for resource_spans in &trace.resource_spans {
            if let Some(resource) = &resource_spans.resource {
                self.add("resource", &resource.attributes);
            }
            for scope_spans in &resource_spans.scope_spans {
                if let Some(scope) = &scope_spans.scope {
                    self.add("instrumentation", &scope.attributes);
                }
                for span in &scope_spans.spans {
                    self.add("span", &span.attributes);
                    for event in &span.events {
                        self.add("event", &event.attributes);
                    }
                    for link in &span.links {
                        self.add("link", &link.attributes);
                    }
                }
            }
        }
    }

    fn add(
        &mut self,
        scope: &'static str,
        attributes: &[andante_model::otlp::common::v1::KeyValue],
    ) {
        if attributes.is_empty() {
            return;
        }
        let names = self.scopes.entry(scope).or_default();
        for attribute in attributes {
            // Look up before inserting: almost every name is already there.
            if !names.contains(attribute.key.as_str()) {
                names.insert(attribute.key.clone());
            }
        }
        if names.len() > MAX_META_TAG_NAMES {
            self.overflow = true;
        }
    }

    pub fn finish(self) -> Option<BTreeMap<String, Vec<String>>> {
        (!self.overflow).then(|| {
            self.scopes
                .into_iter()
                .map(|(scope, names)| {
                    let mut names: Vec<String> = names.into_iter().collect();
                    names.sort_unstable();
                    (scope.to_owned(), names)
                })
                .collect()
        })
    }
}
