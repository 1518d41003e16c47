//! Continuous insights without re-reading spans: acknowledged spans are buffered per trace
//! until the trace has been quiet for a settle time, then folded once into the tenant's
//! [`Accumulator`] on a grid aligned to the epoch (cell width = window / 30), by the next offer
//! or evaluation after that. An evaluation forgets cells older than the window and takes the
//! same view an on-demand analysis takes, so its cost depends on entities × cells, not on
//! spans. (A trace that got more spans while queued waits behind later traces, so a trace may
//! be folded a little after it settled, never before.)
//!
//! Arrival time only decides when a trace is folded; what the analysis says comes from span
//! timestamps, as on demand. A trace whose spans arrive further apart than the settle time is
//! folded in pieces (each piece's structure on its own). After a restart, the trailing window
//! is read once from storage ([`Continuous::seed`]); traces that came in live meanwhile are
//! not folded twice.
//!
//! While an incident lasts, the baselines of the evaluation that first saw it are held (up to
//! an hour) and used once the window's own baseline has moved past its onset, so an outage
//! longer than two thirds of the window stays an incident with its real onset.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::assertions::Held;
use crate::fold::Accumulator;
use crate::record::SpanRecord;
use crate::window::{Window, INTERVALS, MIN_INTERVAL_NANOS};
use crate::Analysis;

/// Spans waiting to settle per tenant beyond which everything pending is folded at once, so
/// a flood of never-ending traces cannot grow the buffer without bound.
const MAX_PENDING_SPANS: usize = 1_000_000;

/// How long an incident's baselines are held: after an hour a change is the new normal.
const MAX_HOLD_NANOS: u64 = 3_600_000_000_000;

struct Pending {
    records: Vec<SpanRecord>,
    last_arrival_nanos: u64,
}

struct TenantFold {
    accumulator: Accumulator,
    pending: HashMap<[u8; 16], Pending>,
    /// Pending traces by the arrival that queued them, oldest first; a trace that got more
    /// spans since is queued again at its last arrival when it reaches the front.
    arrivals: VecDeque<(u64, [u8; 16])>,
    pending_spans: usize,
    /// Traces offered live while the tenant's history is not seeded yet.
    fed_before_seed: Option<HashSet<[u8; 16]>>,
    /// The baselines of the ongoing incident, and when they were learned.
    held: Option<(Held, u64)>,
}

impl TenantFold {
    fn new(width: u64) -> TenantFold {
        TenantFold {
            accumulator: Accumulator::new(0, width, None),
            pending: HashMap::new(),
            arrivals: VecDeque::new(),
            pending_spans: 0,
            fed_before_seed: Some(HashSet::new()),
            held: None,
        }
    }

    /// Folds every pending trace whose last span arrived at or before `cutoff_nanos`
    /// (everything when too many spans wait).
    fn fold_settled(&mut self, cutoff_nanos: u64) {
        while let Some(&(arrived, trace)) = self.arrivals.front() {
            let everything = self.pending_spans > MAX_PENDING_SPANS;
            if arrived > cutoff_nanos && !everything {
                break;
            }
            self.arrivals.pop_front();
            let Some(pending) = self.pending.get(&trace) else {
                continue;
            };
            if pending.last_arrival_nanos > cutoff_nanos && !everything {
                self.arrivals.push_back((pending.last_arrival_nanos, trace));
                continue;
            }
            if let Some(pending) = self.pending.remove(&trace) {
                self.pending_spans -= pending.records.len();
                self.accumulator.fold_trace(&pending.records);
            }
        }
    }
}

fn record_bytes(record: &SpanRecord) -> usize {
    let strings = [&record.service, &record.name]
        .into_iter()
        .map(String::capacity)
        .sum::<usize>()
        + [
            &record.instance,
            &record.node,
            &record.namespace,
            &record.version,
            &record.peer,
            &record.db_system,
            &record.destination,
        ]
        .into_iter()
        .flatten()
        .map(String::capacity)
        .sum::<usize>();
    std::mem::size_of::<SpanRecord>() + strings
}

/// Per-tenant folded aggregates of the trailing window.
pub struct Continuous {
    window_nanos: u64,
    width: u64,
    settle_nanos: u64,
    tenants: HashMap<String, TenantFold>,
}

/// The latest figures of a tenant's fold, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldSize {
    pub pending_spans: usize,
    /// Samples held in cells (about two per span of the window).
    pub samples: usize,
    pub cells: usize,
    pub entities: usize,
    /// An estimate of the heap the fold holds: sample vectors by capacity, example lists,
    /// pending records with their strings.
    pub heap_bytes: usize,
}

impl Continuous {
    /// Analyses of the last `window_nanos`; a trace is folded once no span of it arrived
    /// for `settle_nanos`.
    pub fn new(window_nanos: u64, settle_nanos: u64) -> Continuous {
        Continuous {
            window_nanos: window_nanos.max(1),
            width: window_nanos.div_ceil(INTERVALS).max(MIN_INTERVAL_NANOS),
            settle_nanos,
            tenants: HashMap::new(),
        }
    }

    /// The width of a cell, nanoseconds.
    pub fn cell_nanos(&self) -> u64 {
        self.width
    }

    fn tenant(&mut self, tenant: &str) -> &mut TenantFold {
        let width = self.width;
        self.tenants
            .entry(tenant.to_string())
            .or_insert_with(|| TenantFold::new(width))
    }

