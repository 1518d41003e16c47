//! Spans rolled up per row group: per (start second, `resource.service.name`, `name`, `status`,
//! `kind`), how many spans of the row group have them and their durations
//! (`docs/design/metrics-rollup.md`).
//!
//! A TraceQL metrics query that counts spans (`rate()`, `count_over_time()`) or reads their
//! `duration` (`quantile_over_time`, `histogram_over_time`, `sum`/`avg`/`min`/`max_over_time`),
//! whose filter and `by` read only those four fields, with whole-second intervals, is answered
//! from these cells without fetching or decompressing a column. The cells are built from the
//! values the writer puts in the `service_name`, `name`, `status_code`, `kind`,
//! `start_unix_nanos` and `duration_nanos` columns, so folding them gives the column scan's
//! answer exactly. A row group whose spans spread over too many cells keeps none, and is
//! scanned.

use std::collections::HashMap;

use andante_traceql::ast::{Field, Intrinsic, Scope, SpanKind, Static, StatusCode};
use andante_traceql::metrics::{log2_bucket, LabelValue};
use andante_traceql::{Accumulator, MetricsQuery, SpanPredicate, Value};
use prost::encoding::encode_varint;

use crate::BlockError;

const MAGIC: &[u8; 8] = b"ANDRUP01";
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The cell of a span starting at `start_unix_nanos`: the second `c` with the start in
/// `((c − 1) s, c s]`, the side a query interval `(T − step, T]` closes on.
fn cell_second(start_unix_nanos: u64) -> u64 {
    start_unix_nanos.div_ceil(NANOS_PER_SECOND)
}

/// What a cell's spans share besides their second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    /// Index into the row group's strings.
    service: u32,
    name: u32,
    status: i32,
    kind: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    second: u64,
    key: u32,
    count: u32,
}

/// One row group's cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowGroupRollup {
    strings: Vec<String>,
    keys: Vec<Key>,
    /// Sorted by (second, key), each pair once.
    cells: Vec<Cell>,
    /// The spans' durations (ns), cell after cell (`count` each, ascending within a cell);
    /// None in a row group written with counts alone.
    durations: Option<Vec<u64>>,
}

/// Collects a row group's cells as its rows are written.
#[derive(Debug, Default)]
pub struct RowGroupRollupBuilder {
    strings: crate::FastMap<String, u32>,
    keys: crate::FastMap<Key, u32>,
    /// Per (second, key), its spans' durations.
    cells: crate::FastMap<(u64, u32), Vec<u64>>,
    rows: u64,
}

impl RowGroupRollupBuilder {
    fn string(&mut self, text: &str) -> u32 {
        if let Some(&index) = self.strings.get(text) {
            return index;
        }
        let index = self.strings.len() as u32;
        self.strings.insert(text.to_owned(), index);
        index
    }

    /// Counts one row, with the values written to its columns.
    pub fn add(
        &mut self,
        service_name: &str,
        name: &str,
        status: i32,
        kind: i32,
        start: u64,
        duration: u64,
    ) {
        let key = Key {
            service: self.string(service_name),
            name: self.string(name),
            status,
            kind,
        };
        let next = self.keys.len() as u32;
        let key = *self.keys.entry(key).or_insert(next);
        self.cells
            .entry((cell_second(start), key))
            .or_default()
            .push(duration);
        self.rows += 1;
    }

    /// The row group's cells, or None when there are too many to be worth reading instead of
    /// the rows (more than a quarter of them, past a small floor).
    pub fn finish(self) -> Option<RowGroupRollup> {
        if self.cells.len() as u64 > self.rows / 4 + 16 {
            return None;
        }
        let mut strings = vec![String::new(); self.strings.len()];
        for (text, index) in self.strings {
            strings[index as usize] = text;
        }
        let mut keys = vec![
            Key {
                service: 0,
                name: 0,
                status: 0,
                kind: 0
            };
            self.keys.len()
        ];
        for (key, index) in self.keys {
            keys[index as usize] = key;
        }
        let mut runs: Vec<((u64, u32), Vec<u64>)> = self.cells.into_iter().collect();
        runs.sort_unstable_by_key(|(cell, _)| *cell);
        let mut cells = Vec::with_capacity(runs.len());
        let mut durations = Vec::with_capacity(self.rows as usize);
        for ((second, key), mut run) in runs {
            run.sort_unstable();
            cells.push(Cell {
                second,
                key,
                count: run.len() as u32,
            });
            durations.extend(run);
        }
        Some(RowGroupRollup {
            strings,
            keys,
            cells,
            durations: Some(durations),
        })
    }
}

