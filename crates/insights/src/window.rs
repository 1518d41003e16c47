//! The window: span records with their trace facts, the entities they touch, and per entity
//! × interval aggregates ([`Cell`]).
//!
//! What each entity's samples are:
//! - service, operation, instance, node, namespace: one sample per request (entry span):
//!   its duration, its error, the self time of the service's own spans under it, and whether
//!   one of them is an error origin;
//! - edge to a service: one sample per client span: its duration and its self time (client
//!   minus server: the edge delay); a client span whose peer names a known service but gets
//!   no server span counts as `missing`;
//! - database / external: one sample per client span with no server side (self = duration);
//! - topic: one sample per producer span.

use std::collections::{HashMap, HashSet};

use crate::entity::{EntityIdx, EntityKind, EntityTable};
use crate::record::{SpanKind, SpanRecord};
use crate::stats::{quantile_sorted, trimmed_mean_sorted};
use crate::structure::{analyze_trace, Scratch, SpanFacts, NONE};

/// The number of intervals a window is split into (fewer when intervals would be < 1 s).
pub(crate) const INTERVALS: u64 = 30;
const MIN_INTERVAL_NANOS: u64 = 1_000_000_000;

const FLAG_ERROR: u8 = 1;
const FLAG_ORIGIN: u8 = 2;
const FLAG_MISSING: u8 = 4;

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

#[derive(Debug, Clone)]
pub(crate) struct VersionSeen {
    pub service: EntityIdx,
    pub version: String,
    pub first_seen_nanos: u64,
    pub instances: Vec<String>,
}

/// Per-span values the analysis derives beyond [`SpanFacts`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanSummary {
    pub facts: SpanFacts,
    pub service: EntityIdx,
    /// The entity whose own behaviour this span's self time and error origin are.
    pub owner: EntityIdx,
    pub interval: u16,
    /// For entry spans: the service's own self time and error origin over the request.
    pub request_self_nanos: u64,
    pub request_origin: bool,
}

struct Sample {
    entity: EntityIdx,
    interval: u16,
    flags: u8,
    self_nanos: u64,
    duration_nanos: u64,
}

pub(crate) struct Window {
    pub start_nanos: u64,
    pub end_nanos: u64,
    pub interval_nanos: u64,
    pub intervals: usize,
    pub records: Vec<SpanRecord>,
    pub spans: Vec<SpanSummary>,
    pub entities: EntityTable,
    /// Entity-major: `cells[entity * intervals + interval]`.
    pub cells: Vec<Cell>,
    pub totals: Vec<Totals>,
    pub relations: Vec<Relation>,
    pub versions: Vec<VersionSeen>,
    /// The node each instance runs on.
    pub instance_node: HashMap<EntityIdx, EntityIdx>,
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

    pub(crate) fn window_secs(&self) -> f64 {
        (self.end_nanos - self.start_nanos) as f64 / 1e9
    }

    pub(crate) fn build(records: Vec<SpanRecord>, start_nanos: u64, end_nanos: u64) -> Window {
        let span_nanos = end_nanos - start_nanos;
        let interval_nanos = span_nanos.div_ceil(INTERVALS).max(MIN_INTERVAL_NANOS);
        let intervals = span_nanos.div_ceil(interval_nanos).max(1) as usize;
        let mut window = Window {
            start_nanos,
            end_nanos,
            interval_nanos,
            intervals,
            records,
            spans: Vec::new(),
            entities: EntityTable::default(),
            cells: Vec::new(),
            totals: Vec::new(),
            relations: Vec::new(),
            versions: Vec::new(),
            instance_node: HashMap::new(),
        };
        let samples = window.collect_samples();
        window.aggregate(samples);
        window
    }

    fn interval_of(&self, nanos: u64) -> u16 {
        let clamped = nanos.clamp(self.start_nanos, self.end_nanos - 1);
        (((clamped - self.start_nanos) / self.interval_nanos) as usize).min(self.intervals - 1)
            as u16
    }

    fn collect_samples(&mut self) -> Vec<Sample> {
        let records = &self.records;
        let mut order: Vec<u32> = (0..records.len() as u32).collect();
        order.sort_unstable_by_key(|&index| records[index as usize].trace_id);

        for record in records.iter() {
            self.entities.service(&record.service);
        }
        let mut facts = vec![SpanFacts::default(); records.len()];
        let mut scratch = Scratch::default();
        let mut group_start = 0;
        while group_start < order.len() {
            let trace_id = records[order[group_start] as usize].trace_id;
            let mut group_end = group_start + 1;
            while group_end < order.len() && records[order[group_end] as usize].trace_id == trace_id
            {
                group_end += 1;
            }
            analyze_trace(
                records,
                &order[group_start..group_end],
                &mut scratch,
                &mut facts,
            );
            group_start = group_end;
        }

        let mut builder = SampleBuilder::default();
        let mut spans = Vec::with_capacity(records.len());
        for (index, fact) in facts.iter().enumerate() {
            let record = &self.records[index];
            let service = self.entities.service(&record.service);
            let interval = self.interval_of(record.start_nanos);
            let owner = builder.owner(self, index, fact, service, interval);
            spans.push(SpanSummary {
                facts: *fact,
                service,
                owner,
                interval,
                request_self_nanos: 0,
                request_origin: false,
            });
        }
        for index in 0..spans.len() {
            let span = spans[index];
            if span.owner != span.service || span.facts.entry == NONE {
                continue;
            }
            let entry = &mut spans[span.facts.entry as usize];
            entry.request_self_nanos += span.facts.self_nanos;
            entry.request_origin |= span.facts.origin;
        }
        for (index, span) in spans.iter().enumerate() {
            if span.facts.entry == index as u32 {
                builder.request(self, index, span);
            }
        }
        self.spans = spans;
        self.relations = builder.relations.into_iter().collect();
        self.relations
            .sort_by_key(|relation| (relation.kind as u8, relation.from, relation.to));
        let mut versions: Vec<VersionSeen> = builder.versions.into_values().flatten().collect();
        versions.sort_by_key(|seen| (seen.service, seen.first_seen_nanos));
        self.versions = versions;
        builder.samples
    }