    /// Spans just acknowledged for `tenant` (of any traces), arrived at `now_nanos`; traces
    /// that have settled by then are folded, so only the last `settle` of spans waits.
    pub fn offer(&mut self, tenant: &str, records: Vec<SpanRecord>, now_nanos: u64) {
        let settle_nanos = self.settle_nanos;
        let state = self.tenant(tenant);
        state.pending_spans += records.len();
        for record in records {
            // Known as soon as it arrives, so a peer named like it resolves to it in traces
            // folded from now on, as on demand, where every service of the window is known.
            state.accumulator.entities.service(&record.service);
            if let Some(fed) = state.fed_before_seed.as_mut() {
                fed.insert(record.trace_id);
            }
            let pending = match state.pending.entry(record.trace_id) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    state.arrivals.push_back((now_nanos, record.trace_id));
                    entry.insert(Pending {
                        records: Vec::new(),
                        last_arrival_nanos: now_nanos,
                    })
                }
            };
            pending.last_arrival_nanos = pending.last_arrival_nanos.max(now_nanos);
            pending.records.push(record);
        }
        state.fold_settled(now_nanos.saturating_sub(settle_nanos));
    }

    /// Whether `tenant`'s trailing window still has to be read from storage once.
    pub fn needs_seed(&self, tenant: &str) -> bool {
        self.tenants
            .get(tenant)
            .is_none_or(|state| state.fed_before_seed.is_some())
    }

    /// Folds the stored traces of the trailing window (read once after a start), except
    /// those that already came in live; the same as [`Continuous::seed_part`] then
    /// [`Continuous::seed_done`].
    pub fn seed(&mut self, tenant: &str, records: Vec<SpanRecord>) {
        self.seed_part(tenant, records);
        self.seed_done(tenant);
    }

    /// Folds some of the stored traces of the trailing window: `records` holds whole traces.
    /// A large read is handed over in parts so the lock around this fold is never held long.
    pub fn seed_part(&mut self, tenant: &str, mut records: Vec<SpanRecord>) {
        let state = self.tenant(tenant);
        if let Some(fed) = &state.fed_before_seed {
            records.retain(|record| !fed.contains(&record.trace_id));
        }
        state.accumulator.fold_traces(records);
    }

    /// Ends the seed: from now on every trace comes in live only.
    pub fn seed_done(&mut self, tenant: &str) {
        self.tenant(tenant).fed_before_seed = None;
    }

    /// Tenants with anything folded or pending.
    pub fn tenants(&self) -> Vec<String> {
        self.tenants.keys().cloned().collect()
    }

    pub fn size(&self, tenant: &str) -> FoldSize {
        self.tenants
            .get(tenant)
            .map(|state| FoldSize {
                pending_spans: state.pending_spans,
                samples: state
                    .accumulator
                    .cells
                    .values()
                    .map(|cell| cell.selfs.len())
                    .sum(),
                cells: state.accumulator.cells.len(),
                entities: state.accumulator.entities.len(),
                heap_bytes: state.accumulator.heap_bytes()
                    + state
                        .pending
                        .values()
                        .flat_map(|pending| &pending.records)
                        .map(record_bytes)
                        .sum::<usize>(),
            })
            .unwrap_or_default()
    }

    /// Folds what has settled by `now_nanos`, forgets what is older than the window, and
    /// analyses the window ending at `now_nanos`. The window starts at the cell holding
    /// `now − window`, so it is up to one cell longer than asked. Also returns its start.
    pub fn analyze(&mut self, tenant: &str, now_nanos: u64) -> (Analysis, u64) {
        self.analyze_with(tenant, now_nanos, &[])
    }

    /// The cells `[first, last]` of the window ending at `now_nanos`.
    fn cells(&self, now_nanos: u64) -> (u64, u64) {
        let end = now_nanos.max(1);
        (
            end.saturating_sub(self.window_nanos) / self.width,
            (end - 1) / self.width,
        )
    }

    /// The [`crate::Steps`] of the window [`Continuous::analyze`] takes at `now_nanos`.
    pub fn window_steps(&self, now_nanos: u64) -> crate::Steps {
        let (first, last) = self.cells(now_nanos);
        crate::Steps::of(first * self.width, self.width, (last - first + 1) as usize)
    }

    /// [`Continuous::analyze`], with the services' request rates of the day before.
    pub fn analyze_with(
        &mut self,
        tenant: &str,
        now_nanos: u64,
        day_ago: &[crate::DayAgo],
    ) -> (Analysis, u64) {
        let (first, last) = self.cells(now_nanos);
        let (width, settle_nanos) = (self.width, self.settle_nanos);
        let state = self.tenant(tenant);
        state.fold_settled(now_nanos.saturating_sub(settle_nanos));
        let end = now_nanos.max(1);
        let intervals = (last - first + 1) as usize;
        // Cells ahead of the clock (a sender's clock running fast) are kept for a window; cells
        // that ended a settle time ago are complete but for late spans.
        let closed = end.saturating_sub(settle_nanos) / width;
        state
            .accumulator
            .retain_cells(first, last + intervals as u64, closed);
        let start = state.accumulator.cell_start(first);
        let mut window: Window = state.accumulator.view(first, intervals, start, end);
        window.seasonal = crate::seasonal::factors(&window, day_ago);
        if state
            .held
            .as_ref()
            .is_some_and(|(_, since)| end.saturating_sub(*since) > MAX_HOLD_NANOS)
        {
            state.held = None;
        }
        let analysis = Analysis::holding(window, state.held.as_ref().map(|(held, _)| held));
        let rca = analysis.rca(None);
        let onset = rca.onset.and_then(|onset| onset.parse::<u64>().ok());
        state.held = match (rca.incident, onset, state.held.take()) {
            (true, _, Some(held)) => Some(held),
            (true, Some(onset), None) => Some((Held::of(&analysis.window, onset), end)),
            _ => None,
        };
        (analysis, start)
    }
}
