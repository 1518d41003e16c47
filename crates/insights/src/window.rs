//! The window the assertions and the ranking read: its entities, per entity × interval
//! figures ([`Cell`]) with example traces, totals, relations, version history and instance
//! placement. It is a view of an [`Accumulator`] (`crate::fold`): the traces of an on-demand
//! window are folded into a fresh one, continuous insights keep one per tenant.

use std::collections::HashMap;
use std::ops::Range;

use crate::entity::{EntityIdx, EntityTable};
use crate::fold::{Accumulator, Examples, Tally, TopTraces};
use crate::record::SpanRecord;
use crate::stats::{quantile_sorted, trimmed_mean_sorted};

/// The number of intervals a window is split into (fewer when intervals would be < 1 s).
pub(crate) const INTERVALS: u64 = 30;
pub(crate) const MIN_INTERVAL_NANOS: u64 = 1_000_000_000;
/// The shortest change an assertion reports.
pub(crate) const MIN_RUN_NANOS: u64 = 30_000_000_000;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cell {
    pub count: u32,
    pub errors: u32,
    pub origins: u32,
    pub missing: u32,
    /// Trimmed mean of self time, nanoseconds.
    pub self_mean: f64,
    pub duration_p50: f64,
    pub duration_p99: f64,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub count: u64,
    pub errors: u64,
    pub duration_p50: f64,
    pub duration_p99: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RelationKind {
    Calls,
    HostedOn,
    RunsOn,
    Produces,
    Consumes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Relation {
    pub kind: RelationKind,
    pub from: EntityIdx,
    pub to: EntityIdx,
    /// The edge entity holding the RED figures of a CALLS relation.
    pub edge: Option<EntityIdx>,
}

/// One version of a service over the window.
#[derive(Debug, Clone)]
pub(crate) struct VersionSeen {
    pub service: EntityIdx,
    pub version: String,
    pub first_seen_nanos: u64,
    pub instances: Vec<String>,
    /// Per interval holding requests of this version: their tally and example traces.
    pub per_interval: Vec<(usize, Tally, TopTraces)>,
}

pub(crate) struct Window {
    pub start_nanos: u64,
    pub end_nanos: u64,
    pub interval_nanos: u64,
    pub intervals: usize,
    pub entities: EntityTable,
    /// Entity-major: `cells[entity * intervals + interval]`.
    pub cells: Vec<Cell>,
    /// Example traces, laid out as `cells`.
    pub examples: Vec<Examples>,
    pub totals: Vec<Totals>,
    pub relations: Vec<Relation>,
    pub versions: Vec<VersionSeen>,
    /// The node each instance runs on.
    pub instance_node: HashMap<EntityIdx, EntityIdx>,
    /// How client spans name an unanswered peer (edges, databases, externals).
    pub peers: HashMap<EntityIdx, (String, &'static str)>,
    /// The first interval holding any span of the tenant (`intervals` when none does).
    /// Intervals before it are no history, not zero traffic: a window that reaches back
    /// before a fresh start must not learn "no requests, no errors" from them.
    pub history: usize,
    /// Per service with a day of history: each interval's expected request rate relative to
    /// the baseline's (`crate::seasonal`); empty without one.
    pub seasonal: HashMap<EntityIdx, Vec<f64>>,
}

impl Window {
    pub(crate) fn cells_of(&self, entity: EntityIdx) -> &[Cell] {
        let start = entity as usize * self.intervals;
        &self.cells[start..start + self.intervals]
    }

    pub(crate) fn interval_start(&self, interval: usize) -> u64 {
        self.start_nanos + interval as u64 * self.interval_nanos
    }

    pub(crate) fn interval_end(&self, interval: usize) -> u64 {
        (self.interval_start(interval) + self.interval_nanos).min(self.end_nanos)
    }

    /// The intervals each entity's normal behaviour is learned from: the first third of
    /// the window's history. When the history begins inside the window it begins inside an
    /// interval, so that part-filled interval is left out, as it would look like a drop.
    /// `None` while the history leaves less than a run ([`Window::min_run`]) after the
    /// baseline (the first minutes after a fresh start): nothing can be told from normal yet.
    pub(crate) fn baseline(&self) -> Option<Range<usize>> {
        let first = match self.history {
            0 => 0,
            history => history + 1,
        };
        let end = first + (self.intervals / 3).max(1);
        (end + self.min_run() <= self.intervals).then_some(first..end)
    }

    /// How many anomalous intervals in a row make a change: two, and at least [`MIN_RUN_NANOS`]
    /// of them, so that a blip of a few seconds is not an incident when intervals are short
    /// (a 5-minute live window has 10 s intervals; on-demand windows of 15 minutes and more
    /// have 30 s or longer ones, where two are enough).
    pub(crate) fn min_run(&self) -> usize {
        (MIN_RUN_NANOS.div_ceil(self.interval_nanos) as usize).max(2)
    }

    pub(crate) fn window_secs(&self) -> f64 {
        (self.end_nanos - self.start_nanos) as f64 / 1e9
    }

    /// The window `[start_nanos, end_nanos)` over `records`, split into [`INTERVALS`]
    /// intervals (fewer when they would be shorter than a second).
    pub(crate) fn build(records: Vec<SpanRecord>, start_nanos: u64, end_nanos: u64) -> Window {
        let (interval_nanos, intervals) = grid(start_nanos, end_nanos);
        let mut accumulator =
            Accumulator::new(start_nanos, interval_nanos, Some(intervals as u64 - 1));
        accumulator.fold_traces(records);
        accumulator.view(0, intervals, start_nanos, end_nanos)
    }
}

/// The interval width and count of the on-demand window `[start_nanos, end_nanos)`.
pub(crate) fn grid(start_nanos: u64, end_nanos: u64) -> (u64, usize) {
    let span_nanos = end_nanos - start_nanos;
    let interval_nanos = span_nanos.div_ceil(INTERVALS).max(MIN_INTERVAL_NANOS);
    (
        interval_nanos,
        span_nanos.div_ceil(interval_nanos).max(1) as usize,
    )
}

/// `quantile_sorted` of the union of ascending `runs`, without merging them: the smallest
/// value with more than `rank` values at or below it, found by bisecting the value range.
fn quantile_of_runs(runs: &[&[u64]], q: f64) -> f64 {
    let total: usize = runs.iter().map(|run| run.len()).sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((q * (total - 1) as f64).round() as usize).min(total - 1);
    let mut low = runs
        .iter()
        .filter_map(|run| run.first())
        .copied()
        .min()
        .unwrap_or(0);
    let mut high = runs
        .iter()
        .filter_map(|run| run.last())
        .copied()
        .max()
        .unwrap_or(0);
    while low < high {
        let middle = low + (high - low) / 2;
        let at_or_below: usize = runs
            .iter()
            .map(|run| run.partition_point(|&value| value <= middle))
            .sum();
        if at_or_below > rank {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    low as f64
}

impl Relation {
    pub(crate) fn remapped(&self, map: impl Fn(EntityIdx) -> EntityIdx) -> Relation {
        Relation {
            kind: self.kind,
            from: map(self.from),
            to: map(self.to),
            edge: self.edge.map(&map),
        }
    }
}

impl Accumulator {
    /// The window made of cells `[first, first + intervals)`: `start_nanos` is where cell
    /// `first` starts, `end_nanos` where the window ends (inside the last cell). Entities are
    /// those the cells, relations and versions in range refer to, ordered by id.
    pub(crate) fn view(
        &mut self,
        first: u64,
        intervals: usize,
        start_nanos: u64,
        end_nanos: u64,
    ) -> Window {
        let last = first + intervals as u64 - 1;
        let in_range = |cell: u64| cell >= first && cell <= last;
        let mut used = vec![false; self.entities.len()];
        for &(entity, cell) in self.cells.keys() {
            if in_range(cell) {
                used[entity as usize] = true;
            }
        }
        let relations: Vec<&Relation> = self
            .relations
            .iter()
            .filter(|(_, &cell)| cell >= first)
            .map(|(relation, _)| relation)
            .collect();
        for relation in &relations {
            for entity in [Some(relation.from), Some(relation.to), relation.edge]
                .into_iter()
                .flatten()
            {
                used[entity as usize] = true;
            }
        }
        for ((service, _), cells) in &self.versions {
            if cells.range(first..=last).next().is_some() {
                used[*service as usize] = true;
            }
        }
        let (entities, remap) = self.entities.subset(&used, true);
        let map = |idx: EntityIdx| remap[idx as usize];
        let count = entities.len();

        let mut cells = vec![Cell::default(); count * intervals];
        let mut examples = vec![Examples::default(); count * intervals];
        let mut runs: Vec<Vec<&[u64]>> = vec![Vec::new(); count];
        let mut totals = vec![Totals::default(); count];
        let mut history = intervals;
        for (&(_, cell), acc) in self.cells.iter_mut() {
            if in_range(cell) {
                acc.sort();
            }
        }
        for (&(entity, cell), acc) in &self.cells {
            if !in_range(cell) {
                continue;
            }
            let entity = map(entity) as usize;
            let interval = (cell - first) as usize;
            if acc.count > 0 {
                history = history.min(interval);
            }
            let at = entity * intervals + interval;
            cells[at] = Cell {
                count: acc.count,
                errors: acc.errors,
                origins: acc.origins,
                missing: acc.missing,
                self_mean: trimmed_mean_sorted(&acc.selfs),
                duration_p50: quantile_sorted(&acc.durations, 0.5),
                duration_p99: quantile_sorted(&acc.durations, 0.99),
            };
            examples[at] = acc.examples.clone();
            totals[entity].count += u64::from(acc.count);
            totals[entity].errors += u64::from(acc.errors);
            runs[entity].push(&acc.durations);
        }
        // Quantiles over the window straight from the cells' sorted samples: no copy of every
        // duration per evaluation.
        for (entity, runs) in runs.iter().enumerate() {
            totals[entity].duration_p50 = quantile_of_runs(runs, 0.5);
            totals[entity].duration_p99 = quantile_of_runs(runs, 0.99);
        }

        let mut relations: Vec<Relation> = relations
            .into_iter()
            .map(|relation| relation.remapped(map))
            .collect();
        relations.sort_by_key(|relation| (relation.kind as u8, relation.from, relation.to));

        let mut versions = Vec::new();
        for ((service, version), per_cell) in &self.versions {
            let mut seen = VersionSeen {
                service: map(*service),
                version: version.clone(),
                first_seen_nanos: u64::MAX,
                instances: Vec::new(),
                per_interval: Vec::new(),
            };
            for (&cell, version_cell) in per_cell.range(first..=last) {
                seen.first_seen_nanos = seen.first_seen_nanos.min(version_cell.first_seen_nanos);
                seen.instances
                    .extend(version_cell.instances.iter().cloned());
                seen.per_interval.push((
                    (cell - first) as usize,
                    version_cell.tally,
                    version_cell.examples.clone(),
                ));
            }
            if seen.per_interval.is_empty() {
                continue;
            }
            seen.instances.sort_unstable();
            seen.instances.dedup();
            versions.push(seen);
        }
        versions.sort_by(|a, b| {
            (a.service, a.first_seen_nanos, &a.version).cmp(&(
                b.service,
                b.first_seen_nanos,
                &b.version,
            ))
        });

        let instance_node = self
            .instance_node
            .iter()
            .filter(|(&instance, (node, cell))| {
                *cell >= first
                    && remap[instance as usize] != EntityIdx::MAX
                    && remap[*node as usize] != EntityIdx::MAX
            })
            .map(|(&instance, &(node, _))| (map(instance), map(node)))
            .collect();
        let peers = self
            .peers
            .iter()
            .filter(|(&entity, _)| remap[entity as usize] != EntityIdx::MAX)
            .map(|(&entity, peer)| (map(entity), peer.clone()))
            .collect();
        Window {
            start_nanos,
            end_nanos,
            interval_nanos: self.width(),
            intervals,
            entities,
            cells,
            examples,
            totals,
            relations,
            versions,
            instance_node,
            peers,
            history,
            seasonal: HashMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_sorted_runs_are_those_of_their_union() {
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..200 {
            let mut runs: Vec<Vec<u64>> = (0..(case % 7))
                .map(|_| {
                    (0..(next() % 40))
                        .map(|_| next() % (1 + case * 1000))
                        .collect()
                })
                .collect();
            for run in &mut runs {
                run.sort_unstable();
            }
            let mut union: Vec<u64> = runs.concat();
            union.sort_unstable();
            let borrowed: Vec<&[u64]> = runs.iter().map(Vec::as_slice).collect();
            for q in [0.0, 0.01, 0.5, 0.99, 1.0] {
                assert_eq!(
                    quantile_of_runs(&borrowed, q),
                    quantile_sorted(&union, q),
                    "case {case} q {q}"
                );
            }
        }
    }
}