    fn aggregate(&mut self, mut samples: Vec<Sample>) {
        samples.sort_unstable_by_key(|sample| (sample.entity, sample.interval));
        self.cells = vec![Cell::default(); self.entities.len() * self.intervals];
        self.totals = vec![Totals::default(); self.entities.len()];
        let mut selfs: Vec<u64> = Vec::new();
        let mut durations: Vec<u64> = Vec::new();
        let mut entity_durations: Vec<u64> = Vec::new();
        let mut position = 0;
        while position < samples.len() {
            let entity = samples[position].entity;
            entity_durations.clear();
            let mut totals = Totals::default();
            while position < samples.len() && samples[position].entity == entity {
                let interval = samples[position].interval;
                let mut cell = Cell::default();
                selfs.clear();
                durations.clear();
                while position < samples.len()
                    && samples[position].entity == entity
                    && samples[position].interval == interval
                {
                    let sample = &samples[position];
                    position += 1;
                    cell.count += 1;
                    cell.errors += u32::from(sample.flags & FLAG_ERROR != 0);
                    cell.origins += u32::from(sample.flags & FLAG_ORIGIN != 0);
                    cell.missing += u32::from(sample.flags & FLAG_MISSING != 0);
                    selfs.push(sample.self_nanos);
                    durations.push(sample.duration_nanos);
                }
                selfs.sort_unstable();
                durations.sort_unstable();
                cell.self_mean = trimmed_mean_sorted(&selfs);
                cell.duration_p50 = quantile_sorted(&durations, 0.5);
                cell.duration_p99 = quantile_sorted(&durations, 0.99);
                totals.count += u64::from(cell.count);
                totals.errors += u64::from(cell.errors);
                entity_durations.extend_from_slice(&durations);
                self.cells[entity as usize * self.intervals + interval as usize] = cell;
            }
            entity_durations.sort_unstable();
            totals.duration_p50 = quantile_sorted(&entity_durations, 0.5);
            totals.duration_p99 = quantile_sorted(&entity_durations, 0.99);
            self.totals[entity as usize] = totals;
        }
    }
}

/// Accumulates samples, relations and version history while spans are visited.
#[derive(Default)]
struct SampleBuilder {
    samples: Vec<Sample>,
    relations: HashSet<Relation>,
    versions: HashMap<EntityIdx, Vec<VersionSeen>>,
    /// Peer name → the known service it names, if any.
    peer_services: HashMap<String, Option<EntityIdx>>,
}

impl SampleBuilder {
    fn push(
        &mut self,
        entity: EntityIdx,
        interval: u16,
        record: &SpanRecord,
        self_nanos: u64,
        origin: bool,
        missing: bool,
    ) {
        let mut flags = 0;
        if record.error {
            flags |= FLAG_ERROR;
        }
        if origin {
            flags |= FLAG_ORIGIN;
        }
        if missing {
            flags |= FLAG_MISSING;
        }
        self.samples.push(Sample {
            entity,
            interval,
            flags,
            self_nanos,
            duration_nanos: record.duration_nanos(),
        });
    }

    fn relate(
        &mut self,
        kind: RelationKind,
        from: EntityIdx,
        to: EntityIdx,
        edge: Option<EntityIdx>,
    ) {
        self.relations.insert(Relation {
            kind,
            from,
            to,
            edge,
        });
    }