/// A block's cells: the `rollup` object, and the `durations` object beside it.
///
/// ```text
/// rollup:    "ANDRUP01" | row_groups: u32 LE | row group* | crc32c of all before: u32 LE
///   row group = 0 (no cells) | 1 strings keys cells       (varints, zigzag for status/kind)
///   strings = count (len bytes)*     keys = count (service name status kind)*
///   cells = count (second − previous second, first from 0) key count)*
/// durations: "ANDRUD01" | row_groups: u32 LE | row group* | crc32c of all before: u32 LE
///   row group = 0 (no cells) | 1 (per cell of the rollup's row group in order, its `count`
///               durations ascending: (d − previous d, the first from 0)*)
/// ```
///
/// Counting queries read the first alone; the durations, about as large as the `duration_nanos`
/// column, are read only by queries of `duration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollup {
    row_groups: Vec<Option<RowGroupRollup>>,
}

const DURATIONS_MAGIC: &[u8; 8] = b"ANDRUD01";

fn zigzag(value: i32) -> u64 {
    u64::from(((value << 1) ^ (value >> 31)) as u32)
}

fn unzigzag(value: u64) -> Result<i32, BlockError> {
    let value = u32::try_from(value).map_err(|_| corrupt("status or kind out of range"))?;
    Ok(((value >> 1) as i32) ^ -((value & 1) as i32))
}

fn corrupt(what: &str) -> BlockError {
    BlockError::Corrupt(format!("rollup: {what}"))
}

/// A header (magic and row-group count) in front of `body`, and the checksum after it.
fn framed(magic: &[u8; 8], row_groups: usize, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(magic);
    out.extend_from_slice(&(row_groups as u32).to_le_bytes());
    body(&mut out);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The body of a framed object, checked: its checksum, magic and row-group count.
fn unframed<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    row_groups: usize,
) -> Result<&'a [u8], BlockError> {
    let body_len = bytes
        .len()
        .checked_sub(4)
        .filter(|len| *len >= magic.len() + 4)
        .ok_or_else(|| corrupt("too short"))?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(corrupt("checksum mismatch"));
    }
    if &body[..magic.len()] != magic {
        return Err(corrupt("unknown version"));
    }
    if u32::from_le_bytes(body[8..12].try_into().expect("4 bytes")) as usize != row_groups {
        return Err(corrupt("row group count differs from the data's"));
    }
    Ok(&body[12..])
}

/// The `rollup` and `durations` objects of a block's row groups.
pub fn encode(row_groups: &[Option<RowGroupRollup>]) -> (Vec<u8>, Vec<u8>) {
    let counts = framed(MAGIC, row_groups.len(), |out| {
        for row_group in row_groups {
            let Some(rollup) = row_group else {
                out.push(0);
                continue;
            };
            out.push(1);
            encode_varint(rollup.strings.len() as u64, out);
            for text in &rollup.strings {
                encode_varint(text.len() as u64, out);
                out.extend_from_slice(text.as_bytes());
            }
            encode_varint(rollup.keys.len() as u64, out);
            for key in &rollup.keys {
                encode_varint(u64::from(key.service), out);
                encode_varint(u64::from(key.name), out);
                encode_varint(zigzag(key.status), out);
                encode_varint(zigzag(key.kind), out);
            }
            encode_varint(rollup.cells.len() as u64, out);
            let mut previous = 0;
            for cell in &rollup.cells {
                encode_varint(cell.second - previous, out);
                encode_varint(u64::from(cell.key), out);
                encode_varint(u64::from(cell.count), out);
                previous = cell.second;
            }
        }
    });
    let durations = framed(DURATIONS_MAGIC, row_groups.len(), |out| {
        for row_group in row_groups {
            let Some(durations) = row_group.as_ref().and_then(|r| r.durations.as_ref()) else {
                out.push(0);
                continue;
            };
            out.push(1);
            let mut at = 0;
            for cell in &row_group.as_ref().expect("durations come with cells").cells {
                let mut previous = 0;
                for &duration in &durations[at..at + cell.count as usize] {
                    encode_varint(duration - previous, out);
                    previous = duration;
                }
                at += cell.count as usize;
            }
        }
    });
    (counts, durations)
}

/// One LEB128 varint, inline: durations are most of what a `duration` query decodes, mostly
/// two or three bytes each, and a call per value was a third of its time.
#[inline(always)]
fn varint(buf: &mut &[u8]) -> Result<u64, BlockError> {
    let mut value = 0u64;
    for (at, &byte) in buf.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * at);
        if byte < 0x80 {
            if at == 9 && byte > 1 {
                return Err(corrupt("varint out of range"));
            }
            *buf = &buf[at + 1..];
            return Ok(value);
        }
    }
    Err(corrupt("truncated"))
}

