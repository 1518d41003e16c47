//! When traces start: in real time (a batch per tick, dated now) or backfilled (a run of
//! `--backfill-secs` seconds dated over the last S seconds, built as fast as it can be sent).
//!
//! `Source` owns what a run generates from (the topology and, for incident topologies, the
//! fault `Plan`); `Batches` borrows it and hands out traces. In backfill mode trace starts are a
//! Poisson process at `--rate` (times the plan's rate factor, so a traffic spike is denser) over
//! `[now − S, now − BACKFILL_TAIL_SECS]`: the tail leaves room for the longest trace (a timeout
//! or two), so every span lies within `[now − S, now]`.

use anyhow::bail;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::incident::IncidentBuilder;
use crate::model::{Topology, TraceBuilder};
use crate::scenario::{Plan, TopologyKind};
use crate::send::GenArgs;
use crate::topology::{IncidentTopology, TopologySpec};

const NANOS_PER_SEC: u64 = 1_000_000_000;
/// Backfilled traces start at least this long before now.
pub const BACKFILL_TAIL_SECS: u64 = 15;

/// One generated trace: its ID and spans grouped by resource.
pub type Trace = (Vec<u8>, Vec<ResourceSpans>);

pub struct Source {
    seed: u64,
    rate: f64,
    batch: usize,
    max_traces: u64,
    backfill: bool,
    run_start: u64,
    run_end: Option<u64>,
    shop: Option<Topology>,
    incident: Option<(IncidentTopology, Plan)>,
}

impl Source {
    /// Resolves the topology, the run's time span and the scenario, as of `now_nanos`.
    pub fn new(args: &GenArgs, now_nanos: u64) -> anyhow::Result<Source> {
        let scenario = &args.scenario;
        let kind = scenario.topology.unwrap_or(if scenario.scenario.is_some() {
            TopologyKind::Incident
        } else {
            TopologyKind::Shop
        });
        let backfill = scenario.backfill_secs > 0;
        let (run_start, run_end) = if backfill {
            if scenario.backfill_secs <= BACKFILL_TAIL_SECS {
                bail!("`--backfill-secs` must be over {BACKFILL_TAIL_SECS}");
            }
            let start = now_nanos.saturating_sub(scenario.backfill_secs * NANOS_PER_SEC);
            (start, Some(now_nanos - BACKFILL_TAIL_SECS * NANOS_PER_SEC))
        } else {
            let end =
                (args.duration_secs > 0).then(|| now_nanos + args.duration_secs * NANOS_PER_SEC);
            (now_nanos, end)
        };
        let spec = match kind {
            TopologyKind::Shop => {
                if scenario.scenario.is_some() || scenario.truth_file.is_some() {
                    bail!("scenarios need an incident topology: `--topology incident` or `--topology booking`");
                }
                None
            }
            TopologyKind::Incident => Some(TopologySpec::store()),
            TopologyKind::Booking => Some(TopologySpec::booking()),
        };
        let incident = match spec {
            Some(spec) => {
                let topology = IncidentTopology::new(spec, args.seed);
                let plan = Plan::new(&topology, scenario, args.seed, run_start, run_end)?;
                Some((topology, plan))
            }
            None => None,
        };
        Ok(Source {
            seed: args.seed,
            rate: args.rate.max(0.001),
            batch: args.batch.max(1),
            max_traces: args.traces,
            backfill,
            run_start,
            run_end,
            shop: incident.is_none().then(|| Topology::new(args.seed)),
            incident,
        })
    }

    pub fn is_backfill(&self) -> bool {
        self.backfill
    }

    pub fn plan(&self) -> Option<&Plan> {
        self.incident.as_ref().map(|(_, plan)| plan)
    }

    /// The ground truth of an incident topology's run.
    pub fn truth_json(&self) -> Option<Value> {
        self.incident
            .as_ref()
            .map(|(topology, plan)| plan.truth_json(topology, self.seed))
    }

    pub fn batches(&self) -> Batches<'_> {
        let traffic = match (&self.shop, &self.incident) {
            (_, Some((topology, plan))) => {
                Traffic::Incident(IncidentBuilder::new(topology, plan, self.seed), plan)
            }
            (Some(topology), None) => Traffic::Shop(TraceBuilder::new(topology, self.seed)),
            (None, None) => Traffic::Empty,
        };
        Batches {
            source: self,
            traffic,
            next_start: self.run_start,
            arrivals: SmallRng::seed_from_u64(self.seed ^ 0xa221_7a15),
            built: 0,
        }
    }
}

enum Traffic<'a> {
    Shop(TraceBuilder<'a>),
    Incident(IncidentBuilder<'a>, &'a Plan),
    Empty,
}

pub struct Batches<'a> {
    source: &'a Source,
    traffic: Traffic<'a>,
    next_start: u64,
    arrivals: SmallRng,
    built: u64,
}

impl Batches<'_> {
    fn build(&mut self, start: u64) -> Option<Trace> {
        self.built += 1;
        match &mut self.traffic {
            Traffic::Shop(builder) => Some(builder.build(start)),
            Traffic::Incident(builder, _) => Some(builder.build(start)),
            Traffic::Empty => None,
        }
    }

    fn rate_factor(&self, t: u64) -> f64 {
        match &self.traffic {
            Traffic::Incident(_, plan) => plan.rate_factor(t),
            _ => 1.0,
        }
    }

    fn remaining(&self) -> u64 {
        match self.source.max_traces {
            0 => u64::MAX,
            limit => limit.saturating_sub(self.built),
        }
    }

    /// Backfill: the next batch of traces in start order; `None` once the run is covered.
    pub fn next_backfill(&mut self) -> Option<Vec<Trace>> {
        let run_end = self.source.run_end.unwrap_or(self.source.run_start);
        let mut traces = Vec::new();
        while traces.len() < self.source.batch && self.remaining() > 0 && self.next_start <= run_end
        {
            let start = self.next_start;
            traces.extend(self.build(start));
            let rate = self.source.rate * self.rate_factor(start);
            let uniform: f64 = self.arrivals.random();
            let gap_secs = -(1.0 - uniform).ln() / rate;
            self.next_start = start + (gap_secs * NANOS_PER_SEC as f64) as u64 + 1;
        }
        (!traces.is_empty()).then_some(traces)
    }

    /// Real time: one tick's batch, each trace dated 200 ms before `now_nanos()` (a bigger batch
    /// during a traffic spike).
    pub fn next_live(&mut self, now_nanos: impl Fn() -> u64) -> Vec<Trace> {
        let factor = self.rate_factor(now_nanos());
        let count = (self.source.batch as f64 * factor).round() as u64;
        let count = count.min(self.remaining());
        (0..count)
            .filter_map(|_| self.build(now_nanos().saturating_sub(200_000_000)))
            .collect()
    }

    /// Whether the trace limit (`--traces`) is reached.
    pub fn exhausted(&self) -> bool {
        self.remaining() == 0
    }
}