    /// Decide who owns span `index` and record the samples of non-request entities.
    fn owner(
        &mut self,
        window: &mut Window,
        index: usize,
        fact: &SpanFacts,
        service: EntityIdx,
        interval: u16,
    ) -> EntityIdx {
        let record = &window.records[index];
        if let Some(topic) = record.destination.as_deref() {
            let topic_entity = window.entities.named(EntityKind::Topic, topic);
            match record.kind {
                SpanKind::Producer => {
                    self.relate(RelationKind::Produces, service, topic_entity, None);
                    self.push(
                        topic_entity,
                        interval,
                        record,
                        record.duration_nanos(),
                        fact.origin,
                        false,
                    );
                }
                SpanKind::Consumer => {
                    self.relate(RelationKind::Consumes, service, topic_entity, None)
                }
                _ => {}
            }
        }
        if record.kind != SpanKind::Client {
            return service;
        }
        if fact.receiving_child != NONE {
            let callee_name = &window.records[fact.receiving_child as usize].service;
            let callee = window.entities.service(callee_name);
            let edge = window.entities.edge(service, callee);
            self.relate(RelationKind::Calls, service, callee, Some(edge));
            self.push(edge, interval, record, fact.self_nanos, fact.origin, false);
            return edge;
        }
        let Some(peer) = record.peer.as_deref() else {
            return service;
        };
        // A database call names a database, even one called like a service (`catalog` the
        // service and `catalog` its database); and a peer named like the caller itself is not
        // the caller answering itself.
        let callee = if record.db_system.is_none() {
            self.peer_service(&window.entities, peer)
                .filter(|callee| *callee != service)
        } else {
            None
        };
        if let Some(callee) = callee {
            let edge = window.entities.edge(service, callee);
            self.relate(RelationKind::Calls, service, callee, Some(edge));
            self.push(
                edge,
                interval,
                record,
                record.duration_nanos(),
                fact.origin,
                true,
            );
            return edge;
        }
        let kind = if record.db_system.is_some() {
            EntityKind::Database
        } else {
            EntityKind::External
        };
        let peer_entity = window.entities.named(kind, peer);
        let edge = window.entities.edge(service, peer_entity);
        self.relate(RelationKind::Calls, service, peer_entity, Some(edge));
        let record = &window.records[index];
        self.push(
            peer_entity,
            interval,
            record,
            record.duration_nanos(),
            fact.origin,
            false,
        );
        self.push(
            edge,
            interval,
            record,
            record.duration_nanos(),
            fact.origin,
            false,
        );
        peer_entity
    }

    /// The instrumented service a peer name refers to: the exact name, or the name without
    /// port, or its first DNS label (`payments:8080`, `payments.prod.svc.cluster.local`).
    fn peer_service(&mut self, entities: &EntityTable, peer: &str) -> Option<EntityIdx> {
        if let Some(known) = self.peer_services.get(peer) {
            return *known;
        }
        let lower = peer.to_ascii_lowercase();
        let without_port = lower
            .rsplit_once(':')
            .map_or(lower.as_str(), |(host, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    host
                } else {
                    lower.as_str()
                }
            });
        let first_label = without_port.split('.').next().unwrap_or(without_port);
        let found = [peer, lower.as_str(), without_port, first_label]
            .into_iter()
            .find_map(|name| entities.service_named(name));
        self.peer_services.insert(peer.to_string(), found);
        found
    }

    /// Record the samples of one request (entry span) of a service.
    fn request(&mut self, window: &mut Window, index: usize, span: &SpanSummary) {
        let record = &window.records[index];
        let service = span.service;
        let mut targets: [EntityIdx; 5] = [service, NONE, NONE, NONE, NONE];
        let is_operation = record.kind.is_receiving()
            || (span.facts.parent == NONE
                && !matches!(record.kind, SpanKind::Client | SpanKind::Producer));
        if is_operation {
            targets[1] = window.entities.operation(service, &record.name);
        }
        if let Some(instance) = record.instance.as_deref() {
            let instance_entity = window.entities.instance(service, instance);
            targets[2] = instance_entity;
            self.relate(RelationKind::RunsOn, service, instance_entity, None);
            if let Some(node) = record.node.as_deref() {
                let node_entity = window.entities.named(EntityKind::Node, node);
                targets[3] = node_entity;
                self.relate(RelationKind::HostedOn, instance_entity, node_entity, None);
                window
                    .instance_node
                    .entry(instance_entity)
                    .or_insert(node_entity);
            }
        } else if let Some(node) = record.node.as_deref() {
            targets[3] = window.entities.named(EntityKind::Node, node);
        }
        if let Some(namespace) = record.namespace.as_deref() {
            targets[4] = window.entities.named(EntityKind::Namespace, namespace);
        }
        let record = &window.records[index];
        for target in targets.into_iter().filter(|&target| target != NONE) {
            self.push(
                target,
                span.interval,
                record,
                span.request_self_nanos,
                span.request_origin,
                false,
            );
        }
        if let Some(version) = record.version.as_deref() {
            let seen_versions = self.versions.entry(service).or_default();
            let position = match seen_versions
                .iter()
                .position(|seen| seen.version == version)
            {
                Some(position) => position,
                None => {
                    seen_versions.push(VersionSeen {
                        service,
                        version: version.to_string(),
                        first_seen_nanos: record.start_nanos,
                        instances: Vec::new(),
                    });
                    seen_versions.len() - 1
                }
            };
            let seen = &mut seen_versions[position];
            seen.first_seen_nanos = seen.first_seen_nanos.min(record.start_nanos);
            if let Some(instance) = record.instance.as_deref() {
                if !seen.instances.iter().any(|known| known == instance) {
                    seen.instances.push(instance.to_string());
                }
            }
        }
    }
}