/// `n` as a count of items each taking at least a byte of `buf`, so a damaged count cannot ask
/// for more memory than the object holds.
fn bounded(n: u64, buf: &[u8]) -> Result<usize, BlockError> {
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= buf.len())
        .ok_or_else(|| corrupt("count past the end"))
}

impl Rollup {
    /// Decodes and checks the `rollup` object: its checksum, every index in range, cells in
    /// order, and (with `rows`, each row group's row count from the Parquet footer) counts that
    /// add up to the row group's rows.
    pub fn decode(bytes: &[u8], rows: &[u64]) -> Result<Rollup, BlockError> {
        let mut buf = unframed(bytes, MAGIC, rows.len())?;
        let mut row_groups = Vec::with_capacity(rows.len());
        for &row_group_rows in rows {
            let (&present, rest) = buf.split_first().ok_or_else(|| corrupt("truncated"))?;
            buf = rest;
            match present {
                0 => {
                    row_groups.push(None);
                    continue;
                }
                1 => {}
                _ => return Err(corrupt("unknown row group kind")),
            }
            let string_count = bounded(varint(&mut buf)?, buf)?;
            let mut strings = Vec::with_capacity(string_count);
            for _ in 0..string_count {
                let len = bounded(varint(&mut buf)?, buf)?;
                let (text, rest) = buf.split_at(len);
                strings.push(
                    std::str::from_utf8(text)
                        .map_err(|_| corrupt("a string is not UTF-8"))?
                        .to_owned(),
                );
                buf = rest;
            }
            let key_count = bounded(varint(&mut buf)?, buf)?;
            let mut keys = Vec::with_capacity(key_count);
            for _ in 0..key_count {
                let string = |n: u64| {
                    u32::try_from(n)
                        .ok()
                        .filter(|n| (*n as usize) < strings.len())
                        .ok_or_else(|| corrupt("a key names no string"))
                };
                keys.push(Key {
                    service: string(varint(&mut buf)?)?,
                    name: string(varint(&mut buf)?)?,
                    status: unzigzag(varint(&mut buf)?)?,
                    kind: unzigzag(varint(&mut buf)?)?,
                });
            }
            let cell_count = bounded(varint(&mut buf)?, buf)?;
            let mut cells = Vec::with_capacity(cell_count);
            let (mut second, mut total) = (0u64, 0u64);
            for at in 0..cell_count {
                let delta = varint(&mut buf)?;
                let key = varint(&mut buf)?;
                let count = varint(&mut buf)?;
                second = second
                    .checked_add(delta)
                    .ok_or_else(|| corrupt("second out of range"))?;
                let key = u32::try_from(key)
                    .ok()
                    .filter(|key| (*key as usize) < keys.len())
                    .ok_or_else(|| corrupt("a cell names no key"))?;
                let count = u32::try_from(count).map_err(|_| corrupt("count out of range"))?;
                let cell = Cell { second, key, count };
                if at > 0 && (delta, key) <= (0, cells.last().map_or(0, |c: &Cell| c.key)) {
                    return Err(corrupt("cells out of order"));
                }
                total += u64::from(count);
                cells.push(cell);
            }
            if total != row_group_rows {
                return Err(corrupt("counts differ from the row group's rows"));
            }
            row_groups.push(Some(RowGroupRollup {
                strings,
                keys,
                cells,
                durations: None,
            }));
        }
        if !buf.is_empty() {
            return Err(corrupt("bytes after the last row group"));
        }
        Ok(Rollup { row_groups })
    }

    /// Adds the `durations` object's values to the cells, checked: its checksum, a row group
    /// for each of the rollup's, exactly a value per counted span and nothing after. On error
    /// the cells keep no durations.
    pub fn add_durations(&mut self, bytes: &[u8]) -> Result<(), BlockError> {
        let mut buf = unframed(bytes, DURATIONS_MAGIC, self.row_groups.len())?;
        let mut all = Vec::with_capacity(self.row_groups.len());
        for row_group in &self.row_groups {
            let (&present, rest) = buf.split_first().ok_or_else(|| corrupt("truncated"))?;
            buf = rest;
            let rollup = match (present, row_group) {
                (0, _) => {
                    all.push(None);
                    continue;
                }
                (1, Some(rollup)) => rollup,
                _ => return Err(corrupt("durations without cells")),
            };
            let total: u64 = rollup.cells.iter().map(|c| u64::from(c.count)).sum();
            let mut durations = Vec::with_capacity(bounded(total, buf)?);
            for cell in &rollup.cells {
                let mut duration = 0u64;
                for _ in 0..cell.count {
                    duration = duration
                        .checked_add(varint(&mut buf)?)
                        .ok_or_else(|| corrupt("duration out of range"))?;
                    durations.push(duration);
                }
            }
            all.push(Some(durations));
        }
        if !buf.is_empty() {
            return Err(corrupt("bytes after the last row group"));
        }
        for (row_group, durations) in self.row_groups.iter_mut().zip(all) {
            if let Some(rollup) = row_group {
                rollup.durations = durations;
            }
        }
        Ok(())
    }

    pub fn row_group(&self, row_group: usize) -> Option<&RowGroupRollup> {
        self.row_groups.get(row_group)?.as_ref()
    }
}

/// The four fields a rollup keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dimension {
    Service,
    Name,
    Status,
    Kind,
}

impl Dimension {
    fn of(field: &Field) -> Option<Dimension> {
        match field {
            Field::Intrinsic(Intrinsic::Name) => Some(Dimension::Name),
            Field::Intrinsic(Intrinsic::Status) => Some(Dimension::Status),
            Field::Intrinsic(Intrinsic::Kind) => Some(Dimension::Kind),
            Field::Attribute {
                scope: Scope::Resource,
                parent: false,
                name,
            } if name == "service.name" => Some(Dimension::Service),
            _ => None,
        }
    }

    /// The value a column scan reads for this field from the key's row (`v1::metrics`'s
    /// `Reader::value`: the columns are never null).
    fn value<'a>(self, rollup: &'a RowGroupRollup, key: &Key) -> Value<'a> {
        match self {
            Dimension::Service => Value::Str(rollup.strings[key.service as usize].as_str().into()),
            Dimension::Name => Value::Str(rollup.strings[key.name as usize].as_str().into()),
            Dimension::Status => Value::Status(StatusCode::from_otlp(key.status)),
            Dimension::Kind => Value::Kind(SpanKind::from_otlp(key.kind)),
        }
    }
}

/// A metrics query the cells answer exactly, with what it reads of them.
#[derive(Debug, Clone)]
pub struct RollupQuery {
    predicate: Option<SpanPredicate>,
    by: Vec<Dimension>,
    /// The function reads `duration` (else it counts spans).
    durations: bool,
    histogram: bool,
}

impl RollupQuery {
    /// The query's rollup form, or None when only a scan gives its answer: a function of a
    /// field other than `duration`, exemplars asked for, a filter or `by` field other than the
    /// four, or an interval end or step that is not a whole second (a cell would straddle two
    /// intervals).
    pub fn of(query: &MetricsQuery, accumulator: &Accumulator) -> Option<RollupQuery> {
        if accumulator.keeps_exemplars() {
            return None;
        }
        let intervals = accumulator.intervals;
        if !intervals.first_nanos.is_multiple_of(NANOS_PER_SECOND)
            || !intervals.step_nanos.is_multiple_of(NANOS_PER_SECOND)
        {
            return None;
        }
        let spec = query.columnar()?;
        let durations = match &spec.value_field {
            None if query.counts() => false,
            Some(Field::Intrinsic(Intrinsic::Duration)) => true,
            _ => return None,
        };
        let predicate = spec.predicate;
        if let Some(predicate) = &predicate {
            if !leaves_within(predicate) {
                return None;
            }
        }
        let by = query
            .by
            .iter()
            .map(Dimension::of)
            .collect::<Option<Vec<_>>>()?;
        Some(RollupQuery {
            predicate,
            by,
            durations,
            histogram: query.is_histogram(),
        })
    }

    pub fn reads_durations(&self) -> bool {
        self.durations
    }

    /// Whether the row group's cells hold what the query reads.
    pub fn answers(&self, rollup: &RowGroupRollup) -> bool {
        !self.durations || rollup.durations.is_some()
    }

    /// Folds one row group's cells into `accumulator` (which [`RollupQuery::answers`] must
    /// allow), as `v1::metrics::fold_batch` folds its rows: the same predicate leaves, label
    /// values, intervals, numbers and histogram buckets; a series refused by the series limit
    /// leaves its spans uncounted, as there its rows.
    pub fn fold(
        &self,
        rollup: &RowGroupRollup,
        query: &MetricsQuery,
        accumulator: &mut Accumulator,
    ) {
        // Per key: unknown yet, ruled out by the filter, its series, or (histogram) passing,
        // its series found per bucket.
        #[derive(Clone, Copy)]
        enum Slot {
            Unknown,
            Out,
            Series(usize),
            Buckets,
        }
        let mut slots = vec![Slot::Unknown; rollup.keys.len()];
        // histogram_over_time: a series per key and bucket.
        let mut buckets: HashMap<(u32, u64), Option<usize>> = HashMap::new();
        let interval = accumulator.intervals.indexer();
        let durations = rollup.durations.as_deref().unwrap_or_default();
        let mut seconds: Vec<f64> = Vec::new();
        let mut next = 0;
        for cell in &rollup.cells {
            let run = next..next + cell.count as usize;
            next = run.end;
            // The cell's spans start in ((c − 1) s, c s], inside one interval (whole-second ends
            // and step), so its end places them all.
            let Some(k) = interval.index(cell.second.saturating_mul(NANOS_PER_SECOND)) else {
                continue;
            };
            let key = &rollup.keys[cell.key as usize];
            let slot = match slots[cell.key as usize] {
                Slot::Out => continue,
                Slot::Unknown => {
                    let accepts = self.predicate.as_ref().is_none_or(|predicate| {
                        matches(predicate, &|dimension| dimension.value(rollup, key))
                    });
                    if !accepts {
                        slots[cell.key as usize] = Slot::Out;
                        continue;
                    }
                    if self.histogram {
                        Slot::Buckets
                    } else {
                        let Some(series) =
                            accumulator.series_index(self.labels(rollup, key), query)
                        else {
                            continue;
                        };
                        Slot::Series(series)
                    }
                }
                known => known,
            };
            slots[cell.key as usize] = slot;
            if let (Slot::Series(series), false) = (slot, self.durations) {
                accumulator.add_ones(series, k, u64::from(cell.count));
                continue;
            }
            let Some(run) = durations.get(run) else {
                continue;
            };
            if let Slot::Series(series) = slot {
                // Ascending within the cell: one bulk add per cell.
                seconds.clear();
                seconds.extend(run.iter().map(|&duration| duration as f64 / 1e9));
                accumulator.add_ascending(series, k, &seconds);
                continue;
            }
            for &duration in run {
                let Some(bucket) = log2_bucket(&Value::Duration(duration as i64)) else {
                    continue;
                };
                let series = *buckets
                    .entry((cell.key, bucket.to_bits()))
                    .or_insert_with(|| {
                        let mut labels = self.labels(rollup, key);
                        labels.push(LabelValue::float(bucket));
                        accumulator.series_index(labels, query)
                    });
                if let Some(series) = series {
                    accumulator.add_at(series, k, 0, 1.0, [0; 16]);
                }
            }
        }
    }

    fn labels(&self, rollup: &RowGroupRollup, key: &Key) -> Vec<LabelValue> {
        self.by
            .iter()
            .map(|dimension| LabelValue::of(&dimension.value(rollup, key)))
            .collect()
    }
}

/// Whether every leaf of the predicate reads one of the four fields from its column. A scan
/// judges `resource.service.name` by the `service_name` column (where a missing or non-string
/// name is "") only when the leaf needs a string that nil cannot give; otherwise it reads the
/// resource itself, which the cells do not keep.
fn leaves_within(predicate: &SpanPredicate) -> bool {
    match predicate {
        SpanPredicate::True => true,
        SpanPredicate::And(parts) | SpanPredicate::Or(parts) => parts.iter().all(leaves_within),
        SpanPredicate::Compare { field, value, .. } => match Dimension::of(field) {
            Some(Dimension::Service) => {
                matches!(value, Static::String(_)) && !predicate.leaf_accepts(&Value::Nil)
            }
            dimension => dimension.is_some(),
        },
        SpanPredicate::Regex { field, .. } => match Dimension::of(field) {
            Some(Dimension::Service) => !predicate.leaf_accepts(&Value::Nil),
            dimension => dimension.is_some(),
        },
    }
}

/// The predicate on one key, each leaf judged by `leaf_accepts` as the column scan judges it.
fn matches<'a>(predicate: &SpanPredicate, value: &impl Fn(Dimension) -> Value<'a>) -> bool {
    match predicate {
        SpanPredicate::True => true,
        SpanPredicate::And(parts) => parts.iter().all(|part| matches(part, value)),
        SpanPredicate::Or(parts) => parts.iter().any(|part| matches(part, value)),
        SpanPredicate::Compare { field, .. } | SpanPredicate::Regex { field, .. } => {
            Dimension::of(field).is_some_and(|dimension| predicate.leaf_accepts(&value(dimension)))
        }
    }
}

#[cfg(test)]
mod tests;
